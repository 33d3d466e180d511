//! Three `konsens-server` nodes on one (throwaway) PostgreSQL: official
//! automerge-repo clients and `konsens` CLI users on different nodes see one
//! document; the owner of a document is killed (`kill -9`) or frozen
//! (SIGSTOP) under continuous writes from official clients on the other
//! nodes, and nothing the cluster acknowledged is lost. Without PostgreSQL
//! installed these tests fail; `scripts/test.sh` installs it.
//!
//! The writers are `tests/js/cluster-writer.mjs`: each appends 1, 2, 3, … to
//! its own list and prints every number the server acknowledged, so the test
//! knows exactly what must be in the document afterwards.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use automerge::{AutoSerde, Automerge};
use konsens_store::ChunkStore;
use konsens_store::postgres::throwaway::ThrowawayCluster;
use konsens_sync::AutomergeUrl;
use konsens_tests::ServerProcess;
use konsens_tests::cli::{invite, join_member, json, ok};
use serde_json::{Value, json};

/// Short, so a dead owner's documents move quickly (the default is 4 s).
const LEASE_MS: u64 = 1000;
const SECRET: &str = "a shared secret of the test cluster";
const DATABASE: &str = "konsens";
/// How often a condition is checked while waiting for it.
const POLL: Duration = Duration::from_millis(20);

/// Wait until `done` says so; an error naming `what` after `limit`.
fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if done()? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(POLL);
    }
}

/// A loopback address nobody listens on yet (nodes must know each other's
/// addresses before they start).
fn free_address() -> Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.to_string())
}

/// One node: its fixed address, and the process while it runs.
struct Node {
    listen: String,
    data: tempfile::TempDir,
    server: Option<ServerProcess>,
}

impl Node {
    fn address(&self) -> String {
        format!("ws://{}", self.listen)
    }

    fn ws_url(&self) -> String {
        format!("ws://{}/sync", self.listen)
    }

    fn server(&self) -> Result<&ServerProcess> {
        self.server.as_ref().with_context(|| format!("node {} is not running", self.listen))
    }

    fn log(&self) -> String {
        self.server.as_ref().map(ServerProcess::log).unwrap_or_default()
    }

    /// One sample of the node's `/metrics` (`series`: name and labels as
    /// printed, e.g. `konsens_lease_losses_total`).
    fn metric(&self, series: &str) -> Result<f64> {
        let text = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(konsens_tests::http_get(&self.listen, "/metrics"))?;
        let line = text
            .lines()
            .find(|l| l.strip_prefix(series).is_some_and(|rest| rest.starts_with(' ')))
            .with_context(|| format!("no {series} in /metrics of {}:\n{text}", self.listen))?;
        let value = line.rsplit(' ').next().unwrap_or_default();
        value.parse().with_context(|| format!("not a number: {line}"))
    }
}

/// Three nodes on one PostgreSQL database.
struct TestCluster {
    postgres: ThrowawayCluster,
    url: String,
    open: bool,
    nodes: Vec<Node>,
}

