//! # konsens-server
//!
//! The runtime around `konsens-sync`: a WebSocket endpoint (`/sync`) that
//! speaks the automerge-repo protocol, one owner task per loaded document, and a
//! store (sled, or PostgreSQL with `--database`) written through a
//! group-commit thread. See ARCHITECTURE.md.

mod amendments;
mod api;
mod auth;
mod authorship;
mod awaiting;
mod cluster;
mod config;
mod connection;
mod demo;
mod document;
mod error;
mod gate;
mod handle;
mod http;
mod hub;
mod join;
mod metrics;
mod miss_budget;
mod notifications;
mod relayed;
mod reply;
mod security;
mod unknown;
mod util;
mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use konsens_sync::{Handshake, PeerId};
use konsens_store::{ChunkStore, GroupCommit};

pub use config::{
    COALESCE_MIN_PEERS, DEFAULT_COALESCE_MS, DEFAULT_CONNECTIONS_PER_ADDRESS, DEFAULT_CONNECTIONS_PER_TOKEN,
    DEFAULT_DATA_DIR, DEFAULT_DOCUMENT_QUEUE, DEFAULT_DOCUMENTS_PER_HOUR, DEFAULT_GROUP_COMMIT_MAX,
    DEFAULT_HANDSHAKE_TIMEOUT_SECS, DEFAULT_HEADER_TIMEOUT_SECS, DEFAULT_IDLE_EVICT_SECS, DEFAULT_LISTEN,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_DOCUMENT_BYTES, DEFAULT_MAX_INFLATED_BYTES, DEFAULT_MAX_OPERATIONS,
    DEFAULT_MESSAGES_PER_SECOND, DEFAULT_OUTBOUND_QUEUE, DEFAULT_REQUEST_TIMEOUT_SECS, DEFAULT_THROTTLE_CLOSE_SECS,
    DEFAULT_UNKNOWN_DOCUMENTS_PER_MINUTE, DEFAULT_WORKER_THREADS, DEFAULT_LEASE_MS, ClusterConfig, DatabaseUrl, DemoLanguage, Limits, PublicUrl, PublicUrlError, ServerConfig,
};
pub use error::ServerError;

use hub::Hub;

/// `http://host:port` for links, with a wildcard address shown as loopback.
pub(crate) fn public_base(addr: SocketAddr) -> String {
    let host = if addr.ip().is_unspecified() { "127.0.0.1".to_owned() } else { addr.ip().to_string() };
    format!("http://{host}:{}", addr.port())
}

/// Keep the connection cap below the descriptors the process may open, so
/// the cap answers 503 before `accept` starts failing for everybody.
fn clamp_to_descriptors(config: &mut ServerConfig) {
    let Some(limit) = rustix::process::getrlimit(rustix::process::Resource::Nofile).current else {
        return; // unlimited
    };
    let usable = usize::try_from(limit).unwrap_or(usize::MAX).saturating_sub(http::DESCRIPTOR_RESERVE).max(1);
    if config.limits.max_connections > usable {
        tracing::warn!(
            configured = config.limits.max_connections,
            open_file_limit = limit,
            clamped_to = usable,
            "the connection limit exceeds what the open-file limit allows; lowering it"
        );
        config.limits.max_connections = usable;
    }
}

/// Create a fresh administrator token in a store (a sled directory: the
/// server must not be running on it, sled allows one process). Returns the secret.
pub fn new_admin_token(store: &ChunkStore) -> Result<String, ServerError> {
    let auth = auth::Auth { store: store.auth()?, open: false };
    let (secret, _) = auth.issue_admin("administrator")?;
    store.flush()?;
    Ok(secret)
}

/// A bound, not yet running server.
#[derive(Debug)]
pub struct Server {
    listener: tokio::net::TcpListener,
    hub: Arc<Hub>,
    writer: std::thread::JoinHandle<()>,
    /// Created on first start; printed once as a link, never stored in clear.
    first_admin_token: Option<String>,
}

