//! The owner of one loaded document: a task that holds its [`DocEngine`], takes
//! everything queued for it from all connections as one batch, hands writes to
//! the group-commit writer and releases replies once they are durable.

use std::sync::Arc;

use konsens_store::Persister;
use konsens_sync::{ConnectionId, DocEffect, DocEngine, DocInput, DocumentId, Message, Role};
use tokio::sync::mpsc;

use crate::awaiting::Waiter;
use crate::config::COALESCE_MIN_PEERS;
use crate::document::admission::{Admission, Pass};
use crate::document::coalesce::coalesce;
use crate::document::command::DocCommand;
use crate::document::context::DocumentContext;
use crate::document::effects::Effects;
use crate::document::open_index::index_new_document;
use crate::document::peers::Peers;
use crate::handle::{CloseReason, ConnectionHandle};
use crate::reply;

/// Most commands taken into one batch, so one busy document cannot starve its
/// own durability notifications for long.
const MAX_BATCH: usize = 4096;

/// The document could not be loaded from disk; it answers with errors and
/// never writes, so nothing stored is overwritten.
enum State {
    Live(DocEngine),
    Unreadable(String),
}

/// How an owner ended.
#[derive(Debug)]
pub(crate) enum Exit {
    /// It left (idle, empty, or its storage failed). Whoever started it
    /// takes it out of the registry, then hands what is still queued here
    /// to a fresh owner.
    Evicted(mpsc::Receiver<DocCommand>),
    /// The document moved to another node (this node's lease on it was
    /// lost, or the store refused a write for it). Place it again and resync
    /// `conns` (this node's own connections) with its new owner; connections
    /// relayed from other nodes were closed as moved, and their nodes do the same.
    Moved { commands: mpsc::Receiver<DocCommand>, conns: Vec<Arc<ConnectionHandle>> },
    /// The server is shutting down, or nobody can send to it any more.
    Stopped,
}

#[derive(Debug)]
pub(crate) struct DocumentOwner {
    ctx: Arc<DocumentContext>,
    id: DocumentId,
    commands: mpsc::Receiver<DocCommand>,
    persister: Persister,
    durable: mpsc::UnboundedReceiver<DocInput>,
    peers: Peers,
    admission: Admission,
    /// The requests of connections taken over from the hub (see
    /// `AwaitingCreation`): they were answered `doc-unavailable` already, and
    /// go back to wait there if this owner leaves without the document being created.
    replayed: Vec<(Arc<ConnectionHandle>, automerge::sync::Message)>,
    /// Bytes the document takes on disk, for the size limit.
    stored_bytes: usize,
    /// Connections that synced the document with its previous owner.
    resync: Vec<Arc<ConnectionHandle>>,
    /// The lease moved on: leave after this batch.
    lease_lost: bool,
}

impl DocumentOwner {
    pub fn new(ctx: Arc<DocumentContext>, id: DocumentId, commands: mpsc::Receiver<DocCommand>, resync: Vec<Arc<ConnectionHandle>>) -> Self {
        let (durable_tx, durable) = mpsc::unbounded_channel();
        // Runs on the writer thread; the owner may have gone, then nobody waits.
        let persister = Persister::new(ctx.commit.clone(), move |_, input| {
            let _ = durable_tx.send(input);
        });
        Self {
            admission: Admission::new(ctx.clone(), id),
            ctx,
            id,
            commands,
            persister,
            durable,
            peers: Peers::default(),
            replayed: Vec::new(),
            stored_bytes: 0,
            resync,
            lease_lost: false,
        }
    }

    async fn load(&mut self) -> State {
        let store = self.ctx.store.clone();
        let id = self.id;
        let loaded = tokio::task::spawn_blocking(move || {
            let chunks = store.load(&id)?;
            // Only saves work: an unreadable record means a full first sync.
            let states = store.sync_states(&id).unwrap_or_else(|e| {
                tracing::warn!(document = %id, error = %e, "cannot read sync states");
                Vec::new()
            });
            Ok::<_, konsens_store::StoreError>((chunks, states))
        })
        .await;
        let (chunks, states) = match loaded {
            Ok(Ok(loaded)) => loaded,
            Ok(Err(e)) => return State::Unreadable(e.to_string()),
            Err(e) => return State::Unreadable(format!("load task failed: {e}")),
        };
        self.stored_bytes = chunks.iter().map(|c| c.bytes.len()).sum();
        let engine = DocEngine::load_with_config(
            id,
            self.ctx.our_peer_id.clone(),
            Role::Server,
            self.ctx.engine.clone(),
            chunks.iter().map(|c| (c.is_snapshot, c.bytes.as_slice())),
        );
        match engine {
            Ok(mut engine) => {
                engine.restore_sync_states(states);
                State::Live(engine)
            }
            Err(e) => State::Unreadable(e.to_string()),
        }
    }

