//! Carrying out what a document's engine asks for: messages to its
//! connections, closes, and (through the store's [`Persister`]) writes.

use konsens_store::Persister;
use konsens_sync::{ConnectionId, DocEffect, DocumentId, Message, StorageWrite};

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
                        handle.close(CloseReason::from(reason));
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
