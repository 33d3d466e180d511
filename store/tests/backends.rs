//! The store's test suite, run against both backends: every case runs on a
//! fresh sled directory and on a fresh database of a throwaway PostgreSQL
//! cluster. Without PostgreSQL installed the PostgreSQL run fails (it never
//! skips): `scripts/test.sh` installs Debian's package.

mod common;

use std::sync::mpsc;

use common::member;

use automerge::{ChangeHash, ReadDoc, transaction::Transactable};
use konsens_store::postgres::throwaway::ThrowawayCluster;
use konsens_store::{
    Chunk, ChunkStore, GroupCommit, GroupItem, Provenance, Record, StoreError, TokenKind, TokenRecord, TokenRole, migrate,
};
use konsens_sync::{DocumentId, StorageId, StorageWrite};

/// Opens the store under test; called again to reopen it (after the
/// previous handle is dropped: sled allows one open handle per directory).
type Open<'a> = &'a dyn Fn() -> ChunkStore;

/// One case of the suite.
type Case = fn(Open<'_>);

const CASES: &[(&str, Case)] = &[
    ("snapshot_replaces_earlier_chunks_and_order_is_kept", snapshot_replaces_earlier_chunks_and_order_is_kept),
    ("storage_id_is_kept_across_reopen", storage_id_is_kept_across_reopen),
    ("group_commit_writes_are_durable_after_reopen", group_commit_writes_are_durable_after_reopen),
    ("records_ride_with_the_group_and_claims_hold_at_once", records_ride_with_the_group_and_claims_hold_at_once),
    ("joining_is_recorded_once_and_last_seen_coarsely", joining_is_recorded_once_and_last_seen_coarsely),
    ("a_reissued_token_answers_to_the_new_secret_only", a_reissued_token_answers_to_the_new_secret_only),
    ("notifications_seen_only_moves_forward", notifications_seen_only_moves_forward),
    ("revoked_tokens_processes_and_meta", revoked_tokens_processes_and_meta),
    ("migration_from_sled_keeps_everything", migration_from_sled_keeps_everything),
];

#[test]
fn suite_on_sled() {
    for (name, case) in CASES {
        eprintln!("sled: {name}");
        let dir = tempfile::tempdir().expect("tempdir");
        case(&|| ChunkStore::open(dir.path()).expect("open sled"));
    }
}

#[test]
fn suite_on_postgres() {
    let cluster = ThrowawayCluster::start().expect("a throwaway PostgreSQL cluster (is PostgreSQL installed?)");
    for (name, case) in CASES {
        eprintln!("postgres: {name}");
        let url = cluster.create_database(name).expect("createdb");
        case(&|| ChunkStore::connect(&url).expect("connect"));
    }
}

/// Nodes of a cluster starting together on one empty database all take the
/// storage id the first one wrote: a client sees one server through any node.
#[test]
fn postgres_nodes_starting_together_share_one_storage_id() {
    let cluster = ThrowawayCluster::start().expect("a throwaway PostgreSQL cluster (is PostgreSQL installed?)");
    let url = cluster.create_database("together").expect("createdb");
    let stores: Vec<ChunkStore> = (0..6).map(|_| ChunkStore::connect(&url).expect("connect")).collect();
    let barrier = std::sync::Barrier::new(stores.len());
    let ids: Vec<StorageId> = std::thread::scope(|scope| {
        let handles: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(n, store)| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    store.storage_id(|| format!("node-{n}")).expect("id")
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    assert!(ids.iter().all(|id| *id == ids[0]), "one storage id for all: {ids:?}");
    assert_eq!(ChunkStore::connect(&url).expect("connect").storage_id(|| "late".into()).expect("id"), ids[0]);
}

/// A failed commit acknowledges nothing: the whole group is rolled back,
/// and every submitter of the writer hears the typed error.
#[test]
fn postgres_a_failed_commit_acknowledges_nothing() {
    let cluster = ThrowawayCluster::start().expect("a throwaway PostgreSQL cluster (is PostgreSQL installed?)");
    let url = cluster.create_database("failing").expect("createdb");
    let store = ChunkStore::connect(&url).expect("connect");
    // Behind the store's back: chunks of more than 4 bytes now fail to insert.
    cluster.psql("failing", "ALTER TABLE chunks ADD CONSTRAINT small CHECK (length(bytes) <= 4)").expect("constraint");
    let doc = DocumentId::from_random([1; 16]);
    let outcome = store.commit_group(vec![
        GroupItem::Document { document: doc, write: StorageWrite::Incremental(vec![1]) },
        GroupItem::Record(Record::Meta { key: "k".into(), value: vec![1] }),
        GroupItem::Document { document: doc, write: StorageWrite::Incremental(vec![0; 10]) },
    ]);
    assert!(matches!(outcome, Err(StoreError::Postgres(_))), "{outcome:?}");
    assert_eq!(store.load(&doc).expect("load"), vec![], "the good write of the group is rolled back too");
    assert_eq!(store.get_meta("k").expect("meta"), None);

    let (commit, writer) = GroupCommit::spawn(store.clone()).expect("spawn");
    let (tx, rx) = mpsc::channel();
    for _ in 0..5 {
        let tx = tx.clone();
        commit
            .submit_write(doc, StorageWrite::Incremental(vec![0; 10]), Box::new(move |r| tx.send(r).expect("receiver")))
            .expect("submit");
    }
    for _ in 0..5 {
        let result = rx.recv().expect("every submitter hears back");
        assert!(matches!(result, Err(StoreError::Postgres(_))), "{result:?}");
    }
    drop(commit);
    writer.join().expect("writer exits");
    assert!(!store.contains(&doc).expect("contains"));
}

#[test]
fn postgres_migrations_are_recorded_and_applied_once() {
    let cluster = ThrowawayCluster::start().expect("a throwaway PostgreSQL cluster (is PostgreSQL installed?)");
    let url = cluster.create_database("twice").expect("createdb");
    drop(ChunkStore::connect(&url).expect("first start"));
    drop(ChunkStore::connect(&url).expect("second start applies nothing again"));
    assert_eq!(cluster.psql("twice", "SELECT version, name FROM konsens_migrations ORDER BY version").expect("psql").trim(), "1|initial\n2|notifications seen\n3|leases");
    // A schema newer than this build knows is refused, not used.
    cluster.psql("twice", "INSERT INTO konsens_migrations (version, name) VALUES (99, 'future')").expect("psql");
    let refused = ChunkStore::connect(&url);
    assert!(matches!(refused, Err(StoreError::Migration { version: 99, .. })), "{refused:?}");
}

#[test]
fn postgres_unreachable_is_a_clear_error() {
    let refused = ChunkStore::connect("postgres://konsens@127.0.0.1:1/nothing");
    assert!(matches!(refused, Err(StoreError::Connect(_))), "{refused:?}");
    let malformed = ChunkStore::connect("postgres://[");
    assert!(matches!(malformed, Err(StoreError::Connect(_))), "{malformed:?}");
}

fn snapshot_replaces_earlier_chunks_and_order_is_kept(open: Open<'_>) {
    let store = open();
    let doc = DocumentId::from_random([1; 16]);
    let other = DocumentId::from_random([2; 16]);
    store.write(&doc, &StorageWrite::Incremental(vec![1])).expect("write");
    store.write(&other, &StorageWrite::Incremental(vec![9])).expect("write");
    store.write(&doc, &StorageWrite::Snapshot(vec![2])).expect("write");
    store.write(&doc, &StorageWrite::Incremental(vec![3])).expect("write");
    store.flush().expect("flush");
    assert_eq!(
        store.load(&doc).expect("load"),
        vec![Chunk { is_snapshot: true, bytes: vec![2] }, Chunk { is_snapshot: false, bytes: vec![3] }]
    );
    let docs: Vec<_> = store.documents().collect::<Result<_, _>>().expect("list");
    let mut expected = vec![doc, other];
    expected.sort_by_key(|d| *d.as_bytes());
    assert_eq!(docs, expected, "each document once, in id order");
    assert!(store.contains(&other).expect("contains"));
    assert!(!store.contains(&DocumentId::from_random([3; 16])).expect("contains"));
}

fn storage_id_is_kept_across_reopen(open: Open<'_>) {
    let first = open().storage_id(|| "abc".into()).expect("id");
    assert_eq!(open().storage_id(|| "other".into()).expect("id"), first);
    assert_eq!(first, StorageId("abc".into()));
}

fn group_commit_writes_are_durable_after_reopen(open: Open<'_>) {
    let doc = DocumentId::from_random([5; 16]);
    {
        let (commit, thread) = GroupCommit::spawn(open()).expect("spawn");
        let (tx, rx) = mpsc::channel();
        for i in 0..10u8 {
            let tx = tx.clone();
            let write = if i == 3 { StorageWrite::Snapshot(vec![i]) } else { StorageWrite::Incremental(vec![i]) };
            commit.submit_write(doc, write, Box::new(move |r| tx.send(r).expect("receiver"))).expect("submit");
        }
        for _ in 0..10 {
            rx.recv().expect("result").expect("durable");
        }
        drop(commit);
        thread.join().expect("writer exits");
    }
    let bytes: Vec<u8> = open().load(&doc).expect("load").into_iter().flat_map(|c| c.bytes).collect();
    assert_eq!(bytes, (3..10).collect::<Vec<u8>>(), "the snapshot dropped what came before it");
}

fn records_ride_with_the_group_and_claims_hold_at_once(open: Open<'_>) {
    let doc = DocumentId::from_random([6; 16]);
    let process = DocumentId::from_random([7; 16]);
    let provenance = Provenance { author: "ana".into(), delivered_by: "ana".into(), merged_by: None, at: 1 };
    let heads = vec![ChangeHash([1; 32]), ChangeHash([2; 32])];
    {
        let store = open();
        let auth = store.auth().expect("auth");
        let (commit, thread) = GroupCommit::spawn(store.clone()).expect("spawn");
        assert_eq!(auth.claim_actor(b"actor-1", "ana").expect("claim"), "ana");
        assert_eq!(auth.claim_actor(b"actor-1", "bo").expect("claim"), "ana", "the first claim wins");
        assert_eq!(auth.actor_owner(b"actor-1").expect("owner").as_deref(), Some("ana"));
        commit
            .submit_records(vec![
                Record::BindActor { actor: b"actor-1".to_vec(), participant: "ana".into() },
                Record::DocumentProcess { document: doc, process },
                Record::DocumentProcess { document: doc, process: doc },
                Record::Provenance { document: doc, change: [9; 32], provenance: provenance.clone() },
                Record::SyncState { document: doc, storage: StorageId("laptop".into()), heads: vec![ChangeHash([3; 32])] },
                Record::SyncState { document: doc, storage: StorageId("laptop".into()), heads: heads.clone() },
                Record::Meta { key: "draft".into(), value: b"x".to_vec() },
            ])
            .expect("submit records");
        let (tx, rx) = mpsc::channel();
        commit
            .submit_write(doc, StorageWrite::Incremental(vec![1]), Box::new(move |r| tx.send(r).expect("receiver")))
            .expect("submit");
        rx.recv().expect("result").expect("durable");
        drop(commit);
        thread.join().expect("writer exits");
        // Written, and a later binding of the same actor changes nothing.
        auth.bind_actor(b"actor-1", "bo").expect("bind");
    }
    let store = open();
    let auth = store.auth().expect("auth");
    assert_eq!(auth.actor_owner(b"actor-1").expect("owner").as_deref(), Some("ana"));
    assert_eq!(auth.actor_bindings().expect("bindings"), vec![(b"actor-1".to_vec(), "ana".to_owned())]);
    assert_eq!(auth.document_process(&doc).expect("process"), Some(process), "the first process wins");
    assert_eq!(auth.provenance(&doc, &[9; 32]).expect("provenance"), Some(provenance));
    assert_eq!(auth.provenance(&doc, &[8; 32]).expect("provenance"), None);
    assert_eq!(store.sync_states(&doc).expect("states"), vec![(StorageId("laptop".into()), heads)], "the last state wins");
    assert_eq!(store.get_meta("draft").expect("meta"), Some(b"x".to_vec()));
}


fn joining_is_recorded_once_and_last_seen_coarsely(open: Open<'_>) {
    let store = open().auth().expect("auth");
    store.put_tokens(&[("h1".into(), member("t1", TokenRole::Participant)), ("h2".into(), member("t2", TokenRole::Participant))]).expect("put");
    assert!(store.mark_seen("t1", 1_000, 300_000).expect("seen"));
    assert!(!store.mark_seen("t1", 2_000, 300_000).expect("seen"), "within the granularity nothing is written");
    assert!(store.mark_seen("t1", 400_000, 300_000).expect("seen"));
    let record = store.token("h1").expect("reads").expect("there");
    assert_eq!((record.joined_at, record.last_seen), (Some(1_000), Some(400_000)));
    assert_eq!(store.token("h2").expect("reads").expect("there").joined_at, None);
    assert!(!store.mark_seen("t-unknown", 1, 1).expect("no such token"));
}

fn notifications_seen_only_moves_forward(open: Open<'_>) {
    let store = open().auth().expect("auth");
    assert_eq!(store.notifications_seen("t1").expect("reads"), None);
    store.mark_notifications_seen("t1", 5_000).expect("mark");
    // Another device reporting an older look does not undo the newer one.
    store.mark_notifications_seen("t1", 3_000).expect("mark");
    assert_eq!(store.notifications_seen("t1").expect("reads"), Some(5_000));
    drop(store);
    let reopened = open().auth().expect("auth");
    assert_eq!(reopened.notifications_seen("t1").expect("reads"), Some(5_000));
    assert_eq!(reopened.notifications_seen("t2").expect("reads"), None);
}

fn a_reissued_token_answers_to_the_new_secret_only(open: Open<'_>) {
    let store = open().auth().expect("auth");
    store.put_token("old", &member("t1", TokenRole::Participant)).expect("put");
    let record = store.reissue("t1", "new").expect("reissue").expect("there");
    assert_eq!(record.participant, "p-t1");
    assert_eq!(store.token("old").expect("reads"), None);
    assert_eq!(store.token("new").expect("reads").map(|r| r.id), Some("t1".into()));
    assert_eq!(store.token_by_id("t1").expect("reads").map(|r| r.participant), Some("p-t1".into()));
    assert_eq!(store.reissue("t-unknown", "x").expect("no such token"), None);
}

fn revoked_tokens_processes_and_meta(open: Open<'_>) {
    {
        let store = open();
        let auth = store.auth().expect("auth");
        let admin = TokenRecord { kind: TokenKind::Admin, role: TokenRole::Admin, process: None, ..member("t-admin", TokenRole::Participant) };
        auth.put_tokens(&[("ha".into(), admin), ("hm".into(), member("t-m", TokenRole::Participant))]).expect("put");
        assert!(auth.has_admin().expect("admin"));
        assert!(auth.revoke("t-admin").expect("revoke").expect("there").revoked);
        assert_eq!(auth.revoke("t-unknown").expect("revoke"), None);
        let process = DocumentId::from_random([4; 16]);
        auth.set_document_process(&process, &process).expect("process");
        auth.set_document_process(&DocumentId::from_random([5; 16]), &process).expect("process");
        store.put_meta("draft/b", b"2").expect("meta");
        store.put_meta("draft/a", b"1").expect("meta");
        store.put_meta("other", b"3").expect("meta");
        store.remove_meta("other").expect("remove");
    }
    let store = open();
    let auth = store.auth().expect("auth");
    assert!(!auth.has_admin().expect("admin"), "the only admin token is revoked, durably");
    assert_eq!(auth.tokens().expect("tokens").len(), 2);
    assert_eq!(auth.processes().expect("processes"), vec![DocumentId::from_random([4; 16])]);
    assert_eq!(
        store.scan_meta("draft/").expect("scan"),
        vec![("draft/a".to_owned(), b"1".to_vec()), ("draft/b".to_owned(), b"2".to_vec())]
    );
    assert_eq!(store.get_meta("other").expect("meta"), None);
    assert!(store.size_on_disk().expect("size") > 0);
}

/// A sled store with two documents (one with history after a snapshot),
/// tokens, bindings and provenance, copied into the store under test.
fn migration_from_sled_keeps_everything(open: Open<'_>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sled = ChunkStore::open(dir.path()).expect("sled");
    sled.storage_id(|| "the-server".into()).expect("id");
    let (a, b) = (DocumentId::from_random([1; 16]), DocumentId::from_random([2; 16]));
    let mut doc = automerge::AutoCommit::new();
    doc.put(automerge::ROOT, "title", "Empfehlung").expect("put");
    sled.write(&a, &StorageWrite::Snapshot(doc.save())).expect("write");
    doc.put(automerge::ROOT, "title", "Empfehlung 2").expect("put");
    sled.write(&a, &StorageWrite::Incremental(doc.save_incremental())).expect("write");
    let mut other = automerge::AutoCommit::new();
    other.put(automerge::ROOT, "name", "Prozess").expect("put");
    sled.write(&b, &StorageWrite::Snapshot(other.save())).expect("write");
    sled.put_sync_state(&a, &StorageId("laptop".into()), &doc.get_heads()).expect("state");
    let auth = sled.auth().expect("auth");
    auth.put_tokens(&[("h1".into(), member("t1", TokenRole::Participant)), ("h2".into(), member("t2", TokenRole::Participant))]).expect("token");
    auth.mark_notifications_seen("t1", 4_000).expect("seen");
    auth.set_document_process(&a, &b).expect("process");
    auth.set_document_process(&b, &b).expect("process");
    auth.bind_actor(b"actor", "p-t1").expect("bind");
    auth.record_provenance(&a, &[7; 32], &Provenance { author: "p-t1".into(), delivered_by: "p-t1".into(), merged_by: None, at: 5 })
        .expect("provenance");
    sled.flush().expect("flush");

    let target = open();
    let report = migrate::copy(&sled, &target).expect("copy");
    assert_eq!(
        (report.documents, report.chunks, report.sync_states, report.tokens, report.document_processes, report.actor_bindings, report.provenance),
        (2, 3, 1, 2, 2, 1, 1)
    );
    assert_eq!(report.notifications_seen, 1);
    assert_eq!(migrate::verify(&sled, &target).expect("verify"), 2);
    let target_auth = target.auth().expect("auth");
    assert_eq!(target_auth.notifications_seen("t1").expect("seen"), Some(4_000));
    assert_eq!(target_auth.notifications_seen("t2").expect("seen"), None);
    assert_eq!(target.storage_id(|| "fresh".into()).expect("id"), StorageId("the-server".into()));
    let mut loaded = automerge::Automerge::new();
    for chunk in target.load(&a).expect("load") {
        loaded.load_incremental(&chunk.bytes).expect("loads");
    }
    let title = loaded.get(automerge::ROOT, "title").expect("read").map(|(v, _)| v.to_string());
    assert_eq!(title.as_deref(), Some("\"Empfehlung 2\""));

    // A second copy into the same store is refused: it would duplicate chunks.
    assert!(matches!(migrate::copy(&sled, &target), Err(StoreError::TargetNotEmpty { .. })));
    // A difference is found: a member looks at their notifications after
    // the copy, then the original document moves on.
    auth.mark_notifications_seen("t2", 9_000).expect("seen");
    let differs = migrate::verify(&sled, &target);
    assert!(matches!(&differs, Err(StoreError::CopyDiffers { what }) if *what == ["notifications seen"]), "{differs:?}");
    target_auth.mark_notifications_seen("t2", 9_000).expect("seen");
    doc.put(automerge::ROOT, "title", "später").expect("put");
    sled.write(&a, &StorageWrite::Incremental(doc.save_incremental())).expect("write");
    let differs = migrate::verify(&sled, &target);
    assert!(matches!(&differs, Err(StoreError::CopyDiffers { what }) if what.len() == 1), "{differs:?}");
}
