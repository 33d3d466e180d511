//! One WebSocket connection: the handshake, then a reader that routes each
//! message to its document's owner and a writer that drains the connection's
//! bounded outbound queue.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use futures_util::{SinkExt, StreamExt};
use konsens_protocol::{ConnectionId, DocumentId, Message, PeerId, ProtocolError, StorageId};
use tokio::sync::{Notify, mpsc};

use crate::auth::Principal;
use crate::document::DocCommand;
use crate::hub::Hub;
use crate::lock;

/// WebSocket close codes we use (RFC 6455 §7.4.1).
pub(crate) mod close_code {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const UNSUPPORTED_DATA: u16 = 1003;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
}

/// Tells a connection's writer to close, with a code and a reason.
#[derive(Debug, Default)]
struct CloseSignal {
    reason: Mutex<Option<(u16, String)>>,
    notify: Notify,
}

/// What document owners hold of a connection: its id, its peer, and a way to
/// queue frames or close it. Never blocks: a full queue closes the connection,
/// since a peer that cannot keep up resyncs cheaply after reconnecting, while
/// waiting for it would stall the document for everybody else.
#[derive(Debug)]
pub(crate) struct ConnectionHandle {
    pub id: ConnectionId,
    pub peer_id: PeerId,
    /// Who authenticated this connection (bound for its whole life).
    pub principal: Principal,
    /// The peer's storage, if it keeps its documents (not an ephemeral peer):
    /// what we share with it is kept across its reconnects.
    pub storage: Option<StorageId>,
    outbound: mpsc::Sender<Vec<u8>>,
    close: CloseSignal,
}

