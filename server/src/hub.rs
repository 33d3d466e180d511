//! Shared server state: the registry of loaded documents and joined peers, the
//! store and its group-commit writer. The registry is touched when a document
//! is first routed to and when it is evicted, never per sync message inside a
//! document: each connection keeps the handles of the documents it talks to.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use konsens_protocol::{ConnectionId, DocumentId, Handshake, PeerId};
use konsens_store::{ChunkStore, GroupCommit};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Auth;
use crate::config::ServerConfig;
use crate::connection::{ConnectionHandle, close_code};
use crate::document::{DocCommand, DocumentTask};
use crate::lock;

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
    documents: Mutex<HashMap<DocumentId, DocumentHandle>>,
    peers: Mutex<HashMap<PeerId, Arc<ConnectionHandle>>>,
    /// Live connections per token id, to enforce the limit and to close them on revocation.
    by_token: Mutex<HashMap<String, Vec<Arc<ConnectionHandle>>>>,
    /// When each member created documents recently (sliding hour).
    creations: Mutex<HashMap<String, std::collections::VecDeque<std::time::Instant>>>,
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

impl Hub {
    pub fn new(config: ServerConfig, handshake: Handshake, store: ChunkStore, commit: GroupCommit, auth: Auth) -> Self {
        Self {
            config,
            handshake,
            store,
            commit,
            auth,
            documents: Mutex::default(),
            peers: Mutex::default(),
            by_token: Mutex::default(),
            creations: Mutex::default(),
            next_connection: AtomicU64::new(1),
            next_generation: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
            shutdown: CancellationToken::new(),
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

    /// A peer joined. A previous connection of the same peer is closed: its
    /// sync states would disagree with the new connection's (a known sync loop).
    pub fn register_connection(self: &Arc<Self>, handle: Arc<ConnectionHandle>) -> Result<Registration, String> {
        {
            let mut by_token = lock(&self.by_token);
            let list = by_token.entry(handle.principal.token_id.clone()).or_default();
            if !self.auth.open && list.len() >= self.config.limits.connections_per_token {
                tracing::warn!(token = %handle.principal.token_id, limit = self.config.limits.connections_per_token, "connection limit per token reached");
                return Err(format!(
                    "too many connections for this token (limit {})",
                    self.config.limits.connections_per_token
                ));
            }
            list.push(handle.clone());
        }
        self.connections.fetch_add(1, Ordering::Relaxed);
        let previous = lock(&self.peers).insert(handle.peer_id.clone(), handle.clone());
        if let Some(previous) = previous {
            tracing::info!(peer = %handle.peer_id, old = ?previous.id, new = ?handle.id, "peer reconnected; closing its old connection");
            previous.close(close_code::POLICY, "replaced by a newer connection of the same peer");
        }
        Ok(Registration { hub: self.clone(), handle })
    }

    /// Close every live connection of a token (it was revoked).
    pub fn close_token_connections(&self, token_id: &str) -> usize {
        let handles = lock(&self.by_token).get(token_id).cloned().unwrap_or_default();
        for handle in &handles {
            handle.close(close_code::POLICY, "token revoked");
        }
        handles.len()
    }

    /// Count a document creation by `participant`; false when over the hourly limit.
    pub fn allow_creation(&self, participant: &str) -> bool {
        let now = std::time::Instant::now();
        let hour = std::time::Duration::from_secs(3600);
        let mut creations = lock(&self.creations);
        let recent = creations.entry(participant.to_owned()).or_default();
        while recent.front().is_some_and(|t| now.duration_since(*t) > hour) {
            recent.pop_front();
        }
        if recent.len() >= self.config.limits.documents_per_hour {
            return false;
        }
        recent.push_back(now);
        true
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
        let task = DocumentTask::new(self.clone(), id, generation, rx);
        self.tasks.spawn(task.run());
        handle
    }

    pub fn unregister_document(&self, id: DocumentId, generation: u64) {
        let mut documents = lock(&self.documents);
        if documents.get(&id).is_some_and(|h| h.generation == generation) {
            documents.remove(&id);
        }
    }
}