impl TestCluster {
    /// Start three nodes, `--open` or with access control.
    fn start(open: bool) -> Result<Self> {
        let postgres = ThrowawayCluster::start()
            .context("starting a throwaway PostgreSQL cluster (is PostgreSQL installed? scripts/test.sh installs it)")?;
        let url = postgres.create_database(DATABASE)?;
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(Node { listen: free_address()?, data: tempfile::tempdir()?, server: None });
        }
        let mut cluster = Self { postgres, url, open, nodes };
        for index in 0..3 {
            cluster.start_node(index)?;
        }
        Ok(cluster)
    }

    /// (Re)start node `index` on its address.
    fn start_node(&mut self, index: usize) -> Result<()> {
        let node = &self.nodes[index];
        let address = node.address();
        let lease = LEASE_MS.to_string();
        let args = ["--database", &self.url, "--node-address", &address, "--cluster-secret", SECRET, "--lease-ms", &lease];
        let server = if self.open {
            ServerProcess::start_on(node.data.path(), &node.listen, &args)?
        } else {
            ServerProcess::start_secure(node.data.path(), &node.listen, &args)?
        };
        self.nodes[index].server = Some(server);
        Ok(())
    }

    /// The node holding an unexpired lease on `doc`, if any.
    fn owner(&self, doc: &str) -> Result<Option<usize>> {
        let id = document_id(doc)?;
        let sql = format!("SELECT address FROM konsens_leases WHERE document = '{id}' AND expires_at > clock_timestamp()");
        let address = self.postgres.psql(DATABASE, &sql)?;
        let address = address.trim();
        if address.is_empty() {
            return Ok(None);
        }
        match self.nodes.iter().position(|n| n.address() == address) {
            Some(index) => Ok(Some(index)),
            None => bail!("the lease of {doc} names {address}, none of our nodes"),
        }
    }

    /// The current owner, waiting briefly for one (a document is leased while loaded).
    fn wait_for_owner(&self, doc: &str, not: Option<usize>) -> Result<usize> {
        let mut found = None;
        wait_until(Duration::from_secs(20), "a live owner of the document in konsens_leases", || {
            found = self.owner(doc)?.filter(|o| Some(*o) != not);
            Ok(found.is_some())
        })
        .with_context(|| self.logs())?;
        found.context("no owner")
    }

    /// The document as PostgreSQL holds it, read past every node.
    fn stored(&self, doc: &str) -> Result<Automerge> {
        let store = ChunkStore::connect(&self.url)?;
        let mut automerge = Automerge::new();
        for chunk in store.load(&doc.parse::<AutomergeUrl>()?.document_id)? {
            automerge.load_incremental(&chunk.bytes)?;
        }
        Ok(automerge)
    }

    /// Every node's log (for failure messages).
    fn logs(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| format!("---- node {i} ({}) ----\n{}", n.listen, n.log()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The id as the lease table writes it (the url without `automerge:`).
fn document_id(doc: &str) -> Result<String> {
    Ok(doc.parse::<AutomergeUrl>()?.document_id.to_string())
}

/// A fresh official client's view of the document on `node`: (doc, sorted hex heads).
fn js_read(node: &Node, doc: &str) -> Result<(Value, Vec<String>)> {
    let read = konsens_tests::js_script("cluster-writer.mjs", &["read", &node.ws_url(), doc])?;
    let mut heads: Vec<String> = serde_json::from_value(read["heads"].clone())?;
    heads.sort();
    Ok((read["doc"].clone(), heads))
}

fn sorted_heads(doc: &Automerge) -> Vec<String> {
    let mut heads: Vec<String> = doc.get_heads().iter().map(ToString::to_string).collect();
    heads.sort();
    heads
}

/// One running `cluster-writer.mjs write`, and what it said.
struct Writer {
    id: String,
    node: usize,
    child: Child,
    /// Each acknowledged sequence number and when we read it.
    acks: Arc<Mutex<Vec<(u64, Instant)>>>,
    done: Arc<Mutex<Option<u64>>>,
    stdout: Option<std::thread::JoinHandle<()>>,
    stderr_path: PathBuf,
}

impl Writer {
    fn start(node: &Node, node_index: usize, doc: &str, id: &str, logs: &Path) -> Result<Self> {
        let stderr_path = logs.join(format!("writer-{id}.log"));
        let mut child = Command::new("node")
            .arg(konsens_tests::repo_root().join("tests/js/cluster-writer.mjs"))
            .args(["write", &node.ws_url(), doc, id])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path)?)
            .spawn()
            .context("running node (is Node.js installed? tests/js needs `npm ci`)")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (acks, done) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(None)));
        let (thread_acks, thread_done) = (acks.clone(), done.clone());
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(value) = serde_json::from_str::<Value>(&line) else { continue };
                if let Some(seq) = value["acked"].as_u64() {
                    if value["done"] == true {
                        *thread_done.lock().unwrap_or_else(|p| p.into_inner()) = Some(seq);
                    } else {
                        thread_acks.lock().unwrap_or_else(|p| p.into_inner()).push((seq, Instant::now()));
                    }
                }
            }
        });
        Ok(Self { id: id.to_owned(), node: node_index, child, acks, done, stdout: Some(reader), stderr_path })
    }

    fn acks(&self) -> Vec<(u64, Instant)> {
        self.acks.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The last acknowledged number (0: none yet).
    fn acked(&self) -> u64 {
        self.acks().last().map_or(0, |(seq, _)| *seq)
    }

    /// The writer's own log, for failure messages.
    fn stderr(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Fails with the writer's log when it has exited (they run until stopped).
    fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("writer {} on node {} exited early ({status}):\n{}", self.id, self.node, self.stderr());
        }
        Ok(())
    }

    /// SIGTERM; returns the last number it says was acknowledged.
    fn stop(mut self) -> Result<u64> {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status()?;
        let mut status = None;
        wait_until(Duration::from_secs(10), &format!("writer {} to exit after SIGTERM", self.id), || {
            status = self.child.try_wait()?;
            Ok(status.is_some())
        })?;
        if let Some(reader) = self.stdout.take() {
            let _ = reader.join();
        }
        let done = *self.done.lock().unwrap_or_else(|p| p.into_inner());
        match (status, done) {
            (Some(status), Some(acked)) if status.success() => {
                ensure!(acked == self.acked(), "writer {} printed {} as its last acknowledgement but says {acked} at the end", self.id, self.acked());
                Ok(acked)
            }
            _ => bail!("writer {} did not stop cleanly ({status:?}, done {done:?}):\n{}", self.id, self.stderr()),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Wait until every writer has at least `count` acknowledgements after `after` (None: at all).
fn wait_for_acks(writers: &mut [Writer], count: usize, after: Option<Instant>, limit: Duration, cluster: &TestCluster) -> Result<()> {
    let result = wait_until(limit, &format!("{count} acknowledged writes from each writer"), || {
        for writer in writers.iter_mut() {
            writer.check_running()?;
        }
        Ok(writers.iter().all(|w| w.acks().iter().filter(|(_, at)| after.is_none_or(|after| *at > after)).count() >= count))
    });
    result.with_context(|| {
        let counts: Vec<String> = writers.iter().map(|w| format!("{} on node {}: {} acked", w.id, w.node, w.acked())).collect();
        format!("{}\n{}", counts.join("\n"), cluster.logs())
    })
}

/// For each writer: how long after `event` the first write it issued after
/// `event` was acknowledged. The write in flight at `event` may have been
/// acknowledged by the old owner just before, so the measure starts with the
/// one after it (sent only once that in-flight one was acknowledged).
fn recovery_times(writers: &[Writer], event: Instant) -> Result<Vec<Duration>> {
    let mut times = Vec::new();
    for writer in writers {
        let acks = writer.acks();
        let before = acks.iter().filter(|(_, at)| *at <= event).map(|(seq, _)| *seq).max().unwrap_or(0);
        let (_, at) = acks
            .iter()
            .find(|(seq, at)| *seq >= before + 2 && *at > event)
            .with_context(|| format!("writer {} has no write acknowledged after the event", writer.id))?;
        times.push(at.duration_since(event));
    }
    times.sort();
    Ok(times)
}

fn median_and_max(times: &[Duration]) -> (u128, u128) {
    let ms = |d: &Duration| d.as_millis();
    (times.get(times.len() / 2).map_or(0, ms), times.last().map_or(0, ms))
}

/// Writers until every one has a write acknowledged after the event.
fn wait_for_recovery(writers: &mut [Writer], event: Instant, cluster: &TestCluster) -> Result<Vec<Duration>> {
    let result = wait_until(Duration::from_secs(60), "every writer's writes to be acknowledged again", || {
        for writer in writers.iter_mut() {
            writer.check_running()?;
        }
        Ok(recovery_times(writers, event).is_ok())
    });
    result.with_context(|| {
        let counts: Vec<String> = writers.iter().map(|w| format!("{} on node {}: {} acked", w.id, w.node, w.acked())).collect();
        format!("{}\n{}", counts.join("\n"), cluster.logs())
    })?;
    recovery_times(writers, event)
}

/// Every acknowledged number of every writer is in `doc` (`acked`: writer id
/// → last acknowledged number), in order; the count of those missing.
fn lost_writes(doc: &Value, acked: &BTreeMap<String, u64>) -> (u64, Vec<String>) {
    let mut lost = 0;
    let mut details = Vec::new();
    for (id, &last) in acked {
        let list: Vec<u64> = doc[format!("w{id}")].as_array().map(|l| l.iter().filter_map(Value::as_u64).collect()).unwrap_or_default();
        let missing = (1..=last).filter(|seq| !list.contains(seq)).count() as u64;
        let in_order = list.iter().take(last as usize).copied().eq(1..=last);
        if missing > 0 || !in_order {
            details.push(format!("w{id}: acknowledged 1..={last}, the document has {} values ({missing} missing, starting {:?})", list.len(), &list[..list.len().min(5)]));
        }
        lost += missing;
    }
    (lost, details)
}

/// A new document with some content, created by an official client on `node`.
fn create_document(node: &Node) -> Result<String> {
    let created = konsens_tests::js_harness(&["create", &node.ws_url(), r#"{"title":"Faire Anwerbung"}"#])?;
    Ok(created["url"].as_str().context("url")?.to_owned())
}

#[test]
fn three_nodes_converge() -> Result<()> {
    let cluster = TestCluster::start(true)?;
    let doc = create_document(&cluster.nodes[0])?;
    // Official clients on node 0 and node 1 edit at the same time.
    let edits = [(0, "from_node_0", "\"Gebühren offenlegen\""), (1, "from_node_1", "\"Sprachkurse im Betrieb\"")];
    let handles: Vec<_> = edits
        .iter()
        .map(|&(node, key, value)| {
            let (url, doc) = (cluster.nodes[node].ws_url(), doc.clone());
            std::thread::spawn(move || konsens_tests::js_harness(&["change", &url, &doc, key, value]))
        })
        .collect();
    for handle in handles {
        handle.join().map_err(|_| anyhow::anyhow!("a client thread panicked"))?.with_context(|| cluster.logs())?;
    }
    let expected = json!({"title": "Faire Anwerbung", "from_node_0": "Gebühren offenlegen", "from_node_1": "Sprachkurse im Betrieb"});
    let mut seen = Vec::new();
    for node in &cluster.nodes {
        let (content, heads) = js_read(node, &doc)?;
        assert_eq!(content, expected, "a fresh client on {} sees both edits", node.listen);
        seen.push(heads);
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "the same heads on every node: {seen:?}");
    // A CLI user on node 2 pulls it; its history names both edits.
    let store = tempfile::tempdir()?;
    ok(store.path(), &["sync", &cluster.nodes[2].ws_url(), "--doc", &doc])?;
    let history = json(store.path(), &["history", "--all", &doc])?;
    let summaries: Vec<&str> = history.as_array().context("history is a list")?.iter().filter_map(|c| c["summary"].as_str()).collect();
    for key in ["from_node_0", "from_node_1"] {
        assert!(summaries.iter().any(|s| s.contains(key)), "the CLI on node 2 has the edit of {key}: {history}");
    }
    // One node owns it; the others relayed (a cluster, not three servers that happen to share tables).
    let owner = cluster.wait_for_owner(&doc, None)?;
    for (index, node) in cluster.nodes.iter().enumerate() {
        let relayed = node.metric(r#"konsens_relayed_messages_total{direction="to_owner"}"#)?;
        if index == owner {
            assert_eq!(relayed, 0.0, "the owner (node {owner}) relays nothing");
        } else {
            assert!(relayed > 0.0, "node {index} relayed its clients' messages to the owner (node {owner}):\n{}", cluster.logs());
        }
    }
    let stored = cluster.stored(&doc)?;
    assert_eq!(serde_json::to_value(AutoSerde::from(&stored))?, expected, "PostgreSQL holds both edits");
    assert_eq!(sorted_heads(&stored), seen[0]);
    Ok(())
}

#[test]
fn cli_members_on_three_nodes_converge() -> Result<()> {
    let cluster = TestCluster::start(false)?;
    let token = cluster.nodes[0].server()?.admin_token.clone().context("the first node prints an administrator link")?;
    for node in &cluster.nodes[1..] {
        ensure!(node.server()?.admin_token.is_none(), "only the first node of an empty database makes an administrator token");
    }
    // The administrator drafts on node 0.
    let admin = tempfile::tempdir()?;
    ok(admin.path(), &["join", &cluster.nodes[0].server()?.http_url(&format!("/join/{token}"))])?;
    let process = ok(admin.path(), &["process", "create", "--title", "Faire Anwerbung"])?;
    let workshop = ok(admin.path(), &["workshop", "add", &process, "--title", "Pflege", "--sector", "care"])?;
    let rec = ok(admin.path(), &["rec", "new", &process, "--workshop", &workshop, "--title", "Gebühren offenlegen"])?;
    ok(admin.path(), &["sync"])?;

    // A facilitator invited on node 0 joins on node 1 (the token is in the shared database).
    let on_node = |link: &str, node: usize| link.replacen(&cluster.nodes[0].listen, &cluster.nodes[node].listen, 1);
    let (link, _) = invite(admin.path(), &process, "facilitator", "Bea Berg", "Pflegeverband")?;
    let facilitator = tempfile::tempdir()?;
    join_member(facilitator.path(), &on_node(&link, 1), &process)?;
    ok(facilitator.path(), &["sync", "--doc", &rec])?;
    ok(facilitator.path(), &["rec", "set", &rec, "--field", "rationale", "--value", "Gebühren treiben in die Schuldenfalle."])?;
    // Meanwhile the administrator edits another field on node 0.
    ok(admin.path(), &["rec", "set", &rec, "--field", "recommendation", "--value", "Agenturen legen alle Gebühren vorab offen."])?;
    ok(admin.path(), &["sync"])?;
    ok(facilitator.path(), &["sync"])?;

    // An observer on node 2 sees both edits; so does the administrator on node 0.
    let (link, _) = invite(admin.path(), &process, "observer", "Otto Ober", "Ministerium")?;
    let observer = tempfile::tempdir()?;
    join_member(observer.path(), &on_node(&link, 2), &process)?;
    ok(observer.path(), &["sync", "--doc", &rec])?;
    let seen = json(observer.path(), &["rec", "show", &rec])?;
    assert_eq!(seen["rationale"], "Gebühren treiben in die Schuldenfalle.", "{seen}\n{}", cluster.logs());
    assert_eq!(seen["recommendation"], "Agenturen legen alle Gebühren vorab offen.", "{seen}");
    ok(admin.path(), &["sync"])?;
    assert_eq!(json(admin.path(), &["rec", "show", &rec])?, seen, "the administrator on node 0 sees the same");
    Ok(())
}

#[test]
fn killing_the_owner_loses_nothing_acknowledged() -> Result<()> {
    let mut cluster = TestCluster::start(true)?;
    let doc = create_document(&cluster.nodes[0])?;
    let logs = tempfile::tempdir()?;
    let mut acked = BTreeMap::new();
    for cycle in 1..=3 {
        let owner = cluster.wait_for_owner(&doc, None)?;
        let others: Vec<usize> = (0..3).filter(|&i| i != owner).collect();
        let mut writers = Vec::new();
        for &node in &others {
            for n in 0..4 {
                writers.push(Writer::start(&cluster.nodes[node], node, &doc, &format!("c{cycle}n{node}x{n}"), logs.path())?);
            }
        }
        wait_for_acks(&mut writers, 3, None, Duration::from_secs(60), &cluster)?;
        ensure!(cluster.owner(&doc)? == Some(owner), "cycle {cycle}: the owner changed before the kill\n{}", cluster.logs());

        let killed = Instant::now();
        cluster.nodes[owner].server.take().context("the owner runs")?.kill_hard()?;
        let times = wait_for_recovery(&mut writers, killed, &cluster)?;
        let (median, max) = median_and_max(&times);
        println!("failover cycle {cycle}: writes acknowledged again after median {median} ms, max {max} ms (lease {LEASE_MS} ms, {} writers, owner node {owner} killed)", times.len());

        for writer in writers {
            let id = writer.id.clone();
            acked.insert(id, writer.stop()?);
        }
        cluster.start_node(owner)?;
        let (content, _) = js_read(&cluster.nodes[owner], &doc)?;
        let (lost, details) = lost_writes(&content, &acked);
        let total: u64 = acked.values().sum();
        println!("failover cycle {cycle}: {lost} of {total} acknowledged writes lost");
        assert_eq!(lost, 0, "cycle {cycle}: acknowledged writes lost:\n{}\n{}", details.join("\n"), cluster.logs());
        assert!(details.is_empty(), "cycle {cycle}: {}", details.join("\n"));
    }
    Ok(())
}

#[test]
fn a_paused_owner_writes_nothing_after_the_takeover() -> Result<()> {
    let cluster = TestCluster::start(true)?;
    let doc = create_document(&cluster.nodes[0])?;
    let logs = tempfile::tempdir()?;
    let owner = cluster.wait_for_owner(&doc, None)?;
    let others: Vec<usize> = (0..3).filter(|&i| i != owner).collect();
    let mut writers = Vec::new();
    for &node in &others {
        for n in 0..2 {
            writers.push(Writer::start(&cluster.nodes[node], node, &doc, &format!("p{node}x{n}"), logs.path())?);
        }
    }
    wait_for_acks(&mut writers, 3, None, Duration::from_secs(60), &cluster)?;

    let paused = Instant::now();
    cluster.nodes[owner].server()?.pause()?;
    let times = wait_for_recovery(&mut writers, paused, &cluster)?;
    let (median, max) = median_and_max(&times);
    println!("paused owner: writes acknowledged again after median {median} ms, max {max} ms (lease {LEASE_MS} ms, {} writers)", times.len());
    let new_owner = cluster.wait_for_owner(&doc, Some(owner))?;
    ensure!(cluster.owner(&doc)? != Some(owner), "the paused node still holds the lease");

    cluster.nodes[owner].server()?.resume()?;
    let resumed = Instant::now();
    wait_until(Duration::from_secs(15), "the resumed node to log that it lost the document", || {
        let log = cluster.nodes[owner].log();
        Ok(log.contains("the document moved to another node") || log.contains("leases lost"))
    })
    .with_context(|| cluster.logs())?;
    // Counted once its owner has left, a moment after the line above.
    wait_until(Duration::from_secs(15), "the resumed node to count its lost lease", || {
        Ok(cluster.nodes[owner].metric("konsens_lease_losses_total")? >= 1.0)
    })
    .with_context(|| cluster.logs())?;
    for line in cluster.nodes[owner].log().lines().filter(|l| ["moved", "lost", "fenced", "Fenced"].iter().any(|w| l.contains(w))) {
        println!("paused owner, node {owner} after SIGCONT: {line}");
    }
    // The writers carry on while the old owner is awake again.
    wait_for_acks(&mut writers, 3, Some(resumed), Duration::from_secs(30), &cluster)?;
    let mut acked = BTreeMap::new();
    for writer in writers {
        let id = writer.id.clone();
        acked.insert(id, writer.stop()?);
    }
    ensure!(cluster.owner(&doc)? == Some(new_owner), "the document stays with node {new_owner}\n{}", cluster.logs());

    let mut heads = Vec::new();
    for (index, node) in cluster.nodes.iter().enumerate() {
        let (content, node_heads) = js_read(node, &doc)?;
        let (lost, details) = lost_writes(&content, &acked);
        assert_eq!(lost, 0, "node {index}: acknowledged writes lost:\n{}\n{}", details.join("\n"), cluster.logs());
        assert!(details.is_empty(), "node {index}: {}", details.join("\n"));
        heads.push(node_heads);
    }
    assert!(heads.windows(2).all(|w| w[0] == w[1]), "every node's client sees the same heads: {heads:?}");
    let stored = cluster.stored(&doc)?;
    let (lost, details) = lost_writes(&serde_json::to_value(AutoSerde::from(&stored))?, &acked);
    assert_eq!(lost, 0, "PostgreSQL misses acknowledged writes:\n{}", details.join("\n"));
    assert_eq!(sorted_heads(&stored), heads[0], "PostgreSQL holds what the clients see");
    let total: u64 = acked.values().sum();
    println!("paused owner: 0 of {total} acknowledged writes lost; node {owner} resumed and gave the document up to node {new_owner}");
    Ok(())
}

/// A revocation made through one node reaches a connection on another at
/// once (PostgreSQL `NOTIFY`), not when it next reconnects.
#[test]
fn a_token_revoked_on_one_node_closes_its_connection_on_another() -> Result<()> {
    let cluster = TestCluster::start(false)?;
    let admin_token = cluster.nodes[0].server()?.admin_token.clone().context("the first node prints an administrator link")?;
    let admin = tempfile::tempdir()?;
    ok(admin.path(), &["join", &cluster.nodes[0].server()?.http_url(&format!("/join/{admin_token}"))])?;
    let process = ok(admin.path(), &["process", "create", "--title", "Faire Anwerbung"])?;
    ok(admin.path(), &["sync"])?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let node0 = cluster.nodes[0].listen.clone();
        let invitation = json!({"role": "participant", "name": "Bora", "organisation": "Caritas"});
        let (status, body) =
            konsens_tests::http_request(&node0, "POST", &format!("/api/processes/{process}/invitations"), Some(&admin_token), Some(&invitation)).await?;
        ensure!(status == 201, "invitation: {status} {body}");
        let body: Value = serde_json::from_str(&body)?;
        let (token, token_id) = (body["token"].as_str().context("token")?, body["token_id"].as_str().context("token_id")?);

        // Bora is connected to node 1; the facilitator revokes on node 0.
        let url = format!("{}?token={token}", cluster.nodes[1].ws_url());
        let mut peer = konsens_tests::RawPeer::join(&url, "bora-laptop").await?;
        let (status, body) = konsens_tests::http_request(&node0, "POST", &format!("/api/tokens/{token_id}/revoke"), Some(&admin_token), None).await?;
        ensure!(status == 200, "revoke: {status} {body}");
        let answer = tokio::time::timeout(Duration::from_secs(10), peer.next()).await.context("no close within 10 s")??;
        match answer {
            konsens_tests::Answer::Close { reason, .. } => ensure!(reason.contains("revoked"), "closed for another reason: {reason}"),
            other => bail!("expected node 1 to close the revoked member's connection, got {other:?}\n{}", cluster.logs()),
        }
        let refused = konsens_tests::RawPeer::connect(&url, "bora-laptop").await;
        ensure!(refused.is_err(), "a revoked token cannot connect to node 1 again");
        Ok(())
    })
}

/// samod, the Rust automerge-repo, notices nothing of the cluster either: a
/// samod peer on one node creates a document, one on another node finds it
/// through the relay, and each sees the other's change.
#[test]
fn samod_peers_on_two_nodes_converge() -> Result<()> {
    use automerge::transaction::Transactable;
    use automerge::{ROOT, ReadDoc};

    fn text(doc: &Automerge, key: &str) -> Option<String> {
        doc.get(ROOT, key).ok().flatten().and_then(|(value, _)| value.into_string().ok())
    }
    async fn dial(repo: &samod::Repo, url: &str) -> Result<samod::ConnectionId> {
        let dialer = repo.dial_websocket(samod::Url::parse(url)?, samod::BackoffConfig::default())?;
        tokio::time::timeout(Duration::from_secs(20), dialer.established()).await?.map_err(|e| anyhow::anyhow!("samod cannot connect to {url}: {e}"))?;
        dialer.connection_id().context("samod reports no connection")
    }
    async fn wait_for(handle: &samod::DocHandle, key: &'static str, value: &'static str) -> Result<()> {
        let mut changes = handle.changes();
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if handle.with_document_async(move |doc| text(doc, key)).await?.as_deref() == Some(value) {
                    return Ok::<_, anyhow::Error>(());
                }
                futures_util::StreamExt::next(&mut changes).await.context("samod's change stream ended")?;
            }
        })
        .await
        .with_context(|| format!("waiting for {key} = {value}"))?
    }

    let cluster = TestCluster::start(true)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let writer = samod::Repo::build_tokio().with_peer_id("samod-node0".into()).load().await;
        let to_node0 = dial(&writer, &cluster.nodes[0].ws_url()).await?;
        let mut initial = Automerge::new();
        let mut tx = initial.transaction();
        tx.put(ROOT, "title", "Sprachkurse im Betrieb")?;
        tx.commit();
        let handle = writer.create(initial).await?;
        tokio::time::timeout(Duration::from_secs(20), handle.they_have_our_changes(to_node0))
            .await
            .with_context(|| format!("node 0 to acknowledge samod's document\n{}", cluster.logs()))?;

        let reader = samod::Repo::build_tokio().with_peer_id("samod-node1".into()).load().await;
        dial(&reader, &cluster.nodes[1].ws_url()).await?;
        let found = tokio::time::timeout(Duration::from_secs(20), reader.find(handle.document_id().clone()))
            .await??
            .with_context(|| format!("samod on node 1 finds no document\n{}", cluster.logs()))?;
        wait_for(&found, "title", "Sprachkurse im Betrieb").await?;
        found
            .with_document_async(|doc| {
                let mut tx = doc.transaction();
                tx.put(ROOT, "status", "adopted")?;
                tx.commit();
                Ok::<_, automerge::AutomergeError>(())
            })
            .await??;
        wait_for(&handle, "status", "adopted").await.with_context(|| cluster.logs())?;
        writer.stop().await;
        reader.stop().await;
        Ok(())
    })
}

