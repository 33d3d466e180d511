//! Scenario `cluster`: the *durable* and *many documents* drives against one
//! node on sled, one node on PostgreSQL and three nodes sharing one
//! PostgreSQL, with the scenario's connections dealt round-robin over the
//! nodes; then the failover time: writers on two nodes write to a document
//! the third owns, the owner is killed with `kill -9`, and each writer's time
//! until a write it makes after the kill is acknowledged is taken.
//!
//! One throwaway PostgreSQL cluster serves the whole run, with a fresh
//! database for every row. The nodes and PostgreSQL all run on the server
//! core, so three nodes share the one core a single node had: the rows
//! compare what the same hardware does, and the difference is what relaying
//! and leases cost. CPU and `/metrics` are read when a drive's measured
//! window opens and when it closes (see [`Nodes`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use automerge::ChangeHash;
use automerge::sync;
use konsens_store::postgres::throwaway::ThrowawayCluster;

use crate::light::LightSync;
use crate::scenarios::docs::{self, Target, Writer};
use crate::servers::{self, Kind, Server};
use crate::wire::{self, Incoming};

/// Presented on every link between the bench's nodes.
const SECRET: &str = "konsens-bench-cluster-secret";

/// How long a node may take to exit after SIGTERM before it is killed; the
/// report counts the nodes that did not make it. A node on sled exits in
/// well under a second.
pub const STOP_PATIENCE: Duration = Duration::from_secs(3);

/// Nodes stopped with SIGTERM, and how many of them had to be killed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stops {
    pub stopped: usize,
    pub killed: usize,
}

impl Stops {
    /// Stop `servers` together (each waits for its own exit on a thread).
    fn stop(&mut self, servers: impl IntoIterator<Item = Server>) -> Result<()> {
        let exits = std::thread::scope(|scope| {
            let waits: Vec<_> = servers.into_iter().map(|s| scope.spawn(move || s.stop_within(STOP_PATIENCE))).collect();
            waits.into_iter().map(|w| w.join().map_err(|_| anyhow::anyhow!("a stopping thread panicked"))?).collect::<Result<Vec<bool>>>()
        })?;
        self.stopped += exits.len();
        self.killed += exits.iter().filter(|clean| !**clean).count();
        Ok(())
    }
}

/// Where a configuration keeps its documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Sled,
    Postgres,
}

/// One configuration of the server side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    pub nodes: usize,
    pub store: Store,
}

impl Setup {
    pub fn label(self) -> String {
        match self.store {
            Store::Sled => format!("{} node, sled", self.nodes),
            Store::Postgres if self.nodes == 1 => "1 node, PostgreSQL".into(),
            Store::Postgres => format!("{} nodes, PostgreSQL", self.nodes),
        }
    }
}

/// Through which node each durable writer's document is created; the node
/// that touches a document first claims its lease and owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owners {
    /// Every writer creates its document through its own node.
    Writers,
    /// Document `n` is created through node `(n / nodes) % nodes` while its
    /// writer uses node `n % nodes`: all pairs equally often, so
    /// `(nodes − 1) / nodes` of the writers write to a document owned
    /// elsewhere, as clients a load balancer deals out at random would.
    Spread,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drive {
    Durable(Owners),
    Many,
}

