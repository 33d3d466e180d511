//! Scenarios about many documents and connections: *many documents* (one
//! writer and one reader each), *durable acknowledgements*, *cold start* and
//! *idle connections*. Writers are light peers with a small replica of their
//! own document; readers are light peers.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use automerge::sync;
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ChangeHash, ROOT};
use konsens_sync::DocumentId;

use crate::light::LightSync;
use crate::servers::{Kind, Server};
use crate::stats::quantile;
use crate::wire::{self, Incoming};

pub(crate) fn doc_id(scenario: u8, n: usize) -> DocumentId {
    let mut bytes = [0u8; 16];
    bytes[0] = scenario;
    bytes[8..16].copy_from_slice(&(n as u64).to_be_bytes());
    DocumentId::from_bytes(bytes)
}

/// A writer: its own small replica and the light sync state for it.
pub(crate) struct Writer {
    id: DocumentId,
    doc: Automerge,
    pub(crate) light: LightSync,
    edits: u64,
}

impl Writer {
    pub(crate) fn new(id: DocumentId, n: usize) -> Result<Self> {
        let mut doc = Automerge::new().with_actor(ActorId::from(format!("writer-{n}").into_bytes()));
        let mut t = doc.transaction();
        t.put(ROOT, "title", format!("Recommendation {n}"))?;
        t.put(ROOT, "edits", 0u64)?;
        t.commit();
        let mut light = LightSync::default();
        for c in doc.get_changes(&[]) {
            light.local_change(&c);
        }
        Ok(Self { id, doc, light, edits: 0 })
    }

    pub(crate) fn edit(&mut self) -> Result<ChangeHash> {
        self.edits += 1;
        let mut t = self.doc.transaction();
        t.put(ROOT, "edits", self.edits)?;
        t.commit();
        let change = self.doc.get_last_local_change().context("no change")?;
        self.light.local_change(&change);
        Ok(change.hash())
    }

    pub(crate) async fn flush(&mut self, tx: &mut wire::Sender) -> Result<()> {
        if let Some(m) = self.light.generate() {
            tx.sync(self.id, m.encode()).await?;
        }
        Ok(())
    }

    pub(crate) fn receive(&mut self, data: &[u8]) -> Result<()> {
        self.light.receive(sync::Message::decode(data)?);
        Ok(())
    }
}

