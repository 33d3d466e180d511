//! Carrying out what a document's engine asks for: messages to its
//! connections, closes, and (through the store's [`Persister`]) writes.

use konsens_store::Persister;
use konsens_sync::{CloseReason as EngineClose, ConnectionId, DocEffect, DocumentId, Message, StorageWrite};

use crate::auth::Auth;
use crate::document::peers::Peers;
use crate::handle::CloseReason;

/// What the effects act on, borrowed from the owner.
pub(super) struct Effects<'a> {
    pub id: DocumentId,
    pub auth: &'a Auth,
    pub peers: &'a mut Peers,
    pub persister: &'a Persister,
    /// Bytes the document takes on disk, for the size limit.
    pub stored_bytes: &'a mut usize,
}

impl Effects<'_> {
    /// Carry out the engine's effects; returns connections found closed.
    pub fn execute(&mut self, effects: Vec<DocEffect>) -> Vec<ConnectionId> {
        let mut gone = Vec::new();
        for effect in effects {
            if let DocEffect::Persist { write, .. } = &effect {
                *self.stored_bytes = match write {
                    StorageWrite::Incremental(bytes) => *self.stored_bytes + bytes.len(),
                    StorageWrite::Snapshot(bytes) => bytes.len(),
                };
            }
            match self.persister.apply(effect) {
                None => {}
                Some(DocEffect::Send { conn, message }) if !self.send(conn, &message) => {
                    self.peers.remove(conn);
                    gone.push(conn);
                }
                Some(DocEffect::Send { .. }) => {}
                Some(DocEffect::Close { conn, reason }) => {
                    if let Some(handle) = self.peers.connections.remove(&conn) {
                        handle.close(close_reason(reason));
                    }
                }
                Some(other) => tracing::error!(document = %self.id, effect = ?other, "storage effect not carried out"),
            }
        }
        gone
    }

    /// False when the connection is gone.
    fn send(&mut self, conn: ConnectionId, message: &Message) -> bool {
        if self.peers.awaiting_creation.contains(&conn) && !matches!(message, Message::DocUnavailable { .. }) {
            let may_read = self
                .peers
                .connections
                .get(&conn)
                .is_some_and(|handle| self.auth.can_read(&handle.principal, &self.id));
            if !may_read {
                // Created in a process this connection is not part of.
                return true;
            }
            self.peers.awaiting_creation.remove(&conn);
        }
        self.peers.connections.get(&conn).is_some_and(|handle| handle.send(message.encode()))
    }
}

/// The one place an engine's `Close` becomes a close frame: decided by the
/// engine's typed reason, a peer's protocol violation (1002) or our own
/// storage failure (1011: not their fault; they may reconnect).
fn close_reason(reason: EngineClose) -> CloseReason {
    match reason {
        EngineClose::ProtocolViolation(error) => CloseReason::ProtocolViolation { error: error.to_string() },
        failure @ EngineClose::StorageFailure { .. } => CloseReason::StorageFailed { error: failure.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use konsens_sync::{PersistError, ProtocolError};

    #[test]
    fn an_engine_close_is_ours_once_its_storage_failed() {
        let violation = EngineClose::ProtocolViolation(ProtocolError::BadBloomFilter { reason: "empty" });
        assert_eq!(close_reason(violation).code(), 1002);
        let failure = EngineClose::StorageFailure {
            document: DocumentId::from_random([1; 16]),
            error: PersistError::Storage("disk full".into()),
        };
        assert_eq!(close_reason(failure).code(), 1011);
    }
}
