//! The repo: one background task owns every loaded document's [`DocEngine`]
//! (a client holds few documents, so one owner for all is enough), the local
//! store and the current connection. Public methods talk to it by
//! [`Command`]; the dialer reports on its own channel ([`DialerEvent`]).

use std::collections::HashMap;
use std::path::PathBuf;

use automerge::{Automerge, ChangeHash};
use konsens_sync::{
    ConnectionId, DocEffect, DocEngine, DocInput, DocumentId, PeerId, RefusalCode, Role, SessionAction, StorageId,
    WireRefusal,
};
use konsens_store::{ChunkStore, GroupCommit, Persister, Record};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::error::ClientError;
use crate::clock::now_millis;
use crate::dialer::{self, DialerEvent};
use crate::status::ConnectionStatus;

/// How to open a repo.
#[derive(Debug, Clone)]
pub struct RepoConfig {
    pub store_dir: PathBuf,
    /// `ws://host:port/sync`; `None` works offline only.
    pub server_url: Option<String>,
    /// Our peer id; random when not set.
    pub peer_id: Option<String>,
    /// The Automerge actor every local change is made as (one per store, so
    /// history can name who made it); random per document when not set.
    pub actor: Option<automerge::ActorId>,
    /// Access token, sent as `Authorization: Bearer` when dialling.
    pub token: Option<String>,
    pub max_frame_bytes: usize,
}

impl RepoConfig {
    pub fn new(store_dir: impl Into<PathBuf>) -> Self {
        Self {
            store_dir: store_dir.into(),
            server_url: None,
            peer_id: None,
            actor: None,
            token: None,
            max_frame_bytes: konsens_sync::DEFAULT_MAX_FRAME_BYTES,
        }
    }

    pub fn server(mut self, url: impl Into<String>) -> Self {
        self.server_url = Some(url.into());
        self
    }
}

type ChangeFn = Box<dyn FnOnce(&mut Automerge) + Send>;

pub(crate) enum Command {
    Create(oneshot::Sender<Result<DocumentId, ClientError>>),
    Find(DocumentId, oneshot::Sender<Result<Automerge, ClientError>>),
    Change(DocumentId, ChangeFn, oneshot::Sender<Result<(), ClientError>>),
    Subscribe(DocumentId, oneshot::Sender<Result<watch::Receiver<Vec<ChangeHash>>, ClientError>>),
    WaitSynced(DocumentId, oneshot::Sender<Result<(), ClientError>>),
    /// A server is configured, so finds may wait for it.
    ServerConfigured,
    /// The store's word on a `Persist` ([`Persister`]): durable or failed.
    Durable { document: DocumentId, input: DocInput },
    /// Hand over the refusals recovered from since the last call.
    TakeRefusals(oneshot::Sender<Vec<RefusalReport>>),
}

/// What happened when the server refused changes: which were set aside and
/// which later edits were sent again (see `konsens_model::recovery`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RefusalReport {
    pub document: String,
    /// The server's [`RefusalCode`] on the wire.
    pub code: String,
    /// The server's explanation.
    pub message: String,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    /// How many local changes were set aside (the refused ones and those built on them).
    pub dropped: usize,
    /// Top-level fields whose later edits were made again and sent.
    pub reapplied: Vec<String>,
    /// Top-level fields changed after the refused change but not sent again.
    pub skipped: Vec<String>,
    /// Each text field as it read with the refused changes: the member's
    /// wording, kept to read or copy.
    pub wording: Vec<(String, String)>,
}

/// Where the refusal reports of a store are kept (`meta`, then document and time).
pub const REFUSALS_META_PREFIX: &str = "refused/";

/// A handle to the repo; cheap to clone. The background tasks stop when the
/// last handle is dropped.
#[derive(Debug, Clone)]
pub struct Repo {
    commands: mpsc::UnboundedSender<Command>,
    status: watch::Receiver<ConnectionStatus>,
    peer_id: PeerId,
    store: ChunkStore,
    /// Shared by all clones: the running dialer, if any.
    link: std::sync::Arc<Link>,
}

