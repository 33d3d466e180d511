//! Several nodes on one PostgreSQL database: leases, the fencing of writes,
//! token-change notifications and reconnecting. Two `ChunkStore::connect`
//! handles on one throwaway database are two nodes, A and B, with a short
//! ttl. Without PostgreSQL installed these tests fail (they never skip).

mod common;

use std::sync::mpsc;

use common::member;
use std::time::{Duration, Instant};

use konsens_store::postgres::throwaway::ThrowawayCluster;
use konsens_store::{
    Chunk, ChunkStore, Claim, GroupItem, Holder, LeaseConfig, Leases, Record, StoreError, TokenRole,
};
use konsens_sync::{DocumentId, StorageId, StorageWrite};

const TTL: Duration = Duration::from_millis(300);
/// Longest any wait in these tests may take before it counts as a failure.
const PATIENCE: Duration = Duration::from_secs(20);

type Case = fn(&Cluster<'_>);

const CASES: &[(&str, Case)] = &[
    ("a_claim_is_held_until_it_expires_then_taken_over", a_claim_is_held_until_it_expires_then_taken_over),
    ("writes_of_a_lost_document_are_fenced", writes_of_a_lost_document_are_fenced),
    ("a_released_lease_is_claimable_at_once_and_epochs_never_repeat", a_released_lease_is_claimable_at_once_and_epochs_never_repeat),
    ("renewing_keeps_a_lease_past_several_ttls", renewing_keeps_a_lease_past_several_ttls),
    ("a_claim_waits_for_a_commit_holding_the_lease", a_claim_waits_for_a_commit_holding_the_lease),
    ("token_changes_reach_every_node", token_changes_reach_every_node),
    ("connections_come_back_after_they_were_terminated", connections_come_back_after_they_were_terminated),
];

/// The cluster and the database of the running case.
struct Cluster<'a> {
    cluster: &'a ThrowawayCluster,
    database: &'a str,
    url: String,
}

impl Cluster<'_> {
    fn node(&self, name: &str, ttl: Duration) -> (ChunkStore, Leases) {
        let store = ChunkStore::connect(&self.url).expect("connect");
        let config = LeaseConfig { node: name.into(), address: format!("ws://{name}:3000"), ttl };
        let leases = store.leases(config).expect("PostgreSQL has leases");
        (store, leases)
    }

    fn psql(&self, sql: &str) -> String {
        self.cluster.psql(self.database, sql).expect("psql")
    }
}

#[test]
fn leases_on_postgres() {
    let cluster = ThrowawayCluster::start().expect("a throwaway PostgreSQL cluster (is PostgreSQL installed?)");
    for (name, case) in CASES {
        eprintln!("postgres: {name}");
        let url = cluster.create_database(name).expect("createdb");
        case(&Cluster { cluster: &cluster, database: name, url });
    }
}

/// A real restart of PostgreSQL: every connection of the store comes back,
/// the token watch says `"*"` and listens again, and the lease survived.
#[test]
fn everything_comes_back_after_postgres_restarts() {
    let cluster = ThrowawayCluster::start().expect("a throwaway PostgreSQL cluster (is PostgreSQL installed?)");
    let url = cluster.create_database("restart").expect("createdb");
    let db = Cluster { cluster: &cluster, database: "restart", url };
    let (store, leases) = db.node("a", Duration::from_secs(600));
    let auth = store.auth().expect("auth");
    let (tx, changes) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    store
        .watch_tokens(move |id| {
            let _ = tx.lock().expect("sender").send(id);
        })
        .expect("watch");
    let d = doc(1);
    assert_eq!(leases.claim(&d).expect("claim"), Claim::Owned { epoch: 1 });
    assert_eq!(leases.renew().expect("renew"), vec![]);
    store.commit_group(vec![incremental(d, &[1])]).expect("commit");
    auth.put_token("h1", &member("t1", TokenRole::Participant)).expect("token");

    restart(&cluster);

    assert_eq!(changes.recv_timeout(PATIENCE).expect("told after reconnecting"), "*");
    until_reconnected(&|| store.get_meta("nothing").map(|value| assert_eq!(value, None)));
    until_reconnected(&|| leases.renew().map(|lost| assert_eq!(lost, vec![], "the lease is durable")));
    until_reconnected(&|| store.commit_group(vec![incremental(d, &[2])])?.into_iter().collect());
    assert_eq!(chunks(&store, &d).last(), Some(&vec![2]));
    auth.revoke("t1").expect("revoke");
    assert_eq!(changes.recv_timeout(PATIENCE).expect("listening again"), "t1");
}

