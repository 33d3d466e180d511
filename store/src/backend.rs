//! The one interface both stores implement: sled ([`crate::sled::SledBackend`],
//! embedded, the default) and PostgreSQL ([`crate::postgres::PostgresBackend`]).
//!
//! One trait for documents and access records alike, because they live in
//! one database and a group commit writes both in one transaction. What is
//! the same for every backend (the flush counter, actor claims held in
//! memory until written) lives in the handles [`crate::ChunkStore`] and
//! [`crate::AuthStore`], which hold an `Arc<dyn Backend>`.
//!
//! Calls block the calling thread. The server makes them from its
//! group-commit thread and `spawn_blocking` loads, and a few quick reads
//! (a token, a document's process) from async workers.

use automerge::ChangeHash;
use konsens_sync::{DocumentId, StorageId, StorageWrite};

use crate::auth::{Provenance, TokenRecord};
use crate::group_commit::Record;
use crate::lease::{LeaseConfig, Leases};
use crate::{Chunk, KeptSyncState, StoreError};

/// One entry of a group handed to [`Backend::commit_group`].
#[derive(Debug, Clone)]
pub enum GroupItem {
    /// Document bytes; a snapshot replaces every earlier chunk of the document.
    Document { document: DocumentId, write: StorageWrite },
    /// A small record written beside the documents.
    Record(Record),
}

/// A document store. Every method that says "durable" returns only once
/// its write survives a crash.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// `sled at DIR` or `PostgreSQL database NAME on HOST` (no password), for logs.
    fn describe(&self) -> String;

    // Documents.

    /// All chunks of a document, in the order they must be loaded.
    fn load(&self, document: &DocumentId) -> Result<Vec<Chunk>, StoreError>;
    /// Does the store hold any chunk of this document?
    fn contains(&self, document: &DocumentId) -> Result<bool, StoreError>;
    /// Write one chunk outside a group (durable after [`Backend::flush`]).
    fn write(&self, document: &DocumentId, write: &StorageWrite) -> Result<(), StoreError>;
    /// The ids of all stored documents, in id order.
    fn documents(&self) -> Result<Vec<DocumentId>, StoreError>;
    /// The heads last shared with each remote storage, for one document.
    fn sync_states(&self, document: &DocumentId) -> Result<Vec<KeptSyncState>, StoreError>;
    /// Write (durable after [`Backend::flush`]) the heads shared with a remote storage.
    fn put_sync_state(&self, document: &DocumentId, storage: &StorageId, heads: &[ChangeHash]) -> Result<(), StoreError>;
    /// Make every write so far durable.
    fn flush(&self) -> Result<(), StoreError>;
    /// Write a group and make it durable. `Err`: nothing of the group may be
    /// acknowledged. `Ok`: one result per item, in order (a backend that
    /// commits all or nothing answers all `Ok`).
    fn commit_group(&self, group: Vec<GroupItem>) -> Result<Vec<Result<(), StoreError>>, StoreError>;
    /// Bytes the store occupies.
    fn size_on_disk(&self) -> Result<u64, StoreError>;

    // Several nodes on one database (see `lease.rs`).

    /// This node's leases, and from now on [`Backend::commit_group`] refuses
    /// writes of documents it does not hold. `None` (the default): the
    /// backend serves one node only (sled), which needs no fencing.
    fn leases(&self, _config: LeaseConfig) -> Option<Leases> {
        None
    }

    /// Call `on_change` with a token's id whenever another node (or this
    /// one) revokes, reissues or replaces it, and with `"*"` when changes
    /// may have been missed. The default never calls it: with one node the
    /// server that changes a token closes its connections itself.
    fn watch_tokens(&self, _on_change: std::sync::Arc<dyn Fn(String) + Send + Sync>) -> Result<(), StoreError> {
        Ok(())
    }

    // Small values beside the documents (the storage id, the CLI's drafts).

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Durable.
    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Durable.
    fn remove_meta(&self, key: &str) -> Result<(), StoreError>;
    /// Store `value` under `key` unless a value is there already; durable.
    /// Returns what is stored now: several processes sharing a store (nodes
    /// of a cluster starting together) all get the first one's value.
    fn put_meta_once(&self, key: &str, value: &[u8]) -> Result<Vec<u8>, StoreError>;
    /// All values whose key starts with `prefix`, in key order.
    fn scan_meta(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    // Access records (see `auth.rs`).

    /// Store token records under the hashes of their secrets: all or none, durable.
    fn put_tokens(&self, tokens: &[(String, TokenRecord)]) -> Result<(), StoreError>;
    fn token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError>;
    fn token_by_id(&self, id: &str) -> Result<Option<TokenRecord>, StoreError>;
    /// Every token record with the hash it is stored under.
    fn token_entries(&self) -> Result<Vec<(String, TokenRecord)>, StoreError>;
    /// See [`crate::AuthStore::mark_seen`].
    fn mark_seen(&self, id: &str, now: i64, granularity: i64) -> Result<bool, StoreError>;
    /// See [`crate::AuthStore::notifications_seen`].
    fn notifications_seen(&self, id: &str) -> Result<Option<i64>, StoreError>;
    /// See [`crate::AuthStore::mark_notifications_seen`]; never moves back.
    fn mark_notifications_seen(&self, id: &str, at: i64) -> Result<(), StoreError>;
    /// Move a token to a new hash, atomically; durable. Returns its record.
    fn reissue(&self, id: &str, new_hash: &str) -> Result<Option<TokenRecord>, StoreError>;
    /// Mark a token revoked; durable. Returns its record.
    fn revoke(&self, id: &str) -> Result<Option<TokenRecord>, StoreError>;
    /// Record a document's process unless it has one (first writer wins).
    fn set_document_process(&self, document: &DocumentId, process: &DocumentId) -> Result<(), StoreError>;
    fn document_process(&self, document: &DocumentId) -> Result<Option<DocumentId>, StoreError>;
    /// Every (document, process) pair.
    fn document_processes(&self) -> Result<Vec<(DocumentId, DocumentId)>, StoreError>;
    /// The member a stored binding gives an actor.
    fn actor_owner(&self, actor: &[u8]) -> Result<Option<String>, StoreError>;
    /// Bind an actor unless it is bound already.
    fn bind_actor(&self, actor: &[u8], participant: &str) -> Result<(), StoreError>;
    /// Every stored (actor, member) binding.
    fn actor_bindings(&self) -> Result<Vec<(Vec<u8>, String)>, StoreError>;
    fn record_provenance(&self, document: &DocumentId, change: &[u8; 32], provenance: &Provenance) -> Result<(), StoreError>;
    fn provenance(&self, document: &DocumentId, change: &[u8; 32]) -> Result<Option<Provenance>, StoreError>;
    /// Every provenance record.
    fn provenance_entries(&self) -> Result<Vec<(DocumentId, [u8; 32], Provenance)>, StoreError>;
}
