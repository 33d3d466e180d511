//! Group commit: one writer thread takes every write queued while the previous
//! flush ran, writes them all, flushes once, and then reports durability to each
//! submitter. Many documents and peers share one fsync, and sled's blocking
//! calls never run on an async worker.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;

use konsens_sync::{DocumentId, StorageId, StorageWrite};

use crate::{AuthStore, ChunkStore, Provenance, StoreError};

/// Called once the write is durable (`Ok`) or failed (`Err`).
pub type OnDurable = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

enum Job {
    /// Document bytes; their submitter waits for the flush.
    Document {
        document: DocumentId,
        write: StorageWrite,
        on_durable: OnDurable,
    },
    /// Small records that ride along with the next flush.
    Records(Vec<Record>),
}

/// A small record written by the writer thread beside the documents, so that
/// sled is never written from an async worker. Records are written in the
/// order submitted and flushed with the group they land in: a record
/// submitted before a document write is durable no later than that write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The heads a document shares with a remote storage (see [`ChunkStore::sync_states`]).
    SyncState {
        document: DocumentId,
        storage: StorageId,
        heads: Vec<automerge::ChangeHash>,
    },
    /// An actor claimed for a member with [`AuthStore::claim_actor`].
    BindActor { actor: Vec<u8>, participant: String },
    /// The process a new document belongs to.
    DocumentProcess { document: DocumentId, process: DocumentId },
    /// Who delivered an accepted change.
    Provenance {
        document: DocumentId,
        change: [u8; 32],
        provenance: Provenance,
    },
    /// An entry of the `meta` tree (see [`ChunkStore::put_meta`]).
    Meta { key: String, value: Vec<u8> },
}

/// Counters that show how well writes are being grouped.
#[derive(Debug, Default)]
pub struct GroupCommitStats {
    pub writes: AtomicU64,
    pub flushes: AtomicU64,
}

/// Handle to the group-commit writer thread. Dropping every handle stops the
/// thread after it has written and flushed what was queued.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    jobs: mpsc::Sender<Job>,
    stats: Arc<GroupCommitStats>,
}

/// Upper bound on writes in one group, so a flood cannot delay every
/// acknowledgement behind one enormous batch.
pub const MAX_GROUP: usize = 4096;

impl GroupCommit {
    /// Start the writer thread for `store`, grouping up to [`MAX_GROUP`] writes.
    pub fn spawn(store: ChunkStore) -> Result<(Self, thread::JoinHandle<()>), StoreError> {
        Self::spawn_with_max_group(store, MAX_GROUP)
    }

    /// Start the writer thread, grouping at most `max_group` writes (clamped
    /// to `1..=MAX_GROUP`). `1` turns group commit off (one flush per write),
    /// which `konsens-bench` uses to show what it buys.
    pub fn spawn_with_max_group(store: ChunkStore, max_group: usize) -> Result<(Self, thread::JoinHandle<()>), StoreError> {
        let max_group = max_group.clamp(1, MAX_GROUP);
        let (jobs, queue) = mpsc::channel::<Job>();
        let stats = Arc::new(GroupCommitStats::default());
        let thread_stats = stats.clone();
        let auth = store.auth()?;
        let handle = thread::Builder::new()
            .name("konsens-group-commit".into())
            .spawn(move || writer_loop(store, auth, queue, thread_stats, max_group))
            .map_err(|e| StoreError::Sled(sled::Error::Io(e)))?;
        Ok((Self { jobs, stats }, handle))
    }

    /// Queue a write; `on_durable` runs on the writer thread once it is flushed.
    pub fn submit_write(&self, document: DocumentId, write: StorageWrite, on_durable: OnDurable) -> Result<(), StoreError> {
        self.jobs
            .send(Job::Document {
                document,
                write,
                on_durable,
            })
            .map_err(|_| StoreError::WriterStopped)
    }

    /// Queue records to be written and flushed with the next group; nobody
    /// waits for them (a failure is logged).
    pub fn submit_records(&self, records: Vec<Record>) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        self.jobs.send(Job::Records(records)).map_err(|_| StoreError::WriterStopped)
    }

    pub fn stats(&self) -> &GroupCommitStats {
        &self.stats
    }
}

