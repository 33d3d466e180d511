//! Group commit: one writer thread takes every write queued while the previous
//! flush ran, hands them to the backend as one group (sled: written, then one
//! flush; PostgreSQL: one transaction, committed with `synchronous_commit`
//! on), and only then reports durability to each submitter. Many documents
//! and peers share one fsync, and the store's blocking calls never run on an
//! async worker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use konsens_sync::{DocumentId, StorageId, StorageWrite};

use crate::backend::GroupItem;
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
/// the store is never written from an async worker. Records are written in the
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

impl Record {
    fn kind(&self) -> &'static str {
        match self {
            Record::SyncState { .. } => "sync state",
            Record::BindActor { .. } => "actor binding",
            Record::DocumentProcess { .. } => "document process",
            Record::Provenance { .. } => "provenance",
            Record::Meta { .. } => "meta",
        }
    }
}

/// Counters that show how well writes are being grouped.
#[derive(Debug, Default)]
pub struct GroupCommitStats {
    pub writes: AtomicU64,
    pub flushes: AtomicU64,
}

/// What [`GroupCommit::observe`] was given.
struct CommitObserver(Box<dyn Fn(Duration, usize) + Send + Sync>);

impl std::fmt::Debug for CommitObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CommitObserver")
    }
}

/// Handle to the group-commit writer thread. Dropping every handle stops the
/// thread after it has written and flushed what was queued.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    /// Each job with when it was submitted.
    jobs: mpsc::Sender<(Instant, Job)>,
    stats: Arc<GroupCommitStats>,
    /// Set once, after the spawn: the server creates what records the
    /// numbers after the writer is running.
    observer: Arc<OnceLock<CommitObserver>>,
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
        let (jobs, queue) = mpsc::channel();
        let stats = Arc::new(GroupCommitStats::default());
        let observer = Arc::new(OnceLock::new());
        let (thread_stats, thread_observer) = (stats.clone(), observer.clone());
        let auth = store.auth()?;
        let handle = thread::Builder::new()
            .name("konsens-group-commit".into())
            .spawn(move || writer_loop(store, auth, queue, thread_stats, thread_observer, max_group))
            .map_err(|e| StoreError::Sled(::sled::Error::Io(e)))?;
        Ok((Self { jobs, stats, observer }, handle))
    }

    /// From now on, call `observe` for every group that became durable, with
    /// the time from the group's first submission until its commit returned
    /// and the document writes in it (on the writer thread, before anyone is
    /// told the writes are durable). The store only measures; recording the
    /// numbers (the server's `/metrics`) is the caller's business. Only the
    /// first observer is kept: false if one was set already.
    pub fn observe(&self, observe: impl Fn(Duration, usize) + Send + Sync + 'static) -> bool {
        self.observer.set(CommitObserver(Box::new(observe))).is_ok()
    }

    /// Queue a write; `on_durable` runs on the writer thread once it is flushed.
    pub fn submit_write(&self, document: DocumentId, write: StorageWrite, on_durable: OnDurable) -> Result<(), StoreError> {
        self.jobs
            .send((
                Instant::now(),
                Job::Document {
                    document,
                    write,
                    on_durable,
                },
            ))
            .map_err(|_| StoreError::WriterStopped)
    }

    /// Queue records to be written and flushed with the next group; nobody
    /// waits for them (a failure is logged).
    pub fn submit_records(&self, records: Vec<Record>) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        self.jobs.send((Instant::now(), Job::Records(records))).map_err(|_| StoreError::WriterStopped)
    }

    pub fn stats(&self) -> &GroupCommitStats {
        &self.stats
    }
}

