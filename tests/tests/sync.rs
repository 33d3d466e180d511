//! End-to-end: client-core peers syncing through the real konsens-server binary,
//! with real sled stores on disk and WebSockets on loopback.

use std::time::Duration;

use anyhow::{Context, Result};
use automerge::transaction::Transactable;
use automerge::{Automerge, ReadDoc, ROOT};
use konsens_client::{Repo, RepoConfig};
use konsens_sync::DocumentId;
use konsens_tests::{ServerProcess, http_get, init_tracing};

/// Every wait in these tests is for an event; this bound only turns a hang into a failure.
const PATIENCE: Duration = Duration::from_secs(30);

fn repo(dir: &std::path::Path, server: &ServerProcess) -> Result<Repo> {
    Ok(Repo::open(RepoConfig::new(dir).server(server.ws_url()))?)
}

async fn put(repo: &Repo, id: DocumentId, key: &'static str, value: String) -> Result<()> {
    repo.change(id, move |doc: &mut Automerge| {
        doc.transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(ROOT, key, value.as_str())?;
            Ok(())
        })
        .map(|_| ())
        .map_err(|f| f.error)
    })
    .await??;
    Ok(())
}

fn get(doc: &Automerge, key: &str) -> Option<String> {
    doc.get(ROOT, key)
        .ok()
        .flatten()
        .and_then(|(v, _)| v.into_string().ok())
}

/// Wait until the repo's copy of the document satisfies `done`.
async fn wait_until(repo: &Repo, id: DocumentId, done: impl Fn(&Automerge) -> bool) -> Result<Automerge> {
    let mut heads = repo.subscribe(id).await?;
    tokio::time::timeout(PATIENCE, async {
        loop {
            let doc = repo.find(id).await?;
            if done(&doc) {
                return Ok::<_, anyhow::Error>(doc);
            }
            heads.changed().await.context("repo closed")?;
        }
    })
    .await
    .context("timed out waiting for the document to converge")?
}

async fn synced(repo: &Repo, id: DocumentId) -> Result<()> {
    tokio::time::timeout(PATIENCE, repo.wait_synced(id))
        .await
        .context("timed out waiting for the server's acknowledgement")??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_converge_through_the_server() -> Result<()> {
    init_tracing();
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start(data.path(), &[])?;
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let a = repo(dir_a.path(), &server)?;
    let b = repo(dir_b.path(), &server)?;

    let id = a.create().await?;
    put(&a, id, "title", "Recognition of foreign qualifications".into()).await?;
    synced(&a, id).await?;

    let doc = b.find(id).await?;
    assert_eq!(get(&doc, "title").as_deref(), Some("Recognition of foreign qualifications"));

    put(&b, id, "status", "discussion".into()).await?;
    let doc = wait_until(&a, id, |d| get(d, "status").as_deref() == Some("discussion")).await?;
    assert_eq!(get(&doc, "title").as_deref(), Some("Recognition of foreign qualifications"));
    synced(&b, id).await?;
    let (da, db) = (a.find(id).await?, b.find(id).await?);
    let (mut ha, mut hb) = (da.get_heads(), db.get_heads());
    ha.sort();
    hb.sort();
    assert_eq!(ha, hb, "both peers end with the same heads");

    let health: serde_json::Value = serde_json::from_str(&http_get(&server.addr, "/health").await?)?;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["connections"], 2);
    assert!(health["loaded_documents"].as_u64() >= Some(1));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_edits_merge_on_reconnect() -> Result<()> {
    init_tracing();
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start(data.path(), &[])?;
    let addr = server.addr.clone();
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let a = repo(dir_a.path(), &server)?;
    let b = repo(dir_b.path(), &server)?;
    let id = a.create().await?;
    put(&a, id, "title", "Green skills".into()).await?;
    synced(&a, id).await?;
    b.find(id).await?;

    // The venue's wifi goes: both keep editing with no server.
    let status = server.terminate()?;
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    put(&a, id, "problem", "Too few trainers".into()).await?;
    put(&b, id, "rationale", "Demand grows in construction".into()).await?;
    put(&a, id, "title", "Green skills for construction".into()).await?;

    // Local stores kept the offline edits: a reopened repo sees them.
    assert_eq!(get(&a.find(id).await?, "problem").as_deref(), Some("Too few trainers"));

    let server = ServerProcess::start_on(data.path(), &addr, &[])?;
    let merged = |d: &Automerge| {
        get(d, "problem").as_deref() == Some("Too few trainers")
            && get(d, "rationale").as_deref() == Some("Demand grows in construction")
            && get(d, "title").as_deref() == Some("Green skills for construction")
    };
    wait_until(&a, id, merged).await?;
    wait_until(&b, id, merged).await?;
    synced(&a, id).await?;
    synced(&b, id).await?;
    drop(server);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_right_after_acknowledgement_loses_nothing() -> Result<()> {
    init_tracing();
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start(data.path(), &[])?;
    let dir = tempfile::tempdir()?;
    let writer = repo(dir.path(), &server)?;

    // Several documents, several changes each, acknowledged one after another.
    let mut ids = Vec::new();
    for d in 0..8 {
        let id = writer.create().await?;
        for i in 0..5 {
            put(&writer, id, "edit", format!("doc {d} edit {i}")).await?;
        }
        ids.push(id);
    }
    for id in &ids {
        synced(&writer, *id).await?;
    }
    // The moment the last acknowledgement arrived: kill -9, no shutdown code runs.
    server.kill_hard()?;
    drop(writer);

    let server = ServerProcess::start(data.path(), &[])?;
    let fresh_dir = tempfile::tempdir()?;
    let reader = repo(fresh_dir.path(), &server)?;
    for (d, id) in ids.iter().enumerate() {
        let doc = tokio::time::timeout(PATIENCE, reader.find(*id)).await??;
        assert_eq!(
            get(&doc, "edit"),
            Some(format!("doc {d} edit 4")),
            "document {d} lost an acknowledged change"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_document_is_unavailable_not_created() -> Result<()> {
    init_tracing();
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start(data.path(), &[])?;
    let dir = tempfile::tempdir()?;
    let client = repo(dir.path(), &server)?;
    let mut status = client.status();
    tokio::time::timeout(PATIENCE, status.wait_for(|s| matches!(s, konsens_client::ConnectionStatus::Online { .. })))
        .await??;
    let missing = DocumentId::from_random([42; 16]);
    let err = client.find(missing).await.expect_err("nobody has this document");
    assert!(matches!(err, konsens_client::ClientError::Unavailable(id) if id == missing), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_with_same_peer_id_replaces_the_old_connection() -> Result<()> {
    use konsens_tests::{Answer, RawPeer};
    init_tracing();
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start(data.path(), &[])?;
    let mut first = RawPeer::join(&server.ws_url(), "laptop-1").await?;
    let _second = RawPeer::join(&server.ws_url(), "laptop-1").await?;
    match first.next().await? {
        Answer::Close { reason, .. } => assert!(reason.contains("replaced"), "{reason}"),
        other => panic!("the old connection should be closed, got {other:?}"),
    }
    Ok(())
}
