//! The embedded store (the default): one sled database in a directory.
//!
//! Layout: tree `chunks`, key = document id (16 bytes) ++ sled-generated id
//! (8 bytes, big endian, monotonic across restarts) ++ kind (1 byte: 0 snapshot,
//! 1 incremental). A document loads by scanning its prefix in key order, so a
//! snapshot is always followed by the incrementals written after it. Writing a
//! snapshot removes every earlier chunk of the document in the same atomic batch.
//! Tree `meta` holds the store's `storageId`. Tree `sync-states`, key =
//! document id ++ a remote peer's storage id, holds the heads we last shared
//! with that storage, so a reconnecting peer resumes instead of starting over.
//! The access records are in `auth.rs`.

mod auth;

use std::path::{Path, PathBuf};

use automerge::ChangeHash;
use konsens_sync::{DocumentId, StorageId, StorageWrite};

use crate::auth::{Provenance, TokenRecord};
use crate::backend::{Backend, GroupItem};
use crate::group_commit::Record;
use crate::{Chunk, KeptSyncState, StoreError};

const KIND_SNAPSHOT: u8 = 0;
const KIND_INCREMENTAL: u8 = 1;

/// A sled database holding documents as chunks, and the access records.
#[derive(Debug, Clone)]
pub struct SledBackend {
    dir: PathBuf,
    db: sled::Db,
    chunks: sled::Tree,
    meta: sled::Tree,
    sync_states: sled::Tree,
    auth: auth::SledAuth,
}

impl SledBackend {
    /// Open (or create) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(dir).open()?;
        Self::with_db(dir.to_owned(), db)
    }

    fn with_db(dir: PathBuf, db: sled::Db) -> Result<Self, StoreError> {
        Ok(Self {
            chunks: db.open_tree("chunks")?,
            meta: db.open_tree("meta")?,
            sync_states: db.open_tree("sync-states")?,
            auth: auth::SledAuth::open(&db)?,
            dir,
            db,
        })
    }

    fn write_record(&self, record: &Record) -> Result<(), StoreError> {
        match record {
            Record::SyncState { document, storage, heads } => self.put_sync_state(document, storage, heads),
            Record::BindActor { actor, participant } => self.bind_actor(actor, participant),
            Record::DocumentProcess { document, process } => self.set_document_process(document, process),
            Record::Provenance { document, change, provenance } => self.record_provenance(document, change, provenance),
            Record::Meta { key, value } => {
                self.meta.insert(key.as_bytes(), value.as_slice())?;
                Ok(())
            }
        }
    }
}

fn chunk_key(document: &DocumentId, id: u64, kind: u8) -> [u8; 25] {
    let mut key = [0u8; 25];
    key[..16].copy_from_slice(document.as_bytes());
    key[16..24].copy_from_slice(&id.to_be_bytes());
    key[24] = kind;
    key
}

impl Backend for SledBackend {
    fn describe(&self) -> String {
        format!("sled at {}", self.dir.display())
    }