/// Presence and other ephemeral messages reach a client on another node:
/// official clients on node 1 and node 2, the document owned by whichever
/// of them created it (node 1), so one direction runs through a relay.
#[test]
fn ephemeral_messages_cross_nodes() -> Result<()> {
    let cluster = TestCluster::start(true)?;
    let answer = konsens_tests::js_harness(&["ephemeral-across", &cluster.nodes[1].ws_url(), &cluster.nodes[2].ws_url()])
        .with_context(|| cluster.logs())?;
    assert_eq!(answer["a_to_b"], true, "{answer}");
    assert_eq!(answer["b_to_a"], true, "{answer}");
    Ok(())
}

/// SIGTERM on a node of a cluster: it stops cleanly (its store connections
/// keep no part of it alive) and gives its leases up on the way, so the
/// document can move at once instead of after the lease time.
#[test]
fn a_node_stopped_cleanly_exits_and_releases_its_leases() -> Result<()> {
    let mut cluster = TestCluster::start(true)?;
    let doc = create_document(&cluster.nodes[0])?;
    let owner = cluster.wait_for_owner(&doc, None)?;
    let server = cluster.nodes[owner].server.take().context("the owner runs")?;
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(server.terminate());
    });
    let status = done_rx
        .recv_timeout(Duration::from_secs(20))
        .context("the node did not exit within 20 s of SIGTERM")??;
    ensure!(status.success(), "the node exits cleanly: {status}");
    ensure!(cluster.owner(&doc)?.is_none(), "the stopped node released its lease on the way out");
    Ok(())
}

