//! # konsens-store
//!
//! The sled-backed chunk store shared by `konsens-server` and `konsens-client`,
//! the group-commit writer that makes writes durable in batches, and the
//! [`Persister`] that carries out a `DocEngine`'s storage effects through it.
//!
//! Layout: tree `chunks`, key = document id (16 bytes) ++ sled-generated id
//! (8 bytes, big endian, monotonic across restarts) ++ kind (1 byte: 0 snapshot,
//! 1 incremental). A document loads by scanning its prefix in key order, so a
//! snapshot is always followed by the incrementals written after it. Writing a
//! snapshot removes every earlier chunk of the document in the same atomic batch.
//! Tree `meta` holds the store's `storageId`. Tree `sync-states`, key =
//! document id ++ a remote peer's storage id, holds the heads we last shared
//! with that storage, so a reconnecting peer resumes instead of starting over.

mod auth;
mod group_commit;
mod persister;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use automerge::ChangeHash;
use konsens_sync::{DocumentId, StorageId, StorageWrite};
use thiserror::Error;

pub use auth::{AuthStore, Provenance, TokenKind, TokenRecord, TokenRole};
pub use group_commit::{GroupCommit, GroupCommitStats, MAX_GROUP, OnDurable, Record};
pub use persister::{Persister, durable_input};

/// The one error type of `konsens-store`. `Clone`, because one failed
/// flush is reported to every write of its group.
#[derive(Debug, Clone, Error)]
pub enum StoreError {
    /// sled reported an error (IO, corruption, ...).
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    /// A key in the store does not follow our layout.
    #[error("unexpected key layout in tree {tree}: {len} bytes")]
    BadKey { tree: &'static str, len: usize },
    /// The group-commit writer has stopped (the process is shutting down).
    #[error("the storage writer has stopped")]
    WriterStopped,
    /// A stored record is not the JSON we wrote.
    #[error("unreadable record in tree {tree}: {reason}")]
    BadRecord { tree: &'static str, reason: String },
}

const KIND_SNAPSHOT: u8 = 0;
const KIND_INCREMENTAL: u8 = 1;
const STORAGE_ID_KEY: &[u8] = b"storage-id";

/// A remote storage and the heads (change hashes) a document shares with it.
pub type KeptSyncState = (StorageId, Vec<ChangeHash>);

/// One stored chunk of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub is_snapshot: bool,
    pub bytes: Vec<u8>,
}

/// A sled database holding documents as chunks.
#[derive(Debug, Clone)]
pub struct ChunkStore {
    db: sled::Db,
    chunks: sled::Tree,
    meta: sled::Tree,
    sync_states: sled::Tree,
    flushes: std::sync::Arc<AtomicU64>,
    /// Actor bindings accepted but not yet written by the group-commit
    /// thread, shared by every [`AuthStore`] of this database.
    pending_actors: auth::PendingActors,
}

impl ChunkStore {
    /// Open (or create) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(dir).open()?;
        let chunks = db.open_tree("chunks")?;
        let meta = db.open_tree("meta")?;
        let sync_states = db.open_tree("sync-states")?;
        Ok(Self {
            db,
            chunks,
            meta,
            sync_states,
            flushes: Default::default(),
            pending_actors: Default::default(),
        })
    }

    /// The id of this storage, created (and flushed) on first use and kept for
    /// the life of the data directory.
    pub fn storage_id(&self, fresh: impl FnOnce() -> String) -> Result<StorageId, StoreError> {
        if let Some(existing) = self.meta.get(STORAGE_ID_KEY)? {
            return Ok(StorageId(String::from_utf8_lossy(&existing).into_owned()));
        }
        let id = fresh();
        self.meta.insert(STORAGE_ID_KEY, id.as_bytes())?;
        self.db.flush()?;
        Ok(StorageId(id))
    }

    /// All stored chunks of a document, in the order they must be loaded.
    pub fn load(&self, document: &DocumentId) -> Result<Vec<Chunk>, StoreError> {
        let mut out = Vec::new();
        for entry in self.chunks.scan_prefix(document.as_bytes()) {
            let (key, value) = entry?;
            let is_snapshot = match key.get(24) {
                Some(&KIND_SNAPSHOT) if key.len() == 25 => true,
                Some(&KIND_INCREMENTAL) if key.len() == 25 => false,
                _ => {
                    return Err(StoreError::BadKey {
                        tree: "chunks",
                        len: key.len(),
                    });
                }
            };
            out.push(Chunk {
                is_snapshot,
                bytes: value.to_vec(),
            });
        }
        Ok(out)
    }

    /// Does the store hold anything for this document?
    pub fn contains(&self, document: &DocumentId) -> Result<bool, StoreError> {
        Ok(self.chunks.scan_prefix(document.as_bytes()).next().transpose()?.is_some())
    }

    /// Write (not flush) one chunk.
    pub fn write(&self, document: &DocumentId, write: &StorageWrite) -> Result<(), StoreError> {
        let id = self.db.generate_id()?;
        match write {
            StorageWrite::Incremental(bytes) => {
                self.chunks
                    .insert(chunk_key(document, id, KIND_INCREMENTAL), bytes.as_slice())?;
            }
            StorageWrite::Snapshot(bytes) => {
                let mut batch = sled::Batch::default();
                for key in self.chunks.scan_prefix(document.as_bytes()).keys() {
                    batch.remove(key?);
                }
                batch.insert(&chunk_key(document, id, KIND_SNAPSHOT)[..], bytes.as_slice());
                self.chunks.apply_batch(batch)?;
            }
        }
        Ok(())
    }

