//! What the rest of the server holds of a connection: [`ConnectionHandle`]
//! to queue frames or close it, and [`CloseReason`], why it was closed, with
//! its close code. A leaf: the hub and the document owners use it without
//! knowing the socket code in `connection.rs`.

use std::sync::Mutex;

use konsens_sync::{ConnectionId, PeerId, StorageId};
use tokio::sync::{Notify, mpsc};

use crate::auth::Principal;
use crate::util::lock;

/// WebSocket close codes we use (RFC 6455 §7.4.1, IANA registry).
pub(crate) mod close_code {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const UNSUPPORTED_DATA: u16 = 1003;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    /// The server failed, not the peer (storage, say).
    pub const INTERNAL_ERROR: u16 = 1011;
}

/// Why the server closes a connection. The variant decides the close code;
/// the words are for people, and nothing matches on them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// The peer said `leave`, or the connection ended on its side.
    Normal,
    ShuttingDown,
    /// Input we cannot go on from (the error, as the peer was told it).
    ProtocolViolation { error: String },
    /// A text frame: the protocol uses binary frames.
    UnsupportedData { error: String },
    /// A frame over the size limit, found by the socket layer.
    TooBig { limit: usize },
    /// A message over the size limit, found when decoding it.
    MessageTooBig { error: String },
    /// No `join` within the handshake timeout.
    NoJoin,
    TokenRevoked,
    TokenExpired,
    /// Another token's connection uses this peer id.
    PeerIdInUse,
    /// A newer connection of the same peer and token took over.
    Replaced,
    TooManyForToken { limit: usize },
    /// The outbound queue filled up: the peer does not read fast enough.
    TooSlow,
    RateLimited,
    /// The token asked for too many documents it cannot read or that do not exist.
    TooManyUnknownDocuments,
    /// Our storage failed; the peer did nothing wrong and may reconnect.
    StorageFailed { error: String },
    /// Only for a connection relayed from another node: the document moved
    /// to another owner; the relaying node finds it, the client stays.
    Moved,
    /// A relayed connection's owner node closed it with this code and reason.
    Relayed { code: u16, reason: String },
}

impl CloseReason {
    pub fn code(&self) -> u16 {
        match self {
            CloseReason::Normal => close_code::NORMAL,
            CloseReason::ShuttingDown => close_code::GOING_AWAY,
            CloseReason::ProtocolViolation { .. } => close_code::PROTOCOL_ERROR,
            CloseReason::UnsupportedData { .. } => close_code::UNSUPPORTED_DATA,
            CloseReason::TooBig { .. } | CloseReason::MessageTooBig { .. } => close_code::TOO_BIG,
            CloseReason::NoJoin
            | CloseReason::TokenRevoked
            | CloseReason::TokenExpired
            | CloseReason::PeerIdInUse
            | CloseReason::Replaced
            | CloseReason::TooManyForToken { .. }
            | CloseReason::TooSlow
            | CloseReason::RateLimited
            | CloseReason::TooManyUnknownDocuments => close_code::POLICY,
            CloseReason::StorageFailed { .. } | CloseReason::Moved => close_code::INTERNAL_ERROR,
            CloseReason::Relayed { code, .. } => *code,
        }
    }

    /// The words of the close frame (and of the `error` sent before it).
    pub fn text(&self) -> String {
        match self {
            CloseReason::Normal => String::new(),
            CloseReason::ShuttingDown => "server shutting down".into(),
            CloseReason::ProtocolViolation { error }
            | CloseReason::UnsupportedData { error }
            | CloseReason::MessageTooBig { error }
            | CloseReason::StorageFailed { error } => error.clone(),
            CloseReason::TooBig { limit } => format!("message exceeds the limit of {limit} bytes"),
            CloseReason::NoJoin => "no join message received".into(),
            CloseReason::TokenRevoked => "token revoked".into(),
            CloseReason::TokenExpired => "token expired".into(),
            CloseReason::PeerIdInUse => "peer id in use by another connection".into(),
            CloseReason::Replaced => "replaced by a newer connection of the same peer".into(),
            CloseReason::TooManyForToken { limit } => format!("too many connections for this token (limit {limit})"),
            CloseReason::TooSlow => "outbound queue full: connection too slow".into(),
            CloseReason::RateLimited => "rate limit exceeded".into(),
            CloseReason::TooManyUnknownDocuments => "too many requests for unknown documents".into(),
            CloseReason::Moved => "the document moved to another node".into(),
            CloseReason::Relayed { reason, .. } => reason.clone(),
        }
    }
}

