//! Keeps one WebSocket connection to the server: dial, `join`, wait for `peer`,
//! pump frames, and on any failure wait with exponential backoff and jitter
//! before dialling again.
//!
//! After the handshake every frame goes through a [`PeerSession`] (the
//! post-handshake rules, shared with the server): the dialer logs what the
//! session skips and hands the rest on as the session's [`SessionAction`].
//!
//! The dialer knows nothing of the repo: it reports what happens as
//! [`DialerEvent`]s on a channel it defines, and its state on a
//! [`ConnectionStatus`] watch. The repo owns the receiving end.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use konsens_sync::{ConnectionId, Ignored, Message, PeerId, PeerMetadata, PeerSession, Role, SessionAction, StorageId};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

use crate::status::ConnectionStatus;

/// What the dialer reports about its connections, in order.
#[derive(Debug)]
pub(crate) enum DialerEvent {
    /// The handshake succeeded; frames for the server go to `outbound`.
    Connected {
        conn: ConnectionId,
        server: PeerId,
        /// The server's storage, from its `peer` message.
        server_storage: Option<StorageId>,
        outbound: mpsc::UnboundedSender<Vec<u8>>,
    },
    /// What the session made of a frame from the server (never `Ignore`).
    Incoming(ConnectionId, SessionAction),
    /// The connection is gone (sent for every connection that was dialled).
    Disconnected(ConnectionId),
}

/// Where a dialer reports; weak, so a dialer never keeps the repo alive.
pub(crate) type DialerEvents = mpsc::WeakUnboundedSender<DialerEvent>;

pub(crate) struct DialerConfig {
    pub url: String,
    pub token: Option<String>,
    pub peer_id: PeerId,
    /// Our store's id, so the server keeps what it shares with us.
    pub storage_id: Option<StorageId>,
    pub max_frame_bytes: usize,
    pub events: DialerEvents,
    pub status: watch::Sender<ConnectionStatus>,
    pub stop: CancellationToken,
}

