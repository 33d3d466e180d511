//! Interop with `samod`, the Rust automerge-repo implementation: samod peers
//! syncing through the real konsens-server binary, and konsens clients syncing
//! through a samod repo acting as the server. Both sides must agree on the wire
//! protocol, the document id format and the sync handshake for these to pass.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use automerge::transaction::Transactable;
use automerge::{Automerge, ROOT, ReadDoc};
use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::routing::get;
use futures_util::StreamExt;
use konsens_client::{Repo, RepoConfig};
use konsens_sync::DocumentId;
use konsens_tests::{ServerProcess, init_tracing};
use samod::{BackoffConfig, ConnectionId, DocHandle};

/// Every wait in these tests is for an event; this bound only turns a hang into a failure.
const PATIENCE: Duration = Duration::from_secs(30);

/// Await `fut`, failing with a message naming `what` if it takes longer than [`PATIENCE`].
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .map_err(|_| anyhow!("timed out after {PATIENCE:?} waiting for {what}"))
}

// ---------------------------------------------------------------------------
// Document ids: both sides write bs58check of the 16 id bytes, so the string
// form is the bridge (and converting through it checks that claim).

fn to_konsens(id: &samod::DocumentId) -> Result<DocumentId> {
    id.to_string()
        .parse()
        .with_context(|| format!("konsens cannot parse samod's document id {id}"))
}

fn to_samod(id: DocumentId) -> Result<samod::DocumentId> {
    id.to_string()
        .parse()
        .with_context(|| format!("samod cannot parse konsens' document id {id}"))
}

// ---------------------------------------------------------------------------
// Plain automerge helpers, shared by both sides.

fn get_str(doc: &Automerge, key: &str) -> Option<String> {
    doc.get(ROOT, key)
        .ok()
        .flatten()
        .and_then(|(v, _)| v.into_string().ok())
}

fn put_str(doc: &mut Automerge, key: &str, value: &str) -> Result<()> {
    doc.transact::<_, _, automerge::AutomergeError>(|tx| {
        tx.put(ROOT, key, value)?;
        Ok(())
    })
    .map(|_| ())
    .map_err(|f| f.error)?;
    Ok(())
}

// ---------------------------------------------------------------------------
// konsens client helpers.

fn konsens_repo(dir: &std::path::Path, url: &str) -> Result<Repo> {
    Ok(Repo::open(RepoConfig::new(dir).server(url))?)
}

async fn konsens_put(
    repo: &Repo,
    id: DocumentId,
    key: &'static str,
    value: &'static str,
) -> Result<()> {
    repo.change(id, move |doc: &mut Automerge| put_str(doc, key, value))
        .await??;
    Ok(())
}

/// Wait until the server has acknowledged our heads for `id`.
async fn konsens_synced(repo: &Repo, id: DocumentId) -> Result<()> {
    within(
        "the server to acknowledge the konsens client's heads",
        repo.wait_synced(id),
    )
    .await??;
    Ok(())
}

/// Fetch a document the konsens client does not have yet (from its server).
async fn konsens_find(repo: &Repo, id: DocumentId) -> Result<Automerge> {
    Ok(within("the konsens client to find the document", repo.find(id)).await??)
}

/// Wait until the konsens client's copy of `id` satisfies `done`; wakes on
/// every change of heads instead of polling.
async fn konsens_wait_until(
    repo: &Repo,
    id: DocumentId,
    what: &str,
    done: impl Fn(&Automerge) -> bool,
) -> Result<Automerge> {
    let mut heads = repo.subscribe(id).await?;
    within(what, async {
        loop {
            let doc = repo.find(id).await?;
            if done(&doc) {
                return Ok::<_, anyhow::Error>(doc);
            }
            heads.changed().await.context("konsens repo closed")?;
        }
    })
    .await?
}

// ---------------------------------------------------------------------------
// samod helpers.

async fn samod_repo(peer_id: &str) -> samod::Repo {
    samod::Repo::build_tokio()
        .with_peer_id(peer_id.into())
        .load()
        .await
}