impl Drive {
    pub fn label(self) -> &'static str {
        match self {
            Drive::Durable(Owners::Writers) => "durable, owner = writer's node",
            Drive::Durable(Owners::Spread) => "durable, owners spread",
            Drive::Many => "many-docs",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Durable drive: writers and how long they write.
    pub writers: usize,
    pub duration: Duration,
    /// Many-documents drive: documents and how long their writers type.
    pub documents: usize,
    pub typing: Duration,
    /// `--lease-ms` of every node on PostgreSQL.
    pub lease: Duration,
    /// Failover: writers on each of the two surviving nodes.
    pub failover_writers_per_node: usize,
}

/// One drive against one configuration.
#[derive(Debug, Clone)]
pub struct Row {
    pub setup: Setup,
    pub drive: Drive,
    /// Acknowledged (durable) or delivered (many-docs) changes per second.
    pub per_second: f64,
    /// Changes counted in the measured window.
    pub changes: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Changes made but never delivered (many-docs; a durable writer that
    /// misses an acknowledgement fails its row instead).
    pub lost: usize,
    /// Window length in seconds and each node's CPU seconds in it.
    pub seconds: f64,
    pub node_cpu: Vec<f64>,
    /// PostgreSQL's CPU seconds in the window (all its processes).
    pub postgres_cpu: Option<f64>,
    /// Messages relayed between nodes in the window, both directions, all nodes.
    pub relayed: f64,
    /// Median group-commit latency in the window, from the nodes' histograms.
    pub commit_p50_ms: Option<f64>,
    /// `konsens_documents_owned` of each node at the window's end.
    pub owned: Vec<f64>,
}

impl Row {
    pub fn cpu(&self) -> f64 {
        self.node_cpu.iter().sum()
    }
    /// Server CPU (all nodes) per change, in ms.
    pub fn cpu_ms_per_change(&self) -> f64 {
        self.cpu() / self.changes.max(1.0) * 1e3
    }
    pub fn relayed_per_change(&self) -> f64 {
        self.relayed / self.changes.max(1.0)
    }
}

#[derive(Debug, Clone)]
pub struct Failover {
    pub lease: Duration,
    /// Per writer, ms from the kill until a write it made after the kill was acknowledged.
    pub times_ms: Vec<f64>,
    /// Changes acknowledged to the writers (before the kill and after), and
    /// how many of them a fresh reader did not find afterwards.
    pub acknowledged: usize,
    pub lost: usize,
    /// The survivor that claimed the document's lease (by its `/metrics`).
    pub new_owner: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct Results {
    pub rows: Vec<Row>,
    pub failover: Option<Failover>,
    pub failover_error: Option<String>,
    /// The nodes on sled and on PostgreSQL at the end of their rows.
    pub sled_stops: Stops,
    pub postgres_stops: Stops,
}

/// The whole scenario. A configuration that fails is reported in `failures`
/// and left out of the rows; the failover likewise.
pub fn run(config: &Config, dir: &Path, failures: &mut Vec<String>) -> Result<Results> {
    let postgres = ThrowawayCluster::start().context("starting a throwaway PostgreSQL cluster (is PostgreSQL installed?)")?;
    let postmaster = postmaster_pid(&postgres)?;
    // PostgreSQL is part of the server side: it gets the server core too.
    for pid in postgres_processes(postmaster) {
        servers::pin_to_server_core(pid)?;
    }
    let setups = [
        Setup { nodes: 1, store: Store::Sled },
        Setup { nodes: 1, store: Store::Postgres },
        Setup { nodes: 3, store: Store::Postgres },
    ];
    let mut rows = Vec::new();
    let (mut sled_stops, mut postgres_stops) = (Stops::default(), Stops::default());
    let mut databases = 0;
    for setup in setups {
        let mut drives = vec![Drive::Durable(Owners::Writers)];
        if setup.nodes > 1 {
            drives.push(Drive::Durable(Owners::Spread));
        }
        drives.push(Drive::Many);
        for drive in drives {
            databases += 1;
            let database = match setup.store {
                Store::Sled => None,
                Store::Postgres => Some(postgres.create_database(&format!("bench{databases}"))?),
            };
            let here = dir.join(format!("cluster-{databases}"));
            let label = format!("{} ({})", setup.label(), drive.label());
            eprintln!("  {label}");
            let stops = if setup.store == Store::Sled { &mut sled_stops } else { &mut postgres_stops };
            match run_row(setup, drive, config, database.as_deref(), postmaster, &here, stops) {
                Ok(row) => {
                    eprintln!(
                        "    {:.0} changes/s, p50 {}, p99 {}, server CPU {:.2} ms/change, relayed {:.2}/change",
                        row.per_second,
                        crate::stats::ms(row.p50_ms),
                        crate::stats::ms(row.p99_ms),
                        row.cpu_ms_per_change(),
                        row.relayed_per_change()
                    );
                    rows.push(row);
                }
                Err(e) => {
                    eprintln!("  cluster {label} failed: {e:#}");
                    failures.push(format!("cluster, {label}: {}", reason(&e)));
                }
            }
        }
    }
    eprintln!("  failover");
    let database = postgres.create_database("failover")?;
    let (failover, failover_error) = match failover(config, &database, &dir.join("failover"), &mut postgres_stops) {
        Ok(f) => (Some(f), None),
        Err(e) => {
            eprintln!("  cluster failover failed: {e:#}");
            failures.push(format!("cluster, failover: {}", reason(&e)));
            (None, Some(reason(&e)))
        }
    };
    Ok(Results { rows, failover, failover_error, sled_stops, postgres_stops })
}

/// An error for the report: the first line of each cause (the log tails
/// the contexts carry went to stderr already).
fn reason(e: &anyhow::Error) -> String {
    e.chain().map(|c| c.to_string().lines().next().unwrap_or("").to_owned()).collect::<Vec<_>>().join(": ")
}

/// Start `nodes` konsens servers: on sled (one node), or on `database`, each
/// knowing its own address for the others.
fn start_nodes(nodes: usize, database: Option<&str>, lease: Duration, dir: &Path) -> Result<Vec<Server>> {
    let mut started = Vec::new();
    for i in 0..nodes {
        let (listen, extra) = match database {
            None => ("127.0.0.1:0".to_owned(), Vec::new()),
            Some(url) => {
                let port = servers::free_port()?;
                let extra = [
                    "--database",
                    url,
                    "--node-address",
                    &format!("ws://127.0.0.1:{port}"),
                    "--cluster-secret",
                    SECRET,
                    "--lease-ms",
                    &lease.as_millis().to_string(),
                ];
                (format!("127.0.0.1:{port}"), extra.iter().map(|s| s.to_string()).collect())
            }
        };
        started.push(Server::start_with(Kind::Konsens, &dir.join(format!("node-{i}")), &listen, &extra)?);
    }
    Ok(started)
}

fn run_row(setup: Setup, drive: Drive, config: &Config, database: Option<&str>, postmaster: u32, dir: &Path, stops: &mut Stops) -> Result<Row> {
    let owners = match drive {
        Drive::Durable(owners) => owners,
        Drive::Many => Owners::Writers,
    };
    let nodes = Nodes {
        servers: start_nodes(setup.nodes, database, config.lease, dir)?,
        owners,
        postmaster: database.map(|_| postmaster),
        snapshots: RefCell::default(),
    };
    let (per_second, changes, p50_ms, p99_ms, lost) = match drive {
        Drive::Durable(_) => {
            let r = docs::runtime_run(docs::durable_drive(&nodes, config.writers, config.duration));
            let r = r.with_context(|| nodes.log_tails())?;
            (r.per_second, r.per_second * config.duration.as_secs_f64(), r.p50_ms, r.p99_ms, 0)
        }
        Drive::Many => {
            let r = docs::runtime_run(docs::many_drive(&nodes, config.documents, config.typing));
            let r = r.with_context(|| nodes.log_tails())?;
            let delivered = (r.edits as f64 * r.delivered).round();
            (delivered / config.typing.as_secs_f64(), delivered, r.p50_ms, r.p99_ms, r.edits - delivered as usize)
        }
    };
    let snapshots = nodes.snapshots.take();
    let (first, last) = match (snapshots.first(), snapshots.last()) {
        (Some(f), Some(l)) if snapshots.len() >= 2 => (f, l),
        _ => bail!("the drive read the servers' CPU {} times, not at the start and end of its window", snapshots.len()),
    };
    let node_cpu = last.node_cpu.iter().zip(&first.node_cpu).map(|(b, a)| b - a).collect();
    let postgres_cpu = last.postgres_cpu.zip(first.postgres_cpu).map(|(b, a)| b - a);
    let relayed = sum_prefix(&last.metrics, "konsens_relayed_messages_total") - sum_prefix(&first.metrics, "konsens_relayed_messages_total");
    let commit_p50_ms = commit_quantile(&first.metrics, &last.metrics, 0.5).map(|s| s * 1e3);
    let owned = last.metrics.iter().map(|m| m.get("konsens_documents_owned").copied().unwrap_or(0.0)).collect();
    let seconds = last.at.duration_since(first.at).as_secs_f64();
    stops.stop(nodes.servers)?;
    Ok(Row { setup, drive, per_second, changes, p50_ms, p99_ms, lost, seconds, node_cpu, postgres_cpu, relayed, commit_p50_ms, owned })
}

/// What the server side had used and counted at one moment.
#[derive(Debug)]
struct Snapshot {
    at: Instant,
    node_cpu: Vec<f64>,
    postgres_cpu: Option<f64>,
    /// Each node's `/metrics`, series (name and labels) to value.
    metrics: Vec<HashMap<String, f64>>,
}

/// The nodes of one row as a drive's [`Target`]: connection `n` goes to node
/// `n % nodes`; every reading of the CPU also records a [`Snapshot`], so the
/// first and last are the drive's measured window.
struct Nodes {
    servers: Vec<Server>,
    owners: Owners,
    postmaster: Option<u32>,
    snapshots: RefCell<Vec<Snapshot>>,
}

impl Nodes {
    fn snapshot(&self) -> Result<Snapshot> {
        let at = Instant::now();
        let node_cpu = self.servers.iter().map(Server::cpu_seconds).collect::<Result<Vec<_>>>()?;
        let postgres_cpu = self.postmaster.map(postgres_cpu);
        let metrics = self.servers.iter().map(|s| scrape(&s.addr)).collect::<Result<Vec<_>>>()?;
        Ok(Snapshot { at, node_cpu, postgres_cpu, metrics })
    }

