//! One protocol connection of the load driver: WebSocket, `join`/`peer`
//! handshake, then sync messages about documents.

use anyhow::{Context, Result, bail};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use konsens_sync::{DocMessage, DocumentId, Message, PeerId, PeerMetadata};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Large enough for a whole-document sync message of the paper trace.
const MAX_MESSAGE: usize = 256 << 20;

#[derive(Debug)]
pub struct Sender {
    sink: SplitSink<Socket, Ws>,
    pub our: PeerId,
    pub server: PeerId,
}

/// The receiving half. A task of its own reads the socket all the time and
/// queues what arrives: a real WebSocket client (a browser, the `ws` package)
/// answers pings in its network stack whatever the application is doing, and
/// tungstenite only answers them while the stream is polled. The stock
/// server's adapter pings every 5 s and terminates a socket that has not
/// answered by the next ping, so a peer that waits without reading (a writer
/// waiting for the start signal, an idle connection) would be dropped by the
/// JS server alone. Reading in the background keeps every peer alive the same
/// way against every server.
#[derive(Debug)]
pub struct Receiver {
    queue: tokio::sync::mpsc::UnboundedReceiver<Result<Incoming>>,
    pump: tokio::task::AbortHandle,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // Nobody will read what arrives: stop reading and let the socket close.
        self.pump.abort();
    }
}

/// What the driver cares about in what the server sends.
#[derive(Debug)]
pub enum Incoming {
    Sync { document_id: DocumentId, data: Vec<u8> },
    Unavailable { document_id: DocumentId },
    /// Anything else, by its wire type name (the frame recorder counts them).
    Other(&'static str),
}

/// Join as an ephemeral peer (no storage): what a load driver's peer is.
pub async fn connect(url: &str, peer_id: &str) -> Result<(Sender, Receiver)> {
    connect_as(url, peer_id, None).await
}

/// Join; with `storage`, as a peer that keeps documents in that storage (so
/// a server may keep what it shares with it across reconnects).
pub async fn connect_as(url: &str, peer_id: &str, storage: Option<&str>) -> Result<(Sender, Receiver)> {
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let (socket, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let (sink, stream) = socket.split();
    let our = PeerId::from(peer_id);
    let mut sender = Sender { sink, our: our.clone(), server: PeerId::from("") };
    let mut stream = stream;
    let join = Message::Join {
        sender_id: our,
        peer_metadata: Some(PeerMetadata {
            storage_id: storage.map(|s| konsens_sync::StorageId(s.to_owned())),
            is_ephemeral: storage.is_none(),
        }),
        supported_protocol_versions: Some(vec!["1".into()]),
    };
    sender.sink.send(Ws::Binary(join.encode().into())).await?;
    loop {
        match next_message(&mut stream).await? {
            Some(Message::Peer { sender_id, .. }) => {
                sender.server = sender_id;
                return Ok((sender, Receiver::spawn(stream)));
            }
            Some(Message::Error { message, .. }) => bail!("handshake refused: {message}"),
            Some(_) => continue,
            None => bail!("connection closed during the handshake"),
        }
    }
}

impl Sender {
    pub async fn sync(&mut self, document_id: DocumentId, data: Vec<u8>) -> Result<()> {
        self.send(Message::Sync(self.doc_message(document_id, data))).await
    }

    pub async fn request(&mut self, document_id: DocumentId, data: Vec<u8>) -> Result<()> {
        self.send(Message::Request(self.doc_message(document_id, data))).await
    }

    fn doc_message(&self, document_id: DocumentId, data: Vec<u8>) -> DocMessage {
        DocMessage { sender_id: self.our.clone(), target_id: self.server.clone(), document_id, data }
    }

    async fn send(&mut self, message: Message) -> Result<()> {
        self.sink.send(Ws::Binary(message.encode().into())).await?;
        Ok(())
    }

    pub async fn close(mut self) {
        let _ = self.sink.close().await;
    }
}

/// The next protocol message on `stream`, `None` once it is closed.
async fn next_message(stream: &mut SplitStream<Socket>) -> Result<Option<Message>> {
    loop {
        match stream.next().await {
            None => return Ok(None),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(Ws::Binary(bytes))) => return Ok(Some(Message::decode(&bytes, MAX_MESSAGE)?)),
            Some(Ok(Ws::Close(_))) => return Ok(None),
            // Pings are answered by tungstenite inside `next`.
            Some(Ok(_)) => continue,
        }
    }
}

impl Receiver {
    fn spawn(mut stream: SplitStream<Socket>) -> Self {
        let (tx, queue) = tokio::sync::mpsc::unbounded_channel();
        // `tokio::spawn`, not `spawn_local`: the stream is `Send`, and this
        // works under every runtime the scenarios use (with or without a LocalSet).
        let pump = tokio::spawn(async move {
            loop {
                match next_message(&mut stream).await {
                    Ok(Some(m)) => {
                        if tx.send(Ok(classify(m))).is_err() {
                            return;
                        }
                    }
                    // The end of the stream is not queued: a closed queue says "closed".
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
        });
        Self { queue, pump: pump.abort_handle() }
    }

    /// The next message, or `None` when the server closed the connection.
    /// Cancel-safe (it is used in `select!`).
    pub async fn next(&mut self) -> Result<Option<Incoming>> {
        self.queue.recv().await.transpose()
    }
}

fn classify(m: Message) -> Incoming {
    match m {
        Message::Sync(d) | Message::Request(d) => Incoming::Sync { document_id: d.document_id, data: d.data },
        Message::DocUnavailable { document_id, .. } => Incoming::Unavailable { document_id },
        other => Incoming::Other(other.type_name()),
    }
}
