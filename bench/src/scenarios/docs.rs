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
use konsens_protocol::DocumentId;

use crate::light::LightSync;
use crate::servers::{Kind, Server};
use crate::stats::quantile;
use crate::wire::{self, Incoming};

fn doc_id(scenario: u8, n: usize) -> DocumentId {
    let mut bytes = [0u8; 16];
    bytes[0] = scenario;
    bytes[8..16].copy_from_slice(&(n as u64).to_be_bytes());
    DocumentId::from_bytes(bytes)
}

/// A writer: its own small replica and the light sync state for it.
struct Writer {
    id: DocumentId,
    doc: Automerge,
    light: LightSync,
    edits: u64,
}

impl Writer {
    fn new(id: DocumentId, n: usize) -> Result<Self> {
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

    fn edit(&mut self) -> Result<ChangeHash> {
        self.edits += 1;
        let mut t = self.doc.transaction();
        t.put(ROOT, "edits", self.edits)?;
        t.commit();
        let change = self.doc.get_last_local_change().context("no change")?;
        self.light.local_change(&change);
        Ok(change.hash())
    }

    async fn flush(&mut self, tx: &mut wire::Sender) -> Result<()> {
        if let Some(m) = self.light.generate() {
            tx.sync(self.id, m.encode()).await?;
        }
        Ok(())
    }

    fn receive(&mut self, data: &[u8]) -> Result<()> {
        self.light.receive(sync::Message::decode(data)?);
        Ok(())
    }
}

/// Create a document on the server and wait until it acknowledges it.
async fn create(tx: &mut wire::Sender, rx: &mut wire::Receiver, w: &mut Writer) -> Result<()> {
    w.flush(tx).await?;
    while !w.light.in_sync() {
        match tokio::time::timeout(crate::peer::PATIENCE, rx.next()).await.context("no acknowledgement")?? {
            None => bail!("server closed while creating a document"),
            Some(Incoming::Sync { data, .. }) => {
                w.receive(&data)?;
                w.flush(tx).await?;
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn runtime_run<T>(fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
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

async fn many_drive(server: &Server, documents: usize, typing: Duration) -> Result<ManyRow> {
    let shared = Rc::new(RefCell::new(ManyShared::default()));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for n in 0..documents {
        let id = doc_id(1, n);
        let shared_w = shared.clone();
        let shared_r = shared.clone();
        let url = server.url.clone();
        let ready = ready_tx.clone();
        let mut go = go_rx.clone();
        tasks.push(tokio::task::spawn_local(async move {
            let (mut tx, mut rx) = wire::connect(&url, &format!("writer-{n}")).await?;
            let mut w = Writer::new(id, n)?;
            create(&mut tx, &mut rx, &mut w).await?;
            // The reader opens the document like a client that has never seen it.
            let (mut rtx, mut rrx) = wire::connect(&url, &format!("reader-{n}")).await?;
            let mut reader = LightSync::default();
            let first = reader.generate().context("first")?;
            rtx.request(id, first.encode()).await?;
            let reader_task = tokio::task::spawn_local(async move {
                while let Some(incoming) = rrx.next().await? {
                    if let Incoming::Sync { data, .. } = incoming {
                        let new = reader.receive(sync::Message::decode(&data)?);
                        let now = Instant::now();
                        let mut s = shared_r.borrow_mut();
                        for h in new {
                            if let Some(at) = s.sent.get(&h).copied() {
                                s.latencies.push((now - at).as_secs_f64() * 1e3);
                            }
                        }
                        drop(s);
                        if let Some(m) = reader.generate() {
                            rtx.sync(id, m.encode()).await?;
                        }
                    }
                }
                Ok::<_, anyhow::Error>(())
            });
            let _ = ready.send(());
            while !*go.borrow() {
                go.changed().await?;
            }
            // 2 edits/s, each writer at its own phase.
            let period = Duration::from_millis(500);
            let offset = period.mul_f64((n % 97) as f64 / 97.0);
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {
                        if !shared_w.borrow().typing {
                            break;
                        }
                        let h = w.edit()?;
                        shared_w.borrow_mut().sent.insert(h, Instant::now());
                        w.flush(&mut tx).await?;
                    }
                    incoming = rx.next() => match incoming? {
                        None => bail!("server closed writer {n}"),
                        Some(Incoming::Sync { data, .. }) => {
                            w.receive(&data)?;
                            w.flush(&mut tx).await?;
                        }
                        Some(_) => {}
                    }
                }
            }
            // Keep answering until the driver is done with everyone.
            loop {
                match rx.next().await? {
                    None => break,
                    Some(Incoming::Sync { data, .. }) => {
                        w.receive(&data)?;
                        w.flush(&mut tx).await?;
                    }
                    Some(_) => {}
                }
            }
            reader_task.abort();
            Ok::<_, anyhow::Error>(())
        }));
    }
    let mut ready = 0;
    while ready < documents {
        tokio::time::timeout(crate::peer::PATIENCE, ready_rx.recv()).await.context("documents not ready")?;
        ready += 1;
    }
    let cpu0 = server.cpu_seconds()?;
    let own0 = crate::stats::own_cpu_seconds()?;
    shared.borrow_mut().typing = true;
    go_tx.send(true)?;
    tokio::time::sleep(typing).await;
    shared.borrow_mut().typing = false;
    let driver_load = (crate::stats::own_cpu_seconds()? - own0) / typing.as_secs_f64();
    let rss = server.rss_bytes()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        {
            let s = shared.borrow();
            if s.latencies.len() >= s.sent.len() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu = server.cpu_seconds()? - cpu0;
    let mut s = shared.borrow_mut();
    let edits = s.sent.len();
    let got = s.latencies.len();
    let mut samples = std::mem::take(&mut s.latencies);
    samples.extend(std::iter::repeat_n(f64::INFINITY, edits.saturating_sub(got)));
    for t in tasks {
        t.abort();
    }
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

// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct DurableRow {
    pub writers: usize,
    pub acks: usize,
    pub per_second: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// `writers` documents, each with a writer that makes a change, waits for
/// the server to acknowledge it (its heads include the change), and repeats.
pub fn durable(kind: Kind, writers: usize, duration: Duration, data_dir: &std::path::Path) -> Result<DurableRow> {
    let server = Server::start(kind, data_dir, "127.0.0.1:0")?;
    let result = runtime_run(durable_drive(&server, writers, duration));
    let row = result.with_context(|| format!("durable acknowledgements against {}:\n{}", kind.label(), server.log_tail()))?;
    server.stop()?;
    eprintln!(
        "  {:<28} {} writers: {:.0} acks/s, p50 {}, p99 {}",
        kind.label(),
        writers,
        row.per_second,
        crate::stats::ms(row.p50_ms),
        crate::stats::ms(row.p99_ms)
    );
    Ok(row)
}

async fn durable_drive(server: &Server, writers: usize, duration: Duration) -> Result<DurableRow> {
    let latencies = Rc::new(RefCell::new(Vec::<f64>::new()));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for n in 0..writers {
        let url = server.url.clone();
        let ready = ready_tx.clone();
        let mut go = go_rx.clone();
        let latencies = latencies.clone();
        tasks.push(tokio::task::spawn_local(async move {
            let (mut tx, mut rx) = wire::connect(&url, &format!("durable-{n}")).await?;
            let mut w = Writer::new(doc_id(2, n), n)?;
            create(&mut tx, &mut rx, &mut w).await?;
            let _ = ready.send(());
            while !*go.borrow() {
                go.changed().await?;
            }
            loop {
                if !*go.borrow() {
                    return Ok::<_, anyhow::Error>(());
                }
                w.edit()?;
                let at = Instant::now();
                w.flush(&mut tx).await?;
                while !w.light.in_sync() {
                    match rx.next().await? {
                        None => bail!("server closed writer {n}"),
                        Some(Incoming::Sync { data, .. }) => {
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
        }));
    }
    for _ in 0..writers {
        tokio::time::timeout(crate::peer::PATIENCE, ready_rx.recv()).await.context("writers not ready")?;
    }
    let started = Instant::now();
    go_tx.send(true)?;
    tokio::time::sleep(duration).await;
    go_tx.send(false)?;
    let elapsed = started.elapsed().as_secs_f64();
    let mut samples = std::mem::take(&mut *latencies.borrow_mut());
    for t in tasks {
        t.abort();
    }
    Ok(DurableRow {
        writers,
        acks: samples.len(),
        per_second: samples.len() as f64 / elapsed,
        p50_ms: quantile(&mut samples, 0.5),
        p99_ms: quantile(&mut samples, 0.99),
    })
}

// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct ColdRow {
    pub documents: usize,
    pub start_ms: f64,
    pub first_sync_ms: f64,
    pub rss_mib: f64,
}

/// Fill a server with `documents` documents, stop it, start it again on the
/// same data, and time the start and the first sync of one document.
pub fn cold_start(kind: Kind, documents: usize, data_dir: &std::path::Path) -> Result<ColdRow> {
    let server = Server::start(kind, data_dir, "127.0.0.1:0")?;
    let filled = runtime_run(fill(&server.url, documents));
    filled.with_context(|| format!("filling {}:\n{}", kind.label(), server.log_tail()))?;
    server.stop()?;
    let server = Server::start(kind, data_dir, "127.0.0.1:0")?;
    let start_ms = server.start_time.as_secs_f64() * 1e3;
    let rss_mib = server.rss_bytes()? as f64 / (1 << 20) as f64;
    let first = runtime_run(first_sync(&server.url, doc_id(3, documents / 2)));
    let first_sync_ms = first.with_context(|| format!("first sync against {}:\n{}", kind.label(), server.log_tail()))?;
    server.stop()?;
    eprintln!("  {:<28} {documents} docs: start {start_ms:.0} ms, first sync {first_sync_ms:.1} ms, RSS {rss_mib:.0} MiB", kind.label());
    Ok(ColdRow { documents, start_ms, first_sync_ms, rss_mib })
}

/// Create documents over a few connections, each creating one after another.
async fn fill(url: &str, documents: usize) -> Result<()> {
    const CONNECTIONS: usize = 32;
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let url = url.to_owned();
        tasks.push(tokio::task::spawn_local(async move {
            let (mut tx, mut rx) = wire::connect(&url, &format!("filler-{c}")).await?;
            for n in (c..documents).step_by(CONNECTIONS) {
                let mut w = Writer::new(doc_id(3, n), n)?;
                create(&mut tx, &mut rx, &mut w).await?;
            }
            tx.close().await;
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
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
            Some(Incoming::Other) => {}
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
