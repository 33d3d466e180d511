//! The owner's side of a node-to-node link (`/cluster`): another node
//! relays its clients' messages about documents this node owns. Each
//! (connection there, document) becomes a relayed [`ConnectionHandle`]
//! here, with the member read from the store by the token id the relaying
//! node verified, so this node's owners decide access exactly as for their
//! own clients; what they send it goes back over the link.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{Message as WsMessage, WebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use konsens_sync::{ConnectionId, DocumentId, Message};
use tokio::sync::mpsc;

use crate::cluster::envelope::Envelope;
use crate::document::DocCommand;
use crate::handle::{CloseReason, ConnectionHandle};
use crate::hub::Hub;

/// Frames queued for the link back to the relaying node.
const LINK_QUEUE: usize = 4096;

/// `GET /cluster`: only for nodes presenting the cluster secret.
pub(crate) async fn link_socket(State(hub): State<Arc<Hub>>, headers: axum::http::HeaderMap, upgrade: WebSocketUpgrade) -> Response {
    let expected = hub.config.cluster.secret.as_deref().filter(|_| hub.cluster.is_some());
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let accepted = matches!((expected, presented), (Some(expected), Some(presented)) if same_secret(expected, presented));
    if !accepted {
        tracing::warn!("a node-to-node link without the cluster secret was refused");
        return axum::http::StatusCode::UNAUTHORIZED.into_response();
    }
    // A relayed frame is a client's frame and a small header.
    let limit = hub.config.max_frame_bytes + 1024;
    upgrade.max_message_size(limit).max_frame_size(limit).on_upgrade(move |socket| serve(socket, hub))
}

/// Compare without returning early at the first difference, so the time
/// taken says nothing about how much of a guess was right.
fn same_secret(expected: &str, presented: &str) -> bool {
    let (a, b) = (expected.as_bytes(), presented.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

async fn serve(socket: WebSocket, hub: Arc<Hub>) {
    let (mut sink, mut stream) = socket.split();
    let (link, mut queue) = mpsc::channel::<Vec<u8>>(LINK_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(frame) = queue.recv().await {
            if sink.send(WsMessage::Binary(frame.into())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    tracing::info!("a node opened a link to relay to us");
    let shutdown = hub.shutdown_token().clone();
    let mut relayed: HashMap<(ConnectionId, DocumentId), Arc<ConnectionHandle>> = HashMap::new();
    loop {
        let frame = tokio::select! {
            frame = stream.next() => frame,
            () = shutdown.cancelled() => break,
        };
        let bytes = match frame {
            Some(Ok(WsMessage::Binary(bytes))) => bytes,
            Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => continue,
        };
        let envelope = match Envelope::decode(&bytes) {
            Ok(envelope) => envelope,
            Err(error) => {
                tracing::warn!(%error, "closing a link that sent a bad frame");
                break;
            }
        };
        match envelope {
            Envelope::Open { conn, document, peer, storage, token_id } => {
                let Some(principal) = hub.auth.principal_by_id(&token_id) else {
                    tracing::info!(token = %token_id, "refusing a relayed connection whose token is no longer valid");
                    let closed = Envelope::Closed { conn, document, moved: false, code: CloseReason::TokenRevoked.code(), reason: CloseReason::TokenRevoked.text() };
                    let _ = link.send(closed.encode()).await;
                    continue;
                };
                if let Some(previous) = relayed.remove(&(conn, document)) {
                    hub.notify_disconnected(document, previous.id).await;
                }
                let (outbound, frames) = mpsc::channel(hub.config.outbound_queue);
                let handle = Arc::new(ConnectionHandle::new(hub.next_connection_id(), peer, principal, storage, outbound).from_another_node());
                tokio::spawn(forward(handle.clone(), frames, link.clone(), conn, document));
                relayed.insert((conn, document), handle);
            }
            Envelope::Sync { conn, document, request, data } => {
                tracing::trace!(?conn, %document, bytes = data.len(), "relayed sync in");
                let Some(handle) = relayed.get(&(conn, document)) else {
                    tracing::debug!(?conn, %document, "a relayed sync for a connection the link never opened; dropped");
                    continue;
                };
                match automerge::sync::Message::decode(&data) {
                    Ok(message) => hub.dispatch(document, DocCommand::Sync { conn: handle.clone(), message, request }).await,
                    // The relaying node decoded it before; a node that sends garbage is broken.
                    Err(error) => tracing::warn!(%error, %document, "a relayed sync payload does not decode; dropped"),
                }
            }
            Envelope::Ephemeral { conn, document, frame } => {
                let Some(handle) = relayed.get(&(conn, document)) else { continue };
                if let Ok(Message::Ephemeral(message)) = Message::decode(&frame, hub.config.max_frame_bytes) {
                    hub.dispatch(document, DocCommand::Ephemeral { conn: handle.clone(), message }).await;
                }
            }
            Envelope::Resync { conn, document } => {
                let Some(handle) = relayed.get(&(conn, document)) else { continue };
                hub.dispatch(document, DocCommand::Resync { conn: handle.clone() }).await;
            }
            Envelope::Leave { conn, document } => {
                if let Some(handle) = relayed.remove(&(conn, document)) {
                    hub.notify_disconnected(document, handle.id).await;
                    handle.close(CloseReason::Normal);
                }
            }
            Envelope::Out { .. } | Envelope::Closed { .. } => {
                tracing::warn!("a relaying node sent a frame only owners send; ignored");
            }
        }
    }
    for ((_, document), handle) in relayed {
        hub.notify_disconnected(document, handle.id).await;
        handle.close(CloseReason::Normal);
    }
    drop(link);
    let _ = writer.await;
    tracing::info!("a relaying node's link closed");
}

/// What the owner sends a relayed connection goes back over the link; its
/// close becomes a `Closed` frame.
async fn forward(handle: Arc<ConnectionHandle>, mut frames: mpsc::Receiver<Vec<u8>>, link: mpsc::Sender<Vec<u8>>, conn: ConnectionId, document: DocumentId) {
    loop {
        tokio::select! {
            frame = frames.recv() => match frame {
                Some(frame) => {
                    tracing::trace!(?conn, %document, bytes = frame.len(), "relayed frame out");
                    if link.send(Envelope::Out { conn, document, frame }.encode()).await.is_err() {
                        return;
                    }
                }
                None => return,
            },
            () = handle.close_requested() => {
                while let Ok(frame) = frames.try_recv() {
                    if link.send(Envelope::Out { conn, document, frame }.encode()).await.is_err() {
                        return;
                    }
                }
                let reason = handle.close_reason();
                if matches!(reason, CloseReason::Normal) {
                    return;
                }
                // Not the client's doing: its node finds the document's new owner.
                let moved = matches!(reason, CloseReason::Moved | CloseReason::StorageFailed { .. } | CloseReason::ShuttingDown);
                let closed = Envelope::Closed { conn, document, moved, code: reason.code(), reason: reason.text() };
                let _ = link.send(closed.encode()).await;
                return;
            }
        }
    }
}
