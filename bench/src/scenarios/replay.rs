//! *Trace replay*: the automerge-paper trace typed by one client, through the
//! server, to a second client, as fast as the server acknowledges (the writer
//! sends whatever it typed whenever its previous message is answered), against
//! the same work in-process on bare Automerge. The writer is the bench's own
//! Rust client, or the official automerge-repo client in Node
//! (`tests/js/official-replay.mjs`); the reader is the same either way.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ObjId, ReadDoc};
use futures::FutureExt;
use konsens_sync::DocumentId;

use crate::servers::{Kind, Server};
use crate::trace::{self, Patch, SequentialTrace};
use crate::wire::{self, Incoming};

#[derive(Debug, Clone)]
pub struct Row {
    pub edits: usize,
    pub seconds: f64,
    pub server_cpu: f64,
    /// The official writer's time to make every edit (its sending
    /// overlaps); `None` for the Rust writer, which types between messages.
    pub writer_seconds: Option<f64>,
}

/// Edits typed between looks at the socket.
const TYPE_SLICE: usize = 256;

fn type_edits(doc: &mut Automerge, text: &ObjId, edits: &[Patch]) -> Result<()> {
    for Patch(pos, del, ins) in edits {
        let mut t = doc.transaction();
        t.splice_text(text, *pos, *del as isize, ins)?;
        t.commit();
    }
    Ok(())
}

pub fn load(quick: bool) -> Result<SequentialTrace> {
    let mut trace = trace::load_sequential("automerge-paper.json.gz")?;
    if quick {
        trace.edits.truncate(20_000);
    }
    Ok(trace)
}

pub fn run_server(kind: Kind, trace: &SequentialTrace, data_dir: &std::path::Path) -> Result<Row> {
    let server = Server::start(kind, data_dir, "127.0.0.1:0")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    let cpu0 = server.cpu_seconds()?;
    let result = local.block_on(&runtime, drive(&server, trace));
    let seconds = result.with_context(|| format!("trace replay against {}:\n{}", kind.label(), server.log_tail()))?;
    let server_cpu = server.cpu_seconds()? - cpu0;
    server.stop()?;
    eprintln!("  {:<28} {} edits in {seconds:.2} s, server CPU {server_cpu:.2} s", kind.label(), trace.edits.len());
    Ok(Row { edits: trace.edits.len(), seconds, server_cpu, writer_seconds: None })
}

async fn drive(server: &Server, trace: &SequentialTrace) -> Result<f64> {
    let document_id = DocumentId::from_bytes(*b"konsens-replay-1");
    let (mut doc, text) = trace::empty_text_doc()?;
    doc = doc.with_actor(ActorId::from(b"paper-writer".to_vec()));
    let (mut tx, mut rx) = wire::connect(&server.url, "paper-writer").await?;
    let started = Instant::now();
    let mut state = sync::State::new();
    let mut typed = 0;
    let mut reader_started = false;
    let mut reader: Option<tokio::task::JoinHandle<Result<Automerge>>> = None;
    // The reader is done once it holds the writer's final heads, told here.
    let (final_heads_tx, final_heads_rx) = tokio::sync::watch::channel::<Option<Vec<automerge::ChangeHash>>>(None);
    loop {
        if typed < trace.edits.len() {
            let end = (typed + TYPE_SLICE).min(trace.edits.len());
            type_edits(&mut doc, &text, &trace.edits[typed..end])?;
            typed = end;
        }
        if !state.in_flight
            && let Some(m) = doc.generate_sync_message(&mut state)
        {
            tx.sync(document_id, m.encode()).await?;
        }
        // Let the reader (and every socket's ping/pong) run between slices:
        // the stock server drops connections that miss its keep-alive pings.
        tokio::task::yield_now().await;
        // Take what has arrived; wait only when there is nothing left to type.
        let next = if typed < trace.edits.len() {
            match rx.next().now_or_never() {
                Some(r) => Some(r?),
                None => continue,
            }
        } else {
            if state.their_heads.as_ref() == Some(&doc.get_heads()) {
                break;
            }
            Some(tokio::time::timeout(crate::peer::PATIENCE, rx.next()).await.context("writer waited too long")??)
        };
        match next {
            Some(None) => bail!("server closed the writer's connection"),
            Some(Some(Incoming::Sync { data, .. })) => {
                doc.receive_sync_message(&mut state, sync::Message::decode(&data)?)?;
                if !reader_started {
                    // The document exists on the server now: the reader may ask for it.
                    reader_started = true;
                    let (reader_tx, reader_rx) = wire::connect(&server.url, "paper-reader").await?;
                    reader = Some(tokio::task::spawn_local(read(document_id, reader_tx, reader_rx, final_heads_rx.clone())));
                }
            }
            Some(Some(_)) | None => {}
        }
    }
    final_heads_tx.send(Some(doc.get_heads()))?;
    let reader = reader.context("the server never answered the writer")?;
    let reader_doc = tokio::time::timeout(Duration::from_secs(600), reader).await.context("reader did not catch up")???;
    let seconds = started.elapsed().as_secs_f64();
    let result = reader_doc.text(&trace::text_obj(&reader_doc)?)?;
    if result != trace_end(trace, &doc, &text)? {
        bail!("the reader's text differs from the writer's");
    }
    Ok(seconds)
}