/// Dial `url` over WebSocket and wait for the handshake; returns the
/// connection, which identifies the server in per-document peer state.
async fn samod_dial(repo: &samod::Repo, url: &str) -> Result<ConnectionId> {
    let dialer = repo.dial_websocket(samod::Url::parse(url)?, BackoffConfig::default())?;
    let peer = within("samod to connect and handshake", dialer.established())
        .await?
        .map_err(|e| anyhow!("samod could not connect to {url}: {e}"))?;
    tracing::info!(server = %peer.peer_id, "samod connected");
    dialer
        .connection_id()
        .context("samod reports no connection right after establishing it")
}

async fn samod_put(handle: &DocHandle, key: &'static str, value: &'static str) -> Result<()> {
    handle
        .with_document_async(move |doc| put_str(doc, key, value))
        .await??;
    Ok(())
}

async fn samod_get(handle: &DocHandle, key: &'static str) -> Result<Option<String>> {
    Ok(handle
        .with_document_async(move |doc| get_str(doc, key))
        .await?)
}

/// Wait until samod's copy satisfies `done`; wakes on samod's change stream.
async fn samod_wait_until(
    handle: &DocHandle,
    what: &str,
    done: impl Fn(&Automerge) -> bool + Clone + Send + 'static,
) -> Result<()> {
    // Subscribe before checking, so a change between the two is not missed.
    let mut changes = handle.changes();
    within(what, async {
        loop {
            let check = done.clone();
            if handle.with_document_async(move |doc| check(doc)).await? {
                return Ok::<_, anyhow::Error>(());
            }
            changes.next().await.context("samod change stream ended")?;
        }
    })
    .await?
}

/// A samod repo serving the automerge-repo protocol at `ws://127.0.0.1:PORT/sync`,
/// the same shape as konsens-server, so konsens clients can use it unchanged.
struct SamodServer {
    repo: samod::Repo,
    url: String,
    http: tokio::task::JoinHandle<()>,
}

impl SamodServer {
    async fn start() -> Result<Self> {
        let repo = samod_repo("samod-server").await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("ws://{}/sync", listener.local_addr()?);
        let acceptor = repo.make_acceptor(samod::Url::parse(&url)?)?;
        let app = Router::new().route(
            "/sync",
            get(move |upgrade: WebSocketUpgrade| {
                let acceptor = acceptor.clone();
                async move {
                    upgrade.on_upgrade(move |socket| async move {
                        // No authentication: trust the peer id from the handshake.
                        if let Err(e) = acceptor.accept_axum(socket, None) {
                            tracing::warn!(error = %e, "samod server refused a connection");
                        }
                    })
                }
            }),
        );
        let http = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "samod server's HTTP listener failed");
            }
        });
        Ok(Self { repo, url, http })
    }

    async fn stop(self) {
        self.http.abort();
        self.repo.stop().await;
    }
}

/// konsens-server must take samod's traffic without complaint: a warning here
/// (an unknown message type, a rejected field) is an interop gap even when the
/// documents still converge.
fn assert_server_quiet(server: &ServerProcess) {
    let log = server.log();
    let complaints: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        // The start-up reminder that --open lets everybody in is expected here.
        .filter(|l| !l.contains("--open:"))
        .collect();
    assert!(
        complaints.is_empty(),
        "konsens-server complained:\n{}",
        complaints.join("\n")
    );
}

// ---------------------------------------------------------------------------
// samod as a client of konsens-server.