/// Create a document on the server and wait until it acknowledges it.
pub(crate) async fn create(tx: &mut wire::Sender, rx: &mut wire::Receiver, w: &mut Writer) -> Result<()> {
    w.flush(tx).await?;
    while !w.light.in_sync() {
        match tokio::time::timeout(crate::peer::PATIENCE, rx.next()).await.context("no acknowledgement")?? {
            None => bail!("server closed while creating a document"),
            Some(Incoming::Sync { document_id, data }) if document_id == w.id => {
                w.receive(&data)?;
                w.flush(tx).await?;
            }
            Some(Incoming::Unavailable { document_id }) if document_id == w.id => {
                bail!("the server says the new document is unavailable")
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Where a drive's connections go and what it reads of the server side:
/// one [`Server`], or the nodes of a cluster (`scenarios::cluster`).
pub trait Target {
    /// The URL the scenario's connection number `connection` opens.
    fn url(&self, connection: usize) -> String;
    /// The URL through which document `document` is created (in a cluster,
    /// the node that touches a document first becomes its owner).
    fn first_touch(&self, document: usize) -> String;
    /// CPU seconds the server side has used so far; the drives read it when
    /// their measured window opens and when it closes.
    fn cpu_seconds(&self) -> Result<f64>;
    /// Resident memory of the server side, in bytes.
    fn rss_bytes(&self) -> Result<u64>;
}

impl Target for Server {
    fn url(&self, _connection: usize) -> String {
        self.url.clone()
    }
    fn first_touch(&self, _document: usize) -> String {
        self.url.clone()
    }
    fn cpu_seconds(&self) -> Result<f64> {
        Server::cpu_seconds(self)
    }
    fn rss_bytes(&self) -> Result<u64> {
        Server::rss_bytes(self)
    }
}

pub(crate) fn runtime_run<T>(fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, fut)
}

// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct ManyRow {
    pub documents: usize,
    pub edits: usize,
    pub delivered: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub rss_mib: f64,
    pub server_cpu_per_1000: f64,
    /// Share of one core the driver used while typing.
    pub driver_load: f64,
}

pub fn many_documents(kind: Kind, documents: usize, typing: Duration, data_dir: &std::path::Path) -> Result<ManyRow> {
    let server = Server::start(kind, data_dir, "127.0.0.1:0")?;
    let result = runtime_run(many_drive(&server, documents, typing));
    let row = result.with_context(|| format!("many documents against {}:\n{}", kind.label(), server.log_tail()))?;
    server.stop()?;
    eprintln!(
        "  {:<28} {} docs: {} edits, delivered {:.1}%, p50 {}, p99 {}, RSS {:.0} MiB",
        kind.label(),
        documents,
        row.edits,
        row.delivered * 100.0,
        crate::stats::ms(row.p50_ms),
        crate::stats::ms(row.p99_ms),
        row.rss_mib
    );
    Ok(row)
}

#[derive(Default)]
struct ManyShared {
    sent: HashMap<ChangeHash, Instant>,
    latencies: Vec<f64>,
    typing: bool,
}

/// The longest a scenario may take to connect its peers and create its
/// documents. konsens needs a few seconds for 1,000 documents.
const SETUP_DEADLINE: Duration = Duration::from_secs(180);

/// The peers of a scenario: their tasks, and a channel on which each reports
/// that it is ready or why it failed before it got there.
struct Peers {
    tasks: Vec<(String, tokio::task::JoinHandle<Result<()>>)>,
    ready_tx: tokio::sync::mpsc::UnboundedSender<Result<(), String>>,
    ready_rx: tokio::sync::mpsc::UnboundedReceiver<Result<(), String>>,
}

impl Peers {
    fn new() -> Self {
        let (ready_tx, ready_rx) = tokio::sync::mpsc::unbounded_channel();
        Self { tasks: Vec::new(), ready_tx, ready_rx }
    }

    /// Run `body` as a local task named `name`. It must send `Ok(())` on the
    /// channel it is given once it is ready; if it fails before, its error
    /// is sent instead, so the setup fails at once with the real reason.
    fn spawn<F>(&mut self, name: String, body: impl FnOnce(tokio::sync::mpsc::UnboundedSender<Result<(), String>>) -> F)
    where
        F: std::future::Future<Output = Result<()>> + 'static,
    {
        let ready = self.ready_tx.clone();
        let fut = body(ready.clone());
        let label = name.clone();
        self.tasks.push((
            name,
            tokio::task::spawn_local(async move {
                let result = fut.await;
                if let Err(e) = &result {
                    let _ = ready.send(Err(format!("{label}: {e:#}")));
                }
                result
            }),
        ));
    }

    /// Wait until all `n` peers are ready; fail with the first error, or when
    /// setting up takes longer than `SETUP_DEADLINE` in all, so one slow
    /// server fails its row instead of eating the run.
    async fn wait_ready(&mut self, n: usize, what: &str) -> Result<()> {
        let started = Instant::now();
        let until = tokio::time::Instant::now() + SETUP_DEADLINE;
        for done in 0..n {
            match tokio::time::timeout_at(until, self.ready_rx.recv()).await {
                Err(_) => bail!(
                    "{what}: {done} of {n} ready after {:.0} s (deadline {} s)",
                    started.elapsed().as_secs_f64(),
                    SETUP_DEADLINE.as_secs()
                ),
                Ok(None) => bail!("{what}: the ready channel closed"),
                Ok(Some(Err(e))) => bail!("{what}: {e}"),
                Ok(Some(Ok(()))) => {}
            }
        }
        Ok(())
    }

    /// Wait (bounded) for every task to end after the stop signal and fail
    /// if any of them failed: a scenario with failed peers must say so
    /// rather than report fewer edits.
    async fn finish(self, deadline: Duration) -> Result<()> {
        let total = self.tasks.len();
        let mut failed = Vec::new();
        let until = tokio::time::Instant::now() + deadline;
        for (name, task) in self.tasks {
            let abort = task.abort_handle();
            match tokio::time::timeout_at(until, task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => failed.push(format!("{name}: {e:#}")),
                Ok(Err(e)) => failed.push(format!("{name}: task {e}")),
                Err(_) => {
                    abort.abort();
                    failed.push(format!("{name}: did not stop within {} s of the end", deadline.as_secs()));
                }
            }
        }
        if let Some(first) = failed.first() {
            bail!("{} of {total} peers failed; first: {first}", failed.len());
        }
        Ok(())
    }
}

/// Wait until `stop` says true (or its sender is gone).
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

pub(crate) async fn many_drive(server: &impl Target, documents: usize, typing: Duration) -> Result<ManyRow> {
    let shared = Rc::new(RefCell::new(ManyShared::default()));
    // Readers say when a latency arrives, so the drain waits on an event.
    let arrived = Rc::new(tokio::sync::Notify::new());
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut peers = Peers::new();
    for n in 0..documents {
        let id = doc_id(1, n);
        let shared = shared.clone();
        let arrived = arrived.clone();
        // Writer and reader are the scenario's connections 2n and 2n + 1.
        let urls = (server.url(2 * n), server.url(2 * n + 1));
        let go = go_rx.clone();
        let stop = stop_rx.clone();
        peers.spawn(format!("document {n}"), move |ready| many_peer(n, id, urls, shared, arrived, ready, go, stop));
    }
    peers.wait_ready(documents, "documents not ready").await?;
    let cpu0 = server.cpu_seconds()?;
    let own0 = crate::stats::own_cpu_seconds()?;
    shared.borrow_mut().typing = true;
    go_tx.send(true)?;
    tokio::time::sleep(typing).await;
    shared.borrow_mut().typing = false;
    let driver_load = (crate::stats::own_cpu_seconds()? - own0) / typing.as_secs_f64();
    let rss = server.rss_bytes()?;
    // Give late edits up to 10 s to arrive.
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let wait = arrived.notified();
            {
                let s = shared.borrow();
                if s.latencies.len() >= s.sent.len() {
                    return;
                }
            }
            wait.await;
        }
    })
    .await;
    let cpu = server.cpu_seconds()? - cpu0;
    stop_tx.send(true)?;
    peers.finish(Duration::from_secs(10)).await?;
    let mut s = shared.borrow_mut();
    let edits = s.sent.len();
    let got = s.latencies.len();
    let mut samples = std::mem::take(&mut s.latencies);
    samples.extend(std::iter::repeat_n(f64::INFINITY, edits.saturating_sub(got)));
    Ok(ManyRow {
        documents,
        edits,
        delivered: got as f64 / edits.max(1) as f64,
        p50_ms: quantile(&mut samples, 0.5),
        p99_ms: quantile(&mut samples, 0.99),
        rss_mib: rss as f64 / (1 << 20) as f64,
        server_cpu_per_1000: cpu / edits.max(1) as f64 * 1000.0,
        driver_load,
    })
}

