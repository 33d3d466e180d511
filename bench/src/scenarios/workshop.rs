//! *Workshop*: one recommendation whose text already holds a real concurrent
//! editing history (friendsforever), 40 participants connected, k of them
//! typing 5 keystrokes/s each. Latency is keystroke → every other participant
//! (the time the typist made the change → the time a watcher first holds its
//! hash); server CPU comes from /proc and does not depend on the driver.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ChangeHash, ObjId, ReadDoc};
use konsens_sync::DocumentId;
use tokio::sync::watch;

use crate::light::LightSync;
use crate::peer;
use crate::servers::{Kind, Server};
use crate::stats::{own_cpu_seconds, quantile};
use crate::wire::{self, Incoming};

/// A person typing steadily: the workshop's (human) rate.
pub const RATE_PER_TYPIST: f64 = 5.0;
pub const SUSTAINED_P99_MS: f64 = 250.0;

#[derive(Debug, Clone)]
pub struct Config {
    pub participants: usize,
    pub ks: Vec<usize>,
    pub typing: Duration,
    pub drain: Duration,
}

impl Config {
    /// Each k at the human rate, for `typing`.
    pub fn plans(&self) -> Vec<Plan> {
        self.ks
            .iter()
            .map(|&k| Plan { k, room_rate: k as f64 * RATE_PER_TYPIST, typing: self.typing })
            .collect()
    }
}

/// One measured step: k typists sharing a room-wide rate, for a while.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    pub k: usize,
    /// Keystrokes per second of all typists together, split evenly.
    pub room_rate: f64,
    pub typing: Duration,
}

impl Plan {
    /// The time between two keystrokes of one typist.
    pub fn period(&self) -> Duration {
        Duration::from_secs_f64(self.k as f64 / self.room_rate)
    }
}

#[derive(Debug, Clone)]
pub struct Row {
    pub k: usize,
    /// Keystrokes per second asked of all typists together.
    pub room_rate: f64,
    pub keystrokes: usize,
    /// Latency samples that arrived / expected (keystrokes × other participants).
    pub delivered: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub server_cpu_per_1000: f64,
    /// CPU one real Automerge participant spent per keystroke it received.
    pub participant_ms_per_keystroke: Option<f64>,
    /// Share of one core the driver used while typing.
    pub driver_load: f64,
    pub skipped: bool,
}

impl Row {
    pub fn sustained(&self) -> bool {
        !self.skipped && self.delivered >= 0.999 && self.p99_ms.is_some_and(|p| p < SUSTAINED_P99_MS)
    }
}

