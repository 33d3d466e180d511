//! Shared server state: the registry of loaded documents (one owner task
//! each) and of joined connections, per token and per peer id, and the
//! per-token budget of answers about unknown documents. Connections route
//! every `sync` through [`Hub::dispatch`], a map lookup under a short lock;
//! the owners themselves get a [`DocumentContext`], not the hub.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use konsens_sync::{ConnectionId, DocumentId, Handshake, PeerId};
use konsens_store::{ChunkStore, GroupCommit};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Auth;
use crate::awaiting::AwaitingCreation;
use crate::cluster::proxy::{Relay, RelayExit};
use crate::cluster::{Cluster, Placement};
use crate::config::ServerConfig;
use crate::document::{CreationLimit, DocCommand, DocumentContext, DocumentOwner, Exit};
use crate::gate::Gate;
use crate::handle::{CloseReason, ConnectionHandle};
use crate::metrics::Metrics;
use crate::miss_budget::{MISS_BUDGETS_KEPT, MissBudget, MissPace};
use crate::util::lock;

#[derive(Debug, Clone)]
struct DocumentHandle {
    generation: u64,
    commands: mpsc::Sender<DocCommand>,
}

#[derive(Debug)]
pub(crate) struct Hub {
    pub config: ServerConfig,
    pub handshake: Handshake,
    pub store: ChunkStore,
    pub commit: GroupCommit,
    pub auth: Auth,
    /// With a shared store (PostgreSQL): leases, links to other nodes.
    pub cluster: Option<Arc<Cluster>>,
    /// Caps on open TCP connections (see `http::serve`).
    pub gate: Arc<Gate>,
    /// What `GET /metrics` shows.
    pub metrics: Arc<Metrics>,
    /// What document owners are given.
    documents_context: Arc<DocumentContext>,
    /// Connections waiting for documents that do not exist yet.
    pub awaiting: Arc<AwaitingCreation>,
    documents: Mutex<HashMap<DocumentId, DocumentHandle>>,
    peers: Mutex<HashMap<PeerId, Arc<ConnectionHandle>>>,
    /// Live connections per token id, to enforce the limit and to close them on revocation.
    by_token: Mutex<HashMap<String, Vec<Arc<ConnectionHandle>>>>,
    /// Sockets upgraded but not joined yet, per token id: a revocation must
    /// reach them too, or a socket upgraded just before it could still join.
    unjoined: Mutex<HashMap<String, Vec<(u64, CancellationToken)>>>,
    /// Per token: answers about documents it cannot read or that do not exist.
    misses: Mutex<HashMap<String, MissBudget>>,
    next_unjoined: AtomicU64,
    next_connection: AtomicU64,
    next_generation: AtomicU64,
    connections: AtomicUsize,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

/// Removes a connection from the peer registry when dropped.
pub(crate) struct Registration {
    hub: Arc<Hub>,
    handle: Arc<ConnectionHandle>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut peers = lock(&self.hub.peers);
        if peers.get(&self.handle.peer_id).is_some_and(|h| h.id == self.handle.id) {
            peers.remove(&self.handle.peer_id);
        }
        drop(peers);
        let mut by_token = lock(&self.hub.by_token);
        if let Some(list) = by_token.get_mut(&self.handle.principal.token_id) {
            list.retain(|h| h.id != self.handle.id);
            if list.is_empty() {
                by_token.remove(&self.handle.principal.token_id);
            }
        }
        drop(by_token);
        self.hub.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a document could not be read from disk.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error(transparent)]
    Store(#[from] konsens_store::StoreError),
    #[error("stored chunks do not load: {0}")]
    Automerge(#[from] automerge::AutomergeError),
    #[error("the read task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Why a joining connection is not registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinRefusal {
    /// Another token's connection uses this peer id.
    PeerIdInUse,
    /// The token has as many connections as it may.
    TooManyForToken { limit: usize },
}

impl From<JoinRefusal> for CloseReason {
    fn from(refusal: JoinRefusal) -> Self {
        match refusal {
            JoinRefusal::PeerIdInUse => CloseReason::PeerIdInUse,
            JoinRefusal::TooManyForToken { limit } => CloseReason::TooManyForToken { limit },
        }
    }
}

/// A socket between its upgrade and its `join`; see [`Hub::track_unjoined`].
#[derive(Debug)]
pub(crate) struct Unjoined {
    hub: Arc<Hub>,
    token_id: String,
    id: u64,
    pub cancel: CancellationToken,
}

impl Drop for Unjoined {
    fn drop(&mut self) {
        let mut unjoined = lock(&self.hub.unjoined);
        if let Some(list) = unjoined.get_mut(&self.token_id) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                unjoined.remove(&self.token_id);
            }
        }
    }
}