    fn log_tails(&self) -> String {
        self.servers.iter().enumerate().map(|(i, s)| format!("node {i}:\n{}\n", s.log_tail())).collect()
    }
}

impl Target for Nodes {
    fn url(&self, connection: usize) -> String {
        self.servers[connection % self.servers.len()].url.clone()
    }

    fn first_touch(&self, document: usize) -> String {
        let n = self.servers.len();
        match self.owners {
            Owners::Writers => self.url(document),
            Owners::Spread => self.servers[(document / n) % n].url.clone(),
        }
    }

    fn cpu_seconds(&self) -> Result<f64> {
        let snapshot = self.snapshot()?;
        let sum = snapshot.node_cpu.iter().sum();
        self.snapshots.borrow_mut().push(snapshot);
        Ok(sum)
    }

    fn rss_bytes(&self) -> Result<u64> {
        self.servers.iter().map(Server::rss_bytes).sum()
    }
}

// ---------------------------------------------------------------------------
// PostgreSQL's processes and the nodes' /metrics.

fn postmaster_pid(postgres: &ThrowawayCluster) -> Result<u32> {
    let file = postgres.dir().join("data/postmaster.pid");
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    text.lines().next().and_then(|l| l.trim().parse().ok()).with_context(|| format!("no pid in {}", file.display()))
}

/// The postmaster and its children (backends, checkpointer, WAL writer, …).
fn postgres_processes(postmaster: u32) -> Vec<u32> {
    let mut pids = vec![postmaster];
    let Ok(entries) = std::fs::read_dir("/proc") else { return pids };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // After the command name's ')': state, then the parent's pid.
        let parent = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if parent == Some(postmaster) {
            pids.push(pid);
        }
    }
    pids
}

/// CPU seconds of PostgreSQL's live processes (backends live as long as the
/// nodes' connection pools, so a window's difference is what they did).
fn postgres_cpu(postmaster: u32) -> f64 {
    postgres_processes(postmaster).into_iter().filter_map(|pid| servers::cpu_seconds(pid).ok()).sum()
}

/// `GET /metrics` on `addr`, as series → value.
fn scrape(addr: &str) -> Result<HashMap<String, f64>> {
    let mut stream = std::net::TcpStream::connect(addr).with_context(|| format!("connecting to {addr} for /metrics"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").context("no end of headers in /metrics' response")?;
    ensure!(head.starts_with("HTTP/1.1 200"), "/metrics of {addr} answered {}", head.lines().next().unwrap_or(""));
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body)? } else { body.to_owned() };
    let mut series = HashMap::new();
    for line in body.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        if let Some((name, value)) = line.rsplit_once(' ')
            && let Ok(value) = value.parse::<f64>()
        {
            series.insert(name.to_owned(), value);
        }
    }
    Ok(series)
}

fn dechunk(mut body: &str) -> Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").context("a chunk without its size")?;
        let size = usize::from_str_radix(size.trim(), 16)?;
        if size == 0 {
            return Ok(out);
        }
        out.push_str(rest.get(..size).context("a chunk shorter than its size")?);
        body = rest.get(size + 2..).context("a chunk without its end")?;
    }
}

