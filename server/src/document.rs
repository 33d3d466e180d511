//! The owner of one loaded document: a task that holds its [`DocEngine`], takes
//! everything queued for it from all connections as one batch, hands writes to
//! the group-commit writer and releases replies once they are durable.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use konsens_sync::{
    ConnectionId, DocEffect, DocEngine, DocInput, DocMessage, DocumentId, EphemeralMessage,
    Message, Role, StorageWrite,
};
use konsens_model::access;
use konsens_store::{Provenance, Record};
use tokio::sync::mpsc;

use crate::connection::{CloseReason, ConnectionHandle};
use crate::hub::Hub;

/// Most commands taken into one batch, so one busy document cannot starve its
/// own durability notifications for long.
const MAX_BATCH: usize = 4096;

/// What connections send to a document's owner.
#[derive(Debug)]
pub(crate) enum DocCommand {
    Sync {
        conn: Arc<ConnectionHandle>,
        message: DocMessage,
        request: bool,
    },
    Ephemeral {
        conn: Arc<ConnectionHandle>,
        message: EphemeralMessage,
    },
    Disconnected {
        conn: ConnectionId,
    },
}

/// Why a message's changes do not go to the engine.
enum Admission {
    /// Refused by the access rules or limits; the sender is told.
    Refused(access::Refused),
    /// It offers changes refused before (or built on them); dropped silently.
    AlreadyRefused,
    /// Our own failure (recording authorship); the sender is told, nothing stored.
    Failed(String),
}

/// The document could not be loaded from disk; it answers with errors and
/// never writes, so nothing stored is overwritten.
enum State {
    Live(DocEngine),
    Unreadable(String),
}

pub(crate) struct DocumentTask {
    hub: Arc<Hub>,
    id: DocumentId,
    generation: u64,
    commands: mpsc::Receiver<DocCommand>,
    durable_tx: mpsc::UnboundedSender<(u64, Result<(), String>)>,
    durable_rx: mpsc::UnboundedReceiver<(u64, Result<(), String>)>,
    connections: HashMap<ConnectionId, Arc<ConnectionHandle>>,
    /// Changes refused from each connection, and their dependents seen since.
    /// A client that does not recover from a refusal keeps offering them;
    /// such messages are dropped without a reply, so no loop of refusals
    /// starts and the refusal is logged once.
    refused: HashMap<ConnectionId, HashSet<automerge::ChangeHash>>,
    /// Connections that asked for this document before it existed; what is
    /// sent to them is checked against the access rules at sending time.
    awaiting_creation: HashSet<ConnectionId>,
    /// The requests of those taken over from the hub (see `Hub::await_creation`):
    /// they were answered `doc-unavailable` already, and go back to the hub
    /// if this owner leaves without the document being created.
    replayed: Vec<(Arc<ConnectionHandle>, DocMessage)>,
    /// Bytes the document takes on disk, for the size limit.
    stored_bytes: usize,
}

impl DocumentTask {
    pub fn new(hub: Arc<Hub>, id: DocumentId, generation: u64, commands: mpsc::Receiver<DocCommand>) -> Self {
        let (durable_tx, durable_rx) = mpsc::unbounded_channel();
        Self {
            hub,
            id,
            generation,
            commands,
            durable_tx,
            durable_rx,
            connections: HashMap::new(),
            refused: HashMap::new(),
            awaiting_creation: HashSet::new(),
            replayed: Vec::new(),
            stored_bytes: 0,
        }
    }