impl Hub {
    pub fn new(config: ServerConfig, handshake: Handshake, store: ChunkStore, commit: GroupCommit, auth: Auth) -> Self {
        let gate = Arc::new(Gate::new(config.limits.max_connections, config.limits.connections_per_address));
        let awaiting = Arc::new(AwaitingCreation::default());
        let shutdown = CancellationToken::new();
        let metrics = Arc::new(Metrics::new());
        let cluster = Cluster::new(&store, &config.cluster, config.max_frame_bytes, metrics.clone()).map(Arc::new);
        let mut engine = konsens_sync::EngineConfig::default();
        if cluster.is_some() {
            // Failover resyncs a relayed peer without a reconnect; in the
            // cluster failover bench a writer then stayed silent while what
            // was held for its answer waited (cause not found yet). Until
            // it is, a cluster sends as Automerge does.
            engine.changes_wait_for_reply(false);
        }
        let documents_context = Arc::new(DocumentContext {
            engine: Arc::new(engine),
            store: store.clone(),
            commit: commit.clone(),
            auth: auth.clone(),
            our_peer_id: handshake.our_peer_id.clone(),
            idle_evict_after: config.idle_evict_after,
            coalesce_window: config.coalesce_window,
            max_document_bytes: config.limits.max_document_bytes,
            creations: CreationLimit::new(config.limits.documents_per_hour),
            awaiting: awaiting.clone(),
            shutdown: shutdown.clone(),
        });
        Self {
            cluster,
            gate,
            metrics,
            documents_context,
            awaiting,
            config,
            handshake,
            store,
            commit,
            auth,
            documents: Mutex::default(),
            peers: Mutex::default(),
            by_token: Mutex::default(),
            unjoined: Mutex::default(),
            misses: Mutex::default(),
            next_unjoined: AtomicU64::new(1),
            next_connection: AtomicU64::new(1),
            next_generation: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
            shutdown,
            tasks: TaskTracker::new(),
        }
    }

    pub fn next_connection_id(&self) -> ConnectionId {
        ConnectionId(self.next_connection.fetch_add(1, Ordering::Relaxed))
    }

    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    pub fn loaded_document_count(&self) -> usize {
        lock(&self.documents).len()
    }

