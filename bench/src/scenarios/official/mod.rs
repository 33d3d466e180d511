//! *Workshop with official clients*: the workshop, but every participant is an
//! official automerge-repo 2.5.6 client (a `Repo` in Node, its own WebSocket
//! and peer id, no storage), and the recommendation's text holds 20,000 (or
//! 200,000) single-keystroke changes. Latency is measured in the Node
//! processes (keystroke made → a watcher's `change` event carrying its hash);
//! server CPU comes from /proc.
//!
//! One driver core cannot keep 40 official clients current at the human rate
//! (each costs ~10 ms of CPU per keystroke it receives), and lagging clients
//! cost a server more than current ones. So each k runs at two rates: the
//! human one, and one the driver sustains, chosen from the driver's own cost
//! per keystroke measured just before ([`calibrate`]). A row is *valid* when
//! every keystroke reached every participant and the driver stayed under
//! [`DRIVER_LOAD_LIMIT`].

mod frames;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ReadDoc};
use konsens_sync::DocumentId;

pub use self::frames::{PATTERN_TOLERANCE, Pattern, record_both};
use crate::official::Clients;
use crate::scenarios::workshop::{self, RATE_PER_TYPIST, Row, settle};
use crate::servers::{Kind, Server};
use crate::stats::quantile;

#[derive(Debug, Clone)]
pub struct Config {
    pub participants: usize,
    pub ks: Vec<usize>,
    /// Single-keystroke changes in the recommendation's text, one run each.
    pub sizes: Vec<usize>,
    /// Keystrokes per second for the whole room, split evenly over the
    /// typists, from the command line; `None`: the human rate and a rate the
    /// driver sustains, each k both.
    pub rate: Option<f64>,
    /// Keystrokes a row types at least (all typists together), so its
    /// per-keystroke figures rest on enough samples.
    pub keystrokes: usize,
    /// How long to wait after the typing for every keystroke to arrive.
    pub drain: Duration,
    /// Node processes hosting the participants (all on the driver's core).
    pub processes: usize,
}

/// The share of its core the driver is meant to use at the sustainable rate:
/// below the limit, so the rate holds when a step costs a little more than
/// the calibration did.
pub const SUSTAINABLE_LOAD: f64 = 0.6;
/// The most of its core the driver may use for a row to count: above it,
/// the clients' own event loops delay what they receive.
pub const DRIVER_LOAD_LIMIT: f64 = 0.7;
/// Keystrokes of the calibration per typist of the row (each typed alone,
/// then waited for).
pub const CALIBRATION_ROUNDS: usize = 3;
/// Bound on bringing every client up to date between steps (not measured).
const QUIESCE: Duration = Duration::from_secs(300);

/// Where a row's rate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pace {
    /// What the driver sustains, from its measured cost per keystroke.
    Sustainable,
    /// Given with `--official-rate`.
    Given,
    /// 5 keystrokes/s per typist.
    Human,
}

impl Pace {
    pub fn label(self) -> &'static str {
        match self {
            Pace::Sustainable => "sustainable",
            Pace::Given => "given",
            Pace::Human => "human",
        }
    }
}

/// A rate a row is typed at: keystrokes per second of the whole room.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub pace: Pace,
    pub room: f64,
}

/// The rates one k runs at, and the driver's cost they were chosen from.
#[derive(Debug, Clone)]
pub struct Choice {
    /// The official clients' CPU (all Node processes) per keystroke while
    /// every client is current; `None` when the rate was given.
    pub node_ms_per_keystroke: Option<f64>,
    pub rates: Vec<Rate>,
}

/// The rates per k for one document size: chosen during the first server's
/// run, then the same for every server and for the light peers, so rows
/// compare like with like.
#[derive(Debug, Clone, Default)]
pub struct Rates {
    pub by_k: BTreeMap<usize, Choice>,
}

impl Rates {
    /// The light peers' steps: the official rows' k and rates, typing as
    /// many keystrokes.
    pub fn light_plans(&self, config: &Config) -> Vec<workshop::Plan> {
        self.by_k
            .iter()
            .flat_map(|(&k, choice)| {
                choice.rates.iter().map(move |rate| workshop::Plan {
                    k,
                    room_rate: rate.room,
                    typing: typing_time(config.keystrokes, k, rate.room),
                })
            })
            .collect()
    }
}