/// `pg_ctl restart` of the throwaway cluster (as `postgres` when root, as
/// the cluster runs); it reuses the options the cluster was started with.
fn restart(cluster: &ThrowawayCluster) {
    use std::os::unix::fs::MetadataExt;
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL installed")
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("pg_ctl").is_file())
        .max_by_key(|bin| bin.parent().and_then(|v| v.file_name()?.to_str()?.split('.').next()?.parse::<u32>().ok()))
        .expect("pg_ctl");
    let root = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
    let mut command = if root {
        let mut command = std::process::Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(bin.join("pg_ctl"));
        command
    } else {
        std::process::Command::new(bin.join("pg_ctl"))
    };
    // `-l`: the server must not inherit (and hold open) our output pipe.
    let output = command
        .arg("-D")
        .arg(cluster.dir().join("data"))
        .arg("-l")
        .arg(cluster.dir().join("log"))
        .args(["-m", "fast", "-w", "-t", "60", "restart"])
        .output()
        .expect("pg_ctl");
    assert!(output.status.success(), "pg_ctl restart: {}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
}

/// A call right after the database dropped its connections may fail (its
/// connection closed under it), and so may calls during the reconnect's
/// backoff (they fail fast rather than wait); a call after it must work.
fn until_reconnected(call: &dyn Fn() -> Result<(), StoreError>) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut result = call();
    while let Err(e) = &result {
        eprintln!("failed after the connections were dropped: {e}");
        assert!(Instant::now() < deadline, "no reconnect within 15 s: {e}");
        std::thread::sleep(Duration::from_millis(100));
        result = call();
    }
}

#[test]
fn sled_has_no_leases_and_no_token_watch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ChunkStore::open(dir.path()).expect("open sled");
    let config = LeaseConfig { node: "a".into(), address: "ws://a".into(), ttl: TTL };
    assert!(store.leases(config).is_none(), "one node: nothing to fence");
    store.watch_tokens(|id| panic!("sled never reports token changes ({id})")).expect("watch");
    let doc = DocumentId::from_random([1; 16]);
    store.write(&doc, &StorageWrite::Incremental(vec![1])).expect("unfenced");
}

fn doc(n: u8) -> DocumentId {
    DocumentId::from_random([n; 16])
}

fn incremental(document: DocumentId, bytes: &[u8]) -> GroupItem {
    GroupItem::Document { document, write: StorageWrite::Incremental(bytes.to_vec()) }
}

fn chunks(store: &ChunkStore, document: &DocumentId) -> Vec<Vec<u8>> {
    store.load(document).expect("load").into_iter().map(|c| c.bytes).collect()
}

fn holder(leases: &Leases, document: &DocumentId) -> Option<Holder> {
    let mut holders = leases.holders(&[*document]).expect("holders");
    assert_eq!(holders.len(), 1);
    holders.pop().and_then(|(d, h)| (d == *document).then_some(h).flatten())
}

