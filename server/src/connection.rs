//! One WebSocket connection: the handshake, then a reader that routes each
//! message to its document's owner and a writer that drains the connection's
//! bounded outbound queue. What a frame means after the handshake (route,
//! answer, close, ignore) is konsens-sync's [`PeerSession`]; what stays here
//! is the socket: text frames, the rate limit, read limits, access and
//! unknown documents.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use futures_util::{SinkExt, StreamExt};
use konsens_model::access;
use konsens_sync::session::{Ignored, PeerSession, SessionAction};
use konsens_sync::{CloseReason as SyncClose, ConnectionId, DocMessage, DocumentId, Message, ProtocolError, Role, limits};
use tokio::sync::mpsc;

use crate::auth::Principal;
use crate::awaiting::MAX_AWAITED_PER_CONNECTION;
use crate::document::DocCommand;
use crate::handle::{CloseReason, ConnectionHandle};
use crate::hub::Hub;
use crate::miss_budget::MissPace;
use crate::reply;
use crate::unknown::{self, Route};
use crate::util::now_millis;

/// How long a closing connection waits for the peer's close frame.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Close reasons must fit in a control frame (123 bytes).
fn truncate_reason(reason: &str) -> String {
    truncate(reason, 123).to_owned()
}

fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Resolves when the token expires (never, for one without an expiry).
async fn expiry(expires_at: Option<i64>) {
    match expires_at {
        Some(at) => {
            let left = u64::try_from(at.saturating_sub(now_millis())).unwrap_or(0);
            tokio::time::sleep(std::time::Duration::from_millis(left)).await;
        }
        None => std::future::pending().await,
    }
}

/// Is this tungstenite error a message or frame over the size limit?
fn is_over_size_limit(error: axum::Error) -> bool {
    let inner = error.into_inner();
    matches!(inner.downcast_ref::<tungstenite::Error>(), Some(tungstenite::Error::Capacity(_)))
}