#[derive(Debug, Default)]
struct Shared {
    /// Keystrokes of the current step: when made, by whom.
    typed: HashMap<ChangeHash, (Instant, usize)>,
    latencies_ms: Vec<f64>,
    probe_busy: Duration,
    probe_keystrokes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Step {
    id: usize,
    typists: usize,
    /// Between two keystrokes of one typist.
    period: Duration,
}

fn document_id() -> DocumentId {
    DocumentId::from_bytes(*b"konsens-workshop")
}

/// Where typist `i` of `k` types: its own paragraph, spread over the text.
fn typing_position(i: usize, k: usize, base_len: usize) -> usize {
    (i + 1) * base_len / (k + 1)
}

pub fn run_server(kind: Kind, base: &Automerge, config: &Config, data_dir: &std::path::Path) -> Result<Vec<Row>> {
    run_plans(kind, base, config.participants, &config.plans(), config.drain, data_dir)
}

/// The workshop with the steps given one by one (k, rate, duration), for
/// scenarios that choose the rate per step.
pub fn run_plans(kind: Kind, base: &Automerge, participants: usize, plans: &[Plan], drain: Duration, data_dir: &std::path::Path) -> Result<Vec<Row>> {
    let server = Server::start(kind, data_dir, "127.0.0.1:0")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    let rows = local.block_on(&runtime, drive(&server, base, participants, plans, drain));
    let rows = rows.with_context(|| format!("workshop against {}:\n{}", kind.label(), server.log_tail()))?;
    server.stop()?;
    Ok(rows)
}

async fn drive(server: &Server, base: &Automerge, participants: usize, plans: &[Plan], drain: Duration) -> Result<Vec<Row>> {
    let doc_id = document_id();
    peer::seed(&server.url, "workshop-seed", doc_id, base).await?;
    let text = crate::trace::text_obj(base)?;
    let base_len = base.length(&text);

    let shared = Rc::new(RefCell::new(Shared::default()));
    let human_period = Duration::from_secs_f64(1.0 / RATE_PER_TYPIST);
    let (step_tx, step_rx) = watch::channel(Step { id: 0, typists: 0, period: human_period });
    let (synced_tx, mut synced_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let mut tasks = Vec::new();
    for i in 0..participants {
        let (tx, rx) = wire::connect(&server.url, &format!("participant-{i}")).await?;
        // The last participant is a real Automerge replica: it tells what a
        // participant pays per keystroke, and keeps the light ones honest.
        let probe = i + 1 == participants;
        let participant = Participant {
            index: i,
            doc_id,
            light: LightSync::holding(base),
            real: probe.then(|| (base.fork(), sync::State::new())),
            author: None,
            base: base.clone(),
            text: text.clone(),
            base_len,
            shared: shared.clone(),
            synced: synced_tx.clone(),
        };
        let steps = step_rx.clone();
        tasks.push(tokio::task::spawn_local(participant.run(tx, rx, steps)));
    }
    // Everybody has exchanged heads with the server before anyone types.
    wait_synced(&mut synced_rx, participants).await.context("initial sync of the participants")?;

    // Warm-up, not measured: the first keystrokes after the initial sync take
    // every participant's sync state from the full first exchange to the
    // steady one; no step should pay for that.
    step_tx.send(Step { id: 999, typists: 1, period: human_period })?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    step_tx.send(Step { id: 999, typists: 0, period: human_period })?;
    let _ = tokio::time::timeout(Duration::from_secs(60), wait_synced(&mut synced_rx, participants)).await;

    let mut rows = Vec::new();
    // The room rate at which a step lost keystrokes or fell far behind.
    let mut saturated_at: Option<f64> = None;
    for (n, plan) in plans.iter().enumerate() {
        let k = plan.k;
        if saturated_at.is_some_and(|r| plan.room_rate >= r) || k > participants {
            rows.push(Row {
                k,
                room_rate: plan.room_rate,
                keystrokes: 0,
                delivered: 0.0,
                p50_ms: None,
                p99_ms: None,
                server_cpu_per_1000: f64::NAN,
                participant_ms_per_keystroke: None,
                driver_load: 0.0,
                skipped: true,
            });
            continue;
        }
        settle(server).await?;
        {
            let mut s = shared.borrow_mut();
            s.typed.clear();
            s.latencies_ms.clear();
            s.probe_busy = Duration::ZERO;
            s.probe_keystrokes = 0;
        }
        let cpu0 = server.cpu_seconds()?;
        let own0 = own_cpu_seconds()?;
        let t0 = Instant::now();
        step_tx.send(Step { id: n + 1, typists: k, period: plan.period() })?;
        tokio::time::sleep(plan.typing).await;
        step_tx.send(Step { id: n + 1, typists: 0, period: plan.period() })?;
        let typing_wall = t0.elapsed().as_secs_f64();
        let own_load = (own_cpu_seconds()? - own0) / typing_wall;
        // Wait for every keystroke to reach every other participant, or give up.
        let expected = |s: &Shared| s.typed.len() * (participants - 1);
        let drain_deadline = Instant::now() + drain;
        while Instant::now() < drain_deadline {
            let done = {
                let s = shared.borrow();
                s.latencies_ms.len() >= expected(&s)
            };
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let cpu = server.cpu_seconds()? - cpu0;
        let mut s = shared.borrow_mut();
        let keystrokes = s.typed.len();
        let expected = expected(&s);
        let got = s.latencies_ms.len();
        let mut samples = std::mem::take(&mut s.latencies_ms);
        samples.extend(std::iter::repeat_n(f64::INFINITY, expected.saturating_sub(got)));
        let row = Row {
            k,
            room_rate: plan.room_rate,
            keystrokes,
            delivered: if expected == 0 { 0.0 } else { got as f64 / expected as f64 },
            p50_ms: quantile(&mut samples, 0.5),
            p99_ms: quantile(&mut samples, 0.99),
            server_cpu_per_1000: cpu / keystrokes.max(1) as f64 * 1000.0,
            participant_ms_per_keystroke: (s.probe_keystrokes > 0)
                .then(|| s.probe_busy.as_secs_f64() * 1e3 / s.probe_keystrokes as f64),
            driver_load: own_load,
            skipped: false,
        };
        drop(s);
        eprintln!(
            "  {:<28} k={k:>2} {:.2}/s: {keystrokes} keystrokes, delivered {:.1}%, p50 {}, p99 {}, server {:.0} ms CPU/1000, driver {:.0}%",
            server.kind.label(),
            plan.room_rate,
            row.delivered * 100.0,
            crate::stats::ms(row.p50_ms),
            crate::stats::ms(row.p99_ms),
            row.server_cpu_per_1000 * 1e3,
            own_load * 100.0
        );
        // A server that lost keystrokes or fell far behind has a backlog that
        // would pollute every step at a rate as high or higher; those are
        // reported as not run.
        let saturated = row.delivered < 0.999 || row.p99_ms.is_some_and(|p| p > 10.0 * SUSTAINED_P99_MS);
        if saturated {
            saturated_at = Some(saturated_at.map_or(plan.room_rate, |r| r.min(plan.room_rate)));
        }
        rows.push(row);
        // Quiesce: everyone back in sync before the next step.
        if !saturated {
            step_tx.send(Step { id: 1000 + n, typists: 0, period: plan.period() })?;
            let _ = tokio::time::timeout(Duration::from_secs(30), wait_synced(&mut synced_rx, participants)).await;
        }
    }
    for t in tasks {
        t.abort();
    }
    Ok(rows)
}

/// Wait until the server has worked off what earlier steps left it (its CPU
/// use over a short window drops below 10 %), so steps do not pay for each
/// other. Gives up after two minutes and measures anyway.
pub async fn settle(server: &Server) -> Result<()> {
    let window = Duration::from_millis(300);
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let before = server.cpu_seconds()?;
        tokio::time::sleep(window).await;
        if server.cpu_seconds()? - before < 0.1 * window.as_secs_f64() {
            break;
        }
    }
    Ok(())
}

/// Wait until `n` participants report being in sync with the server.
async fn wait_synced(rx: &mut tokio::sync::mpsc::UnboundedReceiver<usize>, n: usize) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    tokio::time::timeout(peer::PATIENCE, async {
        while seen.len() < n {
            match rx.recv().await {
                Some(i) => {
                    seen.insert(i);
                }
                None => break,
            }
        }
    })
    .await
    .context("participants did not get in sync")?;
    while rx.try_recv().is_ok() {}
    Ok(())
}

struct Participant {
    index: usize,
    doc_id: DocumentId,
    light: LightSync,
    real: Option<(Automerge, sync::State)>,
    /// The typist's own replica: the base plus its own keystrokes only, so
    /// making a keystroke never costs applying everybody else's.
    author: Option<Automerge>,
    base: Automerge,
    text: ObjId,
    base_len: usize,
    shared: Rc<RefCell<Shared>>,
    synced: tokio::sync::mpsc::UnboundedSender<usize>,
}

impl Participant {
    async fn run(mut self, mut tx: wire::Sender, mut rx: wire::Receiver, mut steps: watch::Receiver<Step>) -> Result<()> {
        // Open the document like a client that already has it.
        self.send_pending(&mut tx).await?;
        let mut step = *steps.borrow();
        let mut ticker = tokio::time::interval(step.period);
        let mut typed_in_step = 0usize;
        let mut report_sync = true;
        loop {
            let typing = self.index < step.typists;
            tokio::select! {
                incoming = rx.next() => {
                    match incoming? {
                        None => anyhow::bail!("server closed participant {}", self.index),
                        Some(Incoming::Sync { document_id, data }) if document_id == self.doc_id => {
                            self.receive(&data)?;
                            self.send_pending(&mut tx).await?;
                            if report_sync && self.in_sync() {
                                report_sync = false;
                                let _ = self.synced.send(self.index);
                            }
                        }
                        Some(_) => {}
                    }
                }
                changed = steps.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    let next = *steps.borrow();
                    if next.id != step.id {
                        typed_in_step = 0;
                    }
                    if next.typists > 0 && self.index < next.typists {
                        // Stagger the typists over one period so keystrokes do not arrive in bursts.
                        let offset = next.period.mul_f64(self.index as f64 / next.typists as f64);
                        ticker = tokio::time::interval_at(tokio::time::Instant::now() + offset, next.period);
                    }
                    step = next;
                    report_sync = true;
                    if self.in_sync() {
                        report_sync = false;
                        let _ = self.synced.send(self.index);
                    }
                }
                _ = ticker.tick(), if typing => {
                    self.keystroke(step.typists, typed_in_step)?;
                    typed_in_step += 1;
                    self.send_pending(&mut tx).await?;
                }
            }
        }
    }