/// A document created in samod reaches konsens-server, and a konsens client
/// reads it from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samod_writes_konsens_client_reads_through_konsens_server() -> Result<()> {
    init_tracing();
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start(data.path(), &[])?;
    let url = server.ws_url();

    let samod = samod_repo("samod-writer").await;
    let conn = samod_dial(&samod, &url).await?;
    let mut initial = Automerge::new();
    put_str(&mut initial, "title", "Apprenticeship wages")?;
    let handle = samod.create(initial).await?;
    // samod's own view of the server: the sync state says the server has all
    // our heads (konsens-server only advertises heads it has flushed).
    within(
        "konsens-server to acknowledge samod's document",
        handle.they_have_our_changes(conn),
    )
    .await
    .with_context(|| format!("server log:\n{}", server.log()))?;

    let id = to_konsens(handle.document_id())?;
    let dir = tempfile::tempdir()?;
    let reader = konsens_repo(dir.path(), &url)?;
    let doc = konsens_find(&reader, id)
        .await
        .with_context(|| format!("server log:\n{}", server.log()))?;
    assert_eq!(
        get_str(&doc, "title").as_deref(),
        Some("Apprenticeship wages")
    );

    samod.stop().await;
    assert_server_quiet(&server);
    Ok(())
}

/// A document created by a konsens client is found by samod through
/// konsens-server, and samod's change to it flows back to the konsens client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn konsens_client_writes_samod_reads_and_answers_through_konsens_server() -> Result<()> {
    init_tracing();
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start(data.path(), &[])?;
    let url = server.ws_url();

    let dir = tempfile::tempdir()?;
    let konsens = konsens_repo(dir.path(), &url)?;
    let id = konsens.create().await?;
    konsens_put(&konsens, id, "title", "Night trains").await?;
    konsens_synced(&konsens, id).await?;

    let samod = samod_repo("samod-reader").await;
    samod_dial(&samod, &url).await?;
    let handle = within(
        "samod to find the konsens document",
        samod.find(to_samod(id)?),
    )
    .await??
    .with_context(|| {
        format!(
            "samod found no document {id}; server log:\n{}",
            server.log()
        )
    })?;
    assert_eq!(
        samod_get(&handle, "title").await?.as_deref(),
        Some("Night trains")
    );

    // The konsens client still has the document open on its connection, so
    // the server must push samod's change to it.
    samod_put(&handle, "status", "adopted").await?;
    let doc = konsens_wait_until(
        &konsens,
        id,
        "samod's change to reach the konsens client",
        |d| get_str(d, "status").as_deref() == Some("adopted"),
    )
    .await
    .with_context(|| format!("server log:\n{}", server.log()))?;
    assert_eq!(get_str(&doc, "title").as_deref(), Some("Night trains"));

    samod.stop().await;
    assert_server_quiet(&server);
    Ok(())
}

// ---------------------------------------------------------------------------
// konsens clients against a samod server.

/// Two konsens clients with separate stores sync one document through a samod
/// repo playing the server, in both directions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn konsens_clients_sync_through_samod_server() -> Result<()> {
    init_tracing();
    let server = SamodServer::start().await?;
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let a = konsens_repo(dir_a.path(), &server.url)?;
    let b = konsens_repo(dir_b.path(), &server.url)?;

    let id = a.create().await?;
    konsens_put(&a, id, "title", "Rural broadband").await?;
    // samod advertises our heads once it has applied the change; that is when
    // a second client can fetch it.
    konsens_synced(&a, id).await?;

    let doc = konsens_find(&b, id).await?;
    assert_eq!(get_str(&doc, "title").as_deref(), Some("Rural broadband"));

    konsens_put(&b, id, "status", "committee").await?;
    let doc = konsens_wait_until(&a, id, "b's change to reach a through samod", |d| {
        get_str(d, "status").as_deref() == Some("committee")
    })
    .await?;
    assert_eq!(get_str(&doc, "title").as_deref(), Some("Rural broadband"));

    // The samod server itself holds the merged document.
    let handle = within(
        "the samod server to find its own copy",
        server.repo.find(to_samod(id)?),
    )
    .await??
    .context("the samod server does not hold the document")?;
    samod_wait_until(&handle, "the samod server to hold both changes", |d| {
        get_str(d, "title").as_deref() == Some("Rural broadband")
            && get_str(d, "status").as_deref() == Some("committee")
    })
    .await?;

    server.stop().await;
    Ok(())
}