/// Poll until the lease of `document` has expired by the database's clock.
fn wait_until_expired(leases: &Leases, document: &DocumentId) {
    let start = Instant::now();
    while !holder(leases, document).expect("a lease row").expired {
        assert!(start.elapsed() < PATIENCE, "the lease never expired");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn is_fenced(result: &Result<(), StoreError>, document: &DocumentId) -> bool {
    matches!(result, Err(StoreError::Fenced { document: d }) if *d == document.to_string())
}

fn a_claim_is_held_until_it_expires_then_taken_over(db: &Cluster<'_>) {
    let (_a_store, a) = db.node("a", TTL);
    let (_b_store, b) = db.node("b", TTL);
    let d = doc(1);
    assert_eq!(a.holders(&[d]).expect("holders"), vec![(d, None)], "never claimed");
    assert_eq!(a.claim(&d).expect("claim"), Claim::Owned { epoch: 1 });
    assert_eq!(a.held(), vec![d]);
    match b.claim(&d).expect("claim") {
        Claim::HeldBy(h) => {
            assert_eq!((h.node.as_str(), h.address.as_str(), h.epoch, h.expired), ("a", "ws://a:3000", 1, false));
            assert!(h.expires_in > Duration::ZERO && h.expires_in <= TTL, "{h:?}");
        }
        other => panic!("B must not get A's lease: {other:?}"),
    }
    wait_until_expired(&b, &d);
    assert_eq!(holder(&b, &d).expect("row").expires_in, Duration::ZERO);
    assert_eq!(b.claim(&d).expect("claim"), Claim::Owned { epoch: 2 });
    assert_eq!(a.renew().expect("renew"), vec![d], "A learns it lost the lease");
    assert!(a.held().is_empty());
    assert_eq!(a.renew().expect("renew"), vec![], "reported once");
    assert!(matches!(a.claim(&d).expect("claim"), Claim::HeldBy(Holder { epoch: 2, expired: false, .. })));
    // The same node claiming again (a restart with the same id) gets a new epoch.
    assert_eq!(b.claim(&d).expect("claim"), Claim::Owned { epoch: 3 });
    assert_eq!(b.held(), vec![d]);
}

fn writes_of_a_lost_document_are_fenced(db: &Cluster<'_>) {
    let (a_store, a) = db.node("a", TTL);
    let (b_store, b) = db.node("b", TTL);
    let (d, e, never) = (doc(1), doc(2), doc(3));
    assert_eq!(a.claim(&d).expect("claim"), Claim::Owned { epoch: 1 });
    assert_eq!(a.claim(&e).expect("claim"), Claim::Owned { epoch: 1 });
    let results = a_store.commit_group(vec![incremental(d, b"a1")]).expect("commit");
    assert!(matches!(results[..], [Ok(())]), "{results:?}");

    wait_until_expired(&b, &d);
    assert_eq!(b.claim(&d).expect("claim"), Claim::Owned { epoch: 2 });
    // A has not noticed yet: its next group still writes d. Only d's items
    // are refused; e (expired too, but nobody took it over) and the
    // records of the group commit.
    let heads = vec![automerge::ChangeHash([4; 32])];
    let results = a_store
        .commit_group(vec![
            incremental(d, b"a2"),
            incremental(e, b"e1"),
            GroupItem::Record(Record::SyncState { document: d, storage: StorageId("laptop".into()), heads: heads.clone() }),
            GroupItem::Record(Record::Meta { key: "k".into(), value: b"v".to_vec() }),
            incremental(never, b"n1"),
        ])
        .expect("the group commits");
    assert!(is_fenced(&results[0], &d), "{results:?}");
    assert!(results[1].is_ok() && results[3].is_ok(), "{results:?}");
    assert!(is_fenced(&results[2], &d), "{results:?}");
    assert!(is_fenced(&results[4], &never), "a document never claimed is not this node's: {results:?}");
    assert_eq!(
        results[0].as_ref().expect_err("fenced").to_string(),
        format!("document {d} is owned by another node now; the write was refused")
    );
    // Outside a group too.
    assert!(is_fenced(&a_store.write(&d, &StorageWrite::Incremental(b"a3".to_vec())), &d));
    assert!(is_fenced(&a_store.put_sync_state(&d, &StorageId("laptop".into()), &heads), &d));

    let results = b_store.commit_group(vec![incremental(d, b"b1")]).expect("commit");
    assert!(matches!(results[..], [Ok(())]), "{results:?}");
    assert_eq!(chunks(&b_store, &d), vec![b"a1".to_vec(), b"b1".to_vec()], "A's first write and B's, nothing else");
    assert_eq!(chunks(&a_store, &e), vec![b"e1".to_vec()]);
    assert!(!a_store.contains(&never).expect("contains"));
    assert_eq!(b_store.sync_states(&d).expect("states"), vec![], "A's sync state was refused");
    assert_eq!(a_store.get_meta("k").expect("meta"), Some(b"v".to_vec()));

    // A compaction of A's after the takeover would delete B's chunk: refused.
    let snapshot = GroupItem::Document { document: d, write: StorageWrite::Snapshot(b"a-snap".to_vec()) };
    let results = a_store.commit_group(vec![snapshot]).expect("commit");
    assert!(is_fenced(&results[0], &d), "{results:?}");
    assert_eq!(chunks(&b_store, &d), vec![b"a1".to_vec(), b"b1".to_vec()], "nothing deleted");
    // The owner's compaction goes through.
    b_store.write(&d, &StorageWrite::Snapshot(b"b-snap".to_vec())).expect("B owns d");
    assert_eq!(b_store.load(&d).expect("load"), vec![Chunk { is_snapshot: true, bytes: b"b-snap".to_vec() }]);
}

fn a_released_lease_is_claimable_at_once_and_epochs_never_repeat(db: &Cluster<'_>) {
    // A ttl far longer than the test: B's claims succeed only because of the releases.
    let long = Duration::from_secs(600);
    let (a_store, a) = db.node("a", long);
    let (_b_store, b) = db.node("b", long);
    let d = doc(1);
    let mut epochs = Vec::new();
    let mut owned = |claim: Claim| match claim {
        Claim::Owned { epoch } => epochs.push(epoch),
        other => panic!("not granted: {other:?}"),
    };
    owned(a.claim(&d).expect("claim"));
    a.release(&d).expect("release");
    assert!(a.held().is_empty());
    assert!(holder(&a, &d).expect("the row stays").expired);
    assert!(is_fenced(&a_store.write(&d, &StorageWrite::Incremental(vec![1])), &d), "released: no more writes");
    owned(b.claim(&d).expect("claim"));
    assert!(matches!(a.claim(&d).expect("claim"), Claim::HeldBy(Holder { epoch: 2, .. })));
    // Releasing what one does not hold changes nothing.
    a.release(&d).expect("release");
    assert!(matches!(a.claim(&d).expect("claim"), Claim::HeldBy(Holder { epoch: 2, .. })));
    b.release(&d).expect("release");
    owned(a.claim(&d).expect("claim"));
    a.release(&d).expect("release");
    owned(a.claim(&d).expect("claim"));
    assert_eq!(epochs, vec![1, 2, 3, 4]);
}

fn renewing_keeps_a_lease_past_several_ttls(db: &Cluster<'_>) {
    // Long enough that one renewal per tenth of it is not a race on a busy machine.
    let ttl = Duration::from_secs(1);
    let (_a_store, a) = db.node("a", ttl);
    let (_b_store, b) = db.node("b", ttl);
    let (d, e) = (doc(1), doc(2));
    assert_eq!(a.claim(&d).expect("claim"), Claim::Owned { epoch: 1 });
    assert_eq!(a.claim(&e).expect("claim"), Claim::Owned { epoch: 1 });
    let start = Instant::now();
    let mut refused = 0;
    while start.elapsed() < ttl * 3 {
        assert_eq!(a.renew().expect("renew"), vec![], "nothing lost");
        for document in [d, e] {
            match b.claim(&document).expect("claim") {
                Claim::HeldBy(h) => assert_eq!((h.node.as_str(), h.epoch, h.expired), ("a", 1, false)),
                other => panic!("B took a renewed lease: {other:?}"),
            }
            refused += 1;
        }
        std::thread::sleep(ttl / 10);
    }
    assert!(refused >= 2);
    let mut both = vec![d, e];
    both.sort_by_key(|d| *d.as_bytes());
    assert_eq!(a.held(), both);
}

/// The fencing lock at work: A's group commit holds d's lease row
/// (`FOR SHARE`) while it waits for a table lock the test holds; B's claim
/// of the expired lease waits for A's transaction, and is granted only
/// after A's write was accepted.
fn a_claim_waits_for_a_commit_holding_the_lease(db: &Cluster<'_>) {
    let (a_store, a) = db.node("a", TTL);
    let (_b_store, b) = db.node("b", Duration::from_secs(600));
    let (d, e) = (doc(1), doc(2));
    assert_eq!(a.claim(&d).expect("claim"), Claim::Owned { epoch: 1 });
    assert_eq!(b.claim(&e).expect("claim"), Claim::Owned { epoch: 1 });
    a_store.commit_group(vec![incremental(d, b"a1")]).expect("commit");
    wait_until_expired(&b, &d);

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let connect = || {
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.expect("connect");
            tokio::spawn(connection);
            client
        })
    };
    let (blocker, watcher) = (connect(), connect());
    runtime.block_on(blocker.batch_execute("BEGIN; LOCK TABLE chunks IN SHARE MODE")).expect("lock chunks");
    let waiting = |statement: &str| {
        let sql = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND starts_with(query, $1)";
        let start = Instant::now();
        loop {
            let row = runtime.block_on(watcher.query_one(sql, &[&statement])).expect("pg_stat_activity");
            if row.get::<_, i64>(0) > 0 {
                return;
            }
            assert!(start.elapsed() < PATIENCE, "nothing waits in {statement}");
            std::thread::sleep(Duration::from_millis(10));
        }
    };

    let (committed_tx, committed) = mpsc::channel();
    let writer = a_store.clone();
    std::thread::spawn(move || committed_tx.send(writer.commit_group(vec![incremental(d, b"a2")])));
    // A has locked d's lease row and now waits to insert its chunk.
    waiting("INSERT INTO chunks");
    let (claimed_tx, claimed) = mpsc::channel();
    let claimer = b.clone();
    std::thread::spawn(move || claimed_tx.send(claimer.claim(&d)));
    waiting("INSERT INTO konsens_leases");
    assert!(claimed.try_recv().is_err(), "B's claim waits for A's transaction");
    assert!(committed.try_recv().is_err());
    // Meanwhile B's renewals are not held up behind its waiting claim.
    assert_eq!(b.renew().expect("renew"), vec![]);
    assert!(claimed.try_recv().is_err());

    runtime.block_on(blocker.batch_execute("ROLLBACK")).expect("unlock chunks");
    let results = committed.recv_timeout(PATIENCE).expect("A's commit ends").expect("commit");
    assert!(matches!(results[..], [Ok(())]), "A still held d when it wrote: {results:?}");
    assert_eq!(claimed.recv_timeout(PATIENCE).expect("B's claim ends").expect("claim"), Claim::Owned { epoch: 2 });
    assert_eq!(chunks(&a_store, &d), vec![b"a1".to_vec(), b"a2".to_vec()], "B loads after its claim: it sees A's accepted write");
    let results = a_store.commit_group(vec![incremental(d, b"a3")]).expect("commit");
    assert!(is_fenced(&results[0], &d), "{results:?}");
}