impl Server {
    /// Open the store and bind the listener.
    pub async fn bind(config: ServerConfig) -> Result<Self, ServerError> {
        config.cluster.check(config.database.is_some()).map_err(ServerError::Config)?;
        let store_config = config.clone();
        let store = tokio::task::spawn_blocking(move || store_config.open_store())
            .await
            .map_err(|e| ServerError::Serve(std::io::Error::other(e)))??;
        let storage_id = store.storage_id(|| uuid::Uuid::new_v4().to_string())?;
        let (commit, writer) = GroupCommit::spawn_with_max_group(store.clone(), config.group_commit_max)?;
        // Nodes sharing a database are one server to a client: an owner's
        // answers reach a client through another node, and the client accepts
        // them only from the peer it joined; and a client that reconnects to
        // another node finds the same peer and storage. So with a database the
        // peer id is the shared storage's.
        let our_peer_id = match &config.database {
            Some(_) => PeerId(format!("konsens-server-{}", storage_id.0)),
            None => PeerId(format!("konsens-server-{}", uuid::Uuid::new_v4())),
        };
        let handshake = Handshake { our_peer_id, storage_id };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Bind {
                addr: config.listen.to_string(),
                source,
            })?;
        let auth = auth::Auth { store: store.auth()?, open: config.open };
        let mut config = config;
        clamp_to_descriptors(&mut config);
        // Secure by default: the first start creates an administrator token.
        let first_admin_token = if !config.open && !auth.store.has_admin()? {
            Some(auth.issue_admin("administrator")?.0)
        } else {
            None
        };
        let hub = Arc::new(Hub::new(config, handshake, store, commit, auth));
        // Set before anything is served, so every group is counted.
        let metrics = hub.metrics.clone();
        hub.commit.observe(move |latency, writes| metrics.commit_observed(latency, writes));
        Ok(Self {
            listener,
            hub,
            writer,
            first_admin_token,
        })
    }

    /// Write the demo process (`--demo`) in `language` unless it is there
    /// already; returns its id.
    pub fn seed_demo(&self, language: DemoLanguage) -> Result<konsens_sync::DocumentId, ServerError> {
        demo::seed(&self.hub.store, language, self.hub.cluster.as_ref().map(|cluster| &cluster.leases))
    }

    pub fn local_addr(&self) -> Result<SocketAddr, ServerError> {
        Ok(self.listener.local_addr()?)
    }

    /// Serve until `shutdown` resolves, then close connections, let document
    /// owners finish their flushes and flush the store once more.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServerError> {
        let Self {
            listener,
            hub,
            writer,
            first_admin_token,
        } = self;
        if let Some(token) = first_admin_token {
            // Like a notebook server: one line a newcomer can click. Only here,
            // never in the log.
            let base = match &hub.config.public_url {
                Some(url) => url.to_string(),
                None => public_base(listener.local_addr()?),
            };
            println!("open {base}/join/{token}");
        }
        if hub.auth.open {
            tracing::warn!("--open: anyone who reaches this port may read and write every document");
        }
        tracing::info!(
            addr = %listener.local_addr()?,
            storage_id = %hub.handshake.storage_id.0,
            store = %hub.store.describe(),
            "konsens-server listening"
        );
        let token = hub.shutdown_token().clone();
        let signal_token = token.clone();
        tokio::spawn(async move {
            shutdown.await;
            signal_token.cancel();
        });
        // A token changed on another node (revoked, re-issued, its role):
        // its connections here close too. Nothing to hear on sled.
        // Weak: the store keeps the callback for its life, and the hub must
        // go at shutdown (it holds the group-commit writer, which the final
        // flush waits for).
        let token_hub = Arc::downgrade(&hub);
        hub.store.watch_tokens(move |token_id| {
            if let Some(hub) = token_hub.upgrade() {
                hub.token_changed(&token_id);
            }
        })?;
        if let Some(cluster) = hub.cluster.clone() {
            if hub.config.cluster.node_address.is_none() || hub.config.cluster.secret.is_none() {
                tracing::warn!("a shared database without --node-address and --cluster-secret: this node cannot relay to others, nor they to it");
            }
            let lost_hub = hub.clone();
            let lost = move |documents: Vec<konsens_sync::DocumentId>| {
                let hub = lost_hub.clone();
                tokio::spawn(async move {
                    for document in documents {
                        hub.tell_document(document, document::DocCommand::LeaseLost).await;
                    }
                });
            };
            let tick = cluster.leases.ttl() / 3;
            tokio::spawn(cluster.maintain(lost, token.clone()));
            let (awaited_hub, stop) = (hub.clone(), token.clone());
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(tick);
                loop {
                    tokio::select! {
                        _ = ticks.tick() => awaited_hub.wake_awaited().await,
                        () = stop.cancelled() => return,
                    }
                }
            });
        }
        http::serve(listener, hub.clone(), token).await;
        hub.shut_down().await;
        let store = hub.store.clone();
        drop(hub);
        // The writer thread ends once the last GroupCommit handle is gone.
        let flushed = tokio::task::spawn_blocking(move || {
            let result = store.flush();
            let _ = writer.join();
            result
        })
        .await
        .map_err(|e| ServerError::Serve(std::io::Error::other(e)))?;
        flushed?;
        tracing::info!("konsens-server stopped; store flushed");
        Ok(())
    }
}