    /// The heads this store last shared with each remote storage, for one
    /// document. A record that is not a list of hashes is skipped (it only
    /// saves work; the peer then syncs from scratch).
    pub fn sync_states(&self, document: &DocumentId) -> Result<Vec<KeptSyncState>, StoreError> {
        let mut out = Vec::new();
        for entry in self.sync_states.scan_prefix(document.as_bytes()) {
            let (key, value) = entry?;
            let Some(storage) = key.get(16..).map(|s| String::from_utf8_lossy(s).into_owned()) else {
                continue;
            };
            if value.len() % 32 != 0 {
                tracing::warn!(document = %document, storage, "skipping a malformed sync state");
                continue;
            }
            let heads = value
                .chunks_exact(32)
                .filter_map(|h| <[u8; 32]>::try_from(h).ok().map(ChangeHash))
                .collect();
            out.push((StorageId(storage), heads));
        }
        Ok(out)
    }

    /// Write (not flush) the heads shared with a remote storage.
    pub fn put_sync_state(&self, document: &DocumentId, storage: &StorageId, heads: &[ChangeHash]) -> Result<(), StoreError> {
        let mut key = Vec::with_capacity(16 + storage.0.len());
        key.extend_from_slice(document.as_bytes());
        key.extend_from_slice(storage.0.as_bytes());
        self.sync_states.insert(key, heads.iter().flat_map(|h| h.0).collect::<Vec<u8>>())?;
        Ok(())
    }

    /// Make every write so far durable (fsync).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.flushes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// How many flushes this handle (and its clones) performed.
    pub fn flush_count(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// The ids of all stored documents, in key order.
    pub fn documents(&self) -> impl Iterator<Item = Result<DocumentId, StoreError>> + '_ {
        let mut last: Option<[u8; 16]> = None;
        self.chunks.iter().keys().filter_map(move |key| {
            let key = match key {
                Ok(k) => k,
                Err(e) => return Some(Err(e.into())),
            };
            let Some(prefix) = key.get(..16).and_then(|p| <[u8; 16]>::try_from(p).ok()) else {
                return Some(Err(StoreError::BadKey {
                    tree: "chunks",
                    len: key.len(),
                }));
            };
            if last == Some(prefix) {
                return None;
            }
            last = Some(prefix);
            Some(Ok(DocumentId::from_bytes(prefix)))
        })
    }

    /// A small value kept beside the documents (identity, drafts, tokens).
    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(key.as_bytes())?.map(|v| v.to_vec()))
    }

    /// Store a small value and flush it.
    pub fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(key.as_bytes(), value)?;
        self.flush()
    }

    /// Remove a small value and flush.
    pub fn remove_meta(&self, key: &str) -> Result<(), StoreError> {
        self.meta.remove(key.as_bytes())?;
        self.flush()
    }

    /// All small values whose key starts with `prefix`, in key order.
    pub fn scan_meta(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.meta
            .scan_prefix(prefix.as_bytes())
            .map(|entry| {
                let (k, v) = entry?;
                Ok((String::from_utf8_lossy(&k).into_owned(), v.to_vec()))
            })
            .collect()
    }

    /// The access-control records kept in the same database.
    pub fn auth(&self) -> Result<AuthStore, StoreError> {
        AuthStore::open(&self.db, self.pending_actors.clone())
    }

    /// Bytes on disk as sled counts them.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }
}

fn chunk_key(document: &DocumentId, id: u64, kind: u8) -> [u8; 25] {
    let mut key = [0u8; 25];
    key[..16].copy_from_slice(document.as_bytes());
    key[16..24].copy_from_slice(&id.to_be_bytes());
    key[24] = kind;
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_replaces_earlier_chunks_and_order_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ChunkStore::open(dir.path()).expect("open");
        let doc = DocumentId::from_random([1; 16]);
        let other = DocumentId::from_random([2; 16]);
        store.write(&doc, &StorageWrite::Incremental(vec![1])).expect("write");
        store.write(&other, &StorageWrite::Incremental(vec![9])).expect("write");
        store.write(&doc, &StorageWrite::Snapshot(vec![2])).expect("write");
        store.write(&doc, &StorageWrite::Incremental(vec![3])).expect("write");
        store.flush().expect("flush");
        let chunks = store.load(&doc).expect("load");
        assert_eq!(
            chunks,
            vec![
                Chunk { is_snapshot: true, bytes: vec![2] },
                Chunk { is_snapshot: false, bytes: vec![3] },
            ]
        );
        let docs: Vec<_> = store.documents().collect::<Result<_, _>>().expect("list");
        assert_eq!(docs.len(), 2);
        assert!(store.contains(&other).expect("contains"));
    }

    #[test]
    fn storage_id_is_kept_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = {
            let store = ChunkStore::open(dir.path()).expect("open");
            store.storage_id(|| "abc".into()).expect("id")
        };
        let store = ChunkStore::open(dir.path()).expect("reopen");
        assert_eq!(store.storage_id(|| "other".into()).expect("id"), first);
    }
}
