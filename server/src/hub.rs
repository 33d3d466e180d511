//! Shared server state: the registry of loaded documents and joined peers, the
//! store and its group-commit writer. The registry is touched when a document
//! is first routed to and when it is evicted, never per sync message inside a
//! document: each connection keeps the handles of the documents it talks to.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use konsens_sync::{ConnectionId, DocMessage, DocumentId, Handshake, PeerId};
use konsens_store::{ChunkStore, GroupCommit};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Auth;
use crate::config::ServerConfig;
use crate::connection::{CloseReason, ConnectionHandle};
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
    /// Caps on open TCP connections (see `http::serve`).
    pub gate: Arc<crate::gate::Gate>,
    documents: Mutex<HashMap<DocumentId, DocumentHandle>>,
    peers: Mutex<HashMap<PeerId, Arc<ConnectionHandle>>>,
    /// Live connections per token id, to enforce the limit and to close them on revocation.
    by_token: Mutex<HashMap<String, Vec<Arc<ConnectionHandle>>>>,
    /// Sockets upgraded but not joined yet, per token id: a revocation must
    /// reach them too, or a socket upgraded just before it could still join.
    unjoined: Mutex<HashMap<String, Vec<(u64, CancellationToken)>>>,
    /// When each member created documents recently (sliding hour).
    creations: Mutex<HashMap<String, std::collections::VecDeque<std::time::Instant>>>,
    /// Per token: answers about documents it cannot read or that do not exist.
    misses: Mutex<HashMap<String, MissBudget>>,
    /// Connections that asked for a document before anybody had it: they
    /// wait here, not in an owner (see `await_creation`).
    awaiting: Mutex<HashMap<DocumentId, Vec<Waiter>>>,
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

/// Documents one connection may wait for before they exist.
pub(crate) const MAX_AWAITED_PER_CONNECTION: usize = 256;

/// A connection waiting for a document to exist, with the `request` it sent.
#[derive(Debug)]
pub(crate) struct Waiter {
    pub conn: Arc<ConnectionHandle>,
    pub request: DocMessage,
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

/// Budgets kept before full ones are forgotten (a bound on the map, not on tokens).
const MISS_BUDGETS_KEPT: usize = 10_000;

/// What to do with one more answer about an unreadable or unknown document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MissPace {
    Now,
    /// Answer after this long (the connection is not read meanwhile).
    After(std::time::Duration),
    /// The token has asked for far too many: close the connection.
    Close,
}

/// A token bucket per token: `per_minute` answers a minute, bursts up to a
/// minute's worth. Answers over it are reserved ahead, so the token's
/// connections wait in turn (each is not read meanwhile). A token slowed down
/// without a break for the close delay, or that would wait longer than it,
/// has its connections closed as they ask again.
#[derive(Debug)]
pub(crate) struct MissBudget {
    tokens: f64,
    last: std::time::Instant,
    /// When the current run of slowed-down answers began.
    slowed_since: Option<std::time::Instant>,
}

impl MissBudget {
    fn new(now: std::time::Instant, per_minute: u32) -> Self {
        Self { tokens: f64::from(per_minute), last: now, slowed_since: None }
    }

    fn refill(&mut self, now: std::time::Instant, per_minute: u32) {
        let per_second = f64::from(per_minute) / 60.0;
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_second).min(f64::from(per_minute));
        self.last = now;
    }

    fn is_full(&mut self, now: std::time::Instant, per_minute: u32) -> bool {
        self.refill(now, per_minute);
        self.tokens >= f64::from(per_minute)
    }

    pub(crate) fn charge(&mut self, now: std::time::Instant, per_minute: u32, close_after: std::time::Duration) -> MissPace {
        self.refill(now, per_minute);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.slowed_since = None;
            return MissPace::Now;
        }
        let since = *self.slowed_since.get_or_insert(now);
        let wait = std::time::Duration::from_secs_f64((1.0 - self.tokens) * 60.0 / f64::from(per_minute));
        if now.saturating_duration_since(since) >= close_after || wait > close_after {
            return MissPace::Close;
        }
        self.tokens -= 1.0;
        MissPace::After(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_minute_of_misses_passes_at_once_then_they_are_slowed_then_closed() {
        let start = Instant::now();
        let close_after = Duration::from_secs(3);
        let mut budget = MissBudget::new(start, 60);
        for _ in 0..60 {
            assert_eq!(budget.charge(start, 60, close_after), MissPace::Now);
        }
        // One a second after that, waited for in turn.
        assert_eq!(budget.charge(start, 60, close_after), MissPace::After(Duration::from_secs(1)));
        let mut at = start;
        let mut closed = false;
        for _ in 0..10 {
            at += Duration::from_secs(1);
            match budget.charge(at, 60, close_after) {
                MissPace::Close => {
                    closed = true;
                    break;
                }
                MissPace::After(_) => {}
                MissPace::Now => panic!("still over the budget"),
            }
        }
        assert!(closed, "slowed down without a break for the close delay: closed");
        // A quiet minute later the budget is whole again.
        at += Duration::from_secs(60);
        assert_eq!(budget.charge(at, 60, close_after), MissPace::Now);
    }
}

