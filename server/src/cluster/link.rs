//! Links to the owner nodes this node relays to: one WebSocket per node,
//! dialled on first need, carrying every relayed connection and document
//! (see `envelope.rs`). What comes back is delivered straight to the
//! client's connection (no hop through the document's relay task); a
//! document the owner gave up is reported to its relay task.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use konsens_sync::{ConnectionId, DocumentId};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;

use crate::cluster::envelope::Envelope;
use crate::handle::{CloseReason, ConnectionHandle};
use crate::metrics::{Direction, Metrics};
use crate::util::lock;

/// How long dialling another node may take before it counts as unreachable.
const DIAL_TIMEOUT: Duration = Duration::from_secs(2);
/// Frames queued for one link before relay tasks wait.
const LINK_QUEUE: usize = 4096;
/// The path other nodes serve links at.
pub(crate) const LINK_PATH: &str = "/cluster";

/// Why a link could not be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    #[error("no --cluster-secret: this node cannot relay to other nodes")]
    NoSecret,
    #[error("cannot reach node {address}: {reason}")]
    Unreachable { address: String, reason: String },
}

/// What a relay task hears from its link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkEvent {
    /// The owner gave the document up for one of our connections.
    Moved,
}

/// One live link to an owner node.
#[derive(Debug)]
pub(crate) struct Link {
    pub address: String,
    outbound: mpsc::Sender<Vec<u8>>,
    /// Where frames for our clients go: (our connection, document).
    routes: std::sync::Mutex<HashMap<(ConnectionId, DocumentId), Arc<ConnectionHandle>>>,
    /// The relay task of each document relayed over this link.
    relays: std::sync::Mutex<HashMap<DocumentId, mpsc::UnboundedSender<LinkEvent>>>,
    /// Cancelled when the link is gone.
    pub closed: CancellationToken,
    metrics: Arc<Metrics>,
}

impl Link {
    /// Send a frame to the owner; false once the link is gone.
    pub async fn send(&self, envelope: &Envelope) -> bool {
        if matches!(envelope, Envelope::Sync { .. } | Envelope::Ephemeral { .. }) {
            self.metrics.relayed(Direction::ToOwner);
        }
        !self.closed.is_cancelled() && self.outbound.send(envelope.encode()).await.is_ok()
    }

    /// Frames for `conn` about `document` go to `handle` from now on.
    pub fn route(&self, conn: &Arc<ConnectionHandle>, document: DocumentId) {
        lock(&self.routes).insert((conn.id, document), conn.clone());
    }

    pub fn unroute(&self, conn: ConnectionId, document: DocumentId) {
        lock(&self.routes).remove(&(conn, document));
    }

    /// The relay task of `document` hears of it through `events`.
    pub fn attach(&self, document: DocumentId, events: mpsc::UnboundedSender<LinkEvent>) {
        lock(&self.relays).insert(document, events);
    }

    pub fn detach(&self, document: DocumentId) {
        lock(&self.relays).remove(&document);
    }

    /// A frame from the owner.
    fn deliver(&self, envelope: Envelope) {
        match envelope {
            Envelope::Out { conn, document, frame } => {
                self.metrics.relayed(Direction::FromOwner);
                let handle = lock(&self.routes).get(&(conn, document)).cloned();
                match handle {
                    Some(handle) => {
                        let sent = handle.send(frame);
                        tracing::trace!(?conn, %document, sent, "from the owner to our client");
                    }
                    None => tracing::debug!(?conn, %document, "a frame from the owner for a connection no longer relayed; dropped"),
                }
            }
            Envelope::Closed { conn, document, moved: true, .. } => {
                tracing::debug!(%document, address = %self.address, ?conn, "the owner gave a document up");
                if let Some(events) = lock(&self.relays).get(&document) {
                    let _ = events.send(LinkEvent::Moved);
                }
            }
            Envelope::Closed { conn, document, moved: false, code, reason } => {
                let handle = lock(&self.routes).remove(&(conn, document));
                if let Some(handle) = handle {
                    tracing::info!(?conn, %document, code, %reason, "the owner node closed a relayed connection");
                    handle.close(CloseReason::Relayed { code, reason });
                }
            }
            other => {
                tracing::warn!(address = %self.address, kind = ?std::mem::discriminant(&other), "a node sent a frame only relaying nodes send; ignored");
            }
        }
    }
}