fn trace_end(trace: &SequentialTrace, doc: &Automerge, text: &ObjId) -> Result<String> {
    let ours = doc.text(text)?;
    // The full trace must end at its published text; a quick prefix at ours.
    if trace.edits.len() >= 259_778 && ours != trace.end_content {
        bail!("replaying the trace did not produce its endContent");
    }
    Ok(ours)
}

async fn read(
    document_id: DocumentId,
    mut tx: wire::Sender,
    mut rx: wire::Receiver,
    mut final_heads: tokio::sync::watch::Receiver<Option<Vec<automerge::ChangeHash>>>,
) -> Result<Automerge> {
    let mut doc = Automerge::new();
    let mut state = sync::State::new();
    let first = doc.generate_sync_message(&mut state).context("no first message")?;
    tx.request(document_id, first.encode()).await?;
    loop {
        let done = final_heads.borrow().as_ref().is_some_and(|h| *h == doc.get_heads());
        if done {
            return Ok(doc);
        }
        tokio::select! {
            changed = final_heads.changed() => changed?,
            incoming = rx.next() => match incoming? {
                None => bail!("server closed the reader's connection"),
                Some(Incoming::Sync { data, .. }) => {
                    doc.receive_sync_message(&mut state, sync::Message::decode(&data)?)?;
                    if let Some(m) = doc.generate_sync_message(&mut state) {
                        tx.sync(document_id, m.encode()).await?;
                    }
                }
                Some(Incoming::Unavailable { .. }) => bail!("server says the document is unavailable"),
                Some(Incoming::Other(_)) => {}
            },
        }
    }
}

/// The limit: the least Automerge itself must do for the same result, in one
/// process with no network or disk: type every edit as its own transaction,
/// then sync writer → server replica → reader with Automerge's sync messages.
pub fn run_limit(trace: &SequentialTrace) -> Result<Row> {
    let started = Instant::now();
    let (mut writer, text) = trace::empty_text_doc()?;
    writer = writer.with_actor(ActorId::from(b"paper-writer".to_vec()));
    type_edits(&mut writer, &text, &trace.edits)?;
    let mut server = Automerge::new();
    let mut reader = Automerge::new();
    let (mut w_s, mut s_w, mut s_r, mut r_s) = (sync::State::new(), sync::State::new(), sync::State::new(), sync::State::new());
    loop {
        let mut moved = false;
        if let Some(m) = writer.generate_sync_message(&mut w_s) {
            server.receive_sync_message(&mut s_w, m)?;
            moved = true;
        }
        if let Some(m) = server.generate_sync_message(&mut s_w) {
            writer.receive_sync_message(&mut w_s, m)?;
            moved = true;
        }
        if let Some(m) = server.generate_sync_message(&mut s_r) {
            reader.receive_sync_message(&mut r_s, m)?;
            moved = true;
        }
        if let Some(m) = reader.generate_sync_message(&mut r_s) {
            server.receive_sync_message(&mut s_r, m)?;
            moved = true;
        }
        if !moved && reader.get_heads() == writer.get_heads() {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    if reader.text(&text)? != trace_end(trace, &writer, &text)? {
        bail!("in-process reader differs");
    }
    eprintln!("  bare automerge: {} edits in {seconds:.2} s", trace.edits.len());
    Ok(Row { edits: trace.edits.len(), seconds, server_cpu: f64::NAN, writer_seconds: None })
}

/// The writer is an official automerge-repo 2.5.6 client in Node
/// (`tests/js/official-replay.mjs`): it opens the document (an empty text the
/// bench seeds first, as the Rust writer's first message creates it), types
/// every edit as its own `handle.change`, and its repo syncs them as it does
/// for any application. Timed from the go to the writer until the reader
/// holds the writer's final heads and text, as for the Rust writer.
pub fn run_server_official(kind: Kind, trace: &SequentialTrace, data_dir: &std::path::Path) -> Result<Row> {
    let server = Server::start(kind, data_dir, "127.0.0.1:0")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    let result = local.block_on(&runtime, drive_official(&server, trace));
    let row = result.with_context(|| format!("trace replay (official writer) against {}:\n{}", kind.label(), server.log_tail()))?;
    server.stop()?;
    eprintln!(
        "  {:<28} official writer: {} edits in {:.2} s (typing {:.2} s), server CPU {:.2} s",
        kind.label(),
        row.edits,
        row.seconds,
        row.writer_seconds.unwrap_or(f64::NAN),
        row.server_cpu
    );
    Ok(row)
}

/// The official writer's Node process and its answers.
struct NodeWriter {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    stderr_tail: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl NodeWriter {
    fn spawn(url: &str, document_id: DocumentId, edits: usize) -> Result<Self> {
        use std::io::BufRead;
        let script = crate::official::script()?.with_file_name("official-replay.mjs");
        let mut child = std::process::Command::new("node")
            .arg(script)
            .arg(url)
            .arg(document_id.url())
            .arg(trace::traces_dir().join("automerge-paper.json.gz"))
            .arg(edits.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("spawning node (official writer)")?;
        let stdin = child.stdin.take().context("no stdin")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr_tail = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let tail = stderr_tail.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut t) = tail.lock() {
                    t.push(line);
                    if t.len() > 30 {
                        t.remove(0);
                    }
                }
            }
        });
        Ok(Self { child, stdin: Some(stdin), lines, stderr_tail })
    }

    /// The next answer, which must say `ok: expected`.
    async fn answer(&mut self, expected: &str, patience: Duration) -> Result<serde_json::Value> {
        let line = match tokio::time::timeout(patience, self.lines.recv()).await {
            Ok(Some(line)) => line,
            Ok(None) => bail!("the official writer exited:\n{}", self.log_tail()),
            Err(_) => bail!("the official writer said nothing for {} s:\n{}", patience.as_secs(), self.log_tail()),
        };
        let value: serde_json::Value = serde_json::from_str(&line).with_context(|| format!("official writer said {line:?}"))?;
        if value.get("ok").and_then(serde_json::Value::as_str) != Some(expected) {
            bail!("official writer said {line} instead of {expected:?}:\n{}", self.log_tail());
        }
        Ok(value)
    }

    fn go(&mut self) -> Result<()> {
        use std::io::Write;
        let stdin = self.stdin.as_mut().context("stdin closed")?;
        stdin.write_all(b"go\n")?;
        stdin.flush()?;
        Ok(())
    }

    fn log_tail(&self) -> String {
        self.stderr_tail.lock().map(|t| t.join("\n")).unwrap_or_default()
    }
}