fn sum_prefix(metrics: &[HashMap<String, f64>], prefix: &str) -> f64 {
    metrics.iter().flat_map(|m| m.iter()).filter(|(k, _)| k.starts_with(prefix)).map(|(_, v)| v).sum()
}

/// The `q` quantile of the group-commit latency between two snapshots, all
/// nodes together, interpolated within its bucket as Prometheus'
/// `histogram_quantile` does; seconds.
fn commit_quantile(before: &[HashMap<String, f64>], after: &[HashMap<String, f64>], q: f64) -> Option<f64> {
    let mut buckets: HashMap<String, f64> = HashMap::new();
    for (sign, metrics) in [(-1.0, before), (1.0, after)] {
        for m in metrics {
            for (k, v) in m {
                if let Some(le) = k.strip_prefix("konsens_commit_seconds_bucket{le=\"").and_then(|r| r.strip_suffix("\"}")) {
                    *buckets.entry(le.to_owned()).or_default() += sign * v;
                }
            }
        }
    }
    let mut buckets: Vec<(f64, f64)> = buckets
        .into_iter()
        .filter_map(|(le, n)| Some((if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? }, n)))
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for (le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower);
            }
            let share = if count > below { (rank - below) / (count - below) } else { 1.0 };
            return Some(lower + (le - lower) * share);
        }
        (lower, below) = (le, count);
    }
    None
}

