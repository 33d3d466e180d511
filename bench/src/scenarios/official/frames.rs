//! The frame recorder: per keystroke, what an official typist and its
//! watchers send and receive, and the same for the bench's light peers, so
//! the two can be compared (`--scenarios frames`, and
//! `tests/tests/bench_frames.rs`); also the frame pattern of each official
//! workshop row.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ReadDoc};
use konsens_sync::DocumentId;

use super::{block_on, document_id};
use crate::light::LightSync;
use crate::official::Clients;
use crate::scenarios::workshop::{self, settle};
use crate::servers::{Kind, Server};
use crate::wire::{self, Incoming};

/// One frame as the recorder sees it: nothing but what the comparison needs.
#[derive(Debug, Clone)]
pub(super) struct Frame {
    participant: usize,
    out: bool,
    kind: String,
    /// For sync/request: the decoded sync message's shape.
    sync: Option<SyncShape>,
    /// Bytes of the sync message (`data`), 0 for other types.
    data: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SyncShape {
    heads: usize,
    need: usize,
    /// Per `have` entry: last-sync heads, bloom filter bytes.
    have: Vec<(usize, usize)>,
    changes: usize,
}

impl SyncShape {
    fn of(m: &automerge::sync::Message) -> Self {
        Self {
            heads: m.heads.len(),
            need: m.need.len(),
            have: m.have.iter().map(|h| (h.last_sync.len(), h.bloom.to_bytes().len())).collect(),
            changes: m.changes.iter().count(),
        }
    }

    /// The pattern key: what is compared between the client kinds. Bloom
    /// sizes are classed (empty / holds entries), counts of heads exact.
    fn key(&self) -> String {
        let have: Vec<String> = self
            .have
            .iter()
            .map(|(l, b)| format!("{{lastSync {l}, bloom {}}}", if *b == 0 { "empty" } else { "filled" }))
            .collect();
        format!(
            "heads {}, need {}, have [{}], {}",
            self.heads,
            self.need,
            have.join(", "),
            if self.changes == 0 { "no changes".to_owned() } else { format!("{} change chunk(s)", self.changes) }
        )
    }
}

/// Messages per keystroke, by role (typist or watcher, watcher counts per
/// watcher), direction and shape; with their mean size.
#[derive(Debug, Clone, Default)]
pub struct Pattern {
    pub keystrokes: usize,
    pub watchers: usize,
    /// (role, direction, shape) → (messages per keystroke, mean data bytes, mean bloom bytes)
    pub rows: BTreeMap<(String, String, String), (f64, f64, f64)>,
}

impl Pattern {
    /// Participants below `typists` are typists (their counts are per
    /// keystroke), the others watchers (per keystroke and watcher).
    pub(super) fn from_frames(frames: &[Frame], typists: usize, keystrokes: usize, watchers: usize) -> Self {
        let mut acc: BTreeMap<(String, String, String), (usize, usize, usize)> = BTreeMap::new();
        for f in frames {
            let role = if f.participant < typists { "typist" } else { "watcher" };
            let dir = if f.out { "sends" } else { "receives" };
            let shape = match &f.sync {
                Some(s) => format!("{} ({})", f.kind, s.key()),
                None => f.kind.clone(),
            };
            let bloom = f.sync.as_ref().map(|s| s.have.iter().map(|h| h.1).sum()).unwrap_or(0);
            let e = acc.entry((role.to_owned(), dir.to_owned(), shape)).or_default();
            e.0 += 1;
            e.1 += f.data;
            e.2 += bloom;
        }
        let rows = acc
            .into_iter()
            .map(|(key, (n, bytes, bloom))| {
                let per = if key.0 == "typist" { keystrokes } else { keystrokes * watchers };
                (key, (n as f64 / per.max(1) as f64, bytes as f64 / n as f64, bloom as f64 / n as f64))
            })
            .collect();
        Self { keystrokes, watchers, rows }
    }

    /// Where the two patterns differ by more than `tolerance` messages per
    /// keystroke (bloom false positives make an occasional extra round).
    pub fn differences(&self, other: &Pattern, tolerance: f64) -> Vec<String> {
        let mut keys: Vec<_> = self.rows.keys().chain(other.rows.keys()).cloned().collect();
        keys.sort();
        keys.dedup();
        let mut out = Vec::new();
        for k in keys {
            let a = self.rows.get(&k).copied().unwrap_or_default();
            let b = other.rows.get(&k).copied().unwrap_or_default();
            if (a.0 - b.0).abs() > tolerance {
                out.push(format!("{} {} {}: {:.2} vs {:.2} per keystroke", k.0, k.1, k.2, a.0, b.0));
            } else if (a.2 - b.2).abs() > (0.5 * a.2.max(b.2)).max(4.0) {
                // Same messages, but a bloom filter of another size: the server probes another filter.
                out.push(format!("{} {} {}: bloom filters of {:.0} vs {:.0} bytes", k.0, k.1, k.2, a.2, b.2));
            }
        }
        out
    }