/// Keystrokes each of k typists types for a row of `keystrokes`.
fn per_typist(keystrokes: usize, k: usize) -> usize {
    keystrokes.div_ceil(k.max(1))
}

/// How long k typists type their share of `keystrokes` at `room_rate`.
fn typing_time(keystrokes: usize, k: usize, room_rate: f64) -> Duration {
    Duration::from_secs_f64(per_typist(keystrokes, k) as f64 * k as f64 / room_rate)
}

/// The sustainable room rate for a driver cost (CPU seconds per keystroke):
/// [`SUSTAINABLE_LOAD`] of a core, rounded down to two significant digits.
pub fn sustainable_rate(node_seconds_per_keystroke: f64) -> f64 {
    let raw = SUSTAINABLE_LOAD / node_seconds_per_keystroke.max(1e-6);
    let scale = 10f64.powf(raw.log10().floor() - 1.0);
    (raw / scale).floor() * scale
}

/// The rates for one k: the given one; or the sustainable one and the human
/// one, or the human one alone when the driver sustains it.
fn choose(k: usize, given: Option<f64>, node_seconds_per_keystroke: Option<f64>) -> Choice {
    let node_ms_per_keystroke = node_seconds_per_keystroke.map(|s| s * 1e3);
    if let Some(room) = given {
        return Choice { node_ms_per_keystroke, rates: vec![Rate { pace: Pace::Given, room }] };
    }
    let human = Rate { pace: Pace::Human, room: k as f64 * RATE_PER_TYPIST };
    let rates = match node_seconds_per_keystroke.map(sustainable_rate) {
        Some(room) if room < human.room => vec![Rate { pace: Pace::Sustainable, room }, human],
        _ => vec![human],
    };
    Choice { node_ms_per_keystroke, rates }
}

/// One measured row with official clients.
#[derive(Debug, Clone)]
pub struct OfficialRow {
    /// k, rate, keystrokes, delivery, latency, server CPU, driver load.
    pub row: Row,
    pub pace: Pace,
    /// Every keystroke reached every participant within the drain.
    pub complete: bool,
    /// The Node processes' CPU from the first keystroke until the end of
    /// the drain, per keystroke.
    pub node_ms_per_keystroke: f64,
    pub pattern: Pattern,
}

impl OfficialRow {
    /// Whether the row measures the server rather than a saturated driver.
    pub fn valid(&self) -> bool {
        self.complete && self.row.driver_load <= DRIVER_LOAD_LIMIT
    }
}

pub(crate) fn document_id() -> DocumentId {
    DocumentId::from_bytes(*b"konsens-official")
}

/// A text written one keystroke per change by one author: `n` changes after
/// the root. Built once and cached in `target/bench-cache`.
pub fn build_keystrokes(n: usize) -> Result<Automerge> {
    let cache = crate::cache_dir().join(format!("keystrokes-{n}.automerge"));
    if let Ok(bytes) = std::fs::read(&cache)
        && let Ok(doc) = Automerge::load(&bytes)
    {
        return Ok(doc);
    }
    let started = Instant::now();
    let (root, text) = crate::trace::empty_text_doc()?;
    let mut doc = root.fork().with_actor(ActorId::from(vec![0xBB; 16]));
    let words = "a recommendation written one keystroke at a time, as people type it ";
    let mut letters = words.chars().cycle();
    // Kept here rather than asked of the document per keystroke.
    let mut len = 0usize;
    let mut letter = [0u8; 4];
    for i in 0..n {
        let mut t = doc.transaction();
        // Mostly appending, now and then a correction a little way back.
        let pos = if i % 50 == 49 { len.saturating_sub(7) } else { len };
        t.splice_text(&text, pos, 0, letters.next().unwrap_or('x').encode_utf8(&mut letter))?;
        t.commit();
        len += 1;
    }
    std::fs::create_dir_all(crate::cache_dir())?;
    std::fs::write(&cache, doc.save())?;
    eprintln!("  built the {n}-keystroke text in {:.1} s (cached in {})", started.elapsed().as_secs_f64(), cache.display());
    Ok(doc)
}