/// The one place a konsens-sync close (an engine's, or a peer session's)
/// becomes ours: decided by its typed reason, the peer's violation (1002, or
/// 1009 for a message over the size limit) or our own storage failure (1011:
/// not their fault; they may reconnect). The codes agree with
/// [`konsens_sync::CloseReason::close_code`].
impl From<konsens_sync::CloseReason> for CloseReason {
    fn from(reason: konsens_sync::CloseReason) -> Self {
        use konsens_sync::{CloseReason as Sync, ProtocolError};
        match reason {
            Sync::ProtocolViolation(error @ ProtocolError::TooLarge { .. }) => CloseReason::MessageTooBig { error: error.to_string() },
            Sync::ProtocolViolation(error) => CloseReason::ProtocolViolation { error: error.to_string() },
            failure @ Sync::StorageFailure { .. } => CloseReason::StorageFailed { error: failure.to_string() },
        }
    }
}

/// Tells a connection's writer to close, with a reason.
#[derive(Debug, Default)]
struct CloseSignal {
    reason: Mutex<Option<CloseReason>>,
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
    /// Relayed from another node, where the client is connected (see
    /// `relayed.rs`): never relayed on again, and a document that moves is
    /// closed for it with [`CloseReason::Moved`] rather than resynced here.
    pub relayed: bool,
    outbound: mpsc::Sender<Vec<u8>>,
    close: CloseSignal,
}

impl ConnectionHandle {
    pub fn new(
        id: ConnectionId,
        peer_id: PeerId,
        principal: Principal,
        storage: Option<StorageId>,
        outbound: mpsc::Sender<Vec<u8>>,
    ) -> Self {
        Self { id, peer_id, principal, storage, relayed: false, outbound, close: CloseSignal::default() }
    }

    /// The same handle, for a connection relayed from another node (see
    /// [`Self::relayed`]).
    pub fn from_another_node(self) -> Self {
        Self { relayed: true, ..self }
    }

    /// Queue a frame. Returns false when the connection is gone.
    pub fn send(&self, frame: Vec<u8>) -> bool {
        match self.outbound.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(conn = ?self.id, peer = %self.peer_id, "outbound queue full; closing slow connection");
                self.close(CloseReason::TooSlow);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Ask the writer to close the socket (first reason wins).
    pub fn close(&self, reason: CloseReason) {
        let mut slot = lock(&self.close.reason);
        if slot.is_none() {
            *slot = Some(reason);
        }
        drop(slot);
        self.close.notify.notify_one();
    }

    /// Resolves once somebody asked to close (see [`Self::close`]).
    pub async fn close_requested(&self) {
        self.close.notify.notified().await;
    }

    /// Why it was closed (`Normal` if nobody said).
    pub fn close_reason(&self) -> CloseReason {
        lock(&self.close.reason).clone().unwrap_or(CloseReason::Normal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variant_decides_the_code() {
        let error = || "anything".to_owned();
        let table = [
            (CloseReason::Normal, 1000),
            (CloseReason::ShuttingDown, 1001),
            (CloseReason::ProtocolViolation { error: error() }, 1002),
            (CloseReason::UnsupportedData { error: error() }, 1003),
            (CloseReason::TooManyUnknownDocuments, 1008),
            (CloseReason::TooBig { limit: 1 }, 1009),
            (CloseReason::MessageTooBig { error: error() }, 1009),
            (CloseReason::StorageFailed { error: error() }, 1011),
        ];
        for (reason, code) in table {
            assert_eq!(reason.code(), code, "{reason:?}");
        }
    }

    #[test]
    fn a_sync_close_keeps_its_code() {
        use konsens_sync::{CloseReason as Sync, DocumentId, PersistError, ProtocolError};
        let closes = [
            Sync::ProtocolViolation(ProtocolError::BadBloomFilter { reason: "empty" }),
            Sync::ProtocolViolation(ProtocolError::TooLarge { size: 10, limit: 5 }),
            Sync::StorageFailure { document: DocumentId::from_random([1; 16]), error: PersistError::Storage("disk full".into()) },
        ];
        for close in closes {
            let code = close.close_code();
            assert_eq!(CloseReason::from(close.clone()).code(), code, "{close:?}");
        }
    }
}