fn writer_loop(store: ChunkStore, auth: AuthStore, queue: mpsc::Receiver<Job>, stats: Arc<GroupCommitStats>, max_group: usize) {
    while let Ok(first) = queue.recv() {
        let group = take_group(&queue, first, max_group);
        // In submission order, so records land before the writes they precede.
        let mut documents = Vec::with_capacity(group.len());
        for job in group {
            match job {
                Job::Document { document, write, on_durable } => {
                    let result = store.write(&document, &write);
                    documents.push((document, on_durable, result));
                }
                Job::Records(records) => {
                    for record in &records {
                        if let Err(e) = write_record(&store, &auth, record) {
                            tracing::error!(error = %e, ?record, "record write failed");
                        }
                    }
                }
            }
        }
        let flushed = store.flush();
        stats.writes.fetch_add(documents.len() as u64, Ordering::Relaxed);
        stats.flushes.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = &flushed {
            tracing::error!(error = %e, writes = documents.len(), "flush failed; nothing in this group is acknowledged");
            for (_, _, r) in documents.iter_mut() {
                if r.is_ok() {
                    *r = Err(e.clone());
                }
            }
        }
        for (document, on_durable, result) in documents {
            if let Err(e) = &result {
                tracing::error!(document = %document, error = %e, "write failed");
            }
            on_durable(result);
        }
    }
}

/// Most times the writer yields its core while collecting one group (see
/// [`take_group`]): bounds the wait for a group while submissions keep coming.
const MAX_YIELDS: usize = 16;