    fn in_sync(&self) -> bool {
        match &self.real {
            Some((doc, state)) => state.their_heads.as_ref() == Some(&doc.get_heads()),
            None => self.light.in_sync(),
        }
    }

    fn keystroke(&mut self, k: usize, n: usize) -> Result<()> {
        let author = self.author.get_or_insert_with(|| {
            self.base.fork().with_actor(ActorId::from(format!("typist-{}", self.index).into_bytes()))
        });
        let pos = (typing_position(self.index, k, self.base_len) + n).min(author.length(&self.text));
        let letter = ["k", "o", "n", "s", "e", "n", "s", " "][n % 8];
        let mut t = author.transaction();
        t.splice_text(&self.text, pos, 0, letter)?;
        t.commit();
        let change = author.get_last_local_change().context("no change")?;
        self.shared.borrow_mut().typed.insert(change.hash(), (Instant::now(), self.index));
        self.light.local_change(&change);
        if let Some((doc, _)) = &mut self.real {
            doc.apply_changes([change])?;
        }
        Ok(())
    }

    fn receive(&mut self, data: &[u8]) -> Result<()> {
        let message = sync::Message::decode(data)?;
        let new: Vec<ChangeHash> = match &mut self.real {
            Some((doc, state)) => {
                let started = Instant::now();
                let before = doc.get_heads();
                doc.receive_sync_message(state, message)?;
                let new = if doc.get_heads() != before {
                    doc.get_changes(&before).iter().map(|c| c.hash()).collect()
                } else {
                    Vec::new()
                };
                let mut s = self.shared.borrow_mut();
                s.probe_busy += started.elapsed();
                new
            }
            None => self.light.receive(message),
        };
        if new.is_empty() {
            return Ok(());
        }
        let now = Instant::now();
        let mut s = self.shared.borrow_mut();
        let mut keystrokes = 0;
        for h in new {
            if let Some(&(at, by)) = s.typed.get(&h)
                && by != self.index
            {
                keystrokes += 1;
                s.latencies_ms.push((now - at).as_secs_f64() * 1e3);
            }
        }
        if self.real.is_some() {
            s.probe_keystrokes += keystrokes;
        }
        Ok(())
    }