// ---------------------------------------------------------------------------
// Failover.

#[derive(Default)]
struct FailoverShared {
    /// When the owner was killed (and known dead).
    killed: Option<Instant>,
    /// Per writer: ms from the kill until its first write made after the kill was acknowledged.
    recovered: Vec<Option<f64>>,
    /// Every change acknowledged to a writer, before the kill and after.
    acknowledged: Vec<ChangeHash>,
}

/// Three nodes; a document created through node 0 (which owns it), writers
/// on nodes 1 and 2 writing to it through relays; node 0 killed with
/// `kill -9` once they are writing.
fn failover(config: &Config, database: &str, dir: &Path, stops: &mut Stops) -> Result<Failover> {
    let mut nodes: Vec<Option<Server>> = start_nodes(3, Some(database), config.lease, dir)?.into_iter().map(Some).collect();
    let urls: Vec<String> = nodes.iter().flatten().map(|s| s.url.clone()).collect();
    let writers = 2 * config.failover_writers_per_node;
    let shared = Rc::new(RefCell::new(FailoverShared { recovered: vec![None; writers], ..Default::default() }));
    let id = docs::doc_id(4, 0);
    // Long enough for the lease to run out, the document to be claimed and
    // loaded again, and every writer to resync.
    let patience = config.lease * 3 + Duration::from_secs(30);
    let result = docs::runtime_run(async {
        {
            let (mut tx, mut rx) = wire::connect(&urls[0], "failover-creator").await?;
            let mut creator = Writer::new(id, 0)?;
            docs::create(&mut tx, &mut rx, &mut creator).await?;
            tx.close().await;
        }
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<Result<()>>();
        let mut tasks = Vec::new();
        for i in 0..writers {
            let url = urls[1 + i % 2].clone();
            let shared = shared.clone();
            let ready = ready_tx.clone();
            let stop = stop_rx.clone();
            tasks.push(tokio::task::spawn_local(async move {
                let result = failover_writer(i, id, url, shared, &ready, stop, patience).await;
                if let Err(e) = &result {
                    let _ = ready.send(Err(anyhow::anyhow!("writer {i}: {e:#}")));
                }
                result
            }));
        }
        for _ in 0..writers {
            ready_rx.recv().await.context("writers gone")??;
        }
        // Let them write a while through their relays, then kill the owner.
        tokio::time::sleep(Duration::from_secs(1)).await;
        ensure!(!shared.borrow().acknowledged.is_empty(), "no write was acknowledged before the kill");
        nodes[0].take().context("node 0")?.kill()?;
        shared.borrow_mut().killed = Some(Instant::now());
        let until = tokio::time::Instant::now() + patience;
        loop {
            if shared.borrow().recovered.iter().all(Option::is_some) {
                break;
            }
            // An error of a writer ends the wait at once.
            match tokio::time::timeout_at(until, ready_rx.recv()).await {
                Err(_) => bail!("not every writer was acknowledged within {} s of the kill", patience.as_secs()),
                Ok(Some(Err(e))) => return Err(e),
                Ok(_) => {}
            }
        }
        stop_tx.send(true)?;
        for task in tasks {
            task.await??;
        }
        // Everything acknowledged before the kill is there, read by a fresh peer.
        let acknowledged = shared.borrow().acknowledged.clone();
        let found = read_back(&urls[1], id, &acknowledged).await?;
        Ok::<_, anyhow::Error>((acknowledged.len(), acknowledged.len() - found))
    });
    let tails: String = nodes.iter().flatten().map(|s| s.log_tail() + "\n").collect();
    let (acknowledged, lost) = result.with_context(|| format!("failover:\n{tails}"))?;
    // The survivor that claimed a lease (the only one in this database);
    // `konsens_documents_owned` would lag until the next renewal.
    let mut new_owner = None;
    for (i, node) in nodes.iter().enumerate() {
        if let Some(node) = node
            && scrape(&node.addr)?.get("konsens_lease_claims_total").copied().unwrap_or(0.0) >= 1.0
        {
            new_owner = Some(i);
        }
    }
    stops.stop(nodes.into_iter().flatten())?;
    let times_ms = shared.borrow().recovered.iter().flatten().copied().collect();
    Ok(Failover { lease: config.lease, times_ms, acknowledged, lost, new_owner })
}