/// What starting and stopping a dialer needs.
#[derive(Debug)]
struct Link {
    stop: CancellationToken,
    dialer: std::sync::Mutex<Option<CancellationToken>>,
    /// Handed (weakly) to each dialer; the actor holds the receiver.
    events: mpsc::UnboundedSender<DialerEvent>,
    status: watch::Sender<ConnectionStatus>,
    peer_id: PeerId,
    /// Our store's id, announced in `join`.
    storage_id: StorageId,
    max_frame_bytes: usize,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Repo {
    /// Open the local store and, if a server is configured, start dialling it.
    /// Must be called inside a tokio runtime.
    pub fn open(config: RepoConfig) -> Result<Self, ClientError> {
        std::fs::create_dir_all(&config.store_dir).map_err(|e| {
            ClientError::Store(konsens_store::StoreError::Sled(sled::Error::Io(e)))
        })?;
        let store = ChunkStore::open(&config.store_dir)?;
        Self::with_store(config, store)
    }

    /// Like [`Repo::open`], on a store the caller opened already (sled allows
    /// one open per process).
    pub fn with_store(config: RepoConfig, store: ChunkStore) -> Result<Self, ClientError> {
        let (commit, _writer) = GroupCommit::spawn(store.clone())?;
        let storage_id = store.storage_id(|| format!("konsens-client-{:032x}", rand::random::<u128>()))?;
        let peer_id = PeerId(config.peer_id.clone().unwrap_or_else(|| {
            format!("konsens-client-{:016x}", rand::random::<u64>())
        }));
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (status_tx, status_rx) = watch::channel(ConnectionStatus::Offline);
        let stop = CancellationToken::new();
        // Durability comes back as a command, so the actor alone feeds its engines.
        let durable = commands_tx.downgrade();
        let persister = Persister::new(commit, move |document, input| {
            if let Some(commands) = durable.upgrade() {
                let _ = commands.send(Command::Durable { document, input });
            }
        });
        let actor = Actor {
            store: store.clone(),
            local_actor: config.actor.clone(),
            persister,
            peer_id: peer_id.clone(),
            engines: HashMap::new(),
            heads: HashMap::new(),
            finds: HashMap::new(),
            synced_waiters: HashMap::new(),
            local_waiters: HashMap::new(),
            refusals: Vec::new(),
            connection: None,
            has_server: config.server_url.is_some(),
        };
        tokio::spawn(actor.run(commands_rx, events_rx, stop.clone()));
        let link = std::sync::Arc::new(Link {
            stop,
            dialer: std::sync::Mutex::new(None),
            events: events_tx,
            status: status_tx,
            peer_id: peer_id.clone(),
            storage_id,
            max_frame_bytes: config.max_frame_bytes,
        });
        let repo = Self { commands: commands_tx, status: status_rx, peer_id, store, link };
        if let Some(url) = config.server_url {
            repo.connect(url, config.token);
        }
        Ok(repo)
    }

    /// Start dialling `url` (replacing any current connection).
    pub fn connect(&self, url: String, token: Option<String>) {
        let dialer_stop = self.link.stop.child_token();
        let previous = self
            .link
            .dialer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(dialer_stop.clone());
        if let Some(previous) = previous {
            previous.cancel();
        }
        let _ = self.commands.send(Command::ServerConfigured);
        tokio::spawn(dialer::run(dialer::DialerConfig {
            url,
            token,
            peer_id: self.link.peer_id.clone(),
            storage_id: Some(self.link.storage_id.clone()),
            max_frame_bytes: self.link.max_frame_bytes,
            events: self.link.events.downgrade(),
            status: self.link.status.clone(),
            stop: dialer_stop,
        }));
    }

    /// Stop dialling and drop the current connection.
    pub fn disconnect(&self) {
        if let Some(dialer) = self.link.dialer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            dialer.cancel();
        }
    }

    pub fn peer_id(&self) -> &PeerId {
        &self.peer_id
    }

    /// The local store (for small values kept beside the documents).
    pub fn store(&self) -> &ChunkStore {
        &self.store
    }

    /// Ids of every document in the local store.
    pub fn local_documents(&self) -> Result<Vec<DocumentId>, ClientError> {
        Ok(self.store.documents().collect::<Result<_, _>>()?)
    }