    pub async fn run(mut self) -> Exit {
        let mut state = self.load().await;
        if let State::Unreadable(reason) = &state {
            tracing::error!(document = %self.id, %reason, "document is unreadable; serving errors for it");
        }
        if let State::Live(engine) = &mut state {
            self.take_resync(engine);
            if engine.is_empty() {
                self.take_awaiting(engine);
            }
        }
        // Sync messages held for the next round (see `ServerConfig::coalesce_window`).
        let mut held: Vec<DocInput> = Vec::new();
        // The earliest time the next round of a shared document may start.
        let mut next_round_at = tokio::time::Instant::now();
        let mut took_any = false;
        let shutdown = self.ctx.shutdown.clone();
        loop {
            // A document that is still empty once its first messages are
            // handled does not exist (a refused creation, a stray message):
            // keeping its owner around for the idle delay would let requests
            // for random ids pile up owners. Leave at once.
            if took_any
                && held.is_empty()
                && self.commands.is_empty()
                && matches!(&state, State::Live(engine) if engine.is_empty() && !engine.is_flushing())
            {
                // Whoever still waits for it waits in the hub again.
                for (conn, request) in std::mem::take(&mut self.replayed) {
                    if self.peers.awaiting_creation.contains(&conn.id) {
                        self.ctx.awaiting.add(conn, self.id, request);
                    }
                }
                return self.evicted();
            }
            let idle = match &state {
                State::Live(engine) => engine.is_idle() && held.is_empty(),
                State::Unreadable(_) => self.peers.connections.is_empty(),
            };
            let mut inputs = Vec::new();
            let round_due = !held.is_empty() && tokio::time::Instant::now() >= next_round_at;
            if !round_due {
                tokio::select! {
                    biased;
                    Some(input) = self.durable.recv() => {
                        if is_moved(&input) {
                            return self.moved();
                        }
                        inputs.push(input);
                    }
                    command = self.commands.recv() => match command {
                        Some(command) => self.take(command, &mut state, &mut inputs),
                        None => return Exit::Stopped,
                    },
                    () = tokio::time::sleep_until(next_round_at), if !held.is_empty() => {}
                    () = tokio::time::sleep(self.ctx.idle_evict_after), if idle => {
                        return self.evicted();
                    }
                    // On shutdown, leave once nothing is waiting for a flush.
                    () = shutdown.cancelled(), if !matches!(&state, State::Live(e) if e.is_flushing()) => {
                        if let State::Live(engine) = &mut state {
                            // Keep what each peer shares with us for its reconnect.
                            let conns: Vec<ConnectionId> = engine.connections().collect();
                            let effects = engine.handle(conns.into_iter().map(|conn| DocInput::Disconnected { conn }));
                            self.execute(effects);
                        }
                        return Exit::Stopped;
                    }
                }
            }
            took_any = true;
            // Everything else already queued joins this batch.
            while inputs.len() < MAX_BATCH {
                if let Ok(input) = self.durable.try_recv() {
                    if is_moved(&input) {
                        return self.moved();
                    }
                    inputs.push(input);
                } else if let Ok(command) = self.commands.try_recv() {
                    self.take(command, &mut state, &mut inputs);
                } else {
                    break;
                }
            }
            if self.lease_lost {
                return self.moved();
            }
            let State::Live(engine) = &mut state else {
                continue;
            };
            let hold = !self.ctx.coalesce_window.is_zero()
                && engine.connections().count() >= COALESCE_MIN_PEERS
                && tokio::time::Instant::now() < next_round_at;
            let inputs = coalesce(hold, inputs, &mut held);
            if inputs.is_empty() {
                continue;
            }
            let effects = engine.handle(inputs);
            // A round that applied changes opens the window; acknowledgements,
            // which change nothing, pass freely and do not.
            if effects.iter().any(|e| matches!(e, DocEffect::Persist { .. })) {
                next_round_at = tokio::time::Instant::now() + self.ctx.coalesce_window;
            }
            let gone = self.execute(effects);
            if !gone.is_empty() {
                let effects = engine.handle(gone.into_iter().map(|conn| DocInput::Disconnected { conn }));
                self.execute(effects);
            }
            if engine.has_failed() {
                // Memory may hold changes that never reached disk: start over from disk.
                tracing::error!(document = %self.id, "storage failed; dropping the in-memory copy");
                return self.evicted();
            }
        }
    }

    fn evicted(self) -> Exit {
        Exit::Evicted(self.commands)
    }

