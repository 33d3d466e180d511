//! One attacker cannot exhaust the server (issue 11, item 3), end to end
//! against the real binary, each while the official JS client keeps syncing
//! a document (tests/js/heartbeat.mjs) with no gap over a second:
//! - idle and slow connections: capped per address and in all (503), cut
//!   by the header-read timeout, the descriptor limit raised at start;
//! - requests for documents nobody can read: no owner is started, and a
//!   flooding token is slowed down, then closed;
//! - changes that inflate (deflate, run lengths) past the limits, and Bloom
//!   filters that would panic or spin: refused, logged once, the server
//!   keeps serving.
//!
//! Each test prints what it measured (`cargo test -p konsens-tests --test
//! lockout -- --nocapture`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use automerge::transaction::Transactable;
use automerge::{Automerge, ROOT};
use konsens_sync::{DocMessage, DocumentId, Message, PeerId, RefusalCode};
use konsens_tests::{Answer, RawPeer, ServerProcess, http_get, repo_root};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The official JS client syncing one document every 100 ms.
struct Heartbeat {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Heartbeat {
    /// Start it and wait until its document is acknowledged.
    fn start(ws_url: &str, duration: Duration) -> Result<Self> {
        let root = repo_root();
        if !root.join("tests/js/node_modules/@automerge/automerge-repo").exists() {
            bail!("tests/js/node_modules is missing: run `npm ci --prefix tests/js` (the README's test command does)");
        }
        let mut child = Command::new("node")
            .arg(root.join("tests/js/heartbeat.mjs"))
            .arg(ws_url)
            .arg(duration.as_millis().to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("running node (is Node.js installed?)")?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let first = lines.recv_timeout(Duration::from_secs(20)).context("the heartbeat client did not start")?;
        let ready: Value = serde_json::from_str(&first)?;
        if ready["ready"] != true {
            bail!("heartbeat: {first}");
        }
        Ok(Self { child, lines })
    }

    /// Wait for its end; returns the longest gap between acknowledgements.
    fn finish(mut self) -> Result<Duration> {
        let last = self.lines.recv_timeout(Duration::from_secs(60)).context("the heartbeat client did not finish")?;
        let status = self.child.wait()?;
        if !status.success() {
            bail!("the heartbeat client failed ({status}): {last}");
        }
        let result: Value = serde_json::from_str(&last)?;
        let gap = result["max_gap_ms"].as_u64().context("max_gap_ms")?;
        let beats = result["beats"].as_u64().unwrap_or(0);
        eprintln!("heartbeat: {beats} beats, longest gap {gap} ms, slowest acknowledgement {} ms", result["max_latency_ms"]);
        Ok(Duration::from_millis(gap))
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn assert_no_gap(gap: Duration) {
    assert!(gap < Duration::from_secs(1), "the healthy client waited {gap:?} for an acknowledgement");
}

/// A TCP connection from another loopback address, so the attacker and the
/// healthy client count as different addresses.
async fn connect_from(local: &str, server: &str) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(format!("{local}:0").parse().map_err(std::io::Error::other)?)?;
    socket.connect(server.parse().map_err(std::io::Error::other)?).await
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("VmRSS")?;
    Ok(line.split_whitespace().nth(1).context("VmRSS value")?.parse()?)
}

async fn health(addr: &str) -> Result<(Value, Duration)> {
    let started = Instant::now();
    let body = tokio::time::timeout(Duration::from_secs(10), http_get(addr, "/health")).await.context("/health hung")??;
    Ok((serde_json::from_str(&body).with_context(|| format!("/health: {body}"))?, started.elapsed()))
}

/// What a refused connection got: the start of its answer, or "" if it was
/// closed without one, or None if it is still open and silent.
async fn answer_within(stream: &mut TcpStream, wait: Duration) -> Option<String> {
    let mut buffer = [0u8; 512];
    match tokio::time::timeout(wait, stream.read(&mut buffer)).await {
        Err(_) => None,
        Ok(Ok(n)) => Some(String::from_utf8_lossy(&buffer[..n]).into_owned()),
        Ok(Err(_)) => Some(String::new()),
    }
}

/// Warnings (and errors) that contain `needle`.
/// Like `answer_within`, without waiting: what has arrived by now.
fn answered_yet(stream: &TcpStream) -> Option<String> {
    let mut buffer = [0u8; 512];
    match stream.try_read(&mut buffer) {
        Ok(n) => Some(String::from_utf8_lossy(&buffer[..n]).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
        Err(_) => Some(String::new()),
    }
}

fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| (l.contains(" WARN ") || l.contains(" ERROR ")) && l.contains(needle)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_connections_are_capped_per_address_and_cut_by_the_header_timeout() -> Result<()> {
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start_secure(data.path(), "127.0.0.1:0", &["--header-timeout-secs", "5"])?;
    let token = server.admin_token.clone().context("admin token")?;
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid()))?;
    let open_files = limits.lines().find(|l| l.starts_with("Max open files")).context("limits")?.to_owned();
    let fields: Vec<&str> = open_files.split_whitespace().collect();
    assert_eq!(fields[3], fields[4], "the soft descriptor limit is raised to the hard one: {open_files}");
    eprintln!("server: {open_files}");

    let heartbeat = Heartbeat::start(&format!("{}?token={token}", server.ws_url()), Duration::from_secs(14))?;

    // 3,000 connections from one address that never send a byte.
    let started = Instant::now();
    let mut attack = Vec::new();
    for _ in 0..3000 {
        match connect_from("127.0.0.2", &server.addr).await {
            Ok(stream) => attack.push(stream),
            Err(e) => bail!("connect failed after {} connections: {e}", attack.len()),
        }
    }
    let opened = started.elapsed();
    // Everybody else is served meanwhile.
    let (status, took) = health(&server.addr).await?;
    eprintln!("/health during the attack: {took:?}, {status}");
    assert!(took < Duration::from_secs(1), "/health took {took:?}");
    let open = status["open_connections"].as_u64().unwrap_or(u64::MAX);
    assert!((500..=520).contains(&open), "the cap is reached and held: {status}");
    let mut held = Vec::new();
    let mut refused = 0;
    let mut told_503 = 0;
    tokio::time::sleep(Duration::from_millis(200)).await;
    for stream in attack {
        match answered_yet(&stream) {
            None => held.push(stream),
            Some(answer) => {
                refused += 1;
                if answer.starts_with("HTTP/1.1 503") && answer.contains("too many open connections from your address") {
                    told_503 += 1;
                }
            }
        }
    }
    eprintln!("3000 idle connections from 127.0.0.2 in {opened:?}: {} held, {refused} refused ({told_503} with a 503)", held.len());
    assert!(held.len() <= 512, "at most the per-address cap is held: {}", held.len());
    assert!(refused >= 2488, "the rest are refused: {refused}");
    assert!(told_503 >= 2400, "refused connections are told 503: {told_503}");

    // One header line every 500 ms no longer holds a connection.
    let mut slow = connect_from("127.0.0.3", &server.addr).await?;
    let slow_started = Instant::now();
    slow.write_all(b"GET /health HTTP/1.1\r\n").await?;
    let cut_after = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let alive = slow.write_all(b"X-Slow: yes\r\n").await.is_ok() && answer_within(&mut slow, Duration::from_millis(1)).await.is_none();
        if !alive {
            break slow_started.elapsed();
        }
        if slow_started.elapsed() > Duration::from_secs(10) {
            bail!("a client sending one header line every 500 ms is still connected after 10 s");
        }
    };
    eprintln!("slow headers: cut after {cut_after:?} (header timeout 5 s)");
    assert!(cut_after < Duration::from_secs(7), "{cut_after:?}");