    /// Watch the connection status.
    pub fn status(&self) -> watch::Receiver<ConnectionStatus> {
        self.status.clone()
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T, ClientError>>) -> Command) -> Result<T, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).map_err(|_| ClientError::Closed)?;
        rx.await.map_err(|_| ClientError::Closed)?
    }

    /// Create a new, empty document.
    pub async fn create(&self) -> Result<DocumentId, ClientError> {
        self.ask(Command::Create).await
    }

    /// A copy of the document: from the local store, or fetched from the server.
    pub async fn find(&self, id: DocumentId) -> Result<Automerge, ClientError> {
        self.ask(|tx| Command::Find(id, tx)).await
    }

    /// Change a document; the change is stored locally at once and synced
    /// whenever a connection exists.
    pub async fn change<R: Send + 'static>(
        &self,
        id: DocumentId,
        f: impl FnOnce(&mut Automerge) -> R + Send + 'static,
    ) -> Result<R, ClientError> {
        let (result_tx, result_rx) = oneshot::channel();
        let wrapped: ChangeFn = Box::new(move |doc| {
            let _ = result_tx.send(f(doc));
        });
        self.ask(|tx| Command::Change(id, wrapped, tx)).await?;
        result_rx.await.map_err(|_| ClientError::Closed)
    }

    /// The document's heads now and after every change, local or remote.
    pub async fn subscribe(&self, id: DocumentId) -> Result<watch::Receiver<Vec<ChangeHash>>, ClientError> {
        self.ask(|tx| Command::Subscribe(id, tx)).await
    }

    /// Resolves once the server has advertised exactly our heads for this
    /// document (konsens-server does so only after flushing them to disk) and
    /// our own copy is flushed too.
    pub async fn wait_synced(&self, id: DocumentId) -> Result<(), ClientError> {
        self.ask(|tx| Command::WaitSynced(id, tx)).await
    }

    /// The refusals this repo recovered from since the last call: the refused
    /// changes were set aside (their wording is in the report, and kept in the
    /// store's `meta` under [`REFUSALS_META_PREFIX`]) and later edits sent again.
    pub async fn take_refusals(&self) -> Result<Vec<RefusalReport>, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::TakeRefusals(tx)).map_err(|_| ClientError::Closed)?;
        rx.await.map_err(|_| ClientError::Closed)
    }
}

struct Connection {
    id: ConnectionId,
    server: PeerId,
    server_storage: Option<StorageId>,
    outbound: mpsc::UnboundedSender<Vec<u8>>,
}

struct Actor {
    store: ChunkStore,
    local_actor: Option<automerge::ActorId>,
    /// Runs the engines' storage effects; durability returns as [`Command::Durable`].
    persister: Persister,
    peer_id: PeerId,
    engines: HashMap<DocumentId, DocEngine>,
    heads: HashMap<DocumentId, watch::Sender<Vec<ChangeHash>>>,
    finds: HashMap<DocumentId, Vec<oneshot::Sender<Result<Automerge, ClientError>>>>,
    synced_waiters: HashMap<DocumentId, Vec<oneshot::Sender<Result<(), ClientError>>>>,
    /// Refusals recovered from, not yet taken by [`Repo::take_refusals`].
    refusals: Vec<RefusalReport>,
    /// Changes waiting for their local write to be flushed.
    local_waiters: HashMap<DocumentId, Vec<oneshot::Sender<Result<(), ClientError>>>>,
    connection: Option<Connection>,
    /// A server is configured, so a missing document may still arrive.
    has_server: bool,
}