    async fn load(&mut self) -> State {
        let store = self.hub.store.clone();
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
        let engine = DocEngine::load(
            id,
            self.hub.handshake.our_peer_id.clone(),
            Role::Server,
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

    pub async fn run(mut self) {
        let mut state = self.load().await;
        if let State::Unreadable(reason) = &state {
            tracing::error!(document = %self.id, %reason, "document is unreadable; serving errors for it");
        }
        if let State::Live(engine) = &mut state
            && engine.doc().is_empty()
        {
            self.take_awaiting(engine);
        }
        // Sync messages held for the next round (see `ServerConfig::coalesce_window`).
        let mut held: Vec<DocInput> = Vec::new();
        // The earliest time the next round of a shared document may start.
        let mut next_round_at = tokio::time::Instant::now();
        let mut took_any = false;
        loop {
            // A document that is still empty once its first messages are
            // handled does not exist (a refused creation, a stray message):
            // keeping its owner around for the idle delay would let requests
            // for random ids pile up owners. Leave at once.
            if took_any
                && held.is_empty()
                && self.commands.is_empty()
                && matches!(&state, State::Live(engine) if engine.doc().is_empty() && !engine.is_flushing())
            {
                // Whoever still waits for it waits in the hub again.
                for (conn, request) in std::mem::take(&mut self.replayed) {
                    if self.awaiting_creation.contains(&conn.id) {
                        self.hub.await_creation(conn, request);
                    }
                }
                self.evict().await;
                return;
            }
            let idle = match &state {
                State::Live(engine) => engine.is_idle() && held.is_empty(),
                State::Unreadable(_) => self.connections.is_empty(),
            };
            let mut inputs = Vec::new();
            let round_due = !held.is_empty() && tokio::time::Instant::now() >= next_round_at;
            if !round_due {
                tokio::select! {
                    biased;
                    Some((seq, result)) = self.durable_rx.recv() => inputs.push(durable_input(seq, result)),
                    command = self.commands.recv() => match command {
                        Some(command) => self.take(command, &mut state, &mut inputs),
                        None => return,
                    },
                    () = tokio::time::sleep_until(next_round_at), if !held.is_empty() => {}
                    () = tokio::time::sleep(self.hub.config.idle_evict_after), if idle => {
                        self.evict().await;
                        return;
                    }
                    // On shutdown, leave once nothing is waiting for a flush.
                    () = self.hub.shutdown_token().cancelled(), if !matches!(&state, State::Live(e) if e.is_flushing()) => {
                        if let State::Live(engine) = &mut state {
                            // Keep what each peer shares with us for its reconnect.
                            let conns: Vec<ConnectionId> = engine.connections().collect();
                            let effects = engine.handle(conns.into_iter().map(|conn| DocInput::Disconnected { conn }));
                            self.execute(effects);
                        }
                        return;
                    }
                }
            }
            took_any = true;
            // Everything else already queued joins this batch.
            while inputs.len() < MAX_BATCH {
                if let Ok((seq, result)) = self.durable_rx.try_recv() {
                    inputs.push(durable_input(seq, result));
                } else if let Ok(command) = self.commands.try_recv() {
                    self.take(command, &mut state, &mut inputs);
                } else {
                    break;
                }
            }
            let State::Live(engine) = &mut state else {
                continue;
            };
            let hold = !self.hub.config.coalesce_window.is_zero()
                && engine.connections().count() >= crate::config::COALESCE_MIN_PEERS
                && tokio::time::Instant::now() < next_round_at;
            let inputs = coalesce(hold, inputs, &mut held);
            if inputs.is_empty() {
                continue;
            }
            let effects = engine.handle(inputs);
            // A round that applied changes opens the window; acknowledgements,
            // which change nothing, pass freely and do not.
            if effects.iter().any(|e| matches!(e, DocEffect::Persist { .. })) {
                next_round_at = tokio::time::Instant::now() + self.hub.config.coalesce_window;
            }
            let gone = self.execute(effects);
            if !gone.is_empty() {
                let effects = engine.handle(gone.into_iter().map(|conn| DocInput::Disconnected { conn }));
                self.execute(effects);
            }
            if engine.has_failed() {
                // Memory may hold changes that never reached disk: start over from disk.
                tracing::error!(document = %self.id, "storage failed; dropping the in-memory copy");
                self.evict().await;
                return;
            }
        }
    }

    /// Take over the connections that asked for this document before it
    /// existed. The engine sees their requests again (so it sends them the
    /// document once there is one, which `execute` checks against the access
    /// rules); the `doc-unavailable` it answers now they already had.
    fn take_awaiting(&mut self, engine: &mut DocEngine) {
        let waiters = self.hub.take_awaiting(&self.id);
        if waiters.is_empty() {
            return;
        }
        let mut inputs = Vec::new();
        for crate::hub::Waiter { conn, request } in waiters {
            self.awaiting_creation.insert(conn.id);
            self.replayed.push((conn.clone(), request.clone()));
            let id = conn.id;
            self.introduce(conn, &mut inputs);
            inputs.push(DocInput::Sync { conn: id, message: request, request: true });
        }
        let effects = engine.handle(inputs);
        let effects = effects
            .into_iter()
            .filter(|e| !matches!(e, DocEffect::Send { message: Message::DocUnavailable { .. }, .. }))
            .collect();
        self.execute(effects);
    }

    /// Turn a command into engine input, remembering the connection's handle.
    fn take(&mut self, command: DocCommand, state: &mut State, inputs: &mut Vec<DocInput>) {
        match command {
            DocCommand::Sync { conn, message, request } => {
                if let State::Unreadable(reason) = state {
                    let reply = Message::Error {
                        sender_id: Some(self.hub.handshake.our_peer_id.clone()),
                        target_id: Some(conn.peer_id.clone()),
                        message: format!("document {} is unreadable on this server: {reason}", self.id),
                        refusal: None,
                    };
                    conn.send(reply.encode());
                    return;
                }
                if let State::Live(engine) = state {
                    if self.hub.auth.open {
                        // Nothing is checked, but new processes are still
                        // indexed so the start page can list them.
                        self.register_new(engine, &message);
                    } else if !self.access(engine, &conn, &message, request) {
                        return;
                    }
                }
                let id = conn.id;
                self.introduce(conn, inputs);
                inputs.push(DocInput::Sync { conn: id, message, request });
            }
            DocCommand::Ephemeral { conn, message } => {
                if !self.hub.auth.can_read(&conn.principal, &self.id) {
                    return;
                }
                let id = conn.id;
                self.introduce(conn, inputs);
                inputs.push(DocInput::Ephemeral { conn: id, message });
            }
            DocCommand::Disconnected { conn } => {
                self.connections.remove(&conn);
                self.refused.remove(&conn);
                self.awaiting_creation.remove(&conn);
                inputs.push(DocInput::Disconnected { conn });
            }
        }
    }

    /// Remember a connection's handle; on first sight, tell the engine which
    /// storage its peer has, so their shared heads carry over from last time.
    fn introduce(&mut self, conn: Arc<ConnectionHandle>, inputs: &mut Vec<DocInput>) {
        if self.connections.contains_key(&conn.id) {
            return;
        }
        if let Some(storage) = &conn.storage {
            inputs.push(DocInput::PeerStorage { conn: conn.id, storage: storage.clone() });
        }
        self.connections.insert(conn.id, conn);
    }

    /// May this sync message go to the engine? Answers the sender itself when not.
    fn access(&mut self, engine: &DocEngine, conn: &ConnectionHandle, message: &DocMessage, request: bool) -> bool {
        let auth = &self.hub.auth;
        let readable = auth.can_read(&conn.principal, &self.id);
        let missing = engine.doc().is_empty() && !auth.is_registered(&self.id);
        // A `sync` for a document nobody has yet may create it; admission decides.
        let creating = !request && missing;
        if !readable && request && missing {
            // Nobody has it yet. The engine answers `doc-unavailable` (as for
            // any missing document) and sends the document once it exists,
            // if this connection may read it then: a recommendation linked a
            // moment before it reached the server still arrives.
            self.awaiting_creation.insert(conn.id);
            return true;
        }
        if !readable && !creating {
            // Exactly what a document that does not exist gets.
            let reply = Message::DocUnavailable {
                sender_id: self.hub.handshake.our_peer_id.clone(),
                target_id: conn.peer_id.clone(),
                document_id: self.id,
            };
            conn.send(reply.encode());
            return false;
        }
        match self.admit(engine, conn, message) {
            Ok(()) => true,
            Err(Admission::AlreadyRefused) => {
                tracing::debug!(document = %self.id, conn = ?conn.id, "dropped a message offering changes refused before");
                false
            }
            Err(Admission::Refused(refused)) => {
                tracing::warn!(document = %self.id, participant = %conn.principal.participant, role = conn.principal.role_name(), code = %refused.reason.code(), reason = %refused.reason, "refused changes");
                self.refused.entry(conn.id).or_default().extend(refused.changes.iter().copied());
                let reply = Message::Error {
                    sender_id: Some(self.hub.handshake.our_peer_id.clone()),
                    target_id: Some(conn.peer_id.clone()),
                    message: refused.message(self.id),
                    refusal: Some(refused.wire(self.id)),
                };
                conn.send(reply.encode());
                false
            }
            Err(Admission::Failed(reason)) => {
                tracing::error!(document = %self.id, %reason, "cannot admit changes");
                let reply = Message::Error {
                    sender_id: Some(self.hub.handshake.our_peer_id.clone()),
                    target_id: Some(conn.peer_id.clone()),
                    message: format!("changes to {} not stored: {reason}", self.id),
                    refusal: None,
                };
                conn.send(reply.encode());
                false
            }
        }
    }

    /// With `--open`: remember which process a newly created document belongs to.
    fn register_new(&self, engine: &DocEngine, message: &DocMessage) {
        if !engine.doc().is_empty() || self.hub.auth.is_registered(&self.id) {
            return;
        }
        let Ok(sync) = automerge::sync::Message::decode(&message.data) else { return };
        let Ok(changes) = access::incoming_changes(engine.doc(), &sync) else { return };
        if changes.is_empty() {
            return;
        }
        let everyone = crate::auth::Principal::open().sender();
        let nobody = |_: &automerge::ActorId| None;
        if let Ok(admitted) = access::admit(self.id, engine.doc(), &changes, &everyone, &nobody)
            && let Some(process) = admitted.creates_in
            && let Err(e) = self.hub.auth.store.set_document_process(&self.id, &process)
        {
            tracing::error!(document = %self.id, error = %e, "cannot index the new document");
        }
    }

    /// Check the changes a message brings against the access rules and limits,
    /// and record who delivered them.
    fn admit(&mut self, engine: &DocEngine, conn: &ConnectionHandle, message: &DocMessage) -> Result<(), Admission> {
        // An undecodable message is the engine's to report.
        let Ok(sync) = automerge::sync::Message::decode(&message.data) else {
            return Ok(());
        };
        // A client that does not recover keeps advertising refused changes;
        // answering would make the engine ask for them again and again (a
        // loop of hundreds of frames a second). It hears nothing until it
        // stops, and still receives others' edits.
        if let Some(refused) = self.refused.get(&conn.id)
            && sync.heads.iter().any(|h| refused.contains(h))
        {
            return Err(Admission::AlreadyRefused);
        }
        if sync.changes.is_empty() {
            return Ok(());
        }
        let doc = engine.doc();
        let changes = access::incoming_changes(doc, &sync).map_err(|reason| {
            Admission::Refused(access::Refused { reason, changes: Vec::new() })
        })?;
        if changes.is_empty() {
            return Ok(());
        }
        // Changes refused before, or built on them, are not looked at again.
        if let Some(refused) = self.refused.get_mut(&conn.id) {
            let mut tainted = false;
            for change in &changes {
                if refused.contains(&change.hash()) || change.deps().iter().any(|d| refused.contains(d)) {
                    refused.insert(change.hash());
                    tainted = true;
                }
            }
            if tainted {
                return Err(Admission::AlreadyRefused);
            }
        }
        let refuse_all = |reason| Admission::Refused(access::Refused { reason, changes: changes.iter().map(|c| c.hash()).collect() });
        let limits = &self.hub.config.limits;
        let size: usize = changes.iter().map(|c| c.raw_bytes().len()).sum();
        if self.stored_bytes + size > limits.max_document_bytes {
            return Err(refuse_all(access::Refusal::DocumentTooLarge { limit: limits.max_document_bytes }));
        }
        let store = &self.hub.auth.store;
        let owner_of = |actor: &automerge::ActorId| store.actor_owner(actor.to_bytes()).ok().flatten();
        let admitted = access::admit(self.id, doc, &changes, &conn.principal.sender(), &owner_of).map_err(Admission::Refused)?;
        if doc.is_empty() && !self.hub.allow_creation(&conn.principal.participant) {
            return Err(refuse_all(access::Refusal::CreationLimit { per_hour: limits.documents_per_hour }));
        }
        // Claims are decided in memory at once; everything is written and
        // flushed by the group-commit thread, ahead of the document write it
        // precedes, never on this async worker.
        let mut records = Vec::new();
        for actor in &admitted.new_actors {
            let owner = store
                .claim_actor(actor.to_bytes(), &conn.principal.participant)
                .map_err(|e| Admission::Failed(format!("cannot record authorship: {e}")))?;
            if owner != conn.principal.participant {
                let hashes = admitted.changes.iter().filter(|c| &c.actor == actor).map(|c| c.hash).collect();
                let reason = access::Refusal::ForeignActor { change: admitted.changes[0].hash, actor: actor.to_hex_string() };
                return Err(Admission::Refused(access::Refused { reason, changes: hashes }));
            }
            records.push(Record::BindActor {
                actor: actor.to_bytes().to_vec(),
                participant: conn.principal.participant.clone(),
            });
        }
        if let Some(process) = admitted.creates_in {
            records.push(Record::DocumentProcess { document: self.id, process });
        }
        let at = now_millis();
        for change in &admitted.changes {
            records.push(Record::Provenance {
                document: self.id,
                change: change.hash.0,
                provenance: Provenance {
                    author: change.author.clone(),
                    delivered_by: conn.principal.participant.clone(),
                    merged_by: change.merged_by.clone(),
                    at,
                },
            });
        }
        self.hub.commit.submit_records(records).map_err(|e| Admission::Failed(format!("cannot record authorship: {e}")))
    }

    /// Carry out the engine's effects; returns connections found closed.
    fn execute(&mut self, effects: Vec<DocEffect>) -> Vec<ConnectionId> {
        let mut gone = Vec::new();
        for effect in effects {
            match effect {
                DocEffect::Send { conn, message } => {
                    if self.awaiting_creation.contains(&conn) && !matches!(message, Message::DocUnavailable { .. }) {
                        let may_read = self
                            .connections
                            .get(&conn)
                            .is_some_and(|handle| self.hub.auth.can_read(&handle.principal, &self.id));
                        if !may_read {
                            // Created in a process this connection is not part of.
                            continue;
                        }
                        self.awaiting_creation.remove(&conn);
                    }
                    let delivered = self
                        .connections
                        .get(&conn)
                        .is_some_and(|handle| handle.send(message.encode()));
                    if !delivered {
                        self.connections.remove(&conn);
                        gone.push(conn);
                    }
                }
                DocEffect::Persist { document_id, seq, write } => {
                    self.stored_bytes = match &write {
                        StorageWrite::Incremental(bytes) => self.stored_bytes + bytes.len(),
                        StorageWrite::Snapshot(bytes) => bytes.len(),
                    };
                    let durable = self.durable_tx.clone();
                    let submitted = self.hub.commit.submit(
                        document_id,
                        write,
                        Box::new(move |result| {
                            // The owner may have gone; then nobody waits for this.
                            let _ = durable.send((seq, result));
                        }),
                    );
                    if let Err(e) = submitted {
                        let _ = self.durable_tx.send((seq, Err(e.to_string())));
                    }
                }
                DocEffect::Close { conn, reason } => {
                    if let Some(handle) = self.connections.remove(&conn) {
                        handle.close(CloseReason::BadInput { code: reason.close_code(), error: reason.to_string() });
                    }
                }
                DocEffect::SaveSyncState { document_id, storage, heads } => {
                    let record = Record::SyncState { document: document_id, storage, heads };
                    if let Err(e) = self.hub.commit.submit_records(vec![record]) {
                        tracing::debug!(document = %self.id, error = %e, "sync state not kept");
                    }
                }
            }
        }
        gone
    }

    /// Leave the registry; anything that raced in is handed to a fresh owner.
    async fn evict(&mut self) {
        self.hub.unregister_document(self.id, self.generation);
        self.commands.close();
        let mut leftovers = Vec::new();
        while let Ok(command) = self.commands.try_recv() {
            leftovers.push(command);
        }
        tracing::debug!(document = %self.id, leftovers = leftovers.len(), "evicted");
        for command in leftovers {
            self.hub.dispatch(self.id, command).await;
        }
    }
}

/// Decide which inputs the engine sees now. A document shared by many
/// connections applies changes at most once per coalescing window: while
/// `hold` (a round that applied changes started less than a window ago), sync
/// messages are held in order and join the next round, so a burst of
/// keystrokes costs one load, one flush and one message per peer. Everything
/// else (durability, presence, departures) passes at once; a departure drops
/// what its connection had held. Once `hold` ends, held messages go first, so
/// each peer's messages keep their order.
fn coalesce(hold: bool, inputs: Vec<DocInput>, held: &mut Vec<DocInput>) -> Vec<DocInput> {
    let mut now_inputs = Vec::with_capacity(inputs.len());
    for input in inputs {
        match input {
            DocInput::Sync { .. } if hold => held.push(input),
            DocInput::Disconnected { conn } => {
                held.retain(|h| !matches!(h, DocInput::Sync { conn: c, .. } if *c == conn));
                now_inputs.push(input);
            }
            other => now_inputs.push(other),
        }
    }
    if !hold && !held.is_empty() {
        let mut ordered = std::mem::take(held);
        ordered.append(&mut now_inputs);
        now_inputs = ordered;
    }
    now_inputs
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn durable_input(seq: u64, result: Result<(), String>) -> DocInput {
    match result {
        Ok(()) => DocInput::Durable { seq },
        Err(reason) => DocInput::PersistFailed { seq, error: reason.into() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use konsens_sync::PeerId;

    fn sync(conn: u64, n: u8) -> DocInput {
        DocInput::Sync {
            conn: ConnectionId(conn),
            message: DocMessage {
                sender_id: PeerId(format!("peer-{conn}")),
                target_id: PeerId("server".into()),
                document_id: DocumentId::from_bytes([0; 16]),
                data: vec![n],
            },
            request: false,
        }
    }

    /// (connection, payload) of each sync input, and the other inputs by name.
    fn shape(inputs: &[DocInput]) -> Vec<String> {
        inputs
            .iter()
            .map(|i| match i {
                DocInput::Sync { conn, message, .. } => format!("sync {} {}", conn.0, message.data[0]),
                DocInput::Durable { seq } => format!("durable {seq}"),
                DocInput::Disconnected { conn } => format!("gone {}", conn.0),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn syncs_wait_during_the_window_and_go_first_after_it() {
        let mut held = Vec::new();
        let now = coalesce(true, vec![sync(1, 1), DocInput::Durable { seq: 3 }, sync(2, 1)], &mut held);
        assert_eq!(shape(&now), ["durable 3"], "durability passes at once");
        assert_eq!(shape(&held), ["sync 1 1", "sync 2 1"]);
        let now = coalesce(false, vec![sync(1, 2)], &mut held);
        assert_eq!(shape(&now), ["sync 1 1", "sync 2 1", "sync 1 2"], "held messages keep their order, first");
        assert!(held.is_empty());
    }

    #[test]
    fn a_departure_drops_what_its_connection_had_held() {
        let mut held = Vec::new();
        let _ = coalesce(true, vec![sync(1, 1), sync(2, 1)], &mut held);
        let now = coalesce(true, vec![DocInput::Disconnected { conn: ConnectionId(1) }], &mut held);
        assert_eq!(shape(&now), ["gone 1"]);
        assert_eq!(shape(&held), ["sync 2 1"]);
    }

    #[test]
    fn without_a_window_nothing_waits() {
        let mut held = Vec::new();
        let now = coalesce(false, vec![sync(1, 1), sync(2, 1)], &mut held);
        assert_eq!(shape(&now), ["sync 1 1", "sync 2 1"]);
        assert!(held.is_empty());
    }
}