/// Per k and rate: the official clients' row. The rates not yet in `rates`
/// are chosen here, from a calibration against this server.
pub fn run_server(kind: Kind, base: &Automerge, config: &Config, rates: &mut Rates, data_dir: &std::path::Path) -> Result<Vec<OfficialRow>> {
    let server = Server::start(kind, data_dir, "127.0.0.1:0")?;
    let rows = drive(&server, base, config, rates).with_context(|| format!("official workshop against {}:\n{}", kind.label(), server.log_tail()))?;
    server.stop()?;
    Ok(rows)
}

pub(crate) fn block_on<F: std::future::Future>(f: F) -> Result<F::Output> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(f))
}

fn drive(server: &Server, base: &Automerge, config: &Config, rates: &mut Rates) -> Result<Vec<OfficialRow>> {
    let doc_id = document_id();
    block_on(crate::peer::seed(&server.url, "official-seed", doc_id, base))??;
    let base_len = base.length(crate::trace::text_obj(base)?);
    let t = Instant::now();
    let max_k = config.ks.iter().copied().max().unwrap_or(1);
    let mut clients = Clients::connect(config.processes, config.participants, max_k, &server.url, &doc_id.url())?;
    eprintln!("  {:<28} {} official clients connected in {:.1} s", server.kind.label(), config.participants, t.elapsed().as_secs_f64());
    // Warm-up, not measured: every client's first keystroke exchange.
    let typed = clients.type_count(1, 5, RATE_PER_TYPIST, base_len, false)?;
    clients.wait(&typed, QUIESCE)?;

    let mut rows = Vec::new();
    for &k in &config.ks {
        if k > config.participants {
            continue;
        }
        let choice = match rates.by_k.get(&k) {
            Some(choice) => choice.clone(),
            None => {
                let cost = match config.rate {
                    Some(_) => None,
                    None => Some(calibrate(server, &mut clients, k, base_len)?),
                };
                let choice = choose(k, config.rate, cost);
                let rates_line: Vec<String> = choice.rates.iter().map(|r| format!("{} {:.2}/s", r.pace.label(), r.room)).collect();
                eprintln!(
                    "  k={k}: driver {} per keystroke → rates {}",
                    crate::stats::ms(choice.node_ms_per_keystroke),
                    rates_line.join(", ")
                );
                rates.by_k.insert(k, choice.clone());
                choice
            }
        };
        for rate in &choice.rates {
            let (row, typed) = measure(server, &mut clients, config, k, *rate, base_len)?;
            if !row.complete {
                // Lagging clients would carry their backlog into the next row.
                clients.wait(&typed, QUIESCE)?;
            }
            rows.push(row);
        }
    }
    clients.quit();
    Ok(rows)
}

/// The Node processes' CPU seconds per keystroke while every client is
/// current: one keystroke at a time, each waited for until every client
/// holds it, `CALIBRATION_ROUNDS` per typist of the row. Alone, a keystroke
/// reaches every client in a message of its own, as at the sustainable rate
/// (keystrokes typed together arrive together, and a client applies them
/// in one go: that cost, measured before, put the k = 4 rows at 90 % of the
/// driver's core).
fn calibrate(server: &Server, clients: &mut Clients, k: usize, base_len: usize) -> Result<f64> {
    block_on(settle(server))??;
    let node0 = clients.cpu_seconds()?;
    let mut keystrokes = 0;
    for _ in 0..CALIBRATION_ROUNDS * k {
        let typed = clients.type_count(1, 1, RATE_PER_TYPIST, base_len, false)?;
        let (_, complete) = clients.wait(&typed, QUIESCE)?;
        if !complete {
            bail!("calibration (k = {k}): keystrokes did not reach every client within {} s", QUIESCE.as_secs());
        }
        keystrokes += typed.len();
    }
    Ok((clients.cpu_seconds()? - node0) / keystrokes.max(1) as f64)
}