impl Actor {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut events: mpsc::UnboundedReceiver<DialerEvent>,
        stop: CancellationToken,
    ) {
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.handle(command),
                    None => break,
                },
                // `None` only once the repo is gone; the commands branch ends the loop then.
                Some(event) = events.recv() => self.dialer_event(event),
                () = stop.cancelled() => break,
            }
        }
    }

    fn dialer_event(&mut self, event: DialerEvent) {
        match event {
            DialerEvent::Connected { conn, server, server_storage, outbound } => {
                self.connection = Some(Connection { id: conn, server: server.clone(), server_storage, outbound });
                // Announce every stored document: the server learns what we
                // created or changed while offline.
                let mut ids: Vec<DocumentId> = self.store.documents().filter_map(Result::ok).collect();
                ids.extend(self.engines.keys().copied());
                ids.sort();
                ids.dedup();
                for id in ids {
                    let wanted = self.finds.contains_key(&id);
                    if self.engine(id).is_ok_and(|e| wanted || !e.is_empty()) {
                        self.announce(id);
                    }
                }
            }
            DialerEvent::Incoming(conn, message) => self.incoming(conn, message),
            DialerEvent::Disconnected(conn) => {
                if self.connection.as_ref().is_some_and(|c| c.id == conn) {
                    self.connection = None;
                }
                let ids: Vec<DocumentId> = self.engines.keys().copied().collect();
                for id in ids {
                    if let Some(engine) = self.engines.get_mut(&id) {
                        let effects = engine.handle([DocInput::Disconnected { conn }]);
                        self.execute(id, effects);
                    }
                }
            }
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Create(reply) => {
                let id = DocumentId::from_random(rand::random());
                let engine = DocEngine::new(id, self.peer_id.clone(), Role::Client);
                self.engines.insert(id, engine);
                // Announced with its first change: an empty new document would
                // go out as a `request` for something nobody has yet.
                let _ = reply.send(Ok(id));
            }
            Command::Find(id, reply) => match self.engine(id) {
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
                Ok(engine) if !engine.is_empty() => {
                    let _ = reply.send(Ok(engine.doc().clone()));
                }
                Ok(_) => {
                    // With a server configured, wait for the (re)connection and
                    // ask it then; callers bound the wait. Offline-only: fail now.
                    if self.connection.is_none() && !self.has_server {
                        let _ = reply.send(Err(ClientError::NotLocal(id)));
                        return;
                    }
                    self.finds.entry(id).or_default().push(reply);
                    self.announce(id);
                }
            },
            Command::Change(id, f, reply) => {
                let local_actor = self.local_actor.clone();
                let result = self.engine(id).map(|engine| {
                    engine
                        .change(move |doc| {
                            if let Some(actor) = local_actor {
                                doc.set_actor(actor);
                            }
                            f(doc)
                        })
                        .1
                });
                match result {
                    Ok(effects) => {
                        self.execute(id, effects);
                        self.announce(id);
                        self.after_update(id);
                        // A change returns once it is on the local disk, so a
                        // short-lived process (the CLI) never exits before it.
                        if self.engines.get(&id).is_some_and(DocEngine::is_flushing) {
                            self.local_waiters.entry(id).or_default().push(reply);
                        } else {
                            let _ = reply.send(Ok(()));
                        }
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Command::Subscribe(id, reply) => {
                let result = self.engine(id).map(|engine| engine.heads());
                let _ = reply.send(result.map(|heads| {
                    self.heads
                        .entry(id)
                        .or_insert_with(|| watch::channel(heads).0)
                        .subscribe()
                }));
            }
            Command::WaitSynced(id, reply) => {
                if let Err(e) = self.engine(id) {
                    let _ = reply.send(Err(e));
                    return;
                }
                self.synced_waiters.entry(id).or_default().push(reply);
                self.check_synced(id);
            }
            Command::TakeRefusals(reply) => {
                let _ = reply.send(std::mem::take(&mut self.refusals));
            }
            Command::ServerConfigured => self.has_server = true,
            Command::Durable { document, input } => {
                if let Some(engine) = self.engines.get_mut(&document) {
                    let effects = engine.handle([input]);
                    self.execute(document, effects);
                }
                self.check_synced(document);
                let settled = self.engines.get(&document).is_none_or(|e| !e.is_flushing() || e.has_failed());
                if settled && let Some(waiters) = self.local_waiters.remove(&document) {
                    let failed = self.engines.get(&document).is_some_and(DocEngine::has_failed);
                    for waiter in waiters {
                        let _ = waiter.send(if failed { Err(ClientError::Corrupt(format!("could not write {document} to the local store"))) } else { Ok(()) });
                    }
                }
            }
        }
    }

    /// Offer a document to the server (a `sync`, or a `request` if we have nothing).
    fn announce(&mut self, id: DocumentId) {
        let Some(connection) = &self.connection else { return };
        let mut inputs = Vec::with_capacity(2);
        if let Some(storage) = &connection.server_storage {
            // Resume from what we last shared with this server's storage.
            inputs.push(DocInput::PeerStorage { conn: connection.id, storage: storage.clone() });
        }
        inputs.push(DocInput::Connected { conn: connection.id, peer: connection.server.clone() });
        if let Some(engine) = self.engines.get_mut(&id) {
            let effects = engine.handle(inputs);
            self.execute(id, effects);
        }
    }

    /// Act on what the connection's [`PeerSession`](konsens_sync::PeerSession)
    /// made of a frame; the post-handshake rules are the session's.
    fn incoming(&mut self, conn: ConnectionId, action: SessionAction) {
        match action {
            SessionAction::Sync { document_id: id, message, request } => {
                let input = match DocInput::decode_sync(conn, &message, request) {
                    Ok(input) => input,
                    // As the peer session has it: a client logs what it cannot decode.
                    Err(e) => return tracing::warn!(document = %id, error = %e, "undecodable sync message from the server"),
                };
                match self.engine(id) {
                    Ok(engine) => {
                        let effects = engine.handle([input]);
                        self.execute(id, effects);
                        self.after_update(id);
                    }
                    Err(e) => tracing::warn!(document = %id, error = %e, "cannot load document for incoming sync"),
                }
            }
            SessionAction::Unavailable { document_id } => {
                let empty = self.engines.get(&document_id).is_none_or(|e| e.is_empty());
                if empty {
                    for waiter in self.finds.remove(&document_id).unwrap_or_default() {
                        let _ = waiter.send(Err(ClientError::Unavailable(document_id)));
                    }
                }
            }
            SessionAction::PeerError { message, refusal } => {
                tracing::warn!(%message, "server reported an error");
                // The server answered, though not with a sync message (it
                // could not store our changes, say): local changes held for
                // its answer go out (`EngineConfig::changes_wait_for_reply`).
                let ids: Vec<DocumentId> = self.engines.keys().copied().collect();
                for id in ids {
                    if let Some(engine) = self.engines.get_mut(&id) {
                        let effects = engine.handle([DocInput::Heard { conn }]);
                        self.execute(id, effects);
                    }
                }
                if let Some(refusal) = refusal {
                    self.recover(refusal, message);
                }
            }
            // A client session answers and closes nothing today; should it,
            // the answer goes out on this connection and a close ends it.
            SessionAction::Answer(reply) => {
                if let Some(connection) = self.connection.as_ref().filter(|c| c.id == conn) {
                    let _ = connection.outbound.send(reply.encode());
                }
            }
            SessionAction::Close { reply, reason } => {
                tracing::warn!(%reason, "closing the connection to the server");
                if let Some(connection) = self.connection.take_if(|c| c.id == conn)
                    && let Some(reply) = reply
                {
                    let _ = connection.outbound.send(reply.encode());
                }
            }
            SessionAction::Leave => {
                self.connection.take_if(|c| c.id == conn);
            }
            other @ (SessionAction::Ephemeral { .. } | SessionAction::Ignore(_)) => tracing::trace!(action = ?other, "ignored"),
        }
    }

    /// Refused changes would never be acknowledged, and every later local
    /// change builds on them: set them aside, rebuild the document from the
    /// rest, make the later edits again as new changes (not an observer's),
    /// replace what the store holds, and sync the result.
    fn recover(&mut self, refusal: WireRefusal, message: String) {
        let id = refusal.document_id;
        let fail_waiters = |actor: &mut Self, why: String| {
            for waiter in actor.synced_waiters.remove(&id).unwrap_or_default() {
                let _ = waiter.send(Err(ClientError::Refused(why.clone())));
            }
        };
        let Some(engine) = self.engines.get_mut(&id) else {
            fail_waiters(self, message);
            return;
        };
        let reapply = refusal.code != RefusalCode::ReadOnly;
        let actor = self.local_actor.clone().unwrap_or_else(automerge::ActorId::random);
        let recovered = match konsens_model::recovery::recover(engine.doc(), &refusal.refused, actor, reapply) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(document = %id, error = %e, "cannot recover from a refusal");
                fail_waiters(self, format!("{message} (and the document could not be rebuilt: {e})"));
                return;
            }
        };
        if recovered.dropped.is_empty() {
            // Already set aside (a repeated refusal): nothing of ours is stuck.
            return;
        }
        let report = RefusalReport {
            document: id.to_string(),
            code: refusal.code.as_str().to_owned(),
            message,
            at: now_millis(),
            dropped: recovered.dropped.len(),
            reapplied: recovered.reapplied.clone(),
            skipped: recovered.skipped.clone(),
            wording: recovered.dropped_wording.clone(),
        };
        tracing::warn!(document = %id, code = %report.code, dropped = report.dropped, reapplied = ?report.reapplied, "set refused changes aside and sent later edits again");
        // The report rides with the snapshot: both are durable together.
        let record = serde_json::to_vec(&report).map(|json| Record::Meta {
            key: format!("{REFUSALS_META_PREFIX}{id}/{:020}", report.at),
            value: json,
        });
        match record {
            Ok(record) => {
                if let Err(e) = self.persister.commit().submit_records(vec![record]) {
                    tracing::warn!(document = %id, error = %e, "refusal report not kept");
                }
            }
            Err(e) => tracing::warn!(document = %id, error = %e, "refusal report not kept"),
        }
        // One snapshot replaces every stored chunk, ordered after the writes
        // already submitted: the refused changes cannot come back from disk.
        let Some(engine) = self.engines.get_mut(&id) else { return };
        let effects = engine.replace_document(recovered.doc);
        self.execute(id, effects);
        self.refusals.push(report);
        self.announce(id);
        self.after_update(id);
    }

    /// The document's engine, loaded from the store on first use.
    fn engine(&mut self, id: DocumentId) -> Result<&mut DocEngine, ClientError> {
        if !self.engines.contains_key(&id) {
            let chunks = self.store.load(&id)?;
            let mut engine = DocEngine::load(
                id,
                self.peer_id.clone(),
                Role::Client,
                chunks.iter().map(|c| (c.is_snapshot, c.bytes.as_slice())),
            )?;
            match self.store.sync_states(&id) {
                Ok(states) => engine.restore_sync_states(states),
                // Only costs a longer first sync.
                Err(e) => tracing::warn!(document = %id, error = %e, "cannot read sync states"),
            }
            self.engines.insert(id, engine);
        }
        self.engines.get_mut(&id).ok_or(ClientError::Closed)
    }

    fn execute(&mut self, id: DocumentId, effects: Vec<DocEffect>) {
        for effect in effects {
            match self.persister.apply(effect) {
                None => {}
                Some(DocEffect::Send { message, .. }) => {
                    if let Some(connection) = &self.connection {
                        let _ = connection.outbound.send(message.encode());
                    }
                }
                Some(DocEffect::Close { reason, .. }) => {
                    tracing::warn!(document = %id, %reason, "engine closed the connection");
                    // Dropping the outbound sender ends the dialer's session.
                    self.connection = None;
                }
                Some(other) => tracing::error!(document = %id, effect = ?other, "storage effect not carried out"),
            }
        }
    }

    /// Tell subscribers and waiters about the document's new state.
    fn after_update(&mut self, id: DocumentId) {
        let Some(engine) = self.engines.get_mut(&id) else { return };
        let heads = engine.heads();
        if let Some(tx) = self.heads.get(&id) {
            tx.send_if_modified(|old| {
                if *old != heads {
                    old.clone_from(&heads);
                    true
                } else {
                    false
                }
            });
        }
        if !engine.doc().is_empty()
            && let Some(waiters) = self.finds.remove(&id)
        {
            for waiter in waiters {
                let _ = waiter.send(Ok(engine.doc().clone()));
            }
        }
        self.check_synced(id);
    }

    fn check_synced(&mut self, id: DocumentId) {
        let (Some(engine), Some(connection)) = (self.engines.get(&id), &self.connection) else {
            return;
        };
        let mut ours = engine.heads();
        ours.sort();
        let mut theirs = engine.peer_heads(connection.id).map(<[ChangeHash]>::to_vec);
        if let Some(t) = theirs.as_mut() {
            t.sort();
        }
        // Synced means both sides have it on disk: the server advertised our
        // heads, and what we received is flushed to our own store (a CLI
        // process exits right after).
        if theirs.as_deref() == Some(ours.as_slice())
            && !engine.is_flushing()

            && let Some(waiters) = self.synced_waiters.remove(&id)
        {
            for waiter in waiters {
                let _ = waiter.send(Ok(()));
            }
        }
    }
}
