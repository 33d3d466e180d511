//! # konsens-store
//!
//! The document store shared by `konsens-server` and `konsens-client`, the
//! group-commit writer that makes writes durable in batches, and the
//! [`Persister`] that carries out a `DocEngine`'s storage effects through it.
//!
//! One interface, [`Backend`], two implementations: [`sled`] (embedded, in a
//! directory, the default and the CLI's) and [`postgres`] (a PostgreSQL
//! database, `--database postgres://…`). Both keep documents as chunks
//! (a snapshot, then the incrementals written after it), the kept sync
//! states, the store's `storageId`, small `meta` values and the access
//! records of `auth.rs`. [`ChunkStore`] and [`AuthStore`] are cheap handles
//! on one backend. When several servers share one PostgreSQL database,
//! [`Leases`] say which node owns each document, and writes of a document
//! from any other node are refused ([`StoreError::Fenced`]).
//!
//! Architecture invariant: a write is acknowledged only once it is durable.
//! sled: after the group's flush; PostgreSQL: after the group's transaction
//! committed with `synchronous_commit = on`.

mod auth;
mod backend;
mod group_commit;
mod lease;
pub mod migrate;
mod persister;
pub mod postgres;
pub mod sled;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use automerge::ChangeHash;
use konsens_sync::{DocumentId, StorageId, StorageWrite};
use thiserror::Error;

pub use auth::{AuthStore, Provenance, TokenKind, TokenRecord, TokenRole};
pub use backend::{Backend, GroupItem};
pub use group_commit::{GroupCommit, GroupCommitStats, MAX_GROUP, OnDurable, Record};
pub use lease::{Claim, Holder, LeaseConfig, Leases};
pub use persister::{Persister, durable_input};

/// The one error type of `konsens-store`. `Clone`, because one failed
/// flush is reported to every write of its group.
#[derive(Debug, Clone, Error)]
pub enum StoreError {
    /// sled reported an error (IO, corruption, ...).
    #[error("storage error: {0}")]
    Sled(#[from] ::sled::Error),
    /// PostgreSQL reported an error (connection, statement, commit).
    #[error("database error: {0}")]
    Postgres(#[from] Arc<tokio_postgres::Error>),
    /// The connection to PostgreSQL could not be set up.
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    /// A schema migration in `store/migrations` failed.
    #[error("database migration {version} failed: {reason}")]
    Migration { version: i32, reason: String },
    /// A key in the store does not follow our layout.
    #[error("unexpected key layout in tree {tree}: {len} bytes")]
    BadKey { tree: &'static str, len: usize },
    /// The group-commit writer has stopped (the process is shutting down).
    #[error("the storage writer has stopped")]
    WriterStopped,
    /// `migrate`: the target store already holds documents or tokens.
    #[error("{target} is not empty; migrate only into an empty store")]
    TargetNotEmpty { target: String },
    /// `migrate`: a document's stored chunks do not load.
    #[error("document {document} does not load: {reason}")]
    Unloadable { document: String, reason: String },
    /// `migrate`: the copy differs from the original.
    #[error("the copy differs from the original: {}", what.join(", "))]
    CopyDiffers { what: Vec<String> },
    /// A stored record is not the JSON we wrote.
    #[error("unreadable record in tree {tree}: {reason}")]
    BadRecord { tree: &'static str, reason: String },
    /// Cluster mode: this node no longer holds the document's lease at the
    /// epoch it claimed (see [`Leases`]); nothing of the write was stored.
    #[error("document {document} is owned by another node now; the write was refused")]
    Fenced { document: String },
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Postgres(Arc::new(e))
    }
}

const STORAGE_ID_KEY: &str = "storage-id";

/// A remote storage and the heads (change hashes) a document shares with it.
pub type KeptSyncState = (StorageId, Vec<ChangeHash>);

/// One stored chunk of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub is_snapshot: bool,
    pub bytes: Vec<u8>,
}

/// Heads as stored: their 32-byte hashes back to back.
pub(crate) fn encode_heads(heads: &[ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.0).collect()
}

/// Stored heads, or `None` when the bytes are not whole hashes.
pub(crate) fn decode_heads(bytes: &[u8]) -> Option<Vec<ChangeHash>> {
    if !bytes.len().is_multiple_of(32) {
        return None;
    }
    Some(bytes.chunks_exact(32).filter_map(|h| <[u8; 32]>::try_from(h).ok().map(ChangeHash)).collect())
}

/// A store holding documents as chunks: a handle on a sled or PostgreSQL
/// backend. Clones share the backend.
#[derive(Debug, Clone)]
pub struct ChunkStore {
    backend: Arc<dyn Backend>,
    flushes: Arc<AtomicU64>,
    /// Actor bindings accepted but not yet written by the group-commit
    /// thread, shared by every [`AuthStore`] of this store.
    pending_actors: auth::PendingActors,
}

impl ChunkStore {
    /// Open (or create) a sled store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Ok(Self::with_backend(Arc::new(sled::SledBackend::open(dir)?)))
    }

    /// Connect to a PostgreSQL database (`postgres://…`) and bring its
    /// schema up to date.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        Ok(Self::with_backend(Arc::new(postgres::PostgresBackend::connect(url)?)))
    }