fn token_changes_reach_every_node(db: &Cluster<'_>) {
    let a = ChunkStore::connect(&db.url).expect("connect").auth().expect("auth");
    let b = ChunkStore::connect(&db.url).expect("connect");
    let (tx, changes) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    b.watch_tokens(move |id| {
        let _ = tx.lock().expect("sender").send(id);
    })
    .expect("watch");
    let next = || changes.recv_timeout(PATIENCE).expect("a notification");

    a.put_tokens(&[("h1".into(), member("t1", TokenRole::Participant))]).expect("put");
    a.revoke("t1").expect("revoke");
    // A new token has no connections to close: its id is not sent; the
    // revocation after it is the first notification.
    assert_eq!(next(), "t1");
    a.reissue("t1", "h1-new").expect("reissue");
    assert_eq!(next(), "t1");
    // Replacing a record (a role change) is told too.
    a.put_tokens(&[("h1-new".into(), member("t1", TokenRole::Observer))]).expect("replace");
    assert_eq!(next(), "t1");
    a.put_tokens(&[("h2".into(), member("t2", TokenRole::Participant))]).expect("put");
    a.mark_seen("t2", 1_000, 1).expect("seen is no change of rights");

    // The watch connection is lost: B is told to check everything, and hears again.
    let terminated = db.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query = 'LISTEN konsens_tokens'");
    assert_eq!(terminated.trim(), "1");
    assert_eq!(next(), "*");
    a.revoke("t2").expect("revoke");
    assert_eq!(next(), "t2");
}