    /// Cancelled when the server shuts down.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Tell every connection and document owner to stop, then wait until the
    /// owners have finished what they had in flight.
    pub async fn shut_down(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// A peer joined. A previous connection of the same peer is closed when
    /// the new one comes with the same token (a reconnect: their sync states
    /// would disagree, a known sync loop). A peer id in use by another token is
    /// refused: peer ids are chosen by clients, so anybody could otherwise
    /// take over someone's id and keep them offline.
    pub fn register_connection(self: &Arc<Self>, handle: Arc<ConnectionHandle>) -> Result<Registration, JoinRefusal> {
        // Both maps change under the peers lock, so two connections racing for
        // one id cannot both win.
        let mut peers = lock(&self.peers);
        let previous = peers.get(&handle.peer_id).cloned();
        if let Some(previous) = &previous
            && previous.principal.token_id != handle.principal.token_id
        {
            tracing::warn!(peer = %handle.peer_id, conn = ?handle.id, holder = ?previous.id, participant = %handle.principal.participant, "peer id in use by another token; refusing the new connection");
            return Err(JoinRefusal::PeerIdInUse);
        }
        {
            let mut by_token = lock(&self.by_token);
            let list = by_token.entry(handle.principal.token_id.clone()).or_default();
            if !self.auth.open && list.len() >= self.config.limits.connections_per_token {
                tracing::warn!(token = %handle.principal.token_id, limit = self.config.limits.connections_per_token, "connection limit per token reached");
                if list.is_empty() {
                    by_token.remove(&handle.principal.token_id);
                }
                return Err(JoinRefusal::TooManyForToken { limit: self.config.limits.connections_per_token });
            }
            list.push(handle.clone());
        }
        self.connections.fetch_add(1, Ordering::Relaxed);
        peers.insert(handle.peer_id.clone(), handle.clone());
        drop(peers);
        if let Some(previous) = previous {
            tracing::info!(peer = %handle.peer_id, old = ?previous.id, new = ?handle.id, "peer reconnected; closing its old connection");
            previous.close(CloseReason::Replaced);
        }
        Ok(Registration { hub: self.clone(), handle })
    }

    /// Track a socket from its upgrade until it joins (or ends): a revocation
    /// of its token cancels the returned guard's token.
    pub fn track_unjoined(self: &Arc<Self>, token_id: &str) -> Unjoined {
        let id = self.next_unjoined.fetch_add(1, Ordering::Relaxed);
        let cancel = CancellationToken::new();
        lock(&self.unjoined).entry(token_id.to_owned()).or_default().push((id, cancel.clone()));
        Unjoined { hub: self.clone(), token_id: token_id.to_owned(), id, cancel }
    }

    /// Close every live connection of a token (it was revoked), joined or not.
    pub fn close_token_connections(&self, token_id: &str) -> usize {
        let handles = lock(&self.by_token).get(token_id).cloned().unwrap_or_default();
        for handle in &handles {
            handle.close(CloseReason::TokenRevoked);
        }
        let unjoined = lock(&self.unjoined).get(token_id).cloned().unwrap_or_default();
        for (_, cancel) in &unjoined {
            cancel.cancel();
        }
        handles.len() + unjoined.len()
    }

    /// A token's record changed on some node (revoked, re-issued, its role
    /// changed): close its connections here, which reconnect with what the
    /// record says now, or not at all. `*`: changes may have been missed
    /// (the database connection was lost): close every connection whose
    /// token is no longer valid.
    pub fn token_changed(&self, token_id: &str) {
        if token_id != "*" {
            let closed = self.close_token_connections(token_id);
            if closed > 0 {
                tracing::info!(token = %token_id, closed, "a token changed on another node; closed its connections");
            }
            return;
        }
        let tokens: Vec<String> = lock(&self.by_token).keys().cloned().collect();
        for token_id in tokens {
            if self.auth.principal_by_id(&token_id).is_none() {
                self.close_token_connections(&token_id);
            }
        }
    }

    /// Charge one answer about a document the token cannot read, or that
    /// does not exist, to the token's budget. Every connection of the token
    /// shares it, so more connections buy no more lookups.
    pub fn charge_miss(&self, token_id: &str) -> MissPace {
        let limits = &self.config.limits;
        if limits.unknown_documents_per_minute == 0 {
            return MissPace::Now;
        }
        let now = std::time::Instant::now();
        let mut misses = lock(&self.misses);
        if misses.len() > MISS_BUDGETS_KEPT {
            // Tokens that have been quiet long enough to be full again cost nothing to forget.
            misses.retain(|_, budget| !budget.is_full(now, limits.unknown_documents_per_minute));
        }
        misses
            .entry(token_id.to_owned())
            .or_insert_with(|| MissBudget::new(now, limits.unknown_documents_per_minute))
            .charge(now, limits.unknown_documents_per_minute, limits.throttle_close_after)
    }

    /// The document as flushed to disk (what the server has acknowledged),
    /// read outside its owner; `None` when nothing is stored.
    pub async fn flushed_document(&self, id: DocumentId) -> Result<Option<automerge::Automerge>, ReadError> {
        let store = self.store.clone();
        let doc = tokio::task::spawn_blocking(move || -> Result<_, ReadError> {
            let mut doc = automerge::Automerge::new();
            for chunk in store.load(&id)? {
                doc.load_incremental(&chunk.bytes)?;
            }
            Ok(doc)
        })
        .await??;
        Ok((!doc.is_empty()).then_some(doc))
    }

    /// Is an owner running for this document?
    pub fn is_loaded(&self, id: &DocumentId) -> bool {
        lock(&self.documents).contains_key(id)
    }

    /// Send a command to a document's owner, starting one (and loading the
    /// document) if none is running.
    pub async fn dispatch(self: &Arc<Self>, id: DocumentId, mut command: DocCommand) {
        loop {
            let handle = self.document(id);
            match handle.commands.send(command).await {
                Ok(()) => return,
                Err(mpsc::error::SendError(returned)) => {
                    // The owner was evicted between lookup and send; retry with a fresh one.
                    command = returned;
                    self.unregister_document(id, handle.generation);
                }
            }
        }
    }

    /// In a cluster a document may be created on another node, and the
    /// connections here that asked for it before would never hear of it:
    /// look for the awaited documents in the store, and hand the requests
    /// of their waiters to the document (relayed to its owner, which answers
    /// with the document, if they may read it).
    pub async fn wake_awaited(self: &Arc<Self>) {
        let awaited = self.awaiting.documents();
        if awaited.is_empty() {
            return;
        }
        let store = self.store.clone();
        let created = tokio::task::spawn_blocking(move || awaited.into_iter().filter(|id| store.contains(id).unwrap_or(false)).collect::<Vec<_>>())
            .await
            .unwrap_or_default();
        for id in created {
            for waiter in self.awaiting.take(&id) {
                if self.auth.can_read(&waiter.conn.principal, &id) {
                    self.dispatch(id, DocCommand::Sync { conn: waiter.conn, message: waiter.request, request: true }).await;
                }
            }
        }
    }

    /// Tell a running document task (owner or relay), if any.
    pub async fn tell_document(&self, id: DocumentId, command: DocCommand) {
        let handle = lock(&self.documents).get(&id).cloned();
        if let Some(handle) = handle {
            let _ = handle.commands.send(command).await;
        }
    }

    /// Tell a running owner that a connection is gone (no owner: nothing to do).
    pub async fn notify_disconnected(&self, id: DocumentId, conn: ConnectionId) {
        let handle = lock(&self.documents).get(&id).cloned();
        if let Some(handle) = handle {
            let _ = handle.commands.send(DocCommand::Disconnected { conn }).await;
        }
    }

    fn document(self: &Arc<Self>, id: DocumentId) -> DocumentHandle {
        let mut documents = lock(&self.documents);
        if let Some(handle) = documents.get(&id) {
            return handle.clone();
        }
        let (tx, rx) = mpsc::channel(self.config.document_queue);
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let handle = DocumentHandle { generation, commands: tx };
        documents.insert(id, handle.clone());
        drop(documents);
        self.tasks.spawn(self.clone().run_document(id, rx, generation));
        handle
    }

    /// Run a document: as its owner, or (in a cluster, when another node owns
    /// it) as its relay; again wherever it moves. Once it leaves, take it out
    /// of the registry and hand anything that raced in to a fresh task.
    async fn run_document(self: Arc<Self>, id: DocumentId, mut commands: mpsc::Receiver<DocCommand>, generation: u64) {
        // Connections that synced the document where it was before.
        let mut resync = Vec::new();
        loop {
            let placement = match &self.cluster {
                None => Placement::Here,
                Some(cluster) => match cluster.place(id, &self.shutdown).await {
                    Some(placement) => placement,
                    None => return,
                },
            };
            match (placement, &self.cluster) {
                (Placement::Here, cluster) => {
                    let owner = DocumentOwner::new(self.documents_context.clone(), id, commands, std::mem::take(&mut resync));
                    let exit = owner.run().await;
                    match exit {
                        Exit::Evicted(rest) => {
                            if let Some(cluster) = cluster {
                                cluster.release(id).await;
                            }
                            commands = rest;
                            break;
                        }
                        Exit::Moved { commands: rest, conns } => {
                            commands = rest;
                            resync = conns;
                        }
                        Exit::Stopped => {
                            // Shutting down: the other nodes need not wait for the lease to run out.
                            if let Some(cluster) = cluster {
                                cluster.release(id).await;
                            }
                            return;
                        }
                    }
                }
                (Placement::There(link, holder), Some(cluster)) => {
                    let (events_tx, events) = mpsc::unbounded_channel();
                    link.attach(id, events_tx.clone());
                    cluster.watch(id, &holder, events_tx);
                    tracing::debug!(document = %id, owner = %holder.address, "relaying to the document's owner");
                    let relay = Relay {
                        document: id,
                        link,
                        commands,
                        conns: HashMap::new(),
                        events,
                        idle_after: self.config.idle_evict_after,
                        shutdown: self.shutdown.clone(),
                    };
                    let exit = relay.run(std::mem::take(&mut resync)).await;
                    cluster.unwatch(id);
                    match exit {
                        RelayExit::Reroute { commands: rest, conns } => {
                            commands = rest;
                            resync = conns;
                        }
                        RelayExit::Idle(rest) => {
                            commands = rest;
                            break;
                        }
                        RelayExit::Stopped => return,
                    }
                }
                (Placement::There(..), None) => return,
            }
        }
        self.unregister_document(id, generation);
        commands.close();
        let mut leftovers = Vec::new();
        while let Ok(command) = commands.try_recv() {
            leftovers.push(command);
        }
        tracing::debug!(document = %id, leftovers = leftovers.len(), "evicted");
        for command in leftovers {
            self.dispatch(id, command).await;
        }
    }

    fn unregister_document(&self, id: DocumentId, generation: u64) {
        let mut documents = lock(&self.documents);
        if documents.get(&id).is_some_and(|h| h.generation == generation) {
            documents.remove(&id);
        }
    }
}