/// Serve one upgraded socket until it closes. `token` is the secret it was
/// authenticated with (none with `--open`), looked at once more here.
pub(crate) async fn serve(socket: WebSocket, hub: Arc<Hub>, principal: Principal, token: Option<String>) {
    let conn_id = hub.next_connection_id();
    let (mut sink, mut stream) = socket.split();
    let shutdown = hub.shutdown_token().clone();

    // From here on a revocation reaches this socket. The token was checked
    // before the upgrade, and could have been revoked since: look again, now
    // that a later revocation cannot miss us.
    let unjoined = hub.track_unjoined(&principal.token_id);
    let expires_at = match current_token(&hub, token) {
        Ok(expires_at) => expires_at,
        Err(reason) => {
            tracing::info!(conn = ?conn_id, participant = %principal.participant, reason = %reason.text(), "closing a socket before its join");
            let _ = sink.send(close_frame(&reason)).await;
            return;
        }
    };

    // Handshake: the first frame must be a binary `join`.
    let first = tokio::select! {
        first = tokio::time::timeout(hub.config.handshake_timeout, stream.next()) => first,
        () = unjoined.cancel.cancelled() => {
            close_unjoined(&mut sink, conn_id, &principal, CloseReason::TokenRevoked).await;
            return;
        }
        () = expiry(expires_at) => {
            close_unjoined(&mut sink, conn_id, &principal, CloseReason::TokenExpired).await;
            return;
        }
        () = shutdown.cancelled() => {
            let _ = sink.send(close_frame(&CloseReason::ShuttingDown)).await;
            return;
        }
    };
    let joined = match first {
        Err(_) => {
            tracing::info!(conn = ?conn_id, "no join within the handshake timeout");
            let _ = sink.send(close_frame(&CloseReason::NoJoin)).await;
            return;
        }
        Ok(None) | Ok(Some(Err(_))) => return,
        Ok(Some(Ok(WsMessage::Binary(bytes)))) => {
            match Message::decode(&bytes, hub.config.max_frame_bytes) {
                Ok(message) => hub.handshake.accept(message),
                Err(error) => {
                    let reply = reply::error(&hub.handshake.our_peer_id, None, &error);
                    Err((error, reply))
                }
            }
        }
        Ok(Some(Ok(WsMessage::Text(_)))) => {
            let error = ProtocolError::NotAMessage("text frame; the protocol uses binary CBOR frames");
            let reply = reply::error(&hub.handshake.our_peer_id, None, &error);
            Err((error, reply))
        }
        Ok(Some(Ok(_))) => return,
    };
    let joined = match joined {
        Ok(joined) => joined,
        Err((error, reply)) => {
            tracing::warn!(conn = ?conn_id, %error, "handshake refused");
            let _ = sink.send(WsMessage::Binary(reply.encode().into())).await;
            let reason = CloseReason::ProtocolViolation { error: error.to_string() };
            let _ = sink.send(close_frame(&reason)).await;
            return;
        }
    };

    let (outbound_tx, mut outbound_rx) = mpsc::channel::<Vec<u8>>(hub.config.outbound_queue);
    let handle = Arc::new(ConnectionHandle::new(
        conn_id,
        joined.peer_id.clone(),
        principal,
        joined.metadata.storage_id.clone().filter(|_| !joined.metadata.is_ephemeral),
        outbound_tx,
    ));
    let registration = hub.register_connection(handle.clone());
    // A revocation between the check above and the registration cancelled
    // `unjoined`; after it, it reaches the registered connection.
    let refused = match &registration {
        Err(refusal) => Some(CloseReason::from(*refusal)),
        Ok(_) if unjoined.cancel.is_cancelled() => Some(CloseReason::TokenRevoked),
        Ok(_) => None,
    };
    drop(unjoined);
    if let Some(reason) = refused {
        let reply = reply::error(&hub.handshake.our_peer_id, Some(&joined.peer_id), reason.text());
        let _ = sink.send(WsMessage::Binary(reply.encode().into())).await;
        let _ = sink.send(close_frame(&reason)).await;
        tracing::info!(conn = ?conn_id, peer = %handle.peer_id, reason = %reason.text(), "join refused");
        return;
    }
    let registration = registration;
    if !handle.send(joined.reply.encode()) {
        return;
    }
    // The connection protocol from here on: which frames route where, what
    // is answered, what closes (konsens-sync's rules, shared with the client).
    let mut session = PeerSession::new(Role::Server, hub.handshake.our_peer_id.clone(), joined.peer_id.clone());
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
                () = writer_handle.close_requested() => {
                    // Flush what is already queued (an `error` often precedes a close).
                    while let Ok(frame) = outbound_rx.try_recv() {
                        if sink.send(WsMessage::Binary(frame.into())).await.is_err() {
                            break;
                        }
                    }
                    let reason = writer_handle.close_reason();
                    let _ = sink.send(close_frame(&reason)).await;
                    break;
                }
            }
        }
        let _ = sink.close().await;
    });
    // A JoinHandle must not be polled again once it has completed: the loop
    // below may see the writer end, and the clean-up after it waits for it.
    let mut writer_done = false;

    // Documents whose owner this connection has talked to (told when it goes),
    // and those known to route to their owner (no lookups for them again).
    let mut documents: HashSet<DocumentId> = HashSet::new();
    let mut routed: HashSet<DocumentId> = HashSet::new();
    // Documents asked for before they existed, waited for in the hub.
    let mut awaiting: HashSet<DocumentId> = HashSet::new();
    let mut rate = RateLimit::new(hub.config.limits.messages_per_second);
    let read_limits = hub.config.limits.read_limits();
    // Bad input that repeats is logged once per connection.
    let mut logged_over_limit = false;
    let mut logged_foreign_ephemeral = false;
    let expired = expiry(expires_at);
    tokio::pin!(expired);
    loop {
        let next = tokio::select! {
            next = stream.next() => next,
            _ = &mut writer => {
                writer_done = true;
                break;
            }
            () = shutdown.cancelled() => {
                handle.close(CloseReason::ShuttingDown);
                break;
            }
            () = &mut expired => {
                tracing::info!(conn = ?conn_id, participant = %handle.principal.participant, "token expired; closing its connection");
                handle.close(CloseReason::TokenExpired);
                break;
            }
        };
        let bytes = match next {
            None => break,
            Some(Err(error)) => {
                // tungstenite reports an over-long message here, before buffering it.
                if is_over_size_limit(error) {
                    tracing::warn!(conn = ?conn_id, peer = %handle.peer_id, limit = hub.config.max_frame_bytes, "frame over the size limit");
                    handle.close(CloseReason::TooBig { limit: hub.config.max_frame_bytes });
                } else {
                    tracing::debug!(conn = ?conn_id, "socket error");
                }
                break;
            }
            Some(Ok(WsMessage::Binary(bytes))) => bytes,
            Some(Ok(WsMessage::Text(_))) => {
                let error = ProtocolError::NotAMessage("text frame; the protocol uses binary CBOR frames");
                refuse(&hub, &handle, &error, CloseReason::UnsupportedData { error: error.to_string() });
                break;
            }
            Some(Ok(WsMessage::Close(_))) => break,
            Some(Ok(_)) => continue, // ping/pong are answered by the WebSocket layer
        };
        let frame = Message::decode(&bytes, hub.config.max_frame_bytes);
        // Before the session sees it, so forged ephemerals are paced too.
        if matches!(frame, Ok(Message::Sync(_) | Message::Request(_) | Message::Ephemeral(_))) && !hub.auth.open {
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
                            handle.close(CloseReason::ShuttingDown);
                            break;
                        }
                    }
                }
                Pace::Close => {
                    tracing::warn!(conn = ?conn_id, participant = %handle.principal.participant, limit = hub.config.limits.messages_per_second, "message rate limit exceeded for too long");
                    send_error(&hub, &handle, &format!("rate limit exceeded: at most {} messages per second", hub.config.limits.messages_per_second));
                    handle.close(CloseReason::RateLimited);
                    break;
                }
            }
        }
        match session.receive(frame) {
            SessionAction::Sync { message, request, .. } => {
                if !route(&hub, &handle, message, request, &read_limits, &mut Seen { routed: &mut routed, documents: &mut documents, awaiting: &mut awaiting, logged_over_limit: &mut logged_over_limit }, &shutdown).await {
                    break;
                }
            }
            SessionAction::Ephemeral { document_id: id, message } => {
                // Only a loaded document has other peers to relay to; nothing
                // is started for one that is not.
                if !hub.is_loaded(&id) {
                    continue;
                }
                documents.insert(id);
                hub.dispatch(id, DocCommand::Ephemeral { conn: handle.clone(), message }).await;
            }
            SessionAction::Answer(reply) => {
                tracing::warn!(conn = ?conn_id, peer = %handle.peer_id, reply = ?reply, "ignoring message");
                handle.send(reply.encode());
            }
            SessionAction::Close { reply, reason } => {
                tracing::warn!(conn = ?conn_id, peer = %handle.peer_id, error = %reason, "closing connection on bad input");
                if let Some(reply) = reply {
                    handle.send(reply.encode());
                }
                handle.close(CloseReason::from(reason));
                break;
            }
            SessionAction::Leave => {
                handle.close(CloseReason::Normal);
                break;
            }
            SessionAction::PeerError { message, .. } => {
                tracing::info!(conn = ?conn_id, peer = %handle.peer_id, message = truncate(&message, 200), "peer reported an error");
            }
            // automerge-repo clients pass back what we relayed to them (with
            // the original sender, which our de-duplication would drop
            // anyway); anything else under another id is a forgery.
            SessionAction::Ignore(Ignored::ForeignEphemeral) => {
                if !logged_foreign_ephemeral {
                    tracing::debug!(conn = ?conn_id, peer = %handle.peer_id, "not relaying ephemeral messages that name another sender (echoes or forgeries)");
                    logged_foreign_ephemeral = true;
                }
            }
            ignored @ (SessionAction::Ignore(_) | SessionAction::Unavailable { .. }) => {
                tracing::trace!(conn = ?conn_id, ?ignored, "ignored");
            }
        }
    }

    // Tell every document this connection touched, so their sync states go.
    hub.awaiting.forget(conn_id, &awaiting);
    // An awaited document may have reached an owner (in a cluster, one
    // created on another node, see `Hub::wake_awaited`).
    for id in documents.union(&awaiting) {
        hub.notify_disconnected(*id, conn_id).await;
    }
    handle.close(CloseReason::Normal);
    if !writer_done {
        let _ = writer.await;
    }
    // Gone from the registry now, not after the close handshake.
    drop(registration);
    // The close handshake: read (and drop) what the peer still sends until
    // its close frame. Dropping a socket with unread input makes the kernel
    // send a reset, which can destroy our close frame, and with it the
    // reason, before the peer reads it.
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(frame)) = stream.next().await {
            if matches!(frame, WsMessage::Close(_)) {
                break;
            }
        }
    })
    .await;
    let reason = handle.close_reason();
    tracing::info!(conn = ?conn_id, peer = %handle.peer_id, code = reason.code(), reason = %reason.text(), "connection closed");
}

