//! The servers under test, each started as its own process on loopback and
//! pinned to the server core, plus what the kernel says about their CPU and
//! memory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// konsens-server, release build, sled, flush before acknowledge, group commit.
    Konsens,
    /// konsens-server with one flush per write (group commit off).
    KonsensNoGroup,
    /// konsens with the coalescing window off (one round per message).
    KonsensNoCoalesce,
    /// The stock automerge-repo 2.5.6 sync server (Node, file storage).
    Stock,
    /// samod 0.16 with its file storage.
    Samod,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Konsens => "konsens",
            Kind::KonsensNoGroup => "konsens (no group commit)",
            Kind::KonsensNoCoalesce => "konsens (no coalescing)",
            Kind::Stock => "automerge-repo 2.5.6 (JS)",
            Kind::Samod => "samod 0.16",
        }
    }
}

/// The core the servers run on; the driver keeps to the other one.
pub const SERVER_CORE: &str = "1";
pub const DRIVER_CORE: &str = "0";

#[derive(Debug)]
pub struct Server {
    pub kind: Kind,
    child: Child,
    pub url: String,
    /// `host:port` it listens on (for `/metrics`).
    pub addr: String,
    /// How long from spawning until it accepted connections.
    pub start_time: Duration,
    stderr_tail: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

fn release_binary(name: &str) -> Result<PathBuf> {
    // The bench binary itself lives in target/<profile>/; its siblings are the servers.
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("bench binary has no directory")?;
    let path = dir.join(name);
    if !path.exists() {
        bail!("{} is missing: build with `cargo build --release -p konsens-server -p konsens-bench`", path.display());
    }
    Ok(path)
}

impl Server {
    /// Start a server of `kind` with its data in `data_dir`, on `listen` (port 0: any).
    pub fn start(kind: Kind, data_dir: &Path, listen: &str) -> Result<Self> {
        Self::start_with(kind, data_dir, listen, &[])
    }