static NEXT_CONNECTION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub(crate) async fn run(config: DialerConfig) {
    let mut backoff = INITIAL_BACKOFF;
    loop {
        if config.stop.is_cancelled() {
            return;
        }
        let _ = config.status.send(ConnectionStatus::Connecting);
        // Unique across dialers: a repo may switch servers.
        let conn = ConnectionId(NEXT_CONNECTION.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let outcome = tokio::select! {
            outcome = session(&config, conn, &mut backoff) => outcome,
            () = config.stop.cancelled() => {
                // Let the repo forget this connection before a new one starts.
                if let Some(events) = config.events.upgrade() {
                    let _ = events.send(DialerEvent::Disconnected(conn));
                }
                let _ = config.status.send(ConnectionStatus::Offline);
                return;
            }
        };
        match &outcome {
            Err(SessionEnd::Refused(reason)) => {
                let _ = config.status.send(ConnectionStatus::Refused(reason.clone()));
            }
            _ => {
                let _ = config.status.send(ConnectionStatus::Offline);
            }
        }
        if let Some(events) = config.events.upgrade() {
            let _ = events.send(DialerEvent::Disconnected(conn));
        } else {
            return;
        }
        if let Err(end) = outcome {
            tracing::debug!(url = %config.url, reason = %end, "connection ended");
        }
        // Jitter keeps a room full of clients from reconnecting in lockstep.
        let jitter = backoff.mul_f64(rand::random::<f64>() * 0.5);
        tokio::select! {
            () = tokio::time::sleep(backoff + jitter) => {}
            () = config.stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Why a connection ended.
enum SessionEnd {
    /// The server refused us (HTTP 401/403 on the upgrade, or a refused join).
    Refused(String),
    Other(String),
}

impl std::fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionEnd::Refused(r) | SessionEnd::Other(r) => f.write_str(r),
        }
    }
}

impl From<String> for SessionEnd {
    fn from(s: String) -> Self {
        SessionEnd::Other(s)
    }
}

impl From<&str> for SessionEnd {
    fn from(s: &str) -> Self {
        SessionEnd::Other(s.to_owned())
    }
}

/// One connection's life. Resets `backoff` once the handshake succeeded.
async fn session(config: &DialerConfig, conn: ConnectionId, backoff: &mut Duration) -> Result<(), SessionEnd> {
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(config.max_frame_bytes))
        .max_frame_size(Some(config.max_frame_bytes));
    let mut request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(config.url.as_str())
        .map_err(|e| SessionEnd::Other(e.to_string()))?;
    if let Some(token) = &config.token {
        let value = format!("Bearer {token}").parse().map_err(|_| "the token is not a valid header value".to_owned())?;
        request.headers_mut().insert("authorization", value);
    }
    let (socket, _) = tokio_tungstenite::connect_async_with_config(request, Some(ws_config), true)
        .await
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(response)
                if matches!(response.status().as_u16(), 401 | 403) =>
            {
                let body = response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default().into_owned();
                SessionEnd::Refused(format!("the server refused us ({}): {body}", response.status()))
            }
            other => SessionEnd::Other(other.to_string()),
        })?;
    let (mut sink, mut stream) = socket.split();
    let join = Message::Join {
        sender_id: config.peer_id.clone(),
        // Our store keeps documents, so the server may keep what it shares
        // with it across our reconnects.
        peer_metadata: Some(PeerMetadata { storage_id: config.storage_id.clone(), is_ephemeral: false }),
        supported_protocol_versions: Some(vec![konsens_sync::PROTOCOL_VERSION.to_owned()]),
    };
    sink.send(WsMessage::Binary(join.encode().into())).await.map_err(|e| SessionEnd::Other(e.to_string()))?;
    let (server, server_storage) = loop {
        match stream.next().await {
            Some(Ok(WsMessage::Binary(bytes))) => match Message::decode(&bytes, config.max_frame_bytes) {
                Ok(Message::Peer { sender_id, peer_metadata, .. }) => {
                    let storage = peer_metadata.filter(|m| !m.is_ephemeral).and_then(|m| m.storage_id);
                    break (sender_id, storage);
                }
                Ok(Message::Error { message, .. }) => return Err(SessionEnd::Refused(format!("server refused join: {message}"))),
                Ok(other) => return Err(SessionEnd::Other(format!("expected peer, got {}", other.type_name()))),
                Err(e) => return Err(SessionEnd::Other(e.to_string())),
            },
            Some(Ok(WsMessage::Close(frame))) => return Err(SessionEnd::Other(format!("closed during handshake: {frame:?}"))),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(SessionEnd::Other(e.to_string())),
            None => return Err(SessionEnd::Other("closed during handshake".into())),
        }
    };
    *backoff = INITIAL_BACKOFF;
    tracing::info!(url = %config.url, %server, "connected");
    let mut peer = PeerSession::new(Role::Client, config.peer_id.clone(), server.clone());
    let (outbound_tx, mut outbound_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let events = config.events.upgrade().ok_or(SessionEnd::Other("repo closed".into()))?;
    events
        .send(DialerEvent::Connected { conn, server: server.clone(), server_storage, outbound: outbound_tx })
        .map_err(|_| SessionEnd::Other("repo closed".into()))?;
    let _ = config.status.send(ConnectionStatus::Online { server });
    loop {
        tokio::select! {
            frame = outbound_rx.recv() => match frame {
                Some(frame) => sink.send(WsMessage::Binary(frame.into())).await.map_err(|e| e.to_string())?,
                None => return Err(SessionEnd::Other("repo dropped the connection".into())),
            },
            incoming = stream.next() => match incoming {
                Some(Ok(WsMessage::Binary(bytes))) => match peer.receive(Message::decode(&bytes, config.max_frame_bytes)) {
                    SessionAction::Ignore(Ignored::Undecodable(e)) => tracing::warn!(error = %e, "undecodable frame from server"),
                    SessionAction::Ignore(why) => tracing::trace!(?why, "ignored message"),
                    action => {
                        events.send(DialerEvent::Incoming(conn, action)).map_err(|_| SessionEnd::Other("repo closed".into()))?;
                    }
                },
                Some(Ok(WsMessage::Close(frame))) => return Err(SessionEnd::Other(format!("server closed: {frame:?}"))),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(SessionEnd::Other(e.to_string())),
                None => return Err(SessionEnd::Other("connection closed".into())),
            },
        }
    }
}
