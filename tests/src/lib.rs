//! Shared helpers for the end-to-end and interop tests: start the real
//! `konsens-server` binary on a loopback port with a data directory on disk,
//! and talk raw protocol to it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// The workspace's target directory, found from the running test binary
/// (`target/<profile>/deps/<test>`).
pub fn target_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test binary is not in target/<profile>/deps")?;
    Ok(profile_dir.to_path_buf())
}

/// Path of a workspace binary built for the same profile as the tests.
pub fn binary(name: &str) -> Result<PathBuf> {
    let path = target_dir()?.join(name);
    if !path.exists() {
        bail!(
            "{} is missing: build it first with `cargo build --workspace --bins` (the README's test command does)",
            path.display()
        );
    }
    Ok(path)
}

/// Run `konsens-bench` with `args`, writing its report to a scratch file;
/// the report, and the driver's stderr (for failure messages).
pub fn bench_report(args: &[&str]) -> Result<(String, String)> {
    let out = tempfile::tempdir()?;
    let report = out.path().join("benchmarks.md");
    let output = Command::new(binary("konsens-bench")?)
        .args(args)
        .arg("--out")
        .arg(&report)
        .output()
        .context("running konsens-bench")?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        bail!("konsens-bench failed:\n{stderr}");
    }
    Ok((std::fs::read_to_string(&report)?, stderr))
}

/// The section of a bench report under the heading `## {title}`, up to the
/// next `## ` heading.
pub fn report_section<'a>(report: &'a str, title: &str) -> Option<&'a str> {
    report.split(&format!("## {title}")).nth(1).and_then(|s| s.split("\n## ").next())
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// A running `konsens-server` child process.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    pub addr: String,
    pub data_dir: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    /// Notified on every new log line.
    logged: Arc<std::sync::Condvar>,
    /// The administrator token printed on a secure server's first start.
    pub admin_token: Option<String>,
}

impl ServerProcess {
    /// Start the server on a free loopback port with `data_dir`, and wait until it listens.
    pub fn start(data_dir: &Path, extra_args: &[&str]) -> Result<Self> {
        Self::start_on(data_dir, "127.0.0.1:0", extra_args)
    }

    /// Start on a given address (to restart on the same port).
    pub fn start_on(data_dir: &Path, listen: &str, extra_args: &[&str]) -> Result<Self> {
        Self::spawn(data_dir, listen, true, extra_args)
    }

    /// Start with access control (no `--open`). On a fresh data directory the
    /// server prints an administrator link; its token is in `admin_token`.
    pub fn start_secure(data_dir: &Path, listen: &str, extra_args: &[&str]) -> Result<Self> {
        Self::spawn(data_dir, listen, false, extra_args)
    }

