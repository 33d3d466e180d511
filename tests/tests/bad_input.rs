//! Bad input, each case on its own connection while two well-behaved peers keep
//! syncing through the same server: every case gets an `error` message or a
//! close with a reason, is logged, and nothing acknowledged is lost.

use std::time::Duration;

use anyhow::{Context, Result};
use automerge::transaction::Transactable;
use automerge::{Automerge, ROOT, ReadDoc};
use ciborium::Value;
use konsens_client::{Repo, RepoConfig};
use konsens_sync::{DocMessage, DocumentId, Message, PeerId};
use konsens_tests::{Answer, RawPeer, ServerProcess, http_get, init_tracing};

const PATIENCE: Duration = Duration::from_secs(30);
const LIMIT: usize = 64 * 1024;

fn cbor(value: Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(&value, &mut out).expect("CBOR encodes into a Vec");
    out
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

async fn put(repo: &Repo, id: DocumentId, key: String, value: String) -> Result<()> {
    repo.change(id, move |doc: &mut Automerge| {
        doc.transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(ROOT, key.as_str(), value.as_str())?;
            Ok(())
        })
        .map(|_| ())
        .map_err(|f| f.error)
    })
    .await??;
    Ok(())
}

/// The good peers keep working: a change by `a` reaches `b`, acknowledged.
async fn still_syncing(a: &Repo, b: &Repo, id: DocumentId, step: &str) -> Result<()> {
    let mut watch = b.subscribe(id).await?;
    put(a, id, step.to_owned(), format!("written after {step}")).await?;
    tokio::time::timeout(PATIENCE, a.wait_synced(id)).await??;
    tokio::time::timeout(PATIENCE, async {
        loop {
            let doc = b.find(id).await?;
            if doc.get(ROOT, step)?.is_some() {
                return Ok::<_, anyhow::Error>(());
            }
            watch.changed().await?;
        }
    })
    .await
    .with_context(|| format!("good peers stopped syncing after {step}"))??;
    Ok(())
}

fn expect_error_then_close(answers: &[Answer], needle: &str) {
    let error = answers.iter().find_map(|a| match a {
        Answer::Message(Message::Error { message, .. }) => Some(message.clone()),
        _ => None,
    });
    let close = answers.iter().find_map(|a| match a {
        Answer::Close { code, reason } => Some((*code, reason.clone())),
        _ => None,
    });
    let error = error.unwrap_or_else(|| panic!("no error message in {answers:?}"));
    assert!(error.contains(needle), "error {error:?} should mention {needle:?}");
    let (code, reason) = close.unwrap_or_else(|| panic!("no close frame in {answers:?}"));
    assert_ne!(code, 1000, "a refusal is not a normal close");
    assert!(!reason.is_empty(), "the close carries a reason");
}