impl Drop for NodeWriter {
    fn drop(&mut self) {
        // Closing stdin ends the script; kill covers a script that hangs.
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Seconds from the go until the reader holds the writer's final state, the
/// server's CPU meanwhile, and the writer's own typing time.
async fn drive_official(server: &Server, trace: &SequentialTrace) -> Result<Row> {
    let document_id = DocumentId::from_bytes(*b"konsens-replay-2");
    let (empty, _) = trace::empty_text_doc()?;
    crate::peer::seed(&server.url, "paper-seed", document_id, &empty).await?;
    let mut writer = NodeWriter::spawn(&server.url, document_id, trace.edits.len())?;
    writer.answer("ready", crate::peer::PATIENCE).await?;
    let cpu0 = server.cpu_seconds()?;
    let started = Instant::now();
    writer.go()?;
    let (final_heads_tx, final_heads_rx) = tokio::sync::watch::channel::<Option<Vec<automerge::ChangeHash>>>(None);
    let (reader_tx, reader_rx) = wire::connect(&server.url, "paper-reader").await?;
    let reader = tokio::task::spawn_local(read(document_id, reader_tx, reader_rx, final_heads_rx));
    let typed = writer.answer("typed", Duration::from_secs(1200)).await?;
    let mut heads = typed["heads"]
        .as_array()
        .context("no heads from the official writer")?
        .iter()
        .map(|h| h.as_str().context("a head that is not a string")?.parse::<automerge::ChangeHash>().context("a head that is not a hash"))
        .collect::<Result<Vec<_>>>()?;
    heads.sort();
    final_heads_tx.send(Some(heads))?;
    let reader_doc = tokio::time::timeout(Duration::from_secs(600), reader).await.context("reader did not catch up")???;
    let seconds = started.elapsed().as_secs_f64();
    let server_cpu = server.cpu_seconds()? - cpu0;
    let written = typed["text"].as_str().context("no text from the official writer")?;
    if trace.edits.len() >= 259_778 && (written != trace.end_content || typed["endContent"] != true) {
        bail!("the official writer's text is not the trace's endContent");
    }
    if reader_doc.text(&trace::text_obj(&reader_doc)?)? != written {
        bail!("the reader's text differs from the official writer's");
    }
    let writer_seconds = typed["ms"].as_f64().map(|ms| ms / 1e3);
    Ok(Row { edits: trace.edits.len(), seconds, server_cpu, writer_seconds })
}