    // The idle connections are cut by the same timeout.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let still_open = held.iter().filter(|stream| answered_yet(stream).is_none()).count();
    eprintln!("idle connections still open once the header timeout has passed: {still_open}");
    assert_eq!(still_open, 0, "idle connections are closed by the header timeout");
    drop(held);

    // The address can connect again.
    let mut again = connect_from("127.0.0.2", &server.addr).await?;
    again.write_all(format!("GET /health HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", server.addr).as_bytes()).await?;
    let mut response = String::new();
    again.read_to_string(&mut response).await?;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    assert_no_gap(heartbeat.finish()?);
    let log = server.log();
    let lines = count(&log, "connection limit per address reached");
    eprintln!("refusal log lines: {lines}");
    assert!((1..=3).contains(&lines), "refusals are logged once per burst, not once each: {lines}");
    assert!(!log.contains("panicked"), "{log}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_wide_cap_answers_503_instead_of_running_out_of_descriptors() -> Result<()> {
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start_secure(
        data.path(),
        "127.0.0.1:0",
        &["--max-connections", "64", "--connections-per-address", "0"],
    )?;
    let token = server.admin_token.clone().context("admin token")?;
    let heartbeat = Heartbeat::start(&format!("{}?token={token}", server.ws_url()), Duration::from_secs(4))?;
    let mut attack = Vec::new();
    for _ in 0..100 {
        attack.push(connect_from("127.0.0.2", &server.addr).await?);
    }
    let mut told_503 = 0;
    for stream in &mut attack {
        if let Some(answer) = answer_within(stream, Duration::from_millis(20)).await
            && answer.starts_with("HTTP/1.1 503")
            && answer.contains("the server has too many open connections")
        {
            told_503 += 1;
        }
    }
    eprintln!("100 connections against a cap of 64 (one taken by the healthy client): {told_503} told 503");
    assert!(told_503 >= 36, "{told_503}");
    // A newcomer is told 503 at once, not left waiting.
    let started = Instant::now();
    let mut newcomer = connect_from("127.0.0.1", &server.addr).await?;
    let answer = answer_within(&mut newcomer, Duration::from_secs(2)).await.unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    eprintln!("a newcomer while full: 503 in {:?}", started.elapsed());
    // The healthy client keeps its connection and keeps syncing.
    assert_no_gap(heartbeat.finish()?);
    drop(attack);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = health(&server.addr).await?;
    assert_eq!(status["status"], "ok", "served again once the attacker left");
    Ok(())
}

fn request(peer: &RawPeer, id: DocumentId) -> Message {
    Message::Request(DocMessage {
        sender_id: peer.peer_id.clone(),
        target_id: peer.server_id.clone().unwrap_or_else(|| PeerId::from("server")),
        document_id: id,
        data: konsens_tests::empty_sync_message(),
    })
}

fn sync_with_changes(peer: &RawPeer, id: DocumentId, chunk: Vec<u8>) -> Message {
    let data = automerge::sync::Message {
        heads: vec![],
        need: vec![],
        have: vec![],
        changes: automerge::sync::ChunkList::from(vec![chunk]),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    }
    .encode();
    Message::Sync(DocMessage {
        sender_id: peer.peer_id.clone(),
        target_id: peer.server_id.clone().unwrap_or_else(|| PeerId::from("server")),
        document_id: id,
        data,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_for_unknown_documents_start_nothing_and_a_flooding_token_is_slowed_then_closed() -> Result<()> {
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start_secure(data.path(), "127.0.0.1:0", &["--throttle-close-secs", "3"])?;
    let admin = server.admin_token.clone().context("admin token")?;
    let heartbeat = Heartbeat::start(&format!("{}?token={admin}", server.ws_url()), Duration::from_secs(12))?;
    // A second token for the attacker: the budget is per token, and the
    // healthy client's must stay untouched.
    let attacker_token = konsens_tests_support::observer_token(&server, &admin).await?;
    let url = format!("{}?token={attacker_token}", server.ws_url());
    let (before, _) = health(&server.addr).await?;
    let rss_before = rss_kib(server.pid())?;

    // Four connections asking for random ids as fast as they can for 10 s.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..4u8 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut peer = RawPeer::join(&url, &format!("prober-{n}")).await?;
            let mut answered = 0u32;
            let mut sent = 0u32;
            let deadline = Instant::now() + Duration::from_secs(10);
            let closed = 'probing: loop {
                if Instant::now() > deadline {
                    break None;
                }
                // Keep a few in flight (the server reads the next only when it
                // may); the first prober one at a time, so it is reading, not
                // writing, when it is closed and sees the close frame.
                let in_flight = if n == 0 { 1 } else { 8 };
                while sent < answered + in_flight {
                    let id = DocumentId::from_random(rand_bytes(n, sent));
                    let message = request(&peer, id);
                    if peer.send(&message).await.is_err() {
                        // Closed by the server: read why.
                        loop {
                            match peer.next().await? {
                                Answer::Close { code, reason } => break 'probing Some((code, reason)),
                                Answer::Ended => break 'probing Some((1006, String::new())),
                                Answer::Message(_) => {}
                            }
                        }
                    }
                    sent += 1;
                }
                match peer.next().await? {
                    Answer::Message(Message::DocUnavailable { .. }) => answered += 1,
                    Answer::Message(Message::Error { .. }) => {}
                    Answer::Message(other) => bail!("unexpected {other:?}"),
                    Answer::Close { code, reason } => break Some((code, reason)),
                    Answer::Ended => break Some((1006, String::new())),
                }
            };
            Ok::<_, anyhow::Error>((answered, closed))
        }));
    }
    let mut answered = 0;
    let mut closes = Vec::new();
    for task in tasks {
        let (n, closed) = task.await??;
        answered += n;
        closes.push(closed);
    }
    let took = started.elapsed();
    let (after, _) = health(&server.addr).await?;
    let rss_after = rss_kib(server.pid())?;
    eprintln!(
        "4 connections of one token asking for random ids: {answered} answered in {took:?}, closes {closes:?}; loaded documents {} -> {}; RSS {} -> {} MiB",
        before["loaded_documents"], after["loaded_documents"], rss_before / 1024, rss_after / 1024
    );
    assert!(answered <= 600 + 10 * 11 + 40, "the budget is 600 a minute, a minute's worth at once: {answered}");
    // Each connection is closed; a prober that keeps writing into a closed
    // socket may lose the close frame to a reset, so the log tells for them.
    for closed in &closes {
        let (code, reason) = closed.as_ref().context("a flooding token's connections are closed")?;
        assert!(*code == 1006 || (*code == 1008 && reason.contains("unknown documents")), "{code} {reason}");
    }
    assert!(matches!(&closes[0], Some((1008, _))), "{closes:?}");
    assert!(
        after["loaded_documents"].as_u64() <= before["loaded_documents"].as_u64(),
        "no owner is kept for an unknown id: {before} -> {after}"
    );
    assert!(rss_after < rss_before + 30 * 1024, "RSS {rss_before} -> {rss_after} KiB");
    assert_no_gap(heartbeat.finish()?);
    let log = server.log();
    assert_eq!(count(&log, "too many requests for unknown or unreadable documents"), closes.len(), "one line per closed connection");
    Ok(())
}