fn writer_loop(
    store: ChunkStore,
    auth: AuthStore,
    queue: mpsc::Receiver<(Instant, Job)>,
    stats: Arc<GroupCommitStats>,
    observer: Arc<OnceLock<CommitObserver>>,
    max_group: usize,
) {
    while let Ok(first) = queue.recv() {
        // The queue is in submission order: the first job waited longest.
        let started = first.0;
        let group = take_group(&queue, first, max_group);
        // In submission order, so records land before the writes they precede.
        let mut items = Vec::with_capacity(group.len());
        let mut callbacks = Vec::with_capacity(group.len());
        for (_, job) in group {
            match job {
                Job::Document { document, write, on_durable } => {
                    items.push(GroupItem::Document { document, write });
                    callbacks.push(Some(on_durable));
                }
                Job::Records(records) => {
                    for record in records {
                        items.push(GroupItem::Record(record));
                        callbacks.push(None);
                    }
                }
            }
        }
        let written: Vec<_> = items
            .iter()
            .map(|item| match item {
                GroupItem::Document { document, .. } => Written::Document(*document),
                GroupItem::Record(Record::BindActor { actor, participant }) => Written::Claim(actor.clone(), participant.clone()),
                GroupItem::Record(record) => Written::Record(record.kind()),
            })
            .collect();
        let documents = callbacks.iter().filter(|c| c.is_some()).count();
        let results = match store.commit_group(items) {
            Ok(results) => {
                // Before the callbacks: whoever sees an acknowledgement also sees it counted.
                if let Some(CommitObserver(observe)) = observer.get() {
                    observe(started.elapsed(), documents);
                }
                results
            }
            Err(e) => {
                tracing::error!(error = %e, writes = documents, "group commit failed; nothing in this group is acknowledged");
                vec![Err(e); written.len()]
            }
        };
        stats.writes.fetch_add(documents as u64, Ordering::Relaxed);
        stats.flushes.fetch_add(1, Ordering::Relaxed);
        for ((written, callback), result) in written.into_iter().zip(callbacks).zip(results) {
            match (written, &result) {
                (Written::Document(document), Err(e)) => tracing::error!(document = %document, error = %e, "write failed"),
                (Written::Claim(actor, participant), Ok(())) => auth.forget_claim(&actor, &participant),
                (Written::Claim(..), Err(e)) => tracing::error!(error = %e, "actor binding not written; the claim holds until restart"),
                (Written::Record(record), Err(e)) => tracing::error!(error = %e, record, "record write failed"),
                _ => {}
            }
            if let Some(on_durable) = callback {
                on_durable(result);
            }
        }
    }
}

/// What a group item was, kept for what follows its commit.
enum Written {
    Document(DocumentId),
    /// An actor claim, forgotten from memory once written.
    Claim(Vec<u8>, String),
    /// Any other record, by kind (for the log).
    Record(&'static str),
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
fn take_group<J>(queue: &mpsc::Receiver<J>, first: J, max_group: usize) -> Vec<J> {
    let mut group = vec![first];
    let drain = |group: &mut Vec<J>| {
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

#[cfg(test)]
mod tests {
    //! Writing groups, on both backends, is tested in `tests/backends.rs`.
    use super::*;

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
    fn the_observer_counts_each_durable_group_before_its_writes_are_acknowledged() {
        use std::sync::atomic::AtomicUsize;
        let dir = tempfile::tempdir().expect("tempdir");
        let (commit, writer) = GroupCommit::spawn(ChunkStore::open(dir.path()).expect("open sled")).expect("spawn");
        let (groups, observed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (thread_groups, thread_observed) = (groups.clone(), observed.clone());
        assert!(commit.observe(move |_, writes| {
            thread_groups.fetch_add(1, Ordering::SeqCst);
            thread_observed.fetch_add(writes, Ordering::SeqCst);
        }));
        assert!(!commit.observe(|_, _| {}), "the first observer stays");
        let document = DocumentId::from_random([9; 16]);
        let (tx, rx) = mpsc::channel();
        for n in 0..10u8 {
            let (tx, observed) = (tx.clone(), observed.clone());
            let on_durable: OnDurable = Box::new(move |result| tx.send((result, observed.load(Ordering::SeqCst))).expect("receiver"));
            commit.submit_write(document, StorageWrite::Incremental(vec![n]), on_durable).expect("submit");
        }
        for acknowledged in 1..=10 {
            let (result, observed) = rx.recv().expect("every write is answered");
            result.expect("durable");
            assert!(observed >= acknowledged, "write {acknowledged} acknowledged with {observed} observed");
        }
        drop(commit);
        writer.join().expect("writer exits");
        assert_eq!(observed.load(Ordering::SeqCst), 10);
        assert!((1..=10).contains(&groups.load(Ordering::SeqCst)));
    }
}