/// One document of *many documents*: its writer, and a reader that opens it
/// like a client that has never seen it.
#[allow(clippy::too_many_arguments)]
async fn many_peer(
    n: usize,
    id: DocumentId,
    (url, reader_url): (String, String),
    shared: Rc<RefCell<ManyShared>>,
    arrived: Rc<tokio::sync::Notify>,
    ready: tokio::sync::mpsc::UnboundedSender<Result<(), String>>,
    mut go: tokio::sync::watch::Receiver<bool>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let (mut tx, mut rx) = wire::connect(&url, &format!("writer-{n}")).await?;
    let mut w = Writer::new(id, n)?;
    create(&mut tx, &mut rx, &mut w).await?;
    let (mut rtx, mut rrx) = wire::connect(&reader_url, &format!("reader-{n}")).await?;
    let mut reader = LightSync::default();
    let first = reader.generate().context("first")?;
    rtx.request(id, first.encode()).await?;
    let reader_shared = shared.clone();
    let mut reader_stop = stop.clone();
    let reader_task = tokio::task::spawn_local(async move {
        loop {
            let incoming = tokio::select! {
                _ = stopped(&mut reader_stop) => return Ok(()),
                incoming = rrx.next() => incoming?,
            };
            match incoming {
                None => bail!("server closed reader {n}"),
                Some(Incoming::Sync { document_id, data }) if document_id == id => {
                    let new = reader.receive(sync::Message::decode(&data)?);
                    let now = Instant::now();
                    let mut s = reader_shared.borrow_mut();
                    let before = s.latencies.len();
                    for h in new {
                        if let Some(at) = s.sent.get(&h).copied() {
                            s.latencies.push((now - at).as_secs_f64() * 1e3);
                        }
                    }
                    if s.latencies.len() > before {
                        arrived.notify_one();
                    }
                    drop(s);
                    if let Some(m) = reader.generate() {
                        rtx.sync(id, m.encode()).await?;
                    }
                }
                Some(Incoming::Unavailable { document_id }) if document_id == id => {
                    bail!("the server says reader {n}'s document is unavailable")
                }
                // Messages about other documents are not ours to answer.
                Some(_) => {}
            }
        }
    });
    let _ = ready.send(Ok(()));
    go.wait_for(|g| *g).await?;
    // 2 edits/s, each writer at its own phase.
    let period = Duration::from_millis(500);
    let offset = period.mul_f64((n % 97) as f64 / 97.0);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
    let mut typing = true;
    loop {
        let incoming = tokio::select! {
            _ = ticker.tick(), if typing => {
                if !shared.borrow().typing {
                    typing = false;
                    continue;
                }
                let h = w.edit()?;
                shared.borrow_mut().sent.insert(h, Instant::now());
                w.flush(&mut tx).await?;
                continue;
            }
            // Keep answering until the driver is done with everyone.
            _ = stopped(&mut stop) => break,
            incoming = rx.next() => incoming?,
        };
        match incoming {
            None => bail!("server closed writer {n}"),
            Some(Incoming::Sync { document_id, data }) if document_id == id => {
                w.receive(&data)?;
                w.flush(&mut tx).await?;
            }
            Some(_) => {}
        }
    }
    reader_task.await??;
    Ok(())
}

// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct DurableRow {
    pub writers: usize,
    pub per_second: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Share of one core the driver used while writing.
    pub driver_load: f64,
    /// Server CPU seconds per second of writing (1.0 = its core is saturated).
    pub server_load: f64,
}

/// `writers` documents, each with a writer that makes a change, waits for
/// the server to acknowledge it (its heads include the change), and repeats.
pub fn durable(kind: Kind, writers: usize, duration: Duration, data_dir: &std::path::Path) -> Result<DurableRow> {
    let server = Server::start(kind, data_dir, "127.0.0.1:0")?;
    let result = runtime_run(durable_drive(&server, writers, duration));
    let row = result.with_context(|| format!("durable acknowledgements against {}:\n{}", kind.label(), server.log_tail()))?;
    server.stop()?;
    eprintln!(
        "  {:<28} {} writers: {:.0} acks/s, p50 {}, p99 {}, driver load {:.0}%, server load {:.0}%",
        kind.label(),
        writers,
        row.per_second,
        crate::stats::ms(row.p50_ms),
        crate::stats::ms(row.p99_ms),
        row.driver_load * 100.0,
        row.server_load * 100.0
    );
    Ok(row)
}

pub(crate) async fn durable_drive(server: &impl Target, writers: usize, duration: Duration) -> Result<DurableRow> {
    let latencies = Rc::new(RefCell::new(Vec::<f64>::new()));
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let mut peers = Peers::new();
    for n in 0..writers {
        let urls = (server.first_touch(n), server.url(n));
        let go = go_rx.clone();
        let latencies = latencies.clone();
        peers.spawn(format!("writer {n}"), move |ready| durable_writer(n, urls, latencies, ready, go));
    }
    peers.wait_ready(writers, "writers not ready").await?;
    let cpu0 = server.cpu_seconds()?;
    let own0 = crate::stats::own_cpu_seconds()?;
    let started = Instant::now();
    go_tx.send(true)?;
    tokio::time::sleep(duration).await;
    go_tx.send(false)?;
    let elapsed = started.elapsed().as_secs_f64();
    let driver_load = (crate::stats::own_cpu_seconds()? - own0) / elapsed;
    let server_load = (server.cpu_seconds()? - cpu0) / elapsed;
    let mut samples = std::mem::take(&mut *latencies.borrow_mut());
    // Each writer stops after its change in flight is acknowledged.
    peers.finish(crate::peer::PATIENCE).await?;
    Ok(DurableRow {
        writers,
        per_second: samples.len() as f64 / elapsed,
        p50_ms: quantile(&mut samples, 0.5),
        p99_ms: quantile(&mut samples, 0.99),
        driver_load,
        server_load,
    })
}