impl ConnectionHandle {
    /// Queue a frame. Returns false when the connection is gone.
    pub fn send(&self, frame: Vec<u8>) -> bool {
        match self.outbound.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(conn = ?self.id, peer = %self.peer_id, "outbound queue full; closing slow connection");
                self.close(close_code::POLICY, "outbound queue full: connection too slow");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Ask the writer to close the socket (first reason wins).
    pub fn close(&self, code: u16, reason: &str) {
        let mut slot = lock(&self.close.reason);
        if slot.is_none() {
            *slot = Some((code, truncate_reason(reason)));
        }
        drop(slot);
        self.close.notify.notify_one();
    }
}

/// Close reasons must fit in a control frame (123 bytes).
fn truncate_reason(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

/// Serve one upgraded socket until it closes.
pub(crate) async fn serve(socket: WebSocket, hub: Arc<Hub>, principal: Principal) {
    let conn_id = hub.next_connection_id();
    let (mut sink, mut stream) = socket.split();

    // Handshake: the first frame must be a binary `join`.
    let first = tokio::time::timeout(hub.config.handshake_timeout, stream.next()).await;
    let joined = match first {
        Err(_) => {
            tracing::info!(conn = ?conn_id, "no join within the handshake timeout");
            let _ = sink.send(close_frame(close_code::POLICY, "no join message received")).await;
            return;
        }
        Ok(None) | Ok(Some(Err(_))) => return,
        Ok(Some(Ok(WsMessage::Binary(bytes)))) => {
            match Message::decode(&bytes, hub.config.max_frame_bytes) {
                Ok(message) => hub.handshake.accept(message),
                Err(error) => {
                    let reply = Message::Error {
                        sender_id: Some(hub.handshake.our_peer_id.clone()),
                        target_id: None,
                        message: error.to_string(),
                        refusal: None,
                    };
                    Err((error, reply))
                }
            }
        }
        Ok(Some(Ok(WsMessage::Text(_)))) => {
            let error = ProtocolError::NotAMessage("text frame; the protocol uses binary CBOR frames");
            let reply = Message::Error {
                sender_id: Some(hub.handshake.our_peer_id.clone()),
                target_id: None,
                message: error.to_string(),
                refusal: None,
            };
            Err((error, reply))
        }
        Ok(Some(Ok(_))) => return,
    };
    let joined = match joined {
        Ok(joined) => joined,
        Err((error, reply)) => {
            tracing::warn!(conn = ?conn_id, %error, "handshake refused");
            let _ = sink.send(WsMessage::Binary(reply.encode().into())).await;
            let _ = sink.send(close_frame(close_code::PROTOCOL_ERROR, &error.to_string())).await;
            return;
        }
    };

    let (outbound_tx, mut outbound_rx) = mpsc::channel::<Vec<u8>>(hub.config.outbound_queue);
    let handle = Arc::new(ConnectionHandle {
        id: conn_id,
        peer_id: joined.peer_id.clone(),
        principal,
        storage: joined.metadata.storage_id.clone().filter(|_| !joined.metadata.is_ephemeral),
        outbound: outbound_tx,
        close: CloseSignal::default(),
    });
    let _registration = match hub.register_connection(handle.clone()) {
        Ok(registration) => registration,
        Err(reason) => {
            let reply = Message::Error {
                sender_id: Some(hub.handshake.our_peer_id.clone()),
                target_id: Some(joined.peer_id.clone()),
                message: reason.clone(),
                refusal: None,
            };
            let _ = sink.send(WsMessage::Binary(reply.encode().into())).await;
            let _ = sink.send(close_frame(close_code::POLICY, &reason)).await;
            return;
        }
    };
    if !handle.send(joined.reply.encode()) {
        return;
    }
    tracing::info!(
        conn = ?conn_id,
        peer = %joined.peer_id,
        participant = %handle.principal.participant,
        role = handle.principal.role_name(),
        ephemeral = joined.metadata.is_ephemeral,
        "peer joined"
    );

    // Writer: frames out, then a close frame with the reason once asked to.
    let writer_handle = handle.clone();
    let mut writer = tokio::spawn(async move {
        loop {
            tokio::select! {
                biased;
                frame = outbound_rx.recv() => match frame {
                    Some(frame) => {
                        if sink.send(WsMessage::Binary(frame.into())).await.is_err() {
                            break;
                        }
                    }
                    None => break,
                },
                () = writer_handle.close.notify.notified() => {
                    // Flush what is already queued (an `error` often precedes a close).
                    while let Ok(frame) = outbound_rx.try_recv() {
                        if sink.send(WsMessage::Binary(frame.into())).await.is_err() {
                            break;
                        }
                    }
                    let (code, reason) = lock(&writer_handle.close.reason)
                        .clone()
                        .unwrap_or((close_code::NORMAL, String::new()));
                    let _ = sink.send(close_frame(code, &reason)).await;
                    break;
                }
            }
        }
        let _ = sink.close().await;
    });

    let mut documents: HashSet<DocumentId> = HashSet::new();
    let mut rate = RateLimit::new(hub.config.limits.messages_per_second);
    let shutdown = hub.shutdown_token().clone();
    loop {
        let next = tokio::select! {
            next = stream.next() => next,
            _ = &mut writer => break,
            () = shutdown.cancelled() => {
                handle.close(close_code::GOING_AWAY, "server shutting down");
                break;
            }
        };
        let bytes = match next {
            None => break,
            Some(Err(error)) => {
                // tungstenite reports an over-long message here, before buffering it.
                let text = error.to_string();
                if text.contains("too long") || text.contains("Space limit") || text.contains("Message too") {
                    tracing::warn!(conn = ?conn_id, peer = %handle.peer_id, %error, "frame over the size limit");
                    handle.close(
                        close_code::TOO_BIG,
                        &format!("message exceeds the limit of {} bytes", hub.config.max_frame_bytes),
                    );
                } else {
                    tracing::debug!(conn = ?conn_id, %error, "socket error");
                }
                break;
            }
            Some(Ok(WsMessage::Binary(bytes))) => bytes,
            Some(Ok(WsMessage::Text(_))) => {
                refuse(&hub, &handle, close_code::UNSUPPORTED_DATA,
                    ProtocolError::NotAMessage("text frame; the protocol uses binary CBOR frames"));
                break;
            }
            Some(Ok(WsMessage::Close(_))) => break,
            Some(Ok(_)) => continue, // ping/pong are answered by the WebSocket layer
        };
        let message = match Message::decode(&bytes, hub.config.max_frame_bytes) {
            Ok(m) => m,
            Err(error @ ProtocolError::UnknownType(_)) => {
                // A newer client may speak types we do not know: say so, keep serving.
                tracing::warn!(conn = ?conn_id, peer = %handle.peer_id, %error, "ignoring message");
                send_error(&hub, &handle, &error);
                continue;
            }
            Err(error) => {
                let code = if matches!(error, ProtocolError::TooLarge { .. }) {
                    close_code::TOO_BIG
                } else {
                    close_code::PROTOCOL_ERROR
                };
                refuse(&hub, &handle, code, error);
                break;
            }
        };
        if matches!(message, Message::Sync(_) | Message::Request(_) | Message::Ephemeral(_)) && !hub.auth.open {
            // Over the rate, the socket is not read for a while (TCP pushes
            // back on the sender); only a sender that stays over it is closed.
            let now = tokio::time::Instant::now();
            match rate.admit(now, hub.config.limits.throttle_close_after) {
                Pace::Now => {}
                Pace::After(wait) => {
                    tracing::debug!(conn = ?conn_id, wait_ms = wait.as_millis() as u64, "slowing down a connection over its message rate");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = shutdown.cancelled() => {
                            handle.close(close_code::GOING_AWAY, "server shutting down");
                            break;
                        }
                    }
                }
                Pace::Close => {
                    tracing::warn!(conn = ?conn_id, participant = %handle.principal.participant, limit = hub.config.limits.messages_per_second, "message rate limit exceeded for too long");
                    send_error(&hub, &handle, &format!("rate limit exceeded: at most {} messages per second", hub.config.limits.messages_per_second));
                    handle.close(close_code::POLICY, "rate limit exceeded");
                    break;
                }
            }
        }
        match message {
            Message::Sync(mut doc_message) => {
                doc_message.sender_id = handle.peer_id.clone();
                let id = doc_message.document_id;
                documents.insert(id);
                hub.dispatch(id, DocCommand::Sync { conn: handle.clone(), message: doc_message, request: false }).await;
            }
            Message::Request(mut doc_message) => {
                doc_message.sender_id = handle.peer_id.clone();
                let id = doc_message.document_id;
                documents.insert(id);
                hub.dispatch(id, DocCommand::Sync { conn: handle.clone(), message: doc_message, request: true }).await;
            }
            Message::Ephemeral(ephemeral) => {
                // Keep the claimed sender: automerge-repo clients pass on what
                // they receive, and de-duplication must recognise those echoes.
                let id = ephemeral.document_id;
                documents.insert(id);
                hub.dispatch(id, DocCommand::Ephemeral { conn: handle.clone(), message: ephemeral }).await;
            }
            Message::Leave { .. } => {
                handle.close(close_code::NORMAL, "leave");
                break;
            }
            Message::Error { message, .. } => {
                tracing::info!(conn = ?conn_id, peer = %handle.peer_id, %message, "peer reported an error");
            }
            Message::DocUnavailable { .. }
            | Message::RemoteSubscriptionChange { .. }
            | Message::RemoteHeadsChanged { .. } => {
                // Gossip of other storages' heads is optional; we neither need nor relay it.
                tracing::trace!(conn = ?conn_id, kind = message.type_name(), "ignored");
            }
            Message::Join { .. } | Message::Peer { .. } => {
                let error = ProtocolError::UnexpectedMessage {
                    message_type: message.type_name(),
                    state: "after the handshake",
                };
                tracing::warn!(conn = ?conn_id, peer = %handle.peer_id, %error, "ignoring message");
                send_error(&hub, &handle, &error);
            }
        }
    }

    // Tell every document this connection touched, so their sync states go.
    for id in documents {
        hub.notify_disconnected(id, conn_id).await;
    }
    handle.close(close_code::NORMAL, "");
    let _ = writer.await;
    tracing::info!(conn = ?conn_id, peer = %handle.peer_id, "connection closed");
}

fn send_error(hub: &Hub, handle: &ConnectionHandle, error: &dyn std::fmt::Display) {
    let reply = Message::Error {
        sender_id: Some(hub.handshake.our_peer_id.clone()),
        target_id: Some(handle.peer_id.clone()),
        message: error.to_string(),
        refusal: None,
    };
    handle.send(reply.encode());
}

/// A token bucket: `per_second` messages a second, bursts up to twice that.
/// A message over the rate waits for its token; a sender that keeps waiting
/// without a break for the close delay is closed.
struct RateLimit {
    per_second: f64,
    tokens: f64,
    last: Option<tokio::time::Instant>,
    /// When the current run of slowed-down messages began.
    slowed_since: Option<tokio::time::Instant>,
}

/// What to do with the next message.
#[derive(Debug, PartialEq)]
enum Pace {
    Now,
    /// Read it after this long.
    After(std::time::Duration),
    Close,
}

impl RateLimit {
    fn new(per_second: u32) -> Self {
        let per_second = f64::from(per_second.max(1));
        Self { per_second, tokens: per_second * 2.0, last: None, slowed_since: None }
    }