/// One row: k typists type their share of the row's keystrokes at `rate`.
fn measure(server: &Server, clients: &mut Clients, config: &Config, k: usize, rate: Rate, base_len: usize) -> Result<(OfficialRow, Vec<crate::official::Event>)> {
    block_on(settle(server))??;
    let cpu0 = server.cpu_seconds()?;
    let node0 = clients.cpu_seconds()?;
    let t0 = Instant::now();
    let typed = clients.type_count(k, per_typist(config.keystrokes, k), rate.room / k as f64, base_len, true)?;
    let typing_wall = t0.elapsed().as_secs_f64();
    let node_load = (clients.cpu_seconds()? - node0) / typing_wall;
    let (seen, complete) = clients.wait(&typed, config.drain)?;
    let cpu = server.cpu_seconds()? - cpu0;
    let node_cpu = clients.cpu_seconds()? - node0;
    // The frames of this step, as the recorder sees them at this scale.
    let frames = clients.frames()?.iter().map(frames::frame_from_json).collect::<Result<Vec<_>>>()?;
    let pattern = Pattern::from_frames(&frames, k, typed.len(), config.participants - k);

    let by_hash: HashMap<&str, (f64, usize)> = typed.iter().map(|e| (e.hash.as_str(), (e.t_ms, e.participant))).collect();
    let mut samples: Vec<f64> = seen
        .iter()
        .filter_map(|s| by_hash.get(s.hash.as_str()).filter(|(_, by)| *by != s.participant).map(|(t, _)| s.t_ms - t))
        .collect();
    let expected = typed.len() * (config.participants - 1);
    let got = samples.len();
    samples.extend(std::iter::repeat_n(f64::INFINITY, expected.saturating_sub(got)));
    let keystrokes = typed.len().max(1) as f64;
    let row = OfficialRow {
        row: Row {
            k,
            room_rate: rate.room,
            keystrokes: typed.len(),
            delivered: if expected == 0 { 0.0 } else { got as f64 / expected as f64 },
            p50_ms: quantile(&mut samples, 0.5),
            p99_ms: quantile(&mut samples, 0.99),
            server_cpu_per_1000: cpu / keystrokes * 1000.0,
            participant_ms_per_keystroke: None,
            driver_load: node_load,
            skipped: false,
        },
        pace: rate.pace,
        complete,
        node_ms_per_keystroke: node_cpu / keystrokes * 1e3,
        pattern,
    };
    eprintln!(
        "  {:<28} k={k:>2} {} {:.2}/s: {} keystrokes, delivered {:.1}%, p50 {}, p99 {}, server {:.1} ms CPU/keystroke, node {:.0}% ({:.0} ms/keystroke){}",
        server.kind.label(),
        rate.pace.label(),
        rate.room,
        row.row.keystrokes,
        row.row.delivered * 100.0,
        crate::stats::ms(row.row.p50_ms),
        crate::stats::ms(row.row.p99_ms),
        row.row.server_cpu_per_1000,
        node_load * 100.0,
        row.node_ms_per_keystroke,
        if row.valid() { "" } else { " — not valid" }
    );
    Ok((row, typed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sustainable_rate_keeps_the_driver_below_its_target() {
        // 40 official clients on the 20k text: ~0.4 s of Node CPU per keystroke.
        let rate = sustainable_rate(0.4);
        assert!(rate <= SUSTAINABLE_LOAD / 0.4 && rate > 0.9 * SUSTAINABLE_LOAD / 0.4, "{rate}");
        assert_eq!(sustainable_rate(0.013), 46.0);
    }

    #[test]
    fn the_human_rate_alone_when_the_driver_sustains_it() {
        let cheap = choose(1, None, Some(0.01));
        assert_eq!(cheap.rates, vec![Rate { pace: Pace::Human, room: 5.0 }]);
        let dear = choose(4, None, Some(0.4));
        assert_eq!(dear.rates.iter().map(|r| r.pace).collect::<Vec<_>>(), vec![Pace::Sustainable, Pace::Human]);
        let given = choose(8, Some(2.0), None);
        assert_eq!(given.rates, vec![Rate { pace: Pace::Given, room: 2.0 }]);
    }

    #[test]
    fn every_row_types_at_least_its_keystrokes() {
        for k in [1, 4, 8] {
            assert!(per_typist(60, k) * k >= 60);
            let t = typing_time(60, k, 1.5);
            assert!(t.as_secs_f64() * 1.5 >= 60.0 - 1e-9);
        }
    }
}
