//! The connections one document talks to.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use konsens_sync::{ConnectionId, DocInput};

use crate::handle::ConnectionHandle;

#[derive(Debug, Default)]
pub(super) struct Peers {
    pub connections: HashMap<ConnectionId, Arc<ConnectionHandle>>,
    /// Connections that asked for this document before it existed; what is
    /// sent to them is checked against the access rules at sending time.
    pub awaiting_creation: HashSet<ConnectionId>,
}

impl Peers {
    /// Remember a connection's handle; on first sight, tell the engine which
    /// storage its peer has, so their shared heads carry over from last time.
    pub fn introduce(&mut self, conn: Arc<ConnectionHandle>, inputs: &mut Vec<DocInput>) {
        if self.connections.contains_key(&conn.id) {
            return;
        }
        if let Some(storage) = &conn.storage {
            inputs.push(DocInput::PeerStorage { conn: conn.id, storage: storage.clone() });
        }
        self.connections.insert(conn.id, conn);
    }

    pub fn remove(&mut self, conn: ConnectionId) {
        self.connections.remove(&conn);
        self.awaiting_creation.remove(&conn);
    }
}
