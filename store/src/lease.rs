//! Leases: which node of a cluster owns a document (several konsens servers
//! on one PostgreSQL database).
//!
//! Each loaded document has exactly one owner node, which claims it with a
//! lease row carrying an *epoch*: every grant increments it, and epochs never
//! repeat. The owner renews its leases well within their time to live; the
//! other nodes relay to the owner at the address its lease names.
//!
//! Expiry alone cannot make ownership exclusive (a paused node does not know
//! it was paused), so writes are *fenced*: once [`crate::ChunkStore::leases`]
//! was called, every group commit locks the lease rows of its documents
//! (`FOR SHARE`) and refuses ([`crate::StoreError::Fenced`]) the writes of a
//! document whose row no longer names this node at the epoch it remembers.
//! A claim updates that row, so it waits for a commit in progress: "write
//! accepted" and "lease taken over" are strictly ordered, and the new owner,
//! which loads after its claim, sees every accepted write.
//!
//! The SQL is in `postgres/lease.rs`; sled (one node) has no leases.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use konsens_sync::DocumentId;

use crate::StoreError;
use crate::postgres::lease::LeaseTable;

/// Who this node is, for [`crate::ChunkStore::leases`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Unique per process (a uuid): a restarted process is a new node.
    pub node: String,
    /// Where other nodes reach this one (`ws://host:port`).
    pub address: String,
    /// How long a lease lasts without renewal.
    pub ttl: Duration,
}

/// The outcome of [`Leases::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This node owns the document now, at this epoch.
    Owned { epoch: u64 },
    /// Another node holds it (or held it: see [`Holder::expired`]).
    HeldBy(Holder),
}

/// A lease row as another node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub node: String,
    pub address: String,
    pub epoch: u64,
    /// By the database's clock.
    pub expired: bool,
    /// Zero when expired.
    pub expires_in: Duration,
}

/// What the lease handle and the fencing of group commits share: this
/// node, and the epoch of every lease it holds.
#[derive(Debug)]
pub(crate) struct LeaseState {
    pub(crate) config: LeaseConfig,
    held: Mutex<HashMap<DocumentId, u64>>,
    /// Renewing and releasing one at a time: a renewal computed before a
    /// release would otherwise extend the lease just given up.
    pub(crate) renewing: Mutex<()>,
}

/// A poisoned lock only means another thread panicked between two plain
/// map operations; the map itself is whole.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LeaseState {
    pub(crate) fn new(config: LeaseConfig) -> Self {
        Self { config, held: Mutex::default(), renewing: Mutex::default() }
    }

    /// The epoch this node holds `document` at, if it holds it.
    pub(crate) fn epoch(&self, document: &DocumentId) -> Option<u64> {
        lock(&self.held).get(document).copied()
    }

    pub(crate) fn remember(&self, document: DocumentId, epoch: u64) {
        lock(&self.held).insert(document, epoch);
    }

    /// Forget `document`, only if it is still held at `epoch` (a claim in
    /// between may have taken a newer one), or at any epoch when `None`.
    pub(crate) fn forget(&self, document: &DocumentId, epoch: Option<u64>) {
        let mut held = lock(&self.held);
        if epoch.is_none() || held.get(document).copied() == epoch {
            held.remove(document);
        }
    }

    /// Every held lease, sorted by document.
    pub(crate) fn snapshot(&self) -> Vec<(DocumentId, u64)> {
        let mut held: Vec<_> = lock(&self.held).iter().map(|(d, e)| (*d, *e)).collect();
        held.sort_by_key(|(d, _)| *d.as_bytes());
        held
    }
}

/// The leases of this node: a cheap handle (clones share what is held).
#[derive(Clone, Debug)]
pub struct Leases {
    state: Arc<LeaseState>,
    table: Arc<LeaseTable>,
}

impl Leases {
    pub(crate) fn new(state: Arc<LeaseState>, table: Arc<LeaseTable>) -> Self {
        Self { state, table }
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.state.config.node
    }

    pub fn ttl(&self) -> Duration {
        self.state.config.ttl
    }

    /// Claim the document: granted when no row exists, the row is expired
    /// (by the database's clock), or it is held by this same node id (a
    /// re-claim after a restart gets a new epoch). A grant increments the
    /// epoch (the first grant is 1) and remembers it for fencing; otherwise
    /// the current holder is returned. A claim waits for a group commit in
    /// progress on that document (on any node).
    pub fn claim(&self, document: &DocumentId) -> Result<Claim, StoreError> {
        let claim = self.table.claim(&self.state.config, document)?;
        if let Claim::Owned { epoch } = claim {
            self.state.remember(*document, epoch);
        }
        Ok(claim)
    }

    /// Renew every lease this handle holds, in one statement. Returns the
    /// documents whose lease was lost (their row names another node or
    /// epoch now); they are forgotten, and their writes fenced from now on.
    pub fn renew(&self) -> Result<Vec<DocumentId>, StoreError> {
        let _one_at_a_time = lock(&self.state.renewing);
        let held = self.state.snapshot();
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let renewed = self.table.renew(&self.state.config, &held)?;
        let mut lost = Vec::new();
        for (document, epoch) in held {
            if !renewed.contains(&document) {
                self.state.forget(&document, Some(epoch));
                lost.push(document);
            }
        }
        if !lost.is_empty() {
            tracing::warn!(lost = lost.len(), "leases lost to other nodes");
        }
        Ok(lost)
    }

    /// Give a lease up (the document was evicted): it expires now, so
    /// another node may claim it at once, but the row keeps its epoch
    /// (epochs never repeat). The document is forgotten either way.
    pub fn release(&self, document: &DocumentId) -> Result<(), StoreError> {
        let _one_at_a_time = lock(&self.state.renewing);
        let Some(epoch) = self.state.epoch(document) else {
            return Ok(());
        };
        // Forgotten first: from now on this node's writes of it are fenced,
        // whether or not the statement below gets through.
        self.state.forget(document, Some(epoch));
        self.table.release(&self.state.config, document, epoch)
    }

    /// The current holders of many documents, in one statement (`None`:
    /// never claimed), in the order asked.
    pub fn holders(&self, documents: &[DocumentId]) -> Result<Vec<(DocumentId, Option<Holder>)>, StoreError> {
        let found = self.table.holders(documents)?;
        Ok(documents.iter().map(|d| (*d, found.get(d).cloned())).collect())
    }

    /// The documents held now, in id order.
    pub fn held(&self) -> Vec<DocumentId> {
        self.state.snapshot().into_iter().map(|(d, _)| d).collect()
    }
}