    fn admit(&mut self, now: tokio::time::Instant, close_after: std::time::Duration) -> Pace {
        if let Some(last) = self.last {
            let refill = now.saturating_duration_since(last).as_secs_f64() * self.per_second;
            self.tokens = (self.tokens + refill).min(self.per_second * 2.0);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.slowed_since = None;
            return Pace::Now;
        }
        let since = *self.slowed_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= close_after {
            return Pace::Close;
        }
        let wait = std::time::Duration::from_secs_f64((1.0 - self.tokens) / self.per_second);
        // The token that refills during the wait is this message's.
        self.tokens = 0.0;
        self.last = Some(now + wait);
        Pace::After(wait)
    }
}

fn refuse(hub: &Hub, handle: &ConnectionHandle, code: u16, error: ProtocolError) {
    tracing::warn!(conn = ?handle.id, peer = %handle.peer_id, %error, "closing connection on bad input");
    send_error(hub, handle, &error);
    handle.close(code, &error.to_string());
}

fn close_frame(code: u16, reason: &str) -> WsMessage {
    WsMessage::Close(Some(CloseFrame {
        code,
        reason: truncate_reason(reason).into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_within_the_limit_passes_and_a_faster_sender_is_slowed_then_closed() {
        let start = tokio::time::Instant::now();
        let close_after = Duration::from_secs(30);
        let mut rate = RateLimit::new(10);
        // The burst allowance (twice the rate) passes at once.
        for _ in 0..20 {
            assert_eq!(rate.admit(start, close_after), Pace::Now);
        }
        // The next one waits for its token instead of being refused.
        assert_eq!(rate.admit(start, close_after), Pace::After(Duration::from_millis(100)));
        // A sender that keeps up at the rate is never closed.
        let mut at = start + Duration::from_millis(100);
        for _ in 0..1000 {
            at += Duration::from_millis(100);
            assert_eq!(rate.admit(at, close_after), Pace::Now);
        }
        // One that sends twice as fast waits every time, and is closed after
        // being slowed down without a break for the close delay.
        let mut closed_at = None;
        for i in 0..2000u64 {
            at += Duration::from_millis(50);
            match rate.admit(at, close_after) {
                Pace::Close => {
                    closed_at = Some(i);
                    break;
                }
                Pace::Now | Pace::After(_) => {}
            }
        }
        let closed_at = closed_at.expect("closed eventually");
        assert!((590..=610).contains(&closed_at), "closed after {closed_at} messages, about 30 s at 20/s");
    }
}