    pub fn with_backend(backend: Arc<dyn Backend>) -> Self {
        Self { backend, flushes: Default::default(), pending_actors: Default::default() }
    }

    /// Write `group` and make it durable, as the group-commit writer does:
    /// `Err` means nothing of it may be acknowledged (see [`Backend::commit_group`]).
    pub fn commit_group(&self, group: Vec<GroupItem>) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        self.backend.commit_group(group)
    }

    /// What this store is, for logs (never a password).
    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    /// The id of this storage, created (and made durable) on first use and
    /// kept for the life of the store.
    pub fn storage_id(&self, fresh: impl FnOnce() -> String) -> Result<StorageId, StoreError> {
        if let Some(existing) = self.backend.get_meta(STORAGE_ID_KEY)? {
            return Ok(StorageId(String::from_utf8_lossy(&existing).into_owned()));
        }
        let id = self.backend.put_meta_once(STORAGE_ID_KEY, fresh().as_bytes())?;
        Ok(StorageId(String::from_utf8_lossy(&id).into_owned()))
    }

    /// All stored chunks of a document, in the order they must be loaded.
    pub fn load(&self, document: &DocumentId) -> Result<Vec<Chunk>, StoreError> {
        self.backend.load(document)
    }

    /// Does the store hold anything for this document?
    pub fn contains(&self, document: &DocumentId) -> Result<bool, StoreError> {
        self.backend.contains(document)
    }

    /// Write (not flush) one chunk.
    pub fn write(&self, document: &DocumentId, write: &StorageWrite) -> Result<(), StoreError> {
        self.backend.write(document, write)
    }

    /// The heads this store last shared with each remote storage, for one
    /// document. A record that is not a list of hashes is skipped (it only
    /// saves work; the peer then syncs from scratch).
    pub fn sync_states(&self, document: &DocumentId) -> Result<Vec<KeptSyncState>, StoreError> {
        self.backend.sync_states(document)
    }

    /// Write (not flush) the heads shared with a remote storage.
    pub fn put_sync_state(&self, document: &DocumentId, storage: &StorageId, heads: &[ChangeHash]) -> Result<(), StoreError> {
        self.backend.put_sync_state(document, storage, heads)
    }

    /// Make every write so far durable (fsync).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.backend.flush()?;
        self.flushes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// How many flushes this handle (and its clones) performed.
    pub fn flush_count(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// The ids of all stored documents, in id order.
    pub fn documents(&self) -> impl Iterator<Item = Result<DocumentId, StoreError>> + '_ {
        let (ids, error) = match self.backend.documents() {
            Ok(ids) => (ids, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        ids.into_iter().map(Ok).chain(error.map(Err))
    }

    /// A small value kept beside the documents (identity, drafts, tokens).
    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.backend.get_meta(key)
    }

    /// Store a small value and flush it.
    pub fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.backend.put_meta(key, value)
    }

    /// Remove a small value and flush.
    pub fn remove_meta(&self, key: &str) -> Result<(), StoreError> {
        self.backend.remove_meta(key)
    }

    /// All small values whose key starts with `prefix`, in key order.
    pub fn scan_meta(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.backend.scan_meta(prefix)
    }

    /// The access-control records kept in the same store.
    pub fn auth(&self) -> Result<AuthStore, StoreError> {
        Ok(AuthStore::new(self.backend.clone(), self.pending_actors.clone()))
    }

    /// Bytes the store occupies (sled: on disk; PostgreSQL: the database).
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.backend.size_on_disk()
    }

    /// This node's leases when several nodes share the database (`None` on
    /// sled: one node, nothing to fence). Calling it turns fencing on for
    /// this store: from now on a write of a document this node does not
    /// hold is refused with [`StoreError::Fenced`]. Call it once per store;
    /// a second call starts over with the new handle's (empty) leases.
    pub fn leases(&self, config: LeaseConfig) -> Option<Leases> {
        self.backend.leases(config)
    }

    /// Call `on_change` (on the store's own thread: keep it quick) with the
    /// id of every token revoked, reissued or replaced by any node, and
    /// with `"*"` after the watch reconnected (changes may have been
    /// missed: check every token). On sled it is never called: a single
    /// node changes its tokens itself.
    pub fn watch_tokens(&self, on_change: impl Fn(String) + Send + Sync + 'static) -> Result<(), StoreError> {
        self.backend.watch_tokens(Arc::new(on_change))
    }
}