    fn spawn(data_dir: &Path, listen: &str, open: bool, extra_args: &[&str]) -> Result<Self> {
        let mut command = Command::new(binary("konsens-server")?);
        if open {
            command.arg("--open");
        }
        let mut child = command
            .arg("--data")
            .arg(data_dir)
            .arg("--listen")
            .arg(listen)
            .args(extra_args)
            .env(
                "RUST_LOG",
                std::env::var("KONSENS_TEST_SERVER_LOG").unwrap_or_else(|_| "info,konsens_server=debug".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning konsens-server")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread_log = log.clone();
        let logged = Arc::new(std::sync::Condvar::new());
        let thread_logged = logged.clone();
        std::thread::spawn(move || {
            let mut addr_tx = Some(addr_tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("addr=").nth(1)
                    && line.contains("konsens-server listening")
                    && let Some(tx) = addr_tx.take()
                {
                    let addr = rest.split_whitespace().next().unwrap_or_default().to_owned();
                    let _ = tx.send(addr);
                }
                if let Ok(mut log) = thread_log.lock() {
                    log.push(line);
                    thread_logged.notify_all();
                }
            }
        });
        // stdout carries only the first-start administrator link.
        let stdout = child.stdout.take().context("no stdout")?;
        let (link_tx, link_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(link) = line.strip_prefix("open ") {
                    let _ = link_tx.send(link.to_owned());
                }
            }
        });
        let addr = match addr_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let log = log.lock().map(|l| l.join("\n")).unwrap_or_default();
                bail!("konsens-server did not start listening:\n{log}");
            }
        };
        // The link is printed right after the listening line, before serving.
        let admin_token = if open {
            None
        } else {
            link_rx
                .recv_timeout(Duration::from_millis(500))
                .ok()
                .and_then(|link| link.split("/join/").nth(1).map(str::to_owned))
        };
        Ok(Self {
            child,
            addr,
            data_dir: data_dir.to_path_buf(),
            log,
            logged,
            admin_token,
        })
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/sync", self.addr)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The server's process id (for its RSS and limits in /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait until the server has logged a line containing `needle` (the
    /// log is read by a thread, so a line may arrive just after the answer
    /// that caused it); false after `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let Ok(mut log) = self.log.lock() else { return false };
        loop {
            if log.iter().any(|l| l.contains(needle)) {
                return true;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            match self.logged.wait_timeout(log, left) {
                Ok((next, _)) => log = next,
                Err(_) => return false,
            }
        }
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill_hard(mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGSTOP: the process freezes as a whole (a stalled VM, a long GC
    /// pause): its sockets stay open but nothing runs, not even timers.
    pub fn pause(&self) -> Result<()> {
        self.signal("-STOP")
    }

    /// SIGCONT after [`Self::pause`]: it carries on where it stopped.
    pub fn resume(&self) -> Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> Result<()> {
        let status = Command::new("kill").args([signal, &self.child.id().to_string()]).status()?;
        if !status.success() {
            bail!("kill {signal} {} failed: {status}", self.child.id());
        }
        Ok(())
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(mut self) -> Result<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        Ok(self.child.wait()?)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Log to the test output when RUST_LOG is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Fetch a URL over plain HTTP/1.1 on loopback (enough for /health).
pub async fn http_get(addr: &str, path: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .context("no HTTP body")?;
    Ok(body)
}

/// A hand-driven protocol peer on a raw WebSocket, for sending exactly the
/// frames a test wants (good or bad) and reading exactly what comes back.
#[derive(Debug)]
pub struct RawPeer {
    socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    pub peer_id: konsens_sync::PeerId,
    pub server_id: Option<konsens_sync::PeerId>,
}

/// What the server did in answer to something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Message(konsens_sync::Message),
    Close { code: u16, reason: String },
    /// The socket ended without a close frame.
    Ended,
}

impl RawPeer {
    /// Connect without joining.
    pub async fn connect(url: &str, peer_id: &str) -> Result<Self> {
        let (socket, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(Self {
            socket,
            peer_id: konsens_sync::PeerId::from(peer_id),
            server_id: None,
        })
    }

    /// Connect and complete the handshake.
    pub async fn join(url: &str, peer_id: &str) -> Result<Self> {
        Self::join_with(url, peer_id, konsens_sync::PeerMetadata::default()).await
    }

    /// Connect and join with the given metadata (a storage id, say).
    pub async fn join_with(url: &str, peer_id: &str, metadata: konsens_sync::PeerMetadata) -> Result<Self> {
        let mut peer = Self::connect(url, peer_id).await?;
        peer.send(&konsens_sync::Message::Join {
            sender_id: peer.peer_id.clone(),
            peer_metadata: Some(metadata),
            supported_protocol_versions: Some(vec!["1".into()]),
        })
        .await?;
        match peer.next().await? {
            Answer::Message(konsens_sync::Message::Peer { sender_id, .. }) => {
                peer.server_id = Some(sender_id);
                Ok(peer)
            }
            other => bail!("expected peer, got {other:?}"),
        }
    }

    pub async fn send(&mut self, message: &konsens_sync::Message) -> Result<()> {
        self.send_raw(message.encode()).await
    }

    pub async fn send_raw(&mut self, bytes: Vec<u8>) -> Result<()> {
        use futures_util::SinkExt;
        self.socket
            .send(tokio_tungstenite::tungstenite::Message::Binary(bytes.into()))
            .await?;
        Ok(())
    }

    pub async fn send_text(&mut self, text: &str) -> Result<()> {
        use futures_util::SinkExt;
        self.socket
            .send(tokio_tungstenite::tungstenite::Message::Text(text.into()))
            .await?;
        Ok(())
    }

    /// The next message or close from the server (bounded by 30 s).
    pub async fn next(&mut self) -> Result<Answer> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message as Ws;
        loop {
            let item = tokio::time::timeout(Duration::from_secs(30), self.socket.next())
                .await
                .context("no answer from the server within 30 s")?;
            return Ok(match item {
                None => Answer::Ended,
                Some(Err(_)) => Answer::Ended,
                Some(Ok(Ws::Binary(bytes))) => Answer::Message(konsens_sync::Message::decode(&bytes, usize::MAX)?),
                Some(Ok(Ws::Close(frame))) => Answer::Close {
                    code: frame.as_ref().map(|f| u16::from(f.code)).unwrap_or(1005),
                    reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                },
                Some(Ok(_)) => continue,
            });
        }
    }
}

/// One HTTP/1.1 request on loopback; returns the status and the body.
pub async fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    json_body: Option<&serde_json::Value>,
) -> Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let body = json_body.map(|b| b.to_string()).unwrap_or_default();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if json_body.is_some() {
        request.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status: u16 = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no HTTP status")?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}

/// An Automerge sync message that says nothing (no heads, no changes): what a
/// peer with an empty document sends to ask for one.
pub fn empty_sync_message() -> Vec<u8> {
    automerge::sync::Message {
        heads: vec![],
        need: vec![],
        have: vec![],
        changes: automerge::sync::ChunkList::empty(),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    }
    .encode()
}

/// The `konsens` CLI against one store, as the end-to-end tests run it.
pub mod cli {
    use std::path::Path;
    use std::process::{Command, Output};

    use anyhow::{Context, Result, bail};
    use serde_json::Value;

    /// One invocation against a store, with no server or store from the environment.
    pub fn run(store: &Path, args: &[&str]) -> Result<Output> {
        Ok(Command::new(super::binary("konsens")?)
            .arg("--store")
            .arg(store)
            .args(args)
            .env_remove("KONSENS_SERVER")
            .env_remove("KONSENS_STORE")
            .output()?)
    }

    /// Run and require exit `code`; returns (trimmed stdout, stderr).
    pub fn exits(store: &Path, args: &[&str], code: i32) -> Result<(String, String)> {
        let out = run(store, args)?;
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
        if out.status.code() != Some(code) {
            bail!("konsens {args:?} should exit {code}, got {}:\n{stdout}{stderr}", out.status);
        }
        Ok((stdout.trim().to_owned(), stderr))
    }

    /// Run and require success; returns stdout.
    pub fn ok(store: &Path, args: &[&str]) -> Result<String> {
        Ok(exits(store, args, 0)?.0)
    }

    /// Run with `--json` and require success.
    pub fn json(store: &Path, args: &[&str]) -> Result<Value> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let text = ok(store, &all)?;
        serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))
    }

    /// Invite a member through `admin`'s store; returns (invitation link,
    /// participant id).
    pub fn invite(admin: &Path, process: &str, role: &str, name: &str, organisation: &str) -> Result<(String, String)> {
        let answer = json(admin, &["invite", process, "--role", role, "--name", name, "--org", organisation])?;
        let text = |k: &str| answer[k].as_str().map(str::to_owned).with_context(|| format!("{k} in {answer}"));
        Ok((text("link")?, text("participant")?))
    }

    /// A member's store in `dir` joined with `link`, holding the process.
    pub fn join_member(dir: &Path, link: &str, process: &str) -> Result<()> {
        ok(dir, &["join", link])?;
        ok(dir, &["sync", "--doc", process])?;
        Ok(())
    }

    /// Run and require failure with `code`; returns stderr.
    pub fn fails(store: &Path, args: &[&str], code: i32) -> Result<String> {
        Ok(exits(store, args, code)?.1)
    }
}