    pub fn markdown(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(s, "| role | direction | message | per keystroke | mean sync bytes | mean bloom bytes |");
        let _ = writeln!(s, "|---|---|---|---:|---:|---:|");
        for ((role, dir, shape), (n, bytes, bloom)) in &self.rows {
            let _ = writeln!(s, "| {role} | {dir} | {shape} | {n:.2} | {bytes:.0} | {bloom:.0} |");
        }
        s
    }
}

/// Messages per keystroke by which two patterns may differ and still match:
/// a bloom filter's false positive now and then costs one more round.
pub const PATTERN_TOLERANCE: f64 = 0.2;

/// Record the official client's pattern and the light peers' through one
/// konsens server: (official, light).
pub fn record_both(base: &Automerge, data_dir: &std::path::Path) -> Result<(Pattern, Pattern)> {
    let server = Server::start(Kind::Konsens, data_dir, "127.0.0.1:0")?;
    let official = record_official(&server, base).with_context(|| format!("recording official clients:\n{}", server.log_tail()))?;
    let light = record_light(&server, base).with_context(|| format!("recording light peers:\n{}", server.log_tail()))?;
    server.stop()?;
    Ok((official, light))
}

/// How many keystrokes the recorder types, at 5 per second, with this many watchers.
pub const RECORD_KEYSTROKES: usize = 15;
pub const RECORD_WATCHERS: usize = 3;

pub(super) fn frame_from_json(v: &serde_json::Value) -> Result<Frame> {
    let sync = match v.get("heads") {
        Some(h) => Some(SyncShape {
            heads: h.as_u64().context("heads")? as usize,
            need: v["need"].as_u64().context("need")? as usize,
            have: v["have"]
                .as_array()
                .context("have")?
                .iter()
                .map(|h| (h["lastSync"].as_u64().unwrap_or(0) as usize, h["bloom"].as_u64().unwrap_or(0) as usize))
                .collect(),
            changes: v["changes"].as_u64().context("changes")? as usize,
        }),
        None => None,
    };
    Ok(Frame {
        participant: v["p"].as_u64().context("participant")? as usize,
        out: v["dir"] == "out",
        kind: v["type"].as_str().unwrap_or("?").to_owned(),
        sync,
        data: v.get("data").and_then(|d| d.as_u64()).unwrap_or(0) as usize,
    })
}

/// Official clients: participant 0 types [`RECORD_KEYSTROKES`] keystrokes,
/// [`RECORD_WATCHERS`] watch; every frame of theirs is recorded from the
/// first keystroke until all is quiet again.
pub fn record_official(server: &Server, base: &Automerge) -> Result<Pattern> {
    let doc_id = document_id();
    block_on(crate::peer::seed(&server.url, "frames-seed", doc_id, base))??;
    let base_len = base.length(crate::trace::text_obj(base)?);
    let mut clients = Clients::connect(1, RECORD_WATCHERS + 1, 1, &server.url, &doc_id.url())?;
    // The first keystroke after opening is not typical (sync states start
    // from the whole-document exchange): one round before recording.
    let typed = clients.type_count(1, 2, workshop::RATE_PER_TYPIST, base_len, false)?;
    clients.wait(&typed, Duration::from_secs(30))?;
    block_on(settle(server))??;
    let typed = clients.type_count(1, RECORD_KEYSTROKES, workshop::RATE_PER_TYPIST, base_len, true)?;
    let (_, complete) = clients.wait(&typed, Duration::from_secs(30))?;
    if !complete {
        bail!("official watchers did not receive every recorded keystroke");
    }
    // Acknowledgements that follow the last arrival belong to the pattern.
    block_on(settle(server))??;
    let frames = clients.frames()?.iter().map(frame_from_json).collect::<Result<Vec<_>>>()?;
    clients.quit();
    Ok(Pattern::from_frames(&frames, 1, typed.len(), RECORD_WATCHERS))
}

/// The bench's light peers doing the same: participant 0 types, the others watch.
pub fn record_light(server: &Server, base: &Automerge) -> Result<Pattern> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, record_light_async(server, base))
}