    /// Like [`Server::start`], with `extra` flags for konsens (a cluster
    /// node's `--database`, `--node-address`, …; ignored by the others).
    pub fn start_with(kind: Kind, data_dir: &Path, listen: &str, extra: &[String]) -> Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let mut command = Command::new("taskset");
        command.arg("-c").arg(SERVER_CORE);
        // KONSENS_BENCH_PROFILE=DIR records each server with `perf record -g`
        // into DIR/<server>.perf, for profile-guided work on the hot path.
        if let Some(dir) = std::env::var_os("KONSENS_BENCH_PROFILE") {
            let file = PathBuf::from(dir).join(format!("{kind:?}.perf"));
            command.args(["perf", "record", "--call-graph", "dwarf,16384", "-F", "499", "-o"]).arg(file).arg("--");
        }
        match kind {
            Kind::Konsens | Kind::KonsensNoGroup | Kind::KonsensNoCoalesce => {
                command
                    .arg(release_binary("konsens-server")?)
                    .arg("--open")
                    .arg("--data")
                    .arg(data_dir)
                    .arg("--listen")
                    .arg(listen)
                    .arg("--max-frame-bytes")
                    .arg((256usize << 20).to_string())
                    // Every simulated participant connects from loopback.
                    .arg("--connections-per-address")
                    .arg("0")
                    // Under --open every anonymous connection shares one budget of
                    // answers about unknown documents; a thousand readers asking
                    // for documents their writers are about to create would
                    // spend it and be throttled. The bench measures throughput,
                    // not the abuse limit.
                    .arg("--unknown-documents-per-minute")
                    .arg("0")
                    .args(extra)
                    // "listening" is logged at info; per-connection info lines are not wanted.
                    .env(
                        "RUST_LOG",
                        std::env::var("KONSENS_BENCH_SERVER_LOG")
                            .unwrap_or_else(|_| "warn,konsens_server=info,konsens_server::connection=warn".into()),
                    );
                if kind == Kind::KonsensNoGroup {
                    command.env("KONSENS_GROUP_COMMIT_MAX", "1");
                }
                // The server's default window unless this run turns it off.
                command.env_remove("KONSENS_COALESCE_MS");
                if kind == Kind::KonsensNoCoalesce {
                    command.env("KONSENS_COALESCE_MS", "0");
                }
            }
            Kind::Stock => {
                let port = listen.rsplit(':').next().unwrap_or("0");
                command
                    .arg("node")
                    .arg(crate::repo_root().join("tests/js/interop.mjs"))
                    .arg("stock-server")
                    .arg(port)
                    .arg(data_dir);
            }
            Kind::Samod => {
                command
                    .arg(release_binary("samod-server")?)
                    .arg("--listen")
                    .arg(listen)
                    .arg("--data")
                    .arg(data_dir)
                    .env("RUST_LOG", "error");
            }
        }
        let started = Instant::now();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawning {}", kind.label()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let tail = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        // Each server announces its address its own way; one thread per
        // stream forwards the announcement and keeps the last lines for errors.
        let spawn_reader = |reader: Box<dyn std::io::Read + Send>, tx: std::sync::mpsc::Sender<String>| {
            let tail = tail.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(reader).lines().map_while(Result::ok) {
                    let addr = if let Some(rest) = line.split("listening addr=").nth(1) {
                        rest.split_whitespace().next().map(str::to_owned)
                    } else if let Some(rest) = line.strip_prefix("listening ") {
                        Some(rest.trim().to_owned())
                    } else if let Some(rest) = line.strip_prefix("{\"listening\":") {
                        Some(format!("127.0.0.1:{}", rest.trim_end_matches('}')))
                    } else {
                        None
                    };
                    if let Some(addr) = addr {
                        let _ = tx.send(addr);
                    }
                    if std::env::var_os("KONSENS_BENCH_SERVER_LOG").is_some() {
                        eprintln!("server: {line}");
                    }
                    if let Ok(mut t) = tail.lock() {
                        t.push(line);
                        if t.len() > 50 {
                            t.remove(0);
                        }
                    }
                }
            });
        };
        spawn_reader(Box::new(stdout), tx.clone());
        spawn_reader(Box::new(stderr), tx);
        let addr = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let log = tail.lock().map(|t| t.join("\n")).unwrap_or_default();
                bail!("{} did not start listening:\n{log}", kind.label());
            }
        };
        let start_time = started.elapsed();
        Ok(Self {
            kind,
            child,
            url: format!("ws://{addr}/sync"),
            addr,
            start_time,
            stderr_tail: tail,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds (user + system, all threads) the server has used so far.
    pub fn cpu_seconds(&self) -> Result<f64> {
        cpu_seconds(self.pid())
    }

    /// Resident memory in bytes.
    pub fn rss_bytes(&self) -> Result<u64> {
        rss_bytes(self.pid())
    }

    pub fn log_tail(&self) -> String {
        self.stderr_tail.lock().map(|t| t.join("\n")).unwrap_or_default()
    }

    /// SIGTERM, then wait: every server writes what it holds on the way out.
    pub fn stop(self) -> Result<()> {
        self.stop_within(Duration::from_secs(60)).map(|_| ())
    }

    /// SIGTERM, then wait up to `patience`; past it, SIGKILL. Whether it
    /// exited by itself.
    pub fn stop_within(mut self, patience: Duration) -> Result<bool> {
        let pid = self.pid().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let deadline = Instant::now() + patience;
        loop {
            if self.child.try_wait()?.is_some() {
                return Ok(true);
            }
            if Instant::now() > deadline {
                // What was measured stands; the hang is reported, not hidden.
                let _ = self.child.kill();
                let _ = self.child.wait();
                eprintln!("  warning: {} did not exit within {} s of SIGTERM and was killed", self.kind.label(), patience.as_secs());
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9`: the server gets no chance to hand anything on.
    pub fn kill(mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

/// A loopback port free a moment ago, for a server that must know its own
/// address before it starts (a cluster node's `--node-address`).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Pin `pid` and all its threads to the server core.
pub fn pin_to_server_core(pid: u32) -> Result<()> {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", SERVER_CORE, &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .context("running taskset")?;
    anyhow::ensure!(status.success(), "taskset could not pin process {pid}");
    Ok(())
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Clock ticks per second for /proc times; 100 on every Linux we run on.
const CLK_TCK: f64 = 100.0;

pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces; fields are counted after its ')'.
    let rest = stat.rsplit_once(')').context("odd /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, utime 14 and stime 15 (1-based in proc(5)).
    let utime: f64 = fields.get(11).context("no utime")?.parse()?;
    let stime: f64 = fields.get(12).context("no stime")?.parse()?;
    Ok((utime + stime) / CLK_TCK)
}

pub fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS")?;
    let kb: u64 = line.split_whitespace().nth(1).context("odd VmRSS")?.parse()?;
    Ok(kb * 1024)
}