/// One failover writer: writes, waits for each acknowledgement, and after
/// the kill reports when its first write made after it is acknowledged. A
/// closed connection is opened again to the same node, as a client would.
async fn failover_writer(
    i: usize,
    id: konsens_sync::DocumentId,
    url: String,
    shared: Rc<RefCell<FailoverShared>>,
    ready: &tokio::sync::mpsc::UnboundedSender<Result<()>>,
    stop: tokio::sync::watch::Receiver<bool>,
    patience: Duration,
) -> Result<()> {
    let peer = format!("failover-writer-{i}");
    let (mut tx, mut rx) = wire::connect(&url, &peer).await?;
    let mut w = Writer::new(id, 1 + i)?;
    docs::create(&mut tx, &mut rx, &mut w).await?;
    let _ = ready.send(Ok(()));
    let mut reported = false;
    while !*stop.borrow() {
        let hash = w.edit()?;
        let after_kill = shared.borrow().killed.is_some();
        w.flush(&mut tx).await?;
        while !w.light.in_sync() {
            let incoming = match tokio::time::timeout(patience, rx.next()).await {
                Err(_) => bail!("no acknowledgement within {} s", patience.as_secs()),
                Ok(incoming) => incoming,
            };
            match incoming {
                Ok(Some(Incoming::Sync { document_id, data })) if document_id == id => {
                    w.receive(&data)?;
                    w.flush(&mut tx).await?;
                }
                Ok(Some(_)) => {}
                // The node closed the connection: come back, say what we hold.
                Ok(None) | Err(_) => {
                    let deadline = Instant::now() + patience;
                    (tx, rx) = loop {
                        match wire::connect(&url, &peer).await {
                            Ok(connection) => break connection,
                            Err(e) if Instant::now() > deadline => return Err(e.context("reconnecting")),
                            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                        }
                    };
                    w.edit()?;
                    w.flush(&mut tx).await?;
                }
            }
        }
        let mut s = shared.borrow_mut();
        s.acknowledged.push(hash);
        if let Some(killed) = s.killed
            && after_kill
            && !reported
        {
            s.recovered[i] = Some(killed.elapsed().as_secs_f64() * 1e3);
            reported = true;
            drop(s);
            // Wakes the driver's wait.
            let _ = ready.send(Ok(()));
        }
    }
    tx.close().await;
    Ok(())
}

/// How many of `hashes` a fresh peer finds in document `id` through `url`.
async fn read_back(url: &str, id: konsens_sync::DocumentId, hashes: &[ChangeHash]) -> Result<usize> {
    let (mut tx, mut rx) = wire::connect(url, "failover-reader").await?;
    let mut light = LightSync::default();
    tx.request(id, light.generate().context("first message")?.encode()).await?;
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let found = hashes.iter().filter(|h| light.has(h)).count();
        if found == hashes.len() {
            return Ok(found);
        }
        match tokio::time::timeout_at(until, rx.next()).await {
            Err(_) => return Ok(found),
            Ok(incoming) => match incoming? {
                None => bail!("the server closed the reader's connection"),
                Some(Incoming::Sync { document_id, data }) if document_id == id => {
                    light.receive(sync::Message::decode(&data)?);
                    if let Some(m) = light.generate() {
                        tx.sync(id, m.encode()).await?;
                    }
                }
                Some(Incoming::Unavailable { .. }) => bail!("the document is unavailable after the failover"),
                Some(_) => {}
            },
        }
    }
}
