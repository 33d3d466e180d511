//! One protocol connection of the load driver: WebSocket, `join`/`peer`
//! handshake, then sync messages about documents.

use anyhow::{Context, Result, bail};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use konsens_protocol::{DocMessage, DocumentId, Message, PeerId, PeerMetadata};
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

#[derive(Debug)]
pub struct Receiver {
    stream: SplitStream<Socket>,
}

/// What the driver cares about in what the server sends.
#[derive(Debug)]
pub enum Incoming {
    Sync { document_id: DocumentId, data: Vec<u8> },
    Unavailable { document_id: DocumentId },
    Other,
}

pub async fn connect(url: &str, peer_id: &str) -> Result<(Sender, Receiver)> {
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let (socket, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let (sink, stream) = socket.split();
    let our = PeerId::from(peer_id);
    let mut sender = Sender { sink, our: our.clone(), server: PeerId::from("") };
    let mut receiver = Receiver { stream };
    let join = Message::Join {
        sender_id: our,
        peer_metadata: Some(PeerMetadata { storage_id: None, is_ephemeral: true }),
        supported_protocol_versions: Some(vec!["1".into()]),
    };
    sender.sink.send(Ws::Binary(join.encode().into())).await?;
    loop {
        match receiver.next_message().await? {
            Some(Message::Peer { sender_id, .. }) => {
                sender.server = sender_id;
                return Ok((sender, receiver));
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

impl Receiver {
    async fn next_message(&mut self) -> Result<Option<Message>> {
        loop {
            match self.stream.next().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(Ws::Binary(bytes))) => return Ok(Some(Message::decode(&bytes, MAX_MESSAGE)?)),
                Some(Ok(Ws::Close(_))) => return Ok(None),
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The next message, or `None` when the server closed the connection.
    pub async fn next(&mut self) -> Result<Option<Incoming>> {
        Ok(self.next_message().await?.map(|m| match m {
            Message::Sync(d) | Message::Request(d) => Incoming::Sync { document_id: d.document_id, data: d.data },
            Message::DocUnavailable { document_id, .. } => Incoming::Unavailable { document_id },
            _ => Incoming::Other,
        }))
    }
}