    fn load(&self, document: &DocumentId) -> Result<Vec<Chunk>, StoreError> {
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

    fn contains(&self, document: &DocumentId) -> Result<bool, StoreError> {
        Ok(self.chunks.scan_prefix(document.as_bytes()).next().transpose()?.is_some())
    }

    fn write(&self, document: &DocumentId, write: &StorageWrite) -> Result<(), StoreError> {
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

    fn documents(&self) -> Result<Vec<DocumentId>, StoreError> {
        let mut out: Vec<DocumentId> = Vec::new();
        let mut last: Option<[u8; 16]> = None;
        for key in self.chunks.iter().keys() {
            let key = key?;
            let Some(prefix) = key.get(..16).and_then(|p| <[u8; 16]>::try_from(p).ok()) else {
                return Err(StoreError::BadKey {
                    tree: "chunks",
                    len: key.len(),
                });
            };
            if last != Some(prefix) {
                last = Some(prefix);
                out.push(DocumentId::from_bytes(prefix));
            }
        }
        Ok(out)
    }

    /// A record that is not a list of hashes is skipped (it only saves work;
    /// the peer then syncs from scratch).
    fn sync_states(&self, document: &DocumentId) -> Result<Vec<KeptSyncState>, StoreError> {
        let mut out = Vec::new();
        for entry in self.sync_states.scan_prefix(document.as_bytes()) {
            let (key, value) = entry?;
            let Some(storage) = key.get(16..).map(|s| String::from_utf8_lossy(s).into_owned()) else {
                continue;
            };
            match crate::decode_heads(&value) {
                Some(heads) => out.push((StorageId(storage), heads)),
                None => tracing::warn!(document = %document, storage, "skipping a malformed sync state"),
            }
        }
        Ok(out)
    }

    fn put_sync_state(&self, document: &DocumentId, storage: &StorageId, heads: &[ChangeHash]) -> Result<(), StoreError> {
        let mut key = Vec::with_capacity(16 + storage.0.len());
        key.extend_from_slice(document.as_bytes());
        key.extend_from_slice(storage.0.as_bytes());
        self.sync_states.insert(key, crate::encode_heads(heads))?;
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// Each item is written on its own (a failed record is reported for
    /// that record only); one flush makes the group durable.
    fn commit_group(&self, group: Vec<GroupItem>) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let results = group
            .iter()
            .map(|item| match item {
                GroupItem::Document { document, write } => self.write(document, write),
                GroupItem::Record(record) => self.write_record(record),
            })
            .collect();
        self.db.flush()?;
        Ok(results)
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(key.as_bytes())?.map(|v| v.to_vec()))
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(key.as_bytes(), value)?;
        self.flush()
    }

    fn remove_meta(&self, key: &str) -> Result<(), StoreError> {
        self.meta.remove(key.as_bytes())?;
        self.flush()
    }

    fn put_meta_once(&self, key: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        let stored = match self.meta.compare_and_swap(key.as_bytes(), None as Option<&[u8]>, Some(value))? {
            Ok(()) => value.to_vec(),
            Err(current) => current.current.map(|v| v.to_vec()).unwrap_or_else(|| value.to_vec()),
        };
        self.flush()?;
        Ok(stored)
    }

    fn scan_meta(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.meta
            .scan_prefix(prefix.as_bytes())
            .map(|entry| {
                let (k, v) = entry?;
                Ok((String::from_utf8_lossy(&k).into_owned(), v.to_vec()))
            })
            .collect()
    }

    fn put_tokens(&self, tokens: &[(String, TokenRecord)]) -> Result<(), StoreError> {
        self.auth.put_tokens(tokens)
    }

    fn token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.auth.token(hash)
    }

    fn token_by_id(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.auth.token_by_id(id)
    }

    fn token_entries(&self) -> Result<Vec<(String, TokenRecord)>, StoreError> {
        self.auth.token_entries()
    }

    fn mark_seen(&self, id: &str, now: i64, granularity: i64) -> Result<bool, StoreError> {
        self.auth.mark_seen(id, now, granularity)
    }

    fn notifications_seen(&self, id: &str) -> Result<Option<i64>, StoreError> {
        self.auth.notifications_seen(id)
    }

    fn mark_notifications_seen(&self, id: &str, at: i64) -> Result<(), StoreError> {
        self.auth.mark_notifications_seen(id, at)
    }

    fn reissue(&self, id: &str, new_hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.auth.reissue(id, new_hash)
    }

    fn revoke(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.auth.revoke(id)
    }

    fn set_document_process(&self, document: &DocumentId, process: &DocumentId) -> Result<(), StoreError> {
        self.auth.set_document_process(document, process)
    }

    fn document_process(&self, document: &DocumentId) -> Result<Option<DocumentId>, StoreError> {
        self.auth.document_process(document)
    }

    fn document_processes(&self) -> Result<Vec<(DocumentId, DocumentId)>, StoreError> {
        self.auth.document_processes()
    }

    fn actor_owner(&self, actor: &[u8]) -> Result<Option<String>, StoreError> {
        self.auth.actor_owner(actor)
    }

    fn bind_actor(&self, actor: &[u8], participant: &str) -> Result<(), StoreError> {
        self.auth.bind_actor(actor, participant)
    }

    fn actor_bindings(&self) -> Result<Vec<(Vec<u8>, String)>, StoreError> {
        self.auth.actor_bindings()
    }

    fn record_provenance(&self, document: &DocumentId, change: &[u8; 32], provenance: &Provenance) -> Result<(), StoreError> {
        self.auth.record_provenance(document, change, provenance)
    }

    fn provenance(&self, document: &DocumentId, change: &[u8; 32]) -> Result<Option<Provenance>, StoreError> {
        self.auth.provenance(document, change)
    }

    fn provenance_entries(&self) -> Result<Vec<(DocumentId, [u8; 32], Provenance)>, StoreError> {
        self.auth.provenance_entries()
    }
}