    /// Leave without writing anything more: another node owns the document
    /// now. What was not durable here was never acknowledged; the resync
    /// with the new owner makes the peers send it again.
    fn moved(self) -> Exit {
        tracing::warn!(document = %self.id, "the document moved to another node; handing its connections on");
        let mut conns = Vec::new();
        for conn in self.peers.connections.into_values() {
            if conn.relayed {
                conn.close(CloseReason::Moved);
            } else {
                conns.push(conn);
            }
        }
        Exit::Moved { commands: self.commands, conns }
    }

    /// Start afresh with the connections that synced the document with its
    /// previous owner (only those that may still read it).
    fn take_resync(&mut self, engine: &mut DocEngine) {
        let mut inputs = Vec::new();
        for conn in std::mem::take(&mut self.resync) {
            self.resync_input(conn, &mut inputs);
        }
        if !inputs.is_empty() {
            let effects = engine.handle(inputs);
            self.execute(effects);
        }
    }

    fn resync_input(&mut self, conn: Arc<ConnectionHandle>, inputs: &mut Vec<DocInput>) {
        if !self.ctx.auth.can_read(&conn.principal, &self.id) {
            return;
        }
        let (id, peer) = (conn.id, conn.peer_id.clone());
        self.peers.introduce(conn, inputs);
        inputs.push(DocInput::Resync { conn: id, peer });
    }

    fn execute(&mut self, effects: Vec<DocEffect>) -> Vec<ConnectionId> {
        Effects {
            id: self.id,
            auth: &self.ctx.auth,
            peers: &mut self.peers,
            persister: &self.persister,
            stored_bytes: &mut self.stored_bytes,
        }
        .execute(effects)
    }

    /// Take over the connections that asked for this document before it
    /// existed. The engine sees their requests again (so it sends them the
    /// document once there is one, which `Effects` checks against the access
    /// rules); the `doc-unavailable` it answers now they already had.
    fn take_awaiting(&mut self, engine: &mut DocEngine) {
        let waiters = self.ctx.awaiting.take(&self.id);
        if waiters.is_empty() {
            return;
        }
        let mut inputs = Vec::new();
        for Waiter { conn, request } in waiters {
            self.peers.awaiting_creation.insert(conn.id);
            self.replayed.push((conn.clone(), request.clone()));
            let (id, sender) = (conn.id, conn.peer_id.clone());
            self.peers.introduce(conn, &mut inputs);
            inputs.push(DocInput::Sync { conn: id, sender, message: request, request: true });
        }
        let effects = engine
            .handle(inputs)
            .into_iter()
            .filter(|e| !matches!(e, DocEffect::Send { message: Message::DocUnavailable { .. }, .. }))
            .collect();
        self.execute(effects);
    }

    /// Turn a command into engine input, remembering the connection's handle.
    fn take(&mut self, command: DocCommand, state: &mut State, inputs: &mut Vec<DocInput>) {
        match command {
            DocCommand::Sync { conn, message, request } => {
                match state {
                    State::Unreadable(reason) => {
                        let text = format!("document {} is unreadable on this server: {reason}", self.id);
                        conn.send(reply::error(&self.ctx.our_peer_id, Some(&conn.peer_id), text).encode());
                        return;
                    }
                    State::Live(engine) if self.ctx.auth.open => index_new_document(&self.ctx.auth, self.id, engine, &message),
                    State::Live(engine) => match self.admission.screen(engine, self.stored_bytes, &conn, &message, request) {
                        Pass::Engine => {}
                        Pass::EngineAwaitingCreation => {
                            self.peers.awaiting_creation.insert(conn.id);
                        }
                        Pass::Dropped => {
                            // Answered or ignored here, but the peer spoke:
                            // changes held for its answer go out.
                            inputs.push(DocInput::Heard { conn: conn.id });
                            return;
                        }
                    },
                }
                let (id, sender) = (conn.id, conn.peer_id.clone());
                self.peers.introduce(conn, inputs);
                inputs.push(DocInput::Sync { conn: id, sender, message, request });
            }
            DocCommand::Ephemeral { conn, message } => {
                if !self.ctx.auth.can_read(&conn.principal, &self.id) {
                    return;
                }
                let id = conn.id;
                self.peers.introduce(conn, inputs);
                inputs.push(DocInput::Ephemeral { conn: id, message });
            }
            DocCommand::Disconnected { conn } => {
                self.peers.remove(conn);
                self.admission.forget(conn);
                inputs.push(DocInput::Disconnected { conn });
            }
            DocCommand::Resync { conn } => {
                if matches!(state, State::Live(_)) {
                    self.resync_input(conn, inputs);
                }
            }
            DocCommand::LeaseLost => self.lease_lost = true,
        }
    }
}

/// The store refused a write because another node owns the document now.
fn is_moved(input: &DocInput) -> bool {
    matches!(input, DocInput::PersistFailed { error: konsens_sync::PersistError::Moved, .. })
}
