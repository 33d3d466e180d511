//! Carries out a `DocEngine`'s storage effects through the group-commit
//! writer, for every runtime (the server's document owners, the client's
//! repo): `Persist` becomes a document write whose durability comes back as
//! a [`DocInput`], `SaveSyncState` a [`Record`] that rides along with the
//! next flush.
//!
//! ```no_run
//! # fn demo(commit: konsens_store::GroupCommit, effects: Vec<konsens_sync::DocEffect>) {
//! let (tx, rx) = std::sync::mpsc::channel();
//! // Called on the writer thread: hand the input back to the engine's owner.
//! let persister = konsens_store::Persister::new(commit, move |_document, input| {
//!     let _ = tx.send(input);
//! });
//! for effect in effects {
//!     if let Some(other) = persister.apply(effect) {
//!         // Send and Close are the runtime's.
//!         drop(other);
//!     }
//! }
//! # drop(rx);
//! # }
//! ```

use std::sync::Arc;

use konsens_sync::{DocEffect, DocInput, DocumentId, PersistError};

use crate::{GroupCommit, Record, StoreError};

/// Where durability reports go: the document and the engine input to give it.
/// Runs on the writer thread, so it must only hand the input on.
type Report = Arc<dyn Fn(DocumentId, DocInput) + Send + Sync>;

/// Executes storage effects; cheap to clone.
#[derive(Clone)]
pub struct Persister {
    commit: GroupCommit,
    report: Report,
}

impl std::fmt::Debug for Persister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persister").field("commit", &self.commit).finish_non_exhaustive()
    }
}

impl Persister {
    /// `report` receives [`DocInput::Durable`] or [`DocInput::PersistFailed`]
    /// for every `Persist`, exactly once, from the writer thread (or at once
    /// when the writer has stopped).
    pub fn new(commit: GroupCommit, report: impl Fn(DocumentId, DocInput) + Send + Sync + 'static) -> Self {
        Self { commit, report: Arc::new(report) }
    }

    /// The writer these effects go to (for records of one's own).
    pub fn commit(&self) -> &GroupCommit {
        &self.commit
    }

    /// Carry out `effect` if it is a storage effect; any other comes back.
    pub fn apply(&self, effect: DocEffect) -> Option<DocEffect> {
        match effect {
            DocEffect::Persist { document_id, seq, write } => {
                let report = self.report.clone();
                let submitted = self.commit.submit_write(
                    document_id,
                    write,
                    Box::new(move |result| report(document_id, durable_input(seq, result))),
                );
                if let Err(e) = submitted {
                    (self.report)(document_id, durable_input(seq, Err(e)));
                }
                None
            }
            DocEffect::SaveSyncState { document_id, storage, heads } => {
                // Losing it costs only a longer first sync next time.
                let record = Record::SyncState { document: document_id, storage, heads };
                if let Err(e) = self.commit.submit_records(vec![record]) {
                    tracing::debug!(document = %document_id, error = %e, "sync state not kept");
                }
                None
            }
            other @ (DocEffect::Send { .. } | DocEffect::Close { .. }) => Some(other),
        }
    }
}

/// The engine input for the outcome of persisting `seq`.
pub fn durable_input(seq: u64, result: Result<(), StoreError>) -> DocInput {
    match result {
        Ok(()) => DocInput::Durable { seq },
        // Another node owns the document now: its owner leaves, rather than
        // failing its peers (see `PersistError::Moved`).
        Err(StoreError::Fenced { .. }) => DocInput::PersistFailed { seq, error: PersistError::Moved },
        // The engine only needs to know that memory is now ahead of disk; the
        // store's words go to the log.
        Err(e) => DocInput::PersistFailed { seq, error: PersistError::Storage(e.to_string()) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChunkStore;
    use konsens_sync::{StorageId, StorageWrite};

    #[test]
    fn storage_effects_are_written_and_reported_others_come_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ChunkStore::open(dir.path()).expect("open");
        let (commit, writer) = GroupCommit::spawn(store.clone()).expect("spawn");
        let (tx, rx) = std::sync::mpsc::channel();
        let persister = Persister::new(commit, move |document, input| tx.send((document, input)).expect("receiver alive"));
        let doc = DocumentId::from_random([3; 16]);
        let heads = vec![automerge::ChangeHash([4; 32])];
        let save = DocEffect::SaveSyncState { document_id: doc, storage: StorageId("laptop".into()), heads: heads.clone() };
        assert!(persister.apply(save).is_none());
        let persist = DocEffect::Persist { document_id: doc, seq: 7, write: StorageWrite::Incremental(vec![1, 2]) };
        assert!(persister.apply(persist).is_none());
        let (document, input) = rx.recv().expect("reported");
        assert_eq!(document, doc);
        assert!(matches!(input, DocInput::Durable { seq: 7 }), "{input:?}");
        let close = DocEffect::Close { conn: konsens_sync::ConnectionId(1), reason: konsens_sync::CloseReason::ProtocolViolation(konsens_sync::ProtocolError::NotAMessage("bye")) };
        assert!(persister.apply(close).is_some());
        drop(persister);
        writer.join().expect("writer exits");
        assert_eq!(store.load(&doc).expect("load").len(), 1);
        assert_eq!(store.sync_states(&doc).expect("states"), vec![(StorageId("laptop".into()), heads)]);
    }

    #[test]
    fn outcomes_become_engine_inputs() {
        assert!(matches!(durable_input(1, Ok(())), DocInput::Durable { seq: 1 }));
        let moved = durable_input(3, Err(StoreError::Fenced { document: "x".into() }));
        assert!(matches!(moved, DocInput::PersistFailed { seq: 3, error: PersistError::Moved }), "{moved:?}");
        let failed = durable_input(2, Err(StoreError::WriterStopped));
        assert!(matches!(&failed, DocInput::PersistFailed { seq: 2, error } if error.to_string().contains("stopped")), "{failed:?}");
    }
}