impl Hub {
    pub fn new(config: ServerConfig, handshake: Handshake, store: ChunkStore, commit: GroupCommit, auth: Auth) -> Self {
        let gate = Arc::new(crate::gate::Gate::new(config.limits.max_connections, config.limits.connections_per_address));
        Self {
            gate,
            config,
            handshake,
            store,
            commit,
            auth,
            documents: Mutex::default(),
            peers: Mutex::default(),
            by_token: Mutex::default(),
            unjoined: Mutex::default(),
            creations: Mutex::default(),
            misses: Mutex::default(),
            awaiting: Mutex::default(),
            next_unjoined: AtomicU64::new(1),
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

    /// A peer joined. A previous connection of the same peer is closed when
    /// the new one comes with the same token (a reconnect: their sync states
    /// would disagree, a known sync loop). A peer id in use by another token is
    /// refused: peer ids are chosen by clients, so anybody could otherwise
    /// take over someone's id and keep them offline.
    pub fn register_connection(self: &Arc<Self>, handle: Arc<ConnectionHandle>) -> Result<Registration, CloseReason> {
        // Both maps change under the peers lock, so two connections racing for
        // one id cannot both win.
        let mut peers = lock(&self.peers);
        let previous = peers.get(&handle.peer_id).cloned();
        if let Some(previous) = &previous
            && previous.principal.token_id != handle.principal.token_id
        {
            tracing::warn!(peer = %handle.peer_id, conn = ?handle.id, holder = ?previous.id, participant = %handle.principal.participant, "peer id in use by another token; refusing the new connection");
            return Err(CloseReason::PeerIdInUse);
        }
        {
            let mut by_token = lock(&self.by_token);
            let list = by_token.entry(handle.principal.token_id.clone()).or_default();
            if !self.auth.open && list.len() >= self.config.limits.connections_per_token {
                tracing::warn!(token = %handle.principal.token_id, limit = self.config.limits.connections_per_token, "connection limit per token reached");
                if list.is_empty() {
                    by_token.remove(&handle.principal.token_id);
                }
                return Err(CloseReason::TooManyForToken { limit: self.config.limits.connections_per_token });
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

    /// Remember that `conn` asked for `request.document_id` before it
    /// existed: the owner that creates it sends it the document, if it may
    /// read it then. An entry here, not an owner; each connection keeps at
    /// most `MAX_AWAITED_PER_CONNECTION` and forgets them when it goes.
    pub fn await_creation(&self, conn: Arc<ConnectionHandle>, request: DocMessage) {
        let mut awaiting = lock(&self.awaiting);
        let waiters = awaiting.entry(request.document_id).or_default();
        waiters.retain(|w| w.conn.id != conn.id);
        waiters.push(Waiter { conn, request });
    }

    /// The connections waiting for a document, for its new owner.
    pub fn take_awaiting(&self, id: &DocumentId) -> Vec<Waiter> {
        lock(&self.awaiting).remove(id).unwrap_or_default()
    }

    /// A connection is gone: it waits for nothing any more.
    pub fn forget_awaiting(&self, conn: ConnectionId, ids: &std::collections::HashSet<DocumentId>) {
        let mut awaiting = lock(&self.awaiting);
        for id in ids {
            if let Some(waiters) = awaiting.get_mut(id) {
                waiters.retain(|w| w.conn.id != conn);
                if waiters.is_empty() {
                    awaiting.remove(id);
                }
            }
        }
    }

    /// Is an owner running for this document?
    pub fn is_loaded(&self, id: &DocumentId) -> bool {
        lock(&self.documents).contains_key(id)
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