async fn record_light_async(server: &Server, base: &Automerge) -> Result<Pattern> {
    // Its own document, so the official recording cannot interfere.
    let doc_id = DocumentId::from_bytes(*b"konsens-lightrec");
    crate::peer::seed(&server.url, "frames-light-seed", doc_id, base).await?;
    let text = crate::trace::text_obj(base)?;
    let base_len = base.length(&text);
    let frames: Rc<RefCell<Vec<Frame>>> = Rc::default();
    let recording = Rc::new(std::cell::Cell::new(false));
    let typed: Rc<RefCell<Vec<automerge::ChangeHash>>> = Rc::default();
    let (type_tx, type_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let mut type_rx = Some(type_rx);
    let mut held = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..=RECORD_WATCHERS {
        let (tx, rx) = wire::connect(&server.url, &format!("light-rec-{i}")).await?;
        let (held_tx, held_rx) = tokio::sync::watch::channel(0usize);
        if i > 0 {
            held.push(held_rx);
        }
        let peer = LightPeer {
            index: i,
            doc_id,
            light: LightSync::holding(base),
            frames: frames.clone(),
            recording: recording.clone(),
            typed: typed.clone(),
            held: held_tx,
        };
        let typist = if i == 0 {
            let author = base.fork().with_actor(ActorId::from(vec![0xCC; 16]));
            type_rx.take().map(|rx| (rx, author, text.clone(), base_len / 2))
        } else {
            None
        };
        tasks.push(tokio::task::spawn_local(peer.run(tx, rx, typist)));
    }
    // Everybody in step with the server before anything is typed.
    let mut wait_all = async |target: usize| -> Result<()> {
        for h in &mut held {
            tokio::time::timeout(crate::peer::PATIENCE, h.wait_for(|n| *n >= target))
                .await
                .context("light watchers did not receive every keystroke")??;
        }
        Ok(())
    };
    wait_all(0).await?;
    // One round before recording, as for the official clients.
    type_tx.send(2)?;
    wait_all(2).await?;
    settle(server).await?;
    recording.set(true);
    type_tx.send(RECORD_KEYSTROKES)?;
    wait_all(2 + RECORD_KEYSTROKES).await?;
    settle(server).await?;
    recording.set(false);
    for t in tasks {
        t.abort();
    }
    let frames = frames.borrow();
    Ok(Pattern::from_frames(&frames, 1, RECORD_KEYSTROKES, RECORD_WATCHERS))
}

/// A light participant of the recorder.
struct LightPeer {
    index: usize,
    doc_id: DocumentId,
    light: LightSync,
    frames: Rc<RefCell<Vec<Frame>>>,
    recording: Rc<std::cell::Cell<bool>>,
    typed: Rc<RefCell<Vec<automerge::ChangeHash>>>,
    /// How many of the typed keystrokes this peer holds.
    held: tokio::sync::watch::Sender<usize>,
}

type Typist = (tokio::sync::mpsc::UnboundedReceiver<usize>, Automerge, automerge::ObjId, usize);

impl LightPeer {
    fn record(&self, out: bool, kind: &str, sync: Option<&automerge::sync::Message>, data: usize) {
        if self.recording.get() {
            self.record_shape(out, kind, sync.map(SyncShape::of), data);
        }
    }

    fn record_shape(&self, out: bool, kind: &str, sync: Option<SyncShape>, data: usize) {
        self.frames.borrow_mut().push(Frame { participant: self.index, out, kind: kind.to_owned(), sync, data });
    }

    async fn send_pending(&mut self, tx: &mut wire::Sender) -> Result<()> {
        if let Some(m) = self.light.generate() {
            let shape = self.recording.get().then(|| SyncShape::of(&m));
            let bytes = m.encode();
            if let Some(shape) = shape {
                self.record_shape(true, "sync", Some(shape), bytes.len());
            }
            tx.sync(self.doc_id, bytes).await?;
        }
        Ok(())
    }

    async fn run(mut self, mut tx: wire::Sender, mut rx: wire::Receiver, typist: Option<Typist>) -> Result<()> {
        self.send_pending(&mut tx).await?;
        let (mut orders, mut author, text, position) = match typist {
            Some((rx, author, text, position)) => (Some(rx), Some(author), Some(text), position),
            None => (None, None, None, 0),
        };
        let period = Duration::from_secs_f64(1.0 / workshop::RATE_PER_TYPIST);
        let mut ticker = tokio::time::interval(period);
        let mut to_type = 0usize;
        let mut n = 0usize;
        loop {
            tokio::select! {
                incoming = rx.next() => {
                    match incoming? {
                        None => bail!("server closed light peer {}", self.index),
                        Some(Incoming::Sync { document_id, data }) if document_id == self.doc_id => {
                            let m = automerge::sync::Message::decode(&data)?;
                            self.record(false, "sync", Some(&m), data.len());
                            self.light.receive(m);
                            self.send_pending(&mut tx).await?;
                            let held = self.typed.borrow().iter().filter(|h| self.light.has(h)).count();
                            self.held.send_replace(held);
                        }
                        Some(Incoming::Sync { .. }) => {}
                        Some(Incoming::Unavailable { .. }) => self.record(false, "doc-unavailable", None, 0),
                        Some(Incoming::Other(kind)) => self.record(false, kind, None, 0),
                    }
                }
                order = async { orders.as_mut()?.recv().await }, if orders.is_some() => {
                    let Some(count) = order else { return Ok(()) };
                    to_type += count;
                    ticker.reset_immediately();
                }
                _ = ticker.tick(), if to_type > 0 => {
                    let (Some(author), Some(text)) = (author.as_mut(), text.as_ref()) else { continue };
                    let letter = ["k", "o", "n", "s", "e", "n", "s", " "][n % 8];
                    let mut t = author.transaction();
                    t.splice_text(text, position + n, 0, letter)?;
                    t.commit();
                    let change = author.get_last_local_change().context("no change")?;
                    self.typed.borrow_mut().push(change.hash());
                    self.light.local_change(&change);
                    self.send_pending(&mut tx).await?;
                    n += 1;
                    to_type -= 1;
                }
            }
        }
    }
}
