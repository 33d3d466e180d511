//! Sync states kept per remote storage, so a peer that reconnects (or whose
//! data outlives our process) resumes from the heads we last shared.

use std::collections::HashMap;

use automerge::ChangeHash;

use super::ConnectionId;
use super::document::Document;
use crate::message::StorageId;

#[derive(Debug, Default)]
pub(super) struct KeptStates {
    /// Heads we share with remote storages whose peers are not connected.
    shared_with: HashMap<StorageId, Vec<ChangeHash>>,
    /// The storage of each connection whose peer announced one.
    storages: HashMap<ConnectionId, StorageId>,
}

impl KeptStates {
    /// Seed from kept records. Heads we do not hold (a record newer than the
    /// document on disk) are dropped: that peer syncs from scratch.
    pub(super) fn restore(&mut self, doc: &Document, states: impl IntoIterator<Item = (StorageId, Vec<ChangeHash>)>) {
        for (storage, heads) in states {
            if !heads.is_empty() && heads.iter().all(|h| doc.has(h)) {
                self.shared_with.insert(storage, heads);
            }
        }
    }

    pub(super) fn shared_with(&self, storage: &StorageId) -> Option<&[ChangeHash]> {
        self.shared_with.get(storage).map(Vec::as_slice)
    }

    /// Remembered until the connection's sync state is created, which it seeds.
    pub(super) fn announce(&mut self, conn: ConnectionId, storage: StorageId) {
        self.storages.insert(conn, storage);
    }

    /// What a new sync state for `conn` starts from.
    pub(super) fn seed_for(&self, conn: ConnectionId) -> Option<&[ChangeHash]> {
        self.storages.get(&conn).and_then(|s| self.shared_with(s))
    }

    /// A connection left with these shared heads: keep them for its storage.
    /// Returns the record to save when it is new.
    pub(super) fn depart(&mut self, conn: ConnectionId, shared_heads: Option<&[ChangeHash]>) -> Option<(StorageId, Vec<ChangeHash>)> {
        let storage = self.storages.remove(&conn)?;
        let heads = shared_heads?;
        if heads.is_empty() || self.shared_with.get(&storage).is_some_and(|h| h == heads) {
            return None;
        }
        self.shared_with.insert(storage.clone(), heads.to_vec());
        Some((storage, heads.to_vec()))
    }
}
