//! Why we close a connection, typed, so runtimes choose the WebSocket close
//! code from the cause instead of from words.

use thiserror::Error;

use crate::{DocumentId, ProtocolError};

/// A storage write or flush failed. The storage's own words, since what
/// failed (a disk, a writer thread, a full volume) is the storage's business;
/// the engine only needs to know that memory is now ahead of disk.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PersistError {
    /// Writing or flushing the document's bytes failed.
    #[error("storage write failed: {0}")]
    Storage(String),
    /// Another node owns the document now (a cluster's lease moved), so the
    /// store refused the write; nothing of it was kept or acknowledged.
    #[error("the document moved to another node; the write was refused")]
    Moved,
}

impl From<String> for PersistError {
    fn from(reason: String) -> Self {
        PersistError::Storage(reason)
    }
}

/// Why a connection is closed: the peer's fault or ours. RFC 6455 §7.4.1
/// gives them different close codes, and a client that sees 1011 may retry
/// where after 1002 it should not resend the same input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CloseReason {
    /// The peer broke the protocol (bad frame, bad sync message, changes
    /// that do not apply, a message out of order).
    #[error("{0}")]
    ProtocolViolation(ProtocolError),
    /// Our storage failed under a document; the peer did nothing wrong.
    #[error("storage failure for document {document}: {error}")]
    StorageFailure { document: DocumentId, error: PersistError },
}

impl CloseReason {
    /// RFC 6455 "protocol error".
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// RFC 6455 "message too big".
    pub const TOO_BIG: u16 = 1009;
    /// RFC 6455 "internal error": the server hit a condition it cannot handle.
    pub const INTERNAL_ERROR: u16 = 1011;

    /// The WebSocket close code for this reason: 1002 for the peer's
    /// violations (1009, RFC 6455's more specific code, for a frame over the
    /// size limit), 1011 for our own failures.
    pub fn close_code(&self) -> u16 {
        match self {
            CloseReason::ProtocolViolation(ProtocolError::TooLarge { .. }) => Self::TOO_BIG,
            CloseReason::ProtocolViolation(_) => Self::PROTOCOL_ERROR,
            CloseReason::StorageFailure { .. } => Self::INTERNAL_ERROR,
        }
    }

    /// Is the peer to blame?
    pub fn is_peer_fault(&self) -> bool {
        matches!(self, CloseReason::ProtocolViolation(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_follow_rfc_6455() {
        let violation = CloseReason::ProtocolViolation(ProtocolError::UnexpectedMessage { message_type: "join", state: "after join" });
        assert_eq!(violation.close_code(), 1002);
        assert!(violation.is_peer_fault());
        let ours = CloseReason::StorageFailure { document: DocumentId::from_bytes([1; 16]), error: PersistError::Storage("disk full".into()) };
        assert_eq!(ours.close_code(), 1011);
        assert!(!ours.is_peer_fault());
        assert!(ours.to_string().contains("disk full"));
    }
}