/// Run one command of the official JS client's harness (`tests/js/interop.mjs`)
/// and return the JSON line it printed.
pub fn js_harness(args: &[&str]) -> Result<serde_json::Value> {
    js_script("interop.mjs", args)
}

/// Run `tests/js/<script>` with `args` in Node and return the last JSON
/// line it printed (the harness's convention: one result line on stdout).
pub fn js_script(script: &str, args: &[&str]) -> Result<serde_json::Value> {
    let root = repo_root();
    if !root.join("tests/js/node_modules/@automerge/automerge-repo").exists() {
        bail!("tests/js/node_modules is missing: run `npm ci --prefix tests/js` (the README's test command does)");
    }
    let output = std::process::Command::new("node")
        .arg(root.join("tests/js").join(script))
        .args(args)
        .output()
        .context("running node (is Node.js installed?)")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!("node {script} {args:?} failed ({}):\n{stderr}", output.status);
    }
    let line = stdout.lines().last().context("no output")?;
    serde_json::from_str(line).with_context(|| format!("not JSON: {line}\nstderr:\n{stderr}"))
}

/// An administrator's workspace on `server` (a store in `dir`), connected.
pub fn admin_workspace(server: &ServerProcess, admin_token: &str, dir: &Path) -> Result<konsens_client::Workspace> {
    let mut ws = konsens_client::Workspace::open(dir, None)?;
    ws.set_identity("Ada Admin", "Skills Think Tank")?;
    ws.set_session(konsens_client::workspace::Session {
        base: format!("http://{}", server.addr),
        sync_url: server.ws_url(),
        token: admin_token.to_owned(),
        participant: String::new(),
        role: konsens_model::access::AccessRole::Admin,
        process: None,
    })?;
    ws.connect(&server.ws_url());
    Ok(ws)
}
