//! Connections that asked for a document before anybody had it. They wait
//! here, not in an owner: a request for a random id costs an entry, not a
//! task. The owner that creates the document takes them over.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use konsens_sync::{ConnectionId, DocumentId};

use crate::handle::ConnectionHandle;
use crate::util::lock;

/// Documents one connection may wait for before they exist.
pub(crate) const MAX_AWAITED_PER_CONNECTION: usize = 256;

/// A connection waiting for a document to exist, with the `request` it sent.
#[derive(Debug)]
pub(crate) struct Waiter {
    pub conn: Arc<ConnectionHandle>,
    pub request: automerge::sync::Message,
}

/// The waiters, per document.
#[derive(Debug, Default)]
pub(crate) struct AwaitingCreation {
    waiters: Mutex<HashMap<DocumentId, Vec<Waiter>>>,
}

impl AwaitingCreation {
    /// Remember that `conn` asked for document `id` before it
    /// existed: the owner that creates it sends it the document, if it may
    /// read it then. Each connection keeps at most
    /// [`MAX_AWAITED_PER_CONNECTION`] and forgets them when it goes.
    pub fn add(&self, conn: Arc<ConnectionHandle>, id: DocumentId, request: automerge::sync::Message) {
        let mut waiters = lock(&self.waiters);
        let list = waiters.entry(id).or_default();
        list.retain(|w| w.conn.id != conn.id);
        list.push(Waiter { conn, request });
    }

    /// The connections waiting for a document, for its new owner.
    pub fn take(&self, id: &DocumentId) -> Vec<Waiter> {
        lock(&self.waiters).remove(id).unwrap_or_default()
    }

    /// The documents somebody waits for.
    pub fn documents(&self) -> Vec<DocumentId> {
        lock(&self.waiters).keys().copied().collect()
    }

    /// A connection is gone: it waits for nothing any more.
    pub fn forget(&self, conn: ConnectionId, ids: &HashSet<DocumentId>) {
        let mut waiters = lock(&self.waiters);
        for id in ids {
            if let Some(list) = waiters.get_mut(id) {
                list.retain(|w| w.conn.id != conn);
                if list.is_empty() {
                    waiters.remove(id);
                }
            }
        }
    }
}