async fn answers_until_close(peer: &mut RawPeer) -> Result<Vec<Answer>> {
    let mut answers = Vec::new();
    loop {
        let answer = peer.next().await?;
        let done = !matches!(answer, Answer::Message(_));
        answers.push(answer);
        if done {
            return Ok(answers);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_nobody_else_notices() -> Result<()> {
    init_tracing();
    let data = tempfile::tempdir()?;
    let limit = LIMIT.to_string();
    let server = ServerProcess::start(data.path(), &["--max-frame-bytes", &limit])?;
    let url = server.ws_url();
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let a = Repo::open(RepoConfig::new(dir_a.path()).server(&url))?;
    let b = Repo::open(RepoConfig::new(dir_b.path()).server(&url))?;
    let id = a.create().await?;
    put(&a, id, "title".into(), "Financing models".into()).await?;
    tokio::time::timeout(PATIENCE, a.wait_synced(id)).await??;
    tokio::time::timeout(PATIENCE, b.find(id)).await??;

    // 1. Malformed CBOR.
    let mut bad = RawPeer::join(&url, "bad-cbor").await?;
    bad.send_raw(vec![0xbf, 0x61, 0x74, 0xff, 0x13]).await?;
    expect_error_then_close(&answers_until_close(&mut bad).await?, "malformed CBOR");
    still_syncing(&a, &b, id, "after-malformed-cbor").await?;

    // 1b. CBOR nested 60,000 deep (just under this server's frame limit), and a byte string that claims 2^62 bytes:
    // answered and closed, no stack overflow, no allocation of the claim.
    let mut deep = RawPeer::join(&url, "deep-cbor").await?;
    let mut nested = vec![0x81; 60_000];
    nested.push(0x00);
    deep.send_raw(nested).await?;
    expect_error_then_close(&answers_until_close(&mut deep).await?, "CBOR");
    let mut huge = RawPeer::join(&url, "huge-cbor").await?;
    huge.send_raw(vec![0x5b, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3]).await?;
    expect_error_then_close(&answers_until_close(&mut huge).await?, "CBOR");
    still_syncing(&a, &b, id, "after-deep-and-huge-cbor").await?;

    // 2. An unknown message type: answered with an error, the connection stays usable.
    let mut newer = RawPeer::join(&url, "newer-client").await?;
    newer
        .send_raw(cbor(Value::Map(vec![
            (text("type"), text("telepathy")),
            (text("senderId"), text("newer-client")),
        ])))
        .await?;
    match newer.next().await? {
        Answer::Message(Message::Error { message, .. }) => assert!(message.contains("telepathy"), "{message}"),
        other => panic!("expected an error message, got {other:?}"),
    }
    newer
        .send(&Message::Request(DocMessage {
            sender_id: PeerId::from("newer-client"),
            target_id: newer.server_id.clone().context("joined")?,
            document_id: DocumentId::from_random([8; 16]),
            data: konsens_tests::empty_sync_message(),
        }))
        .await?;
    assert!(
        matches!(newer.next().await?, Answer::Message(Message::DocUnavailable { .. })),
        "the connection still serves requests after an unknown type"
    );
    still_syncing(&a, &b, id, "after-unknown-type").await?;

    // 3. A frame over the limit.
    let mut big = RawPeer::join(&url, "too-big").await?;
    let _ = big.send_raw(vec![0u8; LIMIT * 2]).await;
    match big.next().await? {
        Answer::Close { code, reason } => {
            assert_eq!(code, 1009, "message too big");
            assert!(reason.contains("limit"), "{reason}");
        }
        other => panic!("expected a close, got {other:?}"),
    }
    still_syncing(&a, &b, id, "after-oversized-frame").await?;

    // 4. A sync whose payload is not an Automerge sync message.
    let mut garbage = RawPeer::join(&url, "garbage-sync").await?;
    garbage
        .send(&Message::Sync(DocMessage {
            sender_id: PeerId::from("garbage-sync"),
            target_id: garbage.server_id.clone().context("joined")?,
            document_id: id,
            data: b"definitely not automerge".to_vec(),
        }))
        .await?;
    expect_error_then_close(&answers_until_close(&mut garbage).await?, "invalid sync message");
    still_syncing(&a, &b, id, "after-garbage-sync").await?;

    // 5. An unsupported protocol version.
    let mut future = RawPeer::connect(&url, "future").await?;
    future
        .send(&Message::Join {
            sender_id: PeerId::from("future"),
            peer_metadata: None,
            supported_protocol_versions: Some(vec!["7".into()]),
        })
        .await?;
    expect_error_then_close(&answers_until_close(&mut future).await?, "unsupported protocol version");
    still_syncing(&a, &b, id, "after-unsupported-version").await?;

    // 6. A text frame, before and after the handshake.
    let mut texter = RawPeer::join(&url, "texter").await?;
    texter.send_text("{\"type\":\"sync\"}").await?;
    expect_error_then_close(&answers_until_close(&mut texter).await?, "text frame");
    let mut early_texter = RawPeer::connect(&url, "early-texter").await?;
    early_texter.send_text("hello").await?;
    expect_error_then_close(&answers_until_close(&mut early_texter).await?, "text frame");
    still_syncing(&a, &b, id, "after-text-frame").await?;

    // Every refusal was logged.
    let log = server.log();
    for needle in ["malformed CBOR", "telepathy", "size limit", "invalid sync message", "unsupported protocol version", "text frame"] {
        assert!(log.contains(needle), "server log lacks {needle:?}:\n{log}");
    }
    let health: serde_json::Value = serde_json::from_str(&http_get(&server.addr, "/health").await?)?;
    assert_eq!(health["status"], "ok");

    // Nothing acknowledged was lost: kill -9 and read everything back.
    server.kill_hard()?;
    drop((a, b));
    let server = ServerProcess::start(data.path(), &[])?;
    let dir_c = tempfile::tempdir()?;
    let c = Repo::open(RepoConfig::new(dir_c.path()).server(server.ws_url()))?;
    let doc = tokio::time::timeout(PATIENCE, c.find(id)).await??;
    for key in ["title", "after-malformed-cbor", "after-unknown-type", "after-oversized-frame", "after-garbage-sync", "after-unsupported-version", "after-text-frame"] {
        assert!(doc.get(ROOT, key)?.is_some(), "lost {key}");
    }
    Ok(())
}

/// Paths that climb out of the web app's files answer 404, never a file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_never_leave_the_web_apps_files() -> Result<()> {
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start(data.path(), &[])?;
    for path in ["/assets/../Cargo.toml", "/assets/%2e%2e/%2e%2e/Cargo.toml", "/assets/..%2f..%2fCargo.toml", "/assets//etc/passwd", "/../../etc/passwd"] {
        let (status, body) = konsens_tests::http_request(&server.addr, "GET", path, None, None).await?;
        assert!(!body.contains("[workspace]") && !body.contains("root:x:0"), "{path} leaked a file:\n{body}");
        // The app's own page for unknown paths is fine; a file from elsewhere is not.
        assert!(matches!(status, 400 | 404) || (status == 200 && body.to_lowercase().contains("<!doctype html")), "{path}: {status}");
    }
    Ok(())
}