/// Half a cluster configuration is refused at start, with the reason, before
/// anything is opened: a node others cannot relay to would stall their clients.
#[test]
fn half_a_cluster_configuration_is_refused() -> Result<()> {
    let cases: [(&[&str], &str); 3] = [
        (&["--database", "postgres://konsens@127.0.0.1:1/none", "--cluster-secret", "s"], "--cluster-secret without --node-address"),
        (&["--database", "postgres://konsens@127.0.0.1:1/none", "--node-address", "ws://127.0.0.1:9"], "--node-address without --cluster-secret"),
        (&["--cluster-secret", "s", "--node-address", "ws://127.0.0.1:9"], "need --database"),
    ];
    let data = tempfile::tempdir()?;
    for (args, reason) in cases {
        let out = Command::new(konsens_tests::binary("konsens-server")?)
            .arg("--data")
            .arg(data.path())
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("KONSENS_DATABASE")
            .env_remove("KONSENS_CLUSTER_SECRET")
            .env_remove("KONSENS_NODE_ADDRESS")
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(!out.status.success(), "{args:?} must not start");
        ensure!(stderr.contains(reason), "{args:?}: expected {reason:?} in:\n{stderr}");
        ensure!(!stderr.contains("panicked"), "{args:?}: a clear error, not a panic:\n{stderr}");
    }
    Ok(())
}