async fn durable_writer(
    n: usize,
    (first_touch, url): (String, String),
    latencies: Rc<RefCell<Vec<f64>>>,
    ready: tokio::sync::mpsc::UnboundedSender<Result<(), String>>,
    mut go: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let id = doc_id(2, n);
    let (mut tx, mut rx) = wire::connect(&first_touch, &format!("durable-{n}")).await?;
    let mut w = Writer::new(id, n)?;
    create(&mut tx, &mut rx, &mut w).await?;
    if first_touch != url {
        // Created through another node, which now owns the document: write through this one.
        tx.close().await;
        (tx, rx) = wire::connect(&url, &format!("durable-{n}")).await?;
    }
    let _ = ready.send(Ok(()));
    go.wait_for(|g| *g).await?;
    while *go.borrow() {
        w.edit()?;
        let at = Instant::now();
        w.flush(&mut tx).await?;
        while !w.light.in_sync() {
            match tokio::time::timeout(crate::peer::PATIENCE, rx.next()).await.context("no acknowledgement")?? {
                None => bail!("server closed writer {n}"),
                Some(Incoming::Sync { document_id, data }) if document_id == id => {
                    w.receive(&data)?;
                    w.flush(&mut tx).await?;
                }
                Some(_) => {}
            }
        }
        if *go.borrow() {
            latencies.borrow_mut().push(at.elapsed().as_secs_f64() * 1e3);
        }
    }
    tx.close().await;
    Ok(())
}

// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct ColdRow {
    pub documents: usize,
    pub start_ms: f64,
    pub first_sync_ms: f64,
    pub rss_mib: f64,
}

/// Put `documents` documents on disk in each server's own layout, start the
/// server on them, and time the start and the first sync of one document.
///
/// The documents are written straight into the data directory before the
/// server starts, not created through the server: creating 10,000 documents
/// over the network took the JS server and samod 15–25 minutes (both slow
/// down with every document they hold, see the notes), which measures
/// creation, not cold start. Each server gets the bytes it would have written
/// itself: the document saved whole (`Automerge::save`), as one snapshot.
pub fn cold_start(kind: Kind, documents: usize, data_dir: &std::path::Path) -> Result<ColdRow> {
    let filled = Instant::now();
    write_on_disk(kind, documents, data_dir).with_context(|| format!("writing {documents} documents for {}", kind.label()))?;
    eprintln!("  {:<28} {documents} docs written to disk in {:.1} s", kind.label(), filled.elapsed().as_secs_f64());
    let server = Server::start(kind, data_dir, "127.0.0.1:0")?;
    let start_ms = server.start_time.as_secs_f64() * 1e3;
    let rss_mib = server.rss_bytes()? as f64 / (1 << 20) as f64;
    let first = runtime_run(first_sync(&server.url, doc_id(3, documents / 2)));
    let first_sync_ms = first.with_context(|| format!("first sync against {}:\n{}", kind.label(), server.log_tail()))?;
    server.stop()?;
    eprintln!("  {:<28} {documents} docs: start {start_ms:.0} ms, first sync {first_sync_ms:.1} ms, RSS {rss_mib:.0} MiB", kind.label());
    Ok(ColdRow { documents, start_ms, first_sync_ms, rss_mib })
}

/// The cold-start documents, each as its writer would have made it.
fn cold_document(n: usize) -> Result<(DocumentId, Automerge)> {
    Ok((doc_id(3, n), Writer::new(doc_id(3, n), n)?.doc))
}