fn rand_bytes(n: u8, i: u32) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes[0] = n;
    bytes[1..5].copy_from_slice(&i.to_le_bytes());
    bytes[5] = 0x5a;
    bytes
}

/// A saved document holding one 60 MB string: about 60 KB deflated.
fn deflate_bomb() -> Result<Vec<u8>> {
    let mut doc = Automerge::new();
    let mut tx = doc.transaction();
    tx.put(ROOT, "text", "a".repeat(60 << 20))?;
    tx.commit();
    Ok(doc.save())
}

/// A `request` whose Bloom filter has two billion probes.
fn bloom_bomb(peer: &RawPeer, id: DocumentId) -> Message {
    let mut data = vec![0x42u8, 0, 0, 1, 0];
    let bloom = [1u8, 8, 0x80, 0xa8, 0xd6, 0xb9, 0x07, 0xff];
    data.push(bloom.len() as u8);
    data.extend(bloom);
    data.push(0);
    Message::Request(DocMessage {
        sender_id: peer.peer_id.clone(),
        target_id: peer.server_id.clone().unwrap_or_else(|| PeerId::from("server")),
        document_id: id,
        data,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_that_inflate_past_the_limits_are_refused_logged_once_and_the_server_keeps_serving() -> Result<()> {
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start_secure(data.path(), "127.0.0.1:0", &[])?;
    let admin = server.admin_token.clone().context("admin token")?;
    let url = format!("{}?token={admin}", server.ws_url());
    let bomb = tokio::task::spawn_blocking(deflate_bomb).await??;
    eprintln!("deflate bomb: {} bytes on the wire, 60 MiB inflated", bomb.len());
    let heartbeat = Heartbeat::start(&url, Duration::from_secs(8))?;
    let rss_before = rss_kib(server.pid())?;

    // Three senders at once, three times each.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..3u8 {
        let (url, bomb) = (url.clone(), bomb.clone());
        tasks.push(tokio::spawn(async move {
            let mut peer = RawPeer::join(&url, &format!("bomber-{n}")).await?;
            for i in 0..3u8 {
                let id = DocumentId::from_random([n, i, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9]);
                let message = sync_with_changes(&peer, id, bomb.clone());
                peer.send(&message).await?;
                match peer.next().await? {
                    Answer::Message(Message::Error { refusal: Some(refusal), message, .. }) => {
                        assert_eq!(refusal.code, RefusalCode::Unreadable, "{message}");
                        assert!(message.contains("inflate past the limit"), "{message}");
                    }
                    other => bail!("expected a typed refusal, got {other:?}"),
                }
            }
            // Still served.
            let message = request(&peer, DocumentId::from_random([n; 16]));
            peer.send(&message).await?;
            match peer.next().await? {
                Answer::Message(Message::DocUnavailable { .. }) => Ok(()),
                other => bail!("the connection is kept and served, got {other:?}"),
            }
        }));
    }
    let mut health_took = Duration::ZERO;
    while tasks.iter().any(|t| !t.is_finished()) {
        let (_, took) = health(&server.addr).await?;
        health_took = health_took.max(took);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for task in tasks {
        task.await??;
    }
    let rss_after = rss_kib(server.pid())?;
    eprintln!(
        "9 deflate bombs from 3 connections at once: refused in {:?}; RSS {} -> {} MiB; slowest /health meanwhile {health_took:?}",
        started.elapsed(),
        rss_before / 1024,
        rss_after / 1024
    );
    assert!(rss_after < rss_before + 60 * 1024, "RSS {rss_before} -> {rss_after} KiB");
    assert!(health_took < Duration::from_secs(1), "{health_took:?}");

    // Run lengths that claim 2^40 operations in a few dozen bytes.
    let mut peer = RawPeer::join(&url, "runner").await?;
    let bomb = konsens_sync::fuzzing::run_length_bomb(1 << 40);
    let message = sync_with_changes(&peer, DocumentId::from_random([4; 16]), bomb.clone());
    let sent = Instant::now();
    peer.send(&message).await?;
    match peer.next().await? {
        Answer::Message(Message::Error { refusal: Some(refusal), message, .. }) => {
            assert_eq!(refusal.code, RefusalCode::Unreadable);
            assert!(message.contains("operations"), "{message}");
            eprintln!("run-length bomb ({} bytes): refused in {:?}", bomb.len(), sent.elapsed());
        }
        other => bail!("expected a typed refusal, got {other:?}"),
    }

    // A Bloom filter that would allocate gigabytes: bad input, closed.
    let message = bloom_bomb(&peer, DocumentId::from_random([5; 16]));
    peer.send(&message).await?;
    let closed = loop {
        match peer.next().await? {
            Answer::Close { code, reason } => break (code, reason),
            Answer::Message(Message::Error { .. }) => continue,
            other => bail!("expected a close, got {other:?}"),
        }
    };
    assert_eq!(closed.0, 1002, "{closed:?}");
    assert!(closed.1.contains("Bloom"), "{closed:?}");

    assert_no_gap(heartbeat.finish()?);
    let log = server.log();
    assert_eq!(count(&log, "refused a message over the read limits"), 4, "once per connection:\n{log}");
    assert!(!log.contains("panicked"), "{log}");
    Ok(())
}

/// Making a process and inviting into it, through the client library and the API.
mod konsens_tests_support {
    use anyhow::{Context, Result, bail};
    use konsens_tests::{ServerProcess, http_request};
    use serde_json::json;

    /// An observer's token in a fresh process.
    pub async fn observer_token(server: &ServerProcess, admin: &str) -> Result<String> {
        let store = tempfile::tempdir()?;
        let ws = konsens_tests::admin_workspace(server, admin, store.path())?;
        let process = ws.create_process("Fair skills partnerships", "").await?;
        tokio::time::timeout(std::time::Duration::from_secs(30), ws.repo().wait_synced(process)).await??;
        let body = json!({"role": "observer", "name": "Olga Observer", "organisation": "Press"});
        let (status, text) = http_request(&server.addr, "POST", &format!("/api/processes/{process}/invitations"), Some(admin), Some(&body)).await?;
        if status != 201 {
            bail!("invitation failed: {status} {text}");
        }
        let body: serde_json::Value = serde_json::from_str(&text)?;
        Ok(body["token"].as_str().context("token")?.to_owned())
    }
}
