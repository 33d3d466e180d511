//! The sync engine for one document: sans-IO, one instance per loaded document,
//! driven by whoever owns that document (a task in the server, the repo in the
//! client, a loop in the simulation tests).
//!
//! Inputs arrive as [`DocInput`]s, in batches; effects leave as [`DocEffect`]s.
//! The engine never does IO, never reads the clock and never draws random numbers.
//!
//! # Acknowledge only what is durable
//! A sync reply advertises our heads. Once a peer sees its change in our heads it
//! may forget it, so every reply is held back until the changes it covers are on
//! disk: applying new changes emits [`DocEffect::Persist`] with a sequence
//! number, and no message is generated until the runtime reports
//! [`DocInput::Durable`] for that number. Sync messages that arrive meanwhile wait
//! in the engine and are applied together as the next batch, so the flush
//! interval doubles as the batching window (group commit at the document level).
//! The rule lives in one place: [`Phase`], and [`DocEngine::advance`], the
//! only function that starts a round or generates.
//!
//! # Batch and coalesce
//! Applying a remote change costs time proportional to the size of the object it
//! touches, not to the change. So a round applies the changes of *all* waiting
//! sync messages, from all peers, in one `load_incremental` call, then lets each
//! peer's sync state see its message (whose changes are by then known and cheap),
//! and finally generates at most one message per peer.
//!
//! # Code map
//! - `round.rs`: applying the waiting messages as one batch.
//! - `generate.rs`: one message per dirty peer.
//! - `peer.rs`: a peer's sync state; the one place that changes what we last sent.
//! - `fast.rs`: Automerge 0.12's sync logic for common shapes, without graph walks.
//! - `compaction.rs`: incremental or snapshot.
//! - `kept.rs`: what we share with remote storages across connections.
//! - `ephemeral.rs`: relaying presence, with de-duplication.
//! - `config.rs`: [`EngineConfig`].

mod compaction;
mod config;
mod document;
mod ephemeral;
mod fast;
mod generate;
mod kept;
mod peer;
mod round;

use std::collections::BTreeMap;
use std::sync::Arc;

use automerge::{Automerge, ChangeHash, sync};

pub use self::config::EngineConfig;
use self::compaction::Compaction;
use self::document::Document;
use self::peer::PeerState;
pub use crate::close::{CloseReason, PersistError};
use crate::message::{DocMessage, EphemeralMessage, Message, PeerId, StorageId};
use crate::{DocumentId, ProtocolError};

/// Identifies one live connection (a peer may reconnect under a new one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

/// Which side of the protocol this engine plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A sync server: never initiates, answers a `request` for a document it
    /// has no content for with `doc-unavailable` (and sends the document
    /// once it has some), relays ephemeral messages. Which documents exist
    /// and who may touch them is the runtime's business, not the engine's.
    Server,
    /// A client peer: announces its documents on connect and asks (`request`)
    /// for documents it does not have yet.
    Client,
}

/// One input to the engine.
#[derive(Debug)]
pub enum DocInput {
    /// A `sync` or `request` message from a peer, its payload decoded by
    /// the runtime (once: admission and read limits look at the same
    /// message; see [`DocInput::decode_sync`]).
    Sync {
        conn: ConnectionId,
        /// Who sent it (the peer that joined on `conn`).
        sender: PeerId,
        message: sync::Message,
        /// True for `request` (the peer has no copy yet).
        request: bool,
    },
    /// A presence or other transient message to relay.
    Ephemeral { conn: ConnectionId, message: EphemeralMessage },
    /// A connection was opened to a peer that should hear about this document
    /// now (client role: the server we dialled).
    Connected { conn: ConnectionId, peer: PeerId },
    /// The peer on this connection keeps its data in `storage` (from its
    /// `join`): what we last shared with that storage, from an earlier
    /// connection or a restored record, seeds its sync state, so a reconnect
    /// costs one round trip with a bloom filter of what changed since, not of
    /// the whole history. Give it before the connection's first message.
    PeerStorage { conn: ConnectionId, storage: StorageId },
    /// The peer on this connection synced this document with another owner
    /// until now (a cluster moved the document here): start its sync state
    /// afresh, seeded from what is kept for its storage, and make our next
    /// message tell the peer to forget what it believes it sent. Automerge
    /// resends nothing it already sent, and what it sent the old owner may
    /// never have become durable; a message with no heads ("I lost my data")
    /// is what makes every Automerge peer clear that record, old ones too.
    Resync { conn: ConnectionId, peer: PeerId },
    /// The peer on this connection sent a message about this document that
    /// the runtime answered or dropped without handing it to the engine
    /// (refused changes, say). It is not waiting for us: if changes for it
    /// were held until it spoke (see [`EngineConfig::changes_wait_for_reply`]),
    /// they go out now.
    Heard { conn: ConnectionId },
    /// The connection is gone; forget its sync state (keeping what we share
    /// with its storage, see [`DocEffect::SaveSyncState`]).
    Disconnected { conn: ConnectionId },
    /// Everything persisted up to and including `seq` is flushed to disk.
    Durable { seq: u64 },
    /// Persisting `seq` failed; nothing after the last durable point may be acknowledged.
    PersistFailed { seq: u64, error: PersistError },
}

