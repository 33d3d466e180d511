//! Interop with the official JS client: `@automerge/automerge-repo` 2.5.6 and
//! its WebSocket adapter, driven by `tests/js/interop.mjs` in Node, against the
//! real konsens-server binary, with our Rust client on the other side.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use automerge::transaction::Transactable;
use automerge::{AutoSerde, Automerge, ROOT};
use konsens_client::{Repo, RepoConfig};
use konsens_sync::AutomergeUrl;
use konsens_tests::{ServerProcess, init_tracing};
use serde_json::{Value, json};

const PATIENCE: Duration = Duration::from_secs(30);

fn node(args: &[&str]) -> Result<Value> {
    konsens_tests::js_harness(args)
}

fn as_json(doc: &Automerge) -> Result<Value> {
    Ok(serde_json::to_value(AutoSerde::from(doc))?)
}

async fn rust_repo(dir: &std::path::Path, server: &ServerProcess) -> Result<Repo> {
    Ok(Repo::open(RepoConfig::new(dir).server(server.ws_url()))?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_creates_rust_reads_and_back() -> Result<()> {
    init_tracing();
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start(data.path(), &[])?;
    let url = server.ws_url();

    // JS → server → Rust
    let content = json!({"title": "Fair recruitment", "sectors": ["care", "construction"], "round": 2});
    let created = tokio::task::spawn_blocking({
        let url = url.clone();
        let content = content.to_string();
        move || node(&["create", &url, &content])
    })
    .await??;
    let doc_url: AutomergeUrl = created["url"].as_str().context("url")?.parse()?;
    let store = tempfile::tempdir()?;
    let rust = rust_repo(store.path(), &server).await?;
    let doc = tokio::time::timeout(PATIENCE, rust.find(doc_url.document_id)).await??;
    assert_eq!(as_json(&doc)?, content, "Rust sees what JS created");
    let mut heads: Vec<String> = doc.get_heads().iter().map(|h| h.to_string()).collect();
    heads.sort();
    let mut js_heads: Vec<String> = serde_json::from_value(created["heads"].clone())?;
    js_heads.sort();
    assert_eq!(heads, js_heads, "same heads on both sides");

    // The CLI pulls the JS document; its history of every change (`--all`;
    // by default it shows sessions) summarises the browser's message-less
    // change by the fields it touched.
    let cli_store = tempfile::tempdir()?;
    let konsens = konsens_tests::binary("konsens")?;
    let synced = Command::new(&konsens)
        .arg("--store").arg(cli_store.path())
        .args(["sync", &url, "--doc", &doc_url.to_string()])
        .output()?;
    assert!(synced.status.success(), "{}", String::from_utf8_lossy(&synced.stderr));
    let history = Command::new(&konsens)
        .arg("--store").arg(cli_store.path())
        .args(["--json", "history", "--all", &doc_url.to_string()])
        .output()?;
    assert!(history.status.success(), "{}", String::from_utf8_lossy(&history.stderr));
    let history: Value = serde_json::from_slice(&history.stdout)?;
    let summary = history[0]["summary"].as_str().context("summary")?;
    assert!(summary.contains("title") && summary.contains("sectors"), "{summary}");

    // Rust → server → JS
    let id = rust.create().await?;
    rust.change(id, |doc: &mut Automerge| {
        doc.transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(ROOT, "title", "Language training at work")?;
            tx.put(ROOT, "status", "draft")?;
            Ok(())
        })
        .map(|_| ())
        .map_err(|f| f.error)
    })
    .await??;
    tokio::time::timeout(PATIENCE, rust.wait_synced(id)).await??;
    let read = tokio::task::spawn_blocking({
        let url = url.clone();
        move || node(&["read", &url, &id.url()])
    })
    .await??;
    assert_eq!(read["doc"], json!({"title": "Language training at work", "status": "draft"}));

    // JS changes the Rust document; the Rust client sees it arrive.
    let mut watch = rust.subscribe(id).await?;
    tokio::task::spawn_blocking({
        let url = url.clone();
        move || node(&["change", &url, &id.url(), "status", "\"discussion\""])
    })
    .await??;
    let seen = tokio::time::timeout(PATIENCE, async {
        loop {
            let doc = rust.find(id).await?;
            if as_json(&doc)?["status"] == "discussion" {
                return Ok::<_, anyhow::Error>(doc);
            }
            watch.changed().await?;
        }
    })
    .await??;
    assert_eq!(as_json(&seen)?["title"], "Language training at work");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_finds_unknown_document_unavailable() -> Result<()> {
    init_tracing();
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start(data.path(), &[])?;
    let missing = konsens_sync::DocumentId::from_random([3; 16]).url();
    let url = server.ws_url();
    let read = tokio::task::spawn_blocking(move || node(&["read", &url, &missing])).await??;
    assert_eq!(read, json!({"unavailable": true}));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_messages_relay_between_js_peers() -> Result<()> {
    init_tracing();
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start(data.path(), &[])?;
    let url = server.ws_url();
    let result = tokio::task::spawn_blocking(move || node(&["ephemeral", &url])).await??;
    assert_eq!(result["a_to_b"], true);
    assert_eq!(result["b_to_a"], true);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_acknowledged_document_survives_sigkill() -> Result<()> {
    init_tracing();
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start(data.path(), &[])?;
    let url = server.ws_url();
    let content = json!({"title": "Digital innovation", "note": "acknowledged, then kill -9"});
    let created = tokio::task::spawn_blocking({
        let content = content.to_string();
        move || node(&["create", &url, &content])
    })
    .await??;
    // The JS client saw our storage's heads contain its document: kill -9 now.
    server.kill_hard()?;
    let server = ServerProcess::start(data.path(), &[])?;
    let url = server.ws_url();
    let doc_url = created["url"].as_str().context("url")?.to_owned();
    let read = tokio::task::spawn_blocking(move || node(&["read", &url, &doc_url])).await??;
    assert_eq!(read["doc"], content);
    Ok(())
}