    async fn send_pending(&mut self, tx: &mut wire::Sender) -> Result<()> {
        let message = match &mut self.real {
            Some((doc, state)) => {
                let started = Instant::now();
                let m = doc.generate_sync_message(state);
                self.shared.borrow_mut().probe_busy += started.elapsed();
                m
            }
            None => self.light.generate(),
        };
        if let Some(m) = message {
            tx.sync(self.doc_id, m.encode()).await?;
        }
        Ok(())
    }
}

/// The limit: the same work in-process on bare Automerge, no network, no disk.
/// Per round (one typing period), the server replica applies the round's
/// keystrokes in one load, lets each typist's sync state see its message,
/// generates one message per participant and takes each one's acknowledgement.
/// Only the server replica's work is timed; the participants are light peers.
pub fn run_limit(base: &Automerge, config: &Config) -> Result<Vec<Row>> {
    let text = crate::trace::text_obj(base)?;
    let base_len = base.length(&text);
    let mut rows = Vec::new();
    for &k in &config.ks {
        let mut server = base.fork();
        let mut states: Vec<sync::State> = (0..config.participants).map(|_| sync::State::new()).collect();
        let mut peers: Vec<LightSync> = (0..config.participants).map(|_| LightSync::holding(base)).collect();
        let mut authors: Vec<Automerge> = (0..k)
            .map(|i| base.fork().with_actor(ActorId::from(format!("typist-{i}").into_bytes())))
            .collect();
        // Initial exchange, untimed.
        for (peer, state) in peers.iter_mut().zip(states.iter_mut()) {
            for _ in 0..4 {
                if let Some(m) = peer.generate() {
                    server.receive_sync_message(state, m)?;
                }
                if let Some(m) = server.generate_sync_message(state) {
                    peer.receive(m);
                }
            }
        }
        let rounds = ((config.typing.as_secs_f64() * RATE_PER_TYPIST) as usize).max(3);
        let mut busy = Duration::ZERO;
        let mut keystrokes = 0;
        for n in 0..rounds {
            let mut messages = Vec::new();
            for (i, author) in authors.iter_mut().enumerate() {
                let pos = (typing_position(i, k, base_len) + n).min(author.length(&text));
                let mut t = author.transaction();
                t.splice_text(&text, pos, 0, "x")?;
                t.commit();
                let change = author.get_last_local_change().context("no change")?;
                peers[i].local_change(&change);
                messages.push(peers[i].generate().context("typist has a message")?);
                keystrokes += 1;
            }
            let started = Instant::now();
            let mut all = Vec::new();
            for m in &messages {
                for c in m.changes.iter() {
                    all.extend_from_slice(c);
                }
            }
            server.load_incremental(&all)?;
            for (i, m) in messages.into_iter().enumerate() {
                server.receive_sync_message(&mut states[i], m)?;
            }
            let mut out = Vec::new();
            for (i, state) in states.iter_mut().enumerate() {
                if let Some(m) = server.generate_sync_message(state) {
                    out.push((i, m.encode()));
                }
            }
            busy += started.elapsed();
            let mut acks = Vec::new();
            for (i, bytes) in out {
                peers[i].receive(sync::Message::decode(&bytes)?);
                if let Some(m) = peers[i].generate() {
                    acks.push((i, m.encode()));
                }
            }
            let started = Instant::now();
            for (i, bytes) in acks {
                server.receive_sync_message(&mut states[i], sync::Message::decode(&bytes)?)?;
            }
            busy += started.elapsed();
        }
        rows.push(Row {
            k,
            room_rate: k as f64 * RATE_PER_TYPIST,
            keystrokes,
            delivered: 1.0,
            p50_ms: None,
            p99_ms: None,
            server_cpu_per_1000: busy.as_secs_f64() / keystrokes as f64 * 1000.0,
            participant_ms_per_keystroke: None,
            driver_load: 1.0,
            skipped: false,
        });
        eprintln!(
            "  bare automerge k={k:>2}: {:.1} ms CPU per 1000 keystrokes",
            busy.as_secs_f64() / keystrokes as f64 * 1e6
        );
    }
    Ok(rows)
}
