//! Official automerge-repo clients as load: Node processes running
//! `tests/js/official-workshop.mjs`, each hosting many `Repo`s, controlled
//! over stdin/stdout with one JSON object a line each way.
//!
//! The processes inherit the driver's pinning (core 0). Their clock is
//! `process.hrtime` (CLOCK_MONOTONIC), the same for every process, so a
//! keystroke typed in one process is timed against its arrival in another.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// Bound on one answer (connecting 40 clients to a 20k-change document
/// through the JS server takes a while on one core).
const PATIENCE: Duration = Duration::from_secs(300);

/// The driver script; its packages come from `tests/js/node_modules`
/// (`npm ci --prefix tests/js`, pinned by that lockfile).
pub fn script() -> Result<std::path::PathBuf> {
    let js = crate::repo_root().join("tests/js");
    if !js.join("node_modules/@automerge/automerge-repo").exists() {
        bail!("official clients need tests/js/node_modules: run `npm ci --prefix tests/js`");
    }
    Ok(js.join("official-workshop.mjs"))
}

/// One Node process of official clients.
#[derive(Debug)]
pub struct NodeClients {
    child: Child,
    stdin: ChildStdin,
    answers: mpsc::Receiver<String>,
    stderr_tail: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl NodeClients {
    pub fn spawn(index: usize) -> Result<Self> {
        let mut child = Command::new("node")
            .arg(script()?)
            .arg(index.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning node (official clients)")?;
        let stdin = child.stdin.take().context("no stdin")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let (tx, answers) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let tail = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let t = tail.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("KONSENS_BENCH_NODE_LOG").is_some() {
                    eprintln!("node: {line}");
                }
                if let Ok(mut t) = t.lock() {
                    t.push(line);
                    if t.len() > 30 {
                        t.remove(0);
                    }
                }
            }
        });
        Ok(Self { child, stdin, answers, stderr_tail: tail })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn cpu_seconds(&self) -> Result<f64> {
        crate::servers::cpu_seconds(self.pid())
    }

    /// Send a command; its answer is read with [`Self::answer`], so several
    /// processes can work on one command at the same time.
    pub fn send(&mut self, command: &Value) -> Result<()> {
        let mut line = serde_json::to_string(command)?;
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).context("writing to the node driver")?;
        self.stdin.flush()?;
        Ok(())
    }

    pub fn answer(&mut self) -> Result<Value> {
        self.answer_within(PATIENCE)
    }

    /// An answer to a command that itself takes a while (typing at a slow
    /// rate, waiting for delivery): its own time on top of the patience.
    pub fn answer_within(&mut self, patience: Duration) -> Result<Value> {
        let line = match self.answers.recv_timeout(patience) {
            Ok(line) => line,
            Err(_) => bail!("node driver gave no answer:\n{}", self.log_tail()),
        };
        let value: Value = serde_json::from_str(&line).with_context(|| format!("node driver said {line:?}"))?;
        if let Some(e) = value.get("error") {
            bail!("node driver failed: {e}\n{}", self.log_tail());
        }
        Ok(value)
    }

    fn log_tail(&self) -> String {
        self.stderr_tail.lock().map(|t| t.join("\n")).unwrap_or_default()
    }

    pub fn quit(mut self) {
        let _ = self.send(&json!({"cmd": "quit"}));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NodeClients {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Several processes as one: participants are dealt out round-robin.
#[derive(Debug)]
pub struct Clients {
    pub procs: Vec<NodeClients>,
}

/// A keystroke typed or seen: its hash (hex), when (ms, CLOCK_MONOTONIC), by
/// or at which participant.
#[derive(Debug, Clone)]
pub struct Event {
    pub hash: String,
    pub t_ms: f64,
    pub participant: usize,
}

fn events(v: &Value, key: &str) -> Result<Vec<Event>> {
    let list = v.get(key).and_then(Value::as_array).with_context(|| format!("no {key} in {v}"))?;
    list.iter()
        .map(|e| {
            Ok(Event {
                hash: e[0].as_str().context("hash")?.to_owned(),
                t_ms: e[1].as_f64().context("time")?,
                participant: e[2].as_u64().context("participant")? as usize,
            })
        })
        .collect()
}

impl Clients {
    /// `processes` Node processes hosting `participants` clients of `doc_url`
    /// on `url`. With one process, typists and watchers share its event loop,
    /// so a saturated process slows the typing down to what its watchers keep
    /// up with. With more, process 0 hosts the typists (the first `typists`
    /// participants) alone, so they keep their rate, and the watchers are
    /// dealt out over the others.
    pub fn connect(processes: usize, participants: usize, typists: usize, url: &str, doc_url: &str) -> Result<Self> {
        let mut procs = (0..processes.max(1)).map(NodeClients::spawn).collect::<Result<Vec<_>>>()?;
        let n = procs.len();
        let home = |i: usize| if n == 1 || i < typists { 0 } else { 1 + (i - typists) % (n - 1) };
        for (p, proc_) in procs.iter_mut().enumerate() {
            let mine: Vec<usize> = (0..participants).filter(|&i| home(i) == p).collect();
            proc_.send(&json!({"cmd": "connect", "url": url, "doc": doc_url, "participants": mine}))?;
        }
        for proc_ in &mut procs {
            proc_.answer().context("connecting the official clients")?;
        }
        Ok(Self { procs })
    }

    pub fn cpu_seconds(&self) -> Result<f64> {
        self.procs.iter().map(NodeClients::cpu_seconds).sum()
    }

    /// k typists type `count` keystrokes each, `rate_per_typist` a second
    /// each; the keystrokes typed.
    pub fn type_count(&mut self, typists: usize, count: usize, rate_per_typist: f64, base_len: usize, record: bool) -> Result<Vec<Event>> {
        let command = json!({"cmd": "type", "typists": typists, "count": count, "rate": rate_per_typist, "record": record, "base": base_len});
        for p in &mut self.procs {
            p.send(&command)?;
        }
        let typing = Duration::from_secs_f64(count as f64 / rate_per_typist.max(1e-3));
        let mut typed = Vec::new();
        for p in &mut self.procs {
            typed.extend(events(&p.answer_within(PATIENCE + typing)?, "typed")?);
        }
        Ok(typed)
    }

    /// Wait until every participant holds every typed keystroke, or `limit`
    /// passed; what each participant saw of other participants' changes, and
    /// whether all arrived.
    pub fn wait(&mut self, typed: &[Event], limit: Duration) -> Result<(Vec<Event>, bool)> {
        let hashes: Vec<&str> = typed.iter().map(|e| e.hash.as_str()).collect();
        let command = json!({"cmd": "wait", "hashes": hashes, "ms": limit.as_millis() as u64});
        for p in &mut self.procs {
            p.send(&command)?;
        }
        let mut seen = Vec::new();
        let mut complete = true;
        for p in &mut self.procs {
            let a = p.answer_within(PATIENCE + limit)?;
            complete &= a.get("complete").and_then(Value::as_bool).unwrap_or(false);
            seen.extend(events(&a, "seen")?);
        }
        Ok((seen, complete))
    }

    /// The frames recorded during the last recorded `type_for` (and until now).
    pub fn frames(&mut self) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        for p in &mut self.procs {
            p.send(&json!({"cmd": "frames"}))?;
        }
        for p in &mut self.procs {
            let a = p.answer()?;
            out.extend(a.get("frames").and_then(Value::as_array).cloned().unwrap_or_default());
        }
        Ok(out)
    }

    pub fn quit(self) {
        for p in self.procs {
            p.quit();
        }
    }
}