/// Is the token still good? Returns its expiry. (With `--open` there is none.)
fn current_token(hub: &Hub, token: Option<String>) -> Result<Option<i64>, CloseReason> {
    if hub.auth.open {
        return Ok(None);
    }
    let token = token.ok_or(CloseReason::TokenRevoked)?;
    let record = match hub.auth.store.token(&crate::auth::hash(&token)) {
        Ok(Some(record)) => record,
        _ => return Err(CloseReason::TokenRevoked),
    };
    if record.expires_at.is_some_and(|at| at <= now_millis()) {
        return Err(CloseReason::TokenExpired);
    }
    // The one place that decides validity, for anything else it checks.
    hub.auth.authenticate(Some(&token)).map_err(|_| CloseReason::TokenRevoked)?;
    Ok(record.expires_at)
}

async fn close_unjoined(sink: &mut futures_util::stream::SplitSink<WebSocket, WsMessage>, conn: ConnectionId, principal: &Principal, reason: CloseReason) {
    tracing::info!(conn = ?conn, participant = %principal.participant, reason = %reason.text(), "closing a socket before its join");
    let _ = sink.send(close_frame(&reason)).await;
}

/// What a connection has learnt about documents so far.
struct Seen<'a> {
    /// Known to route to their owner (no lookups for them again).
    routed: &'a mut HashSet<DocumentId>,
    /// Whose owner this connection has talked to (told when it goes).
    documents: &'a mut HashSet<DocumentId>,
    /// Asked for before they existed, waited for in the hub.
    awaiting: &'a mut HashSet<DocumentId>,
    logged_over_limit: &'a mut bool,
}