impl DocInput {
    /// The input for a `sync` or `request` as it came off the wire. A
    /// payload that does not decode is the runtime's to answer: an `error`,
    /// then a close as a protocol violation (what a server does).
    pub fn decode_sync(conn: ConnectionId, message: &DocMessage, request: bool) -> Result<Self, ProtocolError> {
        Ok(DocInput::Sync { conn, sender: message.sender_id.clone(), message: message.decode_sync()?, request })
    }
}

/// What the runtime must do for the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocEffect {
    /// Send this message on that connection.
    Send { conn: ConnectionId, message: Message },
    /// Write these bytes for the document and make them durable (together
    /// with every earlier write), then report [`DocInput::Durable`] with
    /// `seq`, or [`DocInput::PersistFailed`]. Runtimes batch the flushes of
    /// many documents into one (group commit).
    Persist { document_id: DocumentId, seq: u64, write: StorageWrite },
    /// Close the connection (after sending what precedes it).
    Close { conn: ConnectionId, reason: CloseReason },
    /// Keep the heads we share with a remote storage, for its next connection
    /// (see [`DocEngine::restore_sync_states`]). Losing it costs only a
    /// longer first sync, so it needs no flush of its own.
    SaveSyncState { document_id: DocumentId, storage: StorageId, heads: Vec<ChangeHash> },
}

/// A write of document bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageWrite {
    /// Changes to add to the stored chunks (`save_after` output).
    Incremental(Vec<u8>),
    /// A full snapshot that replaces every chunk stored so far, atomically.
    Snapshot(Vec<u8>),
}

/// Sizes of the stored chunks a document was loaded from, for compaction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredSizes {
    pub snapshot_bytes: usize,
    pub incremental_bytes: usize,
}

/// How often each fast path was taken (tests check that the equivalence
/// tests exercise them).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FastPathCounts {
    pub acks: u64,
    pub received_changes: u64,
    pub generated: u64,
    /// Messages whose heads we know, taken on the deferred changes' graph.
    pub received_known: u64,
    /// Rounds whose changes were deferred rather than applied (document.rs).
    pub deferred: u64,
    /// Messages received and generated by Automerge's own path (not fast).
    pub slow_received: u64,
    pub slow_generated: u64,
    /// Changes since a peer's base taken from the recent changes (the base
    /// was a recorded state of ours), and computed by a walk of the history.
    pub since_recent: u64,
    pub since_walked: u64,
    /// Times a peer's message was held because it had not answered our
    /// last message with changes ([`EngineConfig::changes_wait_for_reply`]).
    pub held_for_answer: u64,
}

impl FastPathCounts {
    /// Any fast path taken, or anything deferred?
    pub fn any_fast(&self) -> bool {
        self.acks + self.received_changes + self.received_known + self.generated + self.deferred > 0
    }
}

/// Where the engine is between flushes. Nothing is sent unless `Idle`:
/// acknowledged means durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Everything persisted is durable; rounds may run and messages go out.
    Idle,
    /// Waiting for [`DocInput::Durable`] of `seq` (or later); sync messages wait.
    Flushing { seq: u64 },
    /// Storage failed; memory may hold changes the disk lacks. The runtime
    /// drops the engine and reloads from disk; nothing happens meanwhile.
    Failed,
}

