//! When to write changes as an incremental and when to compact into a snapshot.

use super::{StorageWrite, StoredSizes};

/// What is stored for the document, by kind, to decide when incrementals
/// have grown enough that loading them costs more than rewriting a snapshot.
#[derive(Debug)]
pub(super) struct Compaction {
    snapshot_bytes: usize,
    incremental_bytes: usize,
    floor_bytes: usize,
}

impl Compaction {
    pub(super) fn new(sizes: StoredSizes, floor_bytes: usize) -> Self {
        Self { snapshot_bytes: sizes.snapshot_bytes, incremental_bytes: sizes.incremental_bytes, floor_bytes }
    }

    /// The write for `incremental` (everything not yet stored): itself, or
    /// (when `may_compact`) a snapshot made by `snapshot` once the
    /// incrementals would outweigh the snapshot (or the
    /// floor, so a young document is not rewritten on every change).
    pub(super) fn write(&mut self, incremental: Vec<u8>, may_compact: bool, snapshot: impl FnOnce() -> Vec<u8>) -> StorageWrite {
        if may_compact && self.incremental_bytes + incremental.len() > self.snapshot_bytes.max(self.floor_bytes) {
            self.snapshot(snapshot())
        } else {
            self.incremental_bytes += incremental.len();
            StorageWrite::Incremental(incremental)
        }
    }

    /// Have the incrementals outgrown the snapshot (see [`Self::write`])?
    pub(super) fn due(&self) -> bool {
        self.incremental_bytes > self.snapshot_bytes.max(self.floor_bytes)
    }

    /// A snapshot that replaces every stored chunk.
    pub(super) fn snapshot(&mut self, snapshot: Vec<u8>) -> StorageWrite {
        self.snapshot_bytes = snapshot.len();
        self.incremental_bytes = 0;
        StorageWrite::Snapshot(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{Automerge, ROOT};

    #[test]
    fn incrementals_until_they_outweigh_the_floor_then_a_snapshot() {
        let mut doc = Automerge::new();
        let mut compaction = Compaction::new(StoredSizes::default(), 200);
        let mut persisted = doc.get_heads();
        let mut kinds = Vec::new();
        for i in 0..10 {
            doc.transact::<_, _, automerge::AutomergeError>(|tx| tx.put(ROOT, "k", i as i64)).ok();
            let write = compaction.write(doc.save_after(&persisted), true, || doc.save());
            persisted = doc.get_heads();
            kinds.push(matches!(write, StorageWrite::Snapshot(_)));
        }
        assert!(!kinds[0], "the first change is an incremental");
        assert!(kinds.iter().any(|&s| s), "incrementals past the floor compact: {kinds:?}");
    }
}