/// Route a `sync` or `request`: check what it would expand to, then hand it
/// to its document's owner, or answer it here for a document the connection
/// may not read or that does not exist. False: the connection is to close.
async fn route(
    hub: &Arc<Hub>,
    handle: &Arc<ConnectionHandle>,
    message: DocMessage,
    request: bool,
    read_limits: &limits::ReadLimits,
    seen: &mut Seen<'_>,
    shutdown: &tokio_util::sync::CancellationToken,
) -> bool {
    let Seen { routed, documents, awaiting, logged_over_limit } = seen;
    let id = message.document_id;
    // The one decode of the payload: the read limits, admission, `--open`
    // indexing and the engine all look at this.
    let sync = match message.decode_sync() {
        Ok(sync) => sync,
        Err(error) => {
            violation(hub, handle, error);
            return false;
        }
    };
    if let Err(error) = limits::check_decoded(&sync, read_limits) {
        if matches!(error, ProtocolError::BadBloomFilter { .. }) {
            // Nothing a client builds: not a refusal of changes but bad input.
            violation(hub, handle, error);
            return false;
        }
        // A typed refusal; nothing of it reaches Automerge.
        if **logged_over_limit {
            tracing::debug!(conn = ?handle.id, document = %id, %error, "refused a message over the read limits");
        } else {
            tracing::warn!(conn = ?handle.id, peer = %handle.peer_id, participant = %handle.principal.participant, document = %id, %error, "refused a message over the read limits");
            **logged_over_limit = true;
        }
        let refused = access::Refused { reason: access::Refusal::Unreadable(error.to_string()), changes: Vec::new() };
        handle.send(reply::refusal(&hub.handshake.our_peer_id, &handle.peer_id, &refused, id).encode());
        return true;
    }
    if routed.contains(&id) {
        hub.dispatch(id, DocCommand::Sync { conn: handle.clone(), message: sync, request }).await;
        return true;
    }
    let route = unknown::route(hub, &handle.principal, &id);
    if route == Route::Owner {
        routed.insert(id);
        documents.insert(id);
        hub.dispatch(id, DocCommand::Sync { conn: handle.clone(), message: sync, request }).await;
        return true;
    }
    // Unreadable or missing: charged to the token, then answered alike.
    match hub.charge_miss(&handle.principal.token_id) {
        MissPace::Now => {}
        MissPace::After(wait) => {
            tracing::debug!(conn = ?handle.id, wait_ms = wait.as_millis() as u64, "slowing down a token asking for unknown documents");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => {
                    handle.close(CloseReason::ShuttingDown);
                    return false;
                }
            }
        }
        MissPace::Close => {
            tracing::warn!(conn = ?handle.id, participant = %handle.principal.participant, token = %handle.principal.token_id, limit = hub.config.limits.unknown_documents_per_minute, "too many requests for unknown or unreadable documents");
            send_error(hub, handle, &format!(
                "too many requests for unknown documents: at most {} a minute",
                hub.config.limits.unknown_documents_per_minute
            ));
            handle.close(CloseReason::TooManyUnknownDocuments);
            return false;
        }
    }
    let changes = !request && !sync.changes.is_empty();
    match (route, changes) {
        // They may create the document: the owner's admission decides.
        (Route::Missing, true) => {
            documents.insert(id);
            hub.dispatch(id, DocCommand::Sync { conn: handle.clone(), message: sync, request }).await;
        }
        (Route::Unreadable, true) => {
            handle.send(unknown::answer_changes_as_missing(hub, &handle.principal, &handle.peer_id, id, &sync).encode());
        }
        // Asked for before anybody has it: `doc-unavailable` now, and the
        // document once it is created, if this connection may read it then
        // (a recommendation linked a moment before it reached the server).
        (Route::Missing, false) if request => {
            if awaiting.len() < MAX_AWAITED_PER_CONNECTION || awaiting.contains(&id) {
                awaiting.insert(id);
                hub.awaiting.add(handle.clone(), id, sync.clone());
            }
            for reply in unknown::answer_as_empty(hub, handle.id, &handle.peer_id, id, sync, request) {
                handle.send(reply.encode());
            }
        }
        _ => {
            tracing::debug!(conn = ?handle.id, document = %id, request, "answered for a document that is not there to read");
            for reply in unknown::answer_as_empty(hub, handle.id, &handle.peer_id, id, sync, request) {
                handle.send(reply.encode());
            }
        }
    }
    true
}

fn send_error(hub: &Hub, handle: &ConnectionHandle, error: &dyn std::fmt::Display) {
    handle.send(reply::error(&hub.handshake.our_peer_id, Some(&handle.peer_id), error).encode());
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

/// Input we cannot go on from (a payload that is not a sync message, a
/// Bloom filter nobody builds): say why, close as a protocol violation
/// (1002), as the engine did when it decoded payloads itself.
fn violation(hub: &Hub, handle: &ConnectionHandle, error: ProtocolError) {
    refuse(hub, handle, &error, CloseReason::from(SyncClose::ProtocolViolation(error.clone())));
}

/// Tell the peer what was wrong with its input, then close.
fn refuse(hub: &Hub, handle: &ConnectionHandle, error: &ProtocolError, reason: CloseReason) {
    tracing::warn!(conn = ?handle.id, peer = %handle.peer_id, %error, "closing connection on bad input");
    send_error(hub, handle, error);
    handle.close(reason);
}

fn close_frame(reason: &CloseReason) -> WsMessage {
    WsMessage::Close(Some(CloseFrame {
        code: reason.code(),
        reason: truncate_reason(&reason.text()).into(),
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