/// A sync message waiting for the next round.
#[derive(Debug)]
struct Waiting {
    conn: ConnectionId,
    sender: PeerId,
    message: sync::Message,
    request: bool,
}

/// The sync engine of one document.
#[derive(Debug)]
pub struct DocEngine {
    document_id: DocumentId,
    our_peer_id: PeerId,
    role: Role,
    config: Arc<EngineConfig>,
    document: Document,
    peers: BTreeMap<ConnectionId, PeerState>,
    waiting: Vec<Waiting>,
    phase: Phase,
    next_seq: u64,
    /// Heads of what has been handed to storage (durable unless flushing).
    persisted_heads: Vec<ChangeHash>,
    compaction: Compaction,
    ephemeral: ephemeral::Dedup,
    kept: kept::KeptStates,
    fast_counts: FastPathCounts,
}

impl DocEngine {
    /// An engine for a document with no stored content, default configuration.
    pub fn new(document_id: DocumentId, our_peer_id: PeerId, role: Role) -> Self {
        Self::with_config(document_id, our_peer_id, role, Arc::new(EngineConfig::default()))
    }

    /// An engine for a document with no stored content.
    pub fn with_config(document_id: DocumentId, our_peer_id: PeerId, role: Role, config: Arc<EngineConfig>) -> Self {
        Self::with_doc(document_id, our_peer_id, role, config, Automerge::new(), StoredSizes::default())
    }

    /// An engine for a document loaded from its stored chunks (snapshot first,
    /// then incrementals, in the order they were written), default configuration.
    pub fn load<'a>(
        document_id: DocumentId,
        our_peer_id: PeerId,
        role: Role,
        chunks: impl IntoIterator<Item = (bool, &'a [u8])>,
    ) -> Result<Self, ProtocolError> {
        Self::load_with_config(document_id, our_peer_id, role, Arc::new(EngineConfig::default()), chunks)
    }

    /// [`DocEngine::load`] with a configuration.
    pub fn load_with_config<'a>(
        document_id: DocumentId,
        our_peer_id: PeerId,
        role: Role,
        config: Arc<EngineConfig>,
        chunks: impl IntoIterator<Item = (bool, &'a [u8])>,
    ) -> Result<Self, ProtocolError> {
        let mut doc = Automerge::new();
        let mut sizes = StoredSizes::default();
        for (is_snapshot, bytes) in chunks {
            if is_snapshot {
                sizes.snapshot_bytes += bytes.len();
            } else {
                sizes.incremental_bytes += bytes.len();
            }
            doc.load_incremental(bytes).map_err(|e| ProtocolError::CorruptDocument {
                document: document_id.to_string(),
                reason: e.to_string(),
            })?;
        }
        Ok(Self::with_doc(document_id, our_peer_id, role, config, doc, sizes))
    }

    fn with_doc(
        document_id: DocumentId,
        our_peer_id: PeerId,
        role: Role,
        config: Arc<EngineConfig>,
        doc: Automerge,
        sizes: StoredSizes,
    ) -> Self {
        let persisted_heads = doc.get_heads();
        let document = Document::new(doc);
        Self {
            document_id,
            our_peer_id,
            role,
            compaction: Compaction::new(sizes, config.compaction_floor_bytes),
            ephemeral: ephemeral::Dedup::new(config.ephemeral_dedup_window),
            config,
            document,
            peers: BTreeMap::new(),
            waiting: Vec::new(),
            phase: Phase::Idle,
            next_seq: 1,
            persisted_heads,
            kept: kept::KeptStates::default(),
            fast_counts: FastPathCounts::default(),
        }
    }

    /// Seed what we share with remote storages, from records kept by
    /// [`DocEffect::SaveSyncState`]. Heads we do not hold (a record newer than
    /// the document on disk) are dropped: that peer syncs from scratch.
    pub fn restore_sync_states(&mut self, states: impl IntoIterator<Item = (StorageId, Vec<ChangeHash>)>) {
        self.kept.restore(&self.document, states);
    }

    /// The heads we last shared with a storage whose peer is not connected.
    pub fn shared_with(&self, storage: &StorageId) -> Option<&[ChangeHash]> {
        self.kept.shared_with(storage)
    }