/// The links of this node, one per owner node, by address.
#[derive(Debug)]
pub(crate) struct Links {
    secret: Option<String>,
    max_frame_bytes: usize,
    links: tokio::sync::Mutex<HashMap<String, Arc<Link>>>,
    metrics: Arc<Metrics>,
}

impl Links {
    pub fn new(secret: Option<String>, max_frame_bytes: usize, metrics: Arc<Metrics>) -> Self {
        Self { secret, max_frame_bytes, links: tokio::sync::Mutex::default(), metrics }
    }

    /// The live link to `address`, dialled now if there is none.
    pub async fn get(&self, address: &str) -> Result<Arc<Link>, LinkError> {
        let secret = self.secret.as_deref().ok_or(LinkError::NoSecret)?;
        let mut links = self.links.lock().await;
        if let Some(link) = links.get(address)
            && !link.closed.is_cancelled()
        {
            return Ok(link.clone());
        }
        let link = dial(address, secret, self.max_frame_bytes, self.metrics.clone()).await?;
        links.insert(address.to_owned(), link.clone());
        Ok(link)
    }
}

async fn dial(address: &str, secret: &str, max_frame_bytes: usize, metrics: Arc<Metrics>) -> Result<Arc<Link>, LinkError> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let unreachable = |reason: String| LinkError::Unreachable { address: address.to_owned(), reason };
    let url = format!("{}{LINK_PATH}", address.trim_end_matches('/'));
    let mut request = url.as_str().into_client_request().map_err(|e| unreachable(e.to_string()))?;
    let value = format!("Bearer {secret}").parse().map_err(|_| unreachable("the cluster secret is not a valid header value".into()))?;
    request.headers_mut().insert("authorization", value);
    // Relayed frames are client frames plus a small header.
    let limit = max_frame_bytes + 1024;
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit));
    let connecting = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
    let (socket, _) = tokio::time::timeout(DIAL_TIMEOUT, connecting)
        .await
        .map_err(|_| unreachable("timed out".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    let (mut sink, mut stream) = socket.split();
    let (outbound, mut queue) = mpsc::channel::<Vec<u8>>(LINK_QUEUE);
    let link = Arc::new(Link {
        address: address.to_owned(),
        outbound,
        routes: std::sync::Mutex::default(),
        relays: std::sync::Mutex::default(),
        closed: CancellationToken::new(),
        metrics,
    });
    tracing::info!(%address, "link to another node open");
    let writer_link = link.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                frame = queue.recv() => match frame {
                    Some(frame) => {
                        if sink.send(WsMessage::Binary(frame.into())).await.is_err() {
                            break;
                        }
                    }
                    None => break,
                },
                () = writer_link.closed.cancelled() => break,
            }
        }
        writer_link.closed.cancel();
        let _ = sink.close().await;
    });
    let reader_link = link.clone();
    tokio::spawn(async move {
        loop {
            let frame = tokio::select! {
                frame = stream.next() => frame,
                () = reader_link.closed.cancelled() => break,
            };
            match frame {
                Some(Ok(WsMessage::Binary(bytes))) => match Envelope::decode(&bytes) {
                    Ok(envelope) => reader_link.deliver(envelope),
                    Err(error) => {
                        tracing::warn!(address = %reader_link.address, %error, "closing a link to a node that sent a bad frame");
                        break;
                    }
                },
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
        tracing::info!(address = %reader_link.address, "link to another node closed");
        reader_link.closed.cancel();
    });
    Ok(link)
}