fn write_on_disk(kind: Kind, documents: usize, data_dir: &std::path::Path) -> Result<()> {
    match kind {
        Kind::Konsens | Kind::KonsensNoGroup | Kind::KonsensNoCoalesce => {
            // What the server's engine writes for a new document: one snapshot chunk.
            let store = konsens_store::ChunkStore::open(data_dir)?;
            for n in 0..documents {
                let (id, doc) = cold_document(n)?;
                store.write(&id, &konsens_sync::StorageWrite::Snapshot(doc.save()))?;
            }
            store.flush()?;
        }
        Kind::Stock | Kind::Samod => {
            // automerge-repo-storage-nodefs and samod's TokioFilesystemStorage
            // share one layout: the key [documentId, "snapshot", name] is the
            // file DIR/<first two characters of the id>/<rest of the id>/snapshot/<name>.
            // automerge-repo names a snapshot by the SHA-256 (hex) of its heads'
            // hex strings joined; both load every file under snapshot/ whatever its name.
            for n in 0..documents {
                let (id, doc) = cold_document(n)?;
                let id = id.to_string();
                let (first, rest) = id.split_at(2);
                let dir = data_dir.join(first).join(rest).join("snapshot");
                std::fs::create_dir_all(&dir)?;
                std::fs::write(dir.join(heads_hash(&doc.get_heads())), doc.save())?;
            }
        }
    }
    Ok(())
}

/// automerge-repo's `headsHash`: SHA-256 over the heads' hex strings, in hex.
fn heads_hash(heads: &[ChangeHash]) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    for h in heads {
        hasher.update(h.to_string().as_bytes());
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Connect, ask for a document we do not have, wait for its content.
async fn first_sync(url: &str, id: DocumentId) -> Result<f64> {
    let started = Instant::now();
    let (mut tx, mut rx) = wire::connect(url, "cold-reader").await?;
    let mut light = LightSync::default();
    tx.request(id, light.generate().context("first")?.encode()).await?;
    loop {
        match tokio::time::timeout(crate::peer::PATIENCE, rx.next()).await.context("no answer")?? {
            None => bail!("server closed the connection"),
            Some(Incoming::Sync { data, .. }) => {
                light.receive(sync::Message::decode(&data)?);
                if !light.heads().is_empty() {
                    return Ok(started.elapsed().as_secs_f64() * 1e3);
                }
                if let Some(m) = light.generate() {
                    tx.sync(id, m.encode()).await?;
                }
            }
            Some(Incoming::Unavailable { .. }) => bail!("the server lost the document"),
            Some(Incoming::Other(_)) => {}
        }
    }
}

// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct IdleRow {
    pub connections: usize,
    pub rss_before_mib: f64,
    pub rss_after_mib: f64,
    pub kib_per_connection: f64,
}

/// Open `connections` WebSockets that complete the handshake and then stay idle.
pub fn idle(kind: Kind, connections: usize, data_dir: &std::path::Path) -> Result<IdleRow> {
    let server = Server::start(kind, data_dir, "127.0.0.1:0")?;
    let before = server.rss_bytes()?;
    let url = server.url.clone();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    let after = local.block_on(&runtime, async {
        let mut open = Vec::with_capacity(connections);
        // A few handshakes at a time; all of them stay open until measured.
        for chunk in (0..connections).collect::<Vec<_>>().chunks(64) {
            let mut batch = Vec::new();
            for &n in chunk {
                let url = url.clone();
                batch.push(tokio::task::spawn_local(async move { wire::connect(&url, &format!("idle-{n}")).await }));
            }
            for b in batch {
                open.push(b.await??);
            }
        }
        // Let the server settle its buffers, then read its memory.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = server.rss_bytes()?;
        drop(open);
        Ok::<_, anyhow::Error>(after)
    });
    let after = after.with_context(|| format!("idle connections against {}:\n{}", kind.label(), server.log_tail()))?;
    drop(runtime);
    server.stop()?;
    let row = IdleRow {
        connections,
        rss_before_mib: before as f64 / (1 << 20) as f64,
        rss_after_mib: after as f64 / (1 << 20) as f64,
        kib_per_connection: (after.saturating_sub(before)) as f64 / 1024.0 / connections as f64,
    };
    eprintln!("  {:<28} {connections} connections: {:.1} KiB each", kind.label(), row.kib_per_connection);
    Ok(row)
}