/// After PostgreSQL dropped every connection (a restart, an administrator's
/// `pg_terminate_backend`), a call may fail; the next one works again.
fn connections_come_back_after_they_were_terminated(db: &Cluster<'_>) {
    let (store, leases) = db.node("a", Duration::from_secs(600));
    let d = doc(1);
    store.put_meta("k", b"1").expect("meta");
    assert_eq!(leases.claim(&d).expect("claim"), Claim::Owned { epoch: 1 });
    assert_eq!(leases.renew().expect("renew"), vec![]);
    store.commit_group(vec![incremental(d, &[1])]).expect("commit");
    let terminated = db.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()");
    assert_eq!(terminated.trim(), "4", "reads, group commits, claims, renewals");

    // Each call at most once fails (its connection was closed under it).
    until_reconnected(&|| store.get_meta("k").map(|value| assert_eq!(value, Some(b"1".to_vec()))));
    until_reconnected(&|| leases.renew().map(|lost| assert_eq!(lost, vec![])));
    let attempts = std::cell::Cell::new(0u8);
    until_reconnected(&|| {
        attempts.set(attempts.get() + 1);
        let results = store.commit_group(vec![incremental(d, &[1 + attempts.get()])])?;
        results.into_iter().collect()
    });
    let expected: Vec<Vec<u8>> = if attempts.get() == 1 { vec![vec![1], vec![2]] } else { vec![vec![1], vec![3]] };
    assert_eq!(chunks(&store, &d), expected, "a failed group wrote nothing");
}