    pub fn document_id(&self) -> DocumentId {
        self.document_id
    }

    #[doc(hidden)]
    pub fn fast_path_counts(&self) -> FastPathCounts {
        self.fast_counts
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The whole document as it is in memory (may include changes not yet
    /// durable). Applies the changes still deferred first, which costs time
    /// in proportion to the size of the objects they touch: for lookups
    /// that do not depend on recent changes, see [`DocEngine::applied_doc`].
    pub fn doc(&mut self) -> &Automerge {
        self.document.materialised()
    }

    /// The document without the changes still deferred (at most
    /// [`EngineConfig::deferred_changes`] recent ones): for lookups that do
    /// not depend on them, such as which objects the text fields are.
    pub fn applied_doc(&self) -> &Automerge {
        self.document.applied()
    }

    /// Does the document have no changes at all?
    pub fn is_empty(&self) -> bool {
        self.document.is_empty()
    }

    /// Our heads, counting deferred changes.
    pub fn heads(&self) -> Vec<ChangeHash> {
        self.document.heads()
    }

    /// Do we have this change (applied or deferred)?
    pub fn has_change(&self, hash: &ChangeHash) -> bool {
        self.document.has(hash)
    }

    /// How many changes wait deferred (tests and benchmarks).
    #[doc(hidden)]
    pub fn deferred_count(&self) -> usize {
        self.document.deferred_count()
    }

    /// True when nothing is connected, waiting or being flushed: the runtime may evict us.
    pub fn is_idle(&self) -> bool {
        self.peers.is_empty() && self.waiting.is_empty() && !self.is_flushing()
    }

    /// Storage failed under us; drop the engine and reload from disk.
    pub fn has_failed(&self) -> bool {
        self.phase == Phase::Failed
    }

    /// Is a flush outstanding?
    pub fn is_flushing(&self) -> bool {
        matches!(self.phase, Phase::Flushing { .. })
    }

    pub fn connections(&self) -> impl Iterator<Item = ConnectionId> + '_ {
        self.peers.keys().copied()
    }

    /// The heads a connected peer last advertised to us, if any.
    pub fn peer_heads(&self, conn: ConnectionId) -> Option<&[ChangeHash]> {
        self.peers.get(&conn).and_then(|p| p.sync.their_heads())
    }

    /// Feed a batch of inputs; returns the effects to carry out, in order.
    pub fn handle(&mut self, inputs: impl IntoIterator<Item = DocInput>) -> Vec<DocEffect> {
        let mut out = Vec::new();
        for input in inputs {
            match input {
                DocInput::Sync { conn, sender, message, request } => self.waiting.push(Waiting { conn, sender, message, request }),
                DocInput::Ephemeral { conn, message } => self.relay_ephemeral(conn, message, &mut out),
                DocInput::Connected { conn, peer } => {
                    // Idempotent: announcing twice must not reset a sync in progress.
                    self.peer_entry(conn, peer).dirty = true;
                }
                DocInput::PeerStorage { conn, storage } => self.kept.announce(conn, storage),
                DocInput::Resync { conn, peer } => {
                    let mut state = PeerState::new(peer, self.kept.seed_for(conn));
                    state.sync.reset_next();
                    state.dirty = true;
                    self.peers.insert(conn, state);
                }
                DocInput::Heard { conn } => {
                    if let Some(peer) = self.peers.get_mut(&conn) {
                        peer.sync.heard();
                    }
                }
                DocInput::Disconnected { conn } => {
                    let peer = self.peers.remove(&conn);
                    if let Some((storage, heads)) = self.kept.depart(conn, peer.as_ref().map(|p| p.sync.shared_heads())) {
                        out.push(DocEffect::SaveSyncState { document_id: self.document_id, storage, heads });
                    }
                    self.waiting.retain(|w| w.conn != conn);
                }
                DocInput::Durable { seq } => {
                    if let Phase::Flushing { seq: flushing } = self.phase
                        && flushing <= seq
                    {
                        self.phase = Phase::Idle;
                    }
                }
                DocInput::PersistFailed { seq, error } => {
                    // Whatever seq failed, memory now holds changes the disk
                    // lacks, and later incrementals build on them: stop here.
                    if self.phase != Phase::Failed {
                        tracing::error!(document = %self.document_id, seq, %error, "persist failed");
                        self.fail(error, &mut out);
                    }
                }
            }
        }
        self.advance(&mut out);
        out
    }

    /// Change the document locally (client role). The closure may run
    /// transactions, merge other documents, and so on; whatever it adds is
    /// persisted and then offered to every connected peer.
    pub fn change<R>(&mut self, mutate: impl FnOnce(&mut Automerge) -> R) -> (R, Vec<DocEffect>) {
        let before = self.document.heads();
        let result = self.document.mutate(mutate);
        let mut out = Vec::new();
        if self.document.heads() != before {
            self.persist_new_changes(&mut out);
            for peer in self.peers.values_mut() {
                peer.dirty = true;
            }
        }
        self.advance(&mut out);
        (result, out)
    }

    /// Replace the document by `rebuilt`, which drops changes of ours the
    /// peer refused (see `konsens_model::recovery`). One snapshot replaces every
    /// stored chunk; until it is durable, nothing is sent. What each peer
    /// told us stays (their heads, what they have); what we sent is
    /// forgotten, so each peer hears our new heads and changes afresh.
    pub fn replace_document(&mut self, rebuilt: Automerge) -> Vec<DocEffect> {
        let mut out = Vec::new();
        self.document.replace(rebuilt);
        let write = self.document.snapshot(&mut self.compaction);
        self.persist(write, &mut out);
        for peer in self.peers.values_mut() {
            peer.sync.forget_sent();
            peer.dirty = true;
        }
        out
    }

    /// The one function that moves the engine forward: only here does a
    /// round start or a message get generated, and only in [`Phase::Idle`].
    ///
    /// Replies made possible by the flush that just completed go out
    /// *before* the next round starts. Starting the round first would
    /// persist its changes and hold those replies for one more flush; a peer
    /// (or two) streaming changes at least as fast as we flush would then
    /// never be acknowledged (tests/postponement.rs).
    fn advance(&mut self, out: &mut Vec<DocEffect>) {
        if self.phase != Phase::Idle {
            return;
        }
        self.generate(out);
        if !self.waiting.is_empty() {
            self.run_round(out);
            if self.phase == Phase::Idle {
                self.generate(out);
            }
        }
        // Replies are out; now is the time to apply what gathered, and to
        // compact storage, which waited for it (Document::write_after).
        if self.phase == Phase::Idle && self.document.deferred_count() >= self.config.deferred_batch(self.document.change_count()) {
            self.document.apply_deferred();
            if self.compaction.due() {
                let write = self.document.snapshot(&mut self.compaction);
                self.persist(write, out);
            }
        }
    }

    /// The sync state of a connection, created on first use; a connection
    /// whose peer announced its storage starts from what we last shared with it.
    fn peer_entry(&mut self, conn: ConnectionId, peer_id: PeerId) -> &mut PeerState {
        let seed = self.kept.seed_for(conn);
        self.peers.entry(conn).or_insert_with(|| PeerState::new(peer_id, seed))
    }

    fn fail(&mut self, error: PersistError, out: &mut Vec<DocEffect>) {
        self.phase = Phase::Failed;
        self.waiting.clear();
        for (conn, _) in std::mem::take(&mut self.peers) {
            out.push(DocEffect::Close {
                conn,
                reason: CloseReason::StorageFailure { document: self.document_id, error: error.clone() },
            });
        }
    }

    /// Hand the changes since the last persist to storage, compacting into a
    /// snapshot once the incrementals outweigh it.
    fn persist_new_changes(&mut self, out: &mut Vec<DocEffect>) {
        let write = self.document.write_after(&self.persisted_heads, &mut self.compaction);
        self.persist(write, out);
    }

    /// Every write goes through here: it enters [`Phase::Flushing`], so
    /// nothing is sent until it is durable.
    fn persist(&mut self, write: StorageWrite, out: &mut Vec<DocEffect>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.persisted_heads = self.document.heads();
        self.phase = Phase::Flushing { seq };
        out.push(DocEffect::Persist { document_id: self.document_id, seq, write });
    }
}