/// The group to write: `first` and whatever follows it, up to `max_group`.
///
/// Waking the writer for the first write of a group is the expensive part of a
/// flush (the thread switch, sled's flush hands the buffer to its IO threads
/// and waits for them). Where the submitters share the writer's core (the
/// async runtime's worker on a small machine), taking only what is queued the
/// moment the writer wakes makes groups of one or two: each submission wakes
/// the writer, which runs before the next owner can submit. So the writer
/// yields its core and takes what arrived meanwhile, again while each yield
/// brought more; it flushes once nothing more came (the submitters are
/// waiting for it) or after [`MAX_YIELDS`]. Where it has a core of its own,
/// a yield returns at once and brings nothing: no delay.
fn take_group(queue: &mpsc::Receiver<Job>, first: Job, max_group: usize) -> Vec<Job> {
    let mut group = vec![first];
    let drain = |group: &mut Vec<Job>| {
        while group.len() < max_group {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
    };
    drain(&mut group);
    // One write per flush (`max_group` 1) is what that setting measures: no waiting.
    if max_group > 1 {
        for _ in 0..MAX_YIELDS {
            if group.len() >= max_group {
                break;
            }
            let before = group.len();
            thread::yield_now();
            drain(&mut group);
            if group.len() == before {
                break;
            }
        }
    }
    group
}

fn write_record(store: &ChunkStore, auth: &AuthStore, record: &Record) -> Result<(), StoreError> {
    match record {
        Record::SyncState { document, storage, heads } => store.put_sync_state(document, storage, heads),
        Record::BindActor { actor, participant } => auth.write_claim(actor, participant),
        Record::DocumentProcess { document, process } => auth.set_document_process(document, process),
        Record::Provenance { document, change, provenance } => auth.record_provenance(document, change, provenance),
        Record::Meta { key, value } => store.put_meta(key, value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::ChangeHash;

    #[test]
    fn writes_become_durable_and_visible_after_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let doc = DocumentId::from_random([5; 16]);
        {
            let store = ChunkStore::open(dir.path()).expect("open");
            let (commit, thread) = GroupCommit::spawn(store).expect("spawn");
            let (tx, rx) = mpsc::channel();
            for i in 0..10u8 {
                let tx = tx.clone();
                commit
                    .submit_write(doc, StorageWrite::Incremental(vec![i]), Box::new(move |r| {
                        tx.send(r).expect("test receiver alive");
                    }))
                    .expect("submit");
            }
            for _ in 0..10 {
                rx.recv().expect("result").expect("durable");
            }
            assert!(commit.stats().flushes.load(Ordering::Relaxed) <= 10);
            drop(commit);
            thread.join().expect("writer exits");
        }
        let store = ChunkStore::open(dir.path()).expect("reopen");
        let bytes: Vec<u8> = store.load(&doc).expect("load").into_iter().flat_map(|c| c.bytes).collect();
        assert_eq!(bytes, (0..10).collect::<Vec<u8>>());
    }

    #[test]
    fn a_group_takes_what_is_queued_up_to_its_bound() {
        let record = |n: u8| Job::Records(vec![Record::Meta { key: format!("k{n}"), value: vec![n] }]);
        let (tx, rx) = mpsc::channel();
        for n in 0..5 {
            tx.send(record(n)).expect("send");
        }
        let first = rx.recv().expect("first");
        assert_eq!(take_group(&rx, first, 3).len(), 3, "bounded by max_group");
        let first = rx.recv().expect("fourth");
        assert_eq!(take_group(&rx, first, 1).len(), 1, "group commit off: one write a flush");
        let first = rx.recv().expect("fifth");
        assert_eq!(take_group(&rx, first, MAX_GROUP).len(), 1, "nothing more queued: no wait for more");
        // Everything another thread queued before the writer woke is one group.
        let (tx, rx) = mpsc::channel();
        let submitter = std::thread::spawn(move || {
            for n in 0..100 {
                tx.send(record(n)).expect("send");
            }
        });
        let first = rx.recv().expect("first");
        submitter.join().expect("submitter");
        assert_eq!(take_group(&rx, first, MAX_GROUP).len(), 100);
    }

    #[test]
    fn records_are_written_by_the_writer_and_durable_with_the_next_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let doc = DocumentId::from_random([6; 16]);
        let process = DocumentId::from_random([7; 16]);
        let provenance = Provenance { author: "ana".into(), delivered_by: "ana".into(), merged_by: None, at: 1 };
        {
            let store = ChunkStore::open(dir.path()).expect("open");
            let auth = store.auth().expect("auth");
            let (commit, thread) = GroupCommit::spawn(store.clone()).expect("spawn");
            // A claim holds at once, before anything is written.
            assert_eq!(auth.claim_actor(b"actor-1", "ana").expect("claim"), "ana");
            assert_eq!(auth.claim_actor(b"actor-1", "bo").expect("claim"), "ana", "the first claim wins");
            assert_eq!(auth.actor_owner(b"actor-1").expect("owner").as_deref(), Some("ana"));
            commit
                .submit_records(vec![
                    Record::BindActor { actor: b"actor-1".to_vec(), participant: "ana".into() },
                    Record::DocumentProcess { document: doc, process },
                    Record::Provenance { document: doc, change: [9; 32], provenance: provenance.clone() },
                    Record::SyncState { document: doc, storage: StorageId("laptop".into()), heads: vec![ChangeHash([1; 32]), ChangeHash([2; 32])] },
                ])
                .expect("submit records");
            let (tx, rx) = mpsc::channel();
            commit
                .submit_write(doc, StorageWrite::Incremental(vec![1]), Box::new(move |r| tx.send(r).expect("test receiver alive")))
                .expect("submit");
            rx.recv().expect("result").expect("durable");
            drop(commit);
            thread.join().expect("writer exits");
        }
        let store = ChunkStore::open(dir.path()).expect("reopen");
        let auth = store.auth().expect("auth");
        assert_eq!(auth.actor_owner(b"actor-1").expect("owner").as_deref(), Some("ana"));
        assert_eq!(auth.document_process(&doc).expect("process"), Some(process));
        assert_eq!(auth.provenance(&doc, &[9; 32]).expect("provenance"), Some(provenance));
        assert_eq!(store.sync_states(&doc).expect("states"), vec![(StorageId("laptop".into()), vec![ChangeHash([1; 32]), ChangeHash([2; 32])])]);
    }
}
