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
//! disk: applying new changes emits [`DocEffect::Persist`] and [`DocEffect::Flush`]
//! with a sequence number, and no message is generated until the runtime reports
//! [`DocInput::Durable`] for that number. Sync messages that arrive meanwhile wait
//! in the engine and are applied together as the next batch, so the flush
//! interval doubles as the batching window (group commit at the document level).
//!
//! # Batch and coalesce
//! Applying a remote change costs time proportional to the size of the object it
//! touches, not to the change. So a round applies the changes of *all* waiting
//! sync messages, from all peers, in one `load_incremental` call, then lets each
//! peer's sync state see its message (whose changes are by then known and cheap),
//! and finally generates at most one message per peer.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use automerge::sync::{self, SyncDoc};
use automerge::{Automerge, ChangeHash};

use crate::message::{DocMessage, EphemeralMessage, Message, PeerId, StorageId};
use crate::{DocumentId, ProtocolError};

/// Identifies one live connection (a peer may reconnect under a new one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

/// How many ephemeral message ids we remember for de-duplication.
const EPHEMERAL_DEDUP_WINDOW: usize = 4096;

/// Which side of the protocol this engine plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A sync server: never initiates, answers `request` for unknown documents
    /// with `doc-unavailable`, relays ephemeral messages.
    Server,
    /// A client peer: announces its documents on connect and asks (`request`)
    /// for documents it does not have yet.
    Client,
}

/// One input to the engine.
#[derive(Debug)]
pub enum DocInput {
    /// A `sync` or `request` message from a peer.
    Sync {
        conn: ConnectionId,
        message: DocMessage,
        /// True for `request` (the peer has no copy yet).
        request: bool,
    },
    /// A presence or other transient message to relay.
    Ephemeral {
        conn: ConnectionId,
        message: EphemeralMessage,
    },
    /// A connection was opened to a peer that should hear about this document
    /// now (client role: the server we dialled).
    Connected { conn: ConnectionId, peer: PeerId },
    /// The peer on this connection keeps its data in `storage` (from its
    /// `join`): what we last shared with that storage, from an earlier
    /// connection or a restored record, seeds its sync state, so a reconnect
    /// costs one round trip with a bloom filter of what changed since, not of
    /// the whole history. Give it before the connection's first message.
    PeerStorage { conn: ConnectionId, storage: StorageId },
    /// The connection is gone; forget its sync state (keeping what we share
    /// with its storage, see [`DocEffect::SaveSyncState`]).
    Disconnected { conn: ConnectionId },
    /// Everything persisted up to and including `seq` is flushed to disk.
    Durable { seq: u64 },
    /// Persisting `seq` failed; nothing after the last durable point may be acknowledged.
    PersistFailed { seq: u64, reason: String },
}

/// What the runtime must do for the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocEffect {
    /// Send this message on that connection.
    Send { conn: ConnectionId, message: Message },
    /// Write these bytes for the document (not yet durable).
    Persist {
        document_id: DocumentId,
        seq: u64,
        write: StorageWrite,
    },
    /// Make everything persisted up to `seq` durable, then report [`DocInput::Durable`].
    /// Runtimes batch flushes of many documents into one (group commit).
    Flush { document_id: DocumentId, seq: u64 },
    /// Close the connection with this reason (after sending what precedes it).
    Close { conn: ConnectionId, reason: String },
    /// Keep the heads we share with a remote storage, for its next connection
    /// (see [`DocEngine::restore_sync_states`]). Losing it costs only a
    /// longer first sync, so it needs no flush of its own.
    SaveSyncState {
        document_id: DocumentId,
        storage: StorageId,
        heads: Vec<ChangeHash>,
    },
}

/// A write of document bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageWrite {
    /// Changes to add to the stored chunks (`save_after` output).
    Incremental(Vec<u8>),
    /// A full snapshot that replaces every chunk stored so far, atomically.
    Snapshot(Vec<u8>),
}

#[derive(Debug)]
struct PeerState {
    peer_id: PeerId,
    sync: sync::State,
    /// Needs a `generate_sync_message` at the next opportunity.
    dirty: bool,
    /// The peer asked for a document we did not have; it got `doc-unavailable`
    /// and hears from us again once the document has content.
    told_unavailable: bool,
    /// Heads and change hashes of our recent messages to this peer, oldest
    /// first: an acknowledgement of any of them can be taken without a walk
    /// of the change graph (see [`fast_ack`]).
    sent_log: VecDeque<(Vec<ChangeHash>, Vec<ChangeHash>)>,
}

/// How many sent messages per peer [`PeerState::sent_log`] remembers.
const SENT_LOG: usize = 64;

impl PeerState {
    fn new(peer_id: PeerId) -> Self {
        Self {
            peer_id,
            sync: sync::State::new(),
            dirty: false,
            told_unavailable: false,
            sent_log: VecDeque::new(),
        }
    }
}

/// A sync message waiting for the next round.
#[derive(Debug)]
struct Waiting {
    conn: ConnectionId,
    message: DocMessage,
    request: bool,
}

/// The sync engine of one document.
#[derive(Debug)]
pub struct DocEngine {
    document_id: DocumentId,
    our_peer_id: PeerId,
    role: Role,
    doc: Automerge,
    peers: BTreeMap<ConnectionId, PeerState>,
    waiting: Vec<Waiting>,
    /// The persist sequence number whose flush we are waiting for.
    flushing: Option<u64>,
    next_seq: u64,
    /// Heads of what has been handed to storage (durable or in flight).
    persisted_heads: Vec<ChangeHash>,
    snapshot_bytes: usize,
    incremental_bytes: usize,
    ephemeral_seen: HashSet<(PeerId, String, u64)>,
    ephemeral_order: VecDeque<(PeerId, String, u64)>,
    /// Storage failed; the runtime must drop this engine and reload from disk.
    failed: bool,
    /// Heads we share with remote storages whose peers are not connected.
    shared_with: HashMap<StorageId, Vec<ChangeHash>>,
    /// The storage of each connection whose peer announced one.
    storages: HashMap<ConnectionId, StorageId>,
}

/// Sizes of the stored chunks a document was loaded from, for compaction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredSizes {
    pub snapshot_bytes: usize,
    pub incremental_bytes: usize,
}

impl DocEngine {
    /// An engine for a document with no stored content.
    pub fn new(document_id: DocumentId, our_peer_id: PeerId, role: Role) -> Self {
        Self::with_doc(document_id, our_peer_id, role, Automerge::new(), StoredSizes::default())
    }

    /// An engine for a document loaded from its stored chunks (snapshot first,
    /// then incrementals, in the order they were written).
    pub fn load<'a>(
        document_id: DocumentId,
        our_peer_id: PeerId,
        role: Role,
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
            doc.load_incremental(bytes)
                .map_err(|e| ProtocolError::CorruptDocument {
                    document: document_id.to_string(),
                    reason: e.to_string(),
                })?;
        }
        Ok(Self::with_doc(document_id, our_peer_id, role, doc, sizes))
    }

    fn with_doc(
        document_id: DocumentId,
        our_peer_id: PeerId,
        role: Role,
        doc: Automerge,
        sizes: StoredSizes,
    ) -> Self {
        let persisted_heads = doc.get_heads();
        Self {
            document_id,
            our_peer_id,
            role,
            doc,
            peers: BTreeMap::new(),
            waiting: Vec::new(),
            flushing: None,
            next_seq: 1,
            persisted_heads,
            snapshot_bytes: sizes.snapshot_bytes,
            incremental_bytes: sizes.incremental_bytes,
            ephemeral_seen: HashSet::new(),
            ephemeral_order: VecDeque::new(),
            failed: false,
            shared_with: HashMap::new(),
            storages: HashMap::new(),
        }
    }

    /// Seed what we share with remote storages, from records kept by
    /// [`DocEffect::SaveSyncState`]. Heads we do not hold (a record newer than
    /// the document on disk) are dropped: that peer syncs from scratch.
    pub fn restore_sync_states(&mut self, states: impl IntoIterator<Item = (StorageId, Vec<ChangeHash>)>) {
        for (storage, heads) in states {
            if !heads.is_empty() && heads.iter().all(|h| self.doc.get_change_meta_by_hash(h).is_some()) {
                self.shared_with.insert(storage, heads);
            }
        }
    }

    /// The heads we last shared with a storage whose peer is not connected.
    pub fn shared_with(&self, storage: &StorageId) -> Option<&[ChangeHash]> {
        self.shared_with.get(storage).map(Vec::as_slice)
    }

    pub fn document_id(&self) -> DocumentId {
        self.document_id
    }

    /// The document as it is in memory (may include changes not yet durable).
    pub fn doc(&self) -> &Automerge {
        &self.doc
    }

    /// True when nothing is connected, waiting or being flushed: the runtime may evict us.
    pub fn is_idle(&self) -> bool {
        self.peers.is_empty() && self.waiting.is_empty() && self.flushing.is_none()
    }

    /// Storage failed under us; drop the engine and reload from disk.
    pub fn has_failed(&self) -> bool {
        self.failed
    }

    /// Is a flush outstanding?
    pub fn is_flushing(&self) -> bool {
        self.flushing.is_some()
    }

    pub fn connections(&self) -> impl Iterator<Item = ConnectionId> + '_ {
        self.peers.keys().copied()
    }

    /// The heads a connected peer last advertised to us, if any.
    pub fn peer_heads(&self, conn: ConnectionId) -> Option<&[ChangeHash]> {
        self.peers
            .get(&conn)
            .and_then(|p| p.sync.their_heads.as_deref())
    }

    /// Feed a batch of inputs; returns the effects to carry out, in order.
    pub fn handle(&mut self, inputs: impl IntoIterator<Item = DocInput>) -> Vec<DocEffect> {
        let mut out = Vec::new();
        for input in inputs {
            match input {
                DocInput::Sync {
                    conn,
                    message,
                    request,
                } => self.waiting.push(Waiting {
                    conn,
                    message,
                    request,
                }),
                DocInput::Ephemeral { conn, message } => self.relay_ephemeral(conn, message, &mut out),
                DocInput::Connected { conn, peer } => {
                    // Idempotent: announcing twice must not reset a sync in progress.
                    self.peer_entry(conn, || peer).dirty = true;
                }
                // Remembered until the connection's peer state is created by
                // its first message (or `Connected`), which it then seeds.
                DocInput::PeerStorage { conn, storage } => {
                    self.storages.insert(conn, storage);
                }
                DocInput::Disconnected { conn } => {
                    let storage = self.storages.remove(&conn);
                    if let (Some(peer), Some(storage)) = (self.peers.remove(&conn), storage) {
                        self.keep_shared(storage, peer, &mut out);
                    }
                    self.waiting.retain(|w| w.conn != conn);
                }
                DocInput::Durable { seq } => {
                    if self.flushing.is_some_and(|s| s <= seq) {
                        self.flushing = None;
                    }
                }
                DocInput::PersistFailed { seq, reason } => {
                    // Whatever seq failed, memory now holds changes the disk
                    // lacks, and later incrementals build on them: stop here.
                    if !self.failed {
                        tracing::error!(document = %self.document_id, seq, %reason, "persist failed");
                        self.fail(&reason, &mut out);
                    }
                }
            }
        }
        if self.failed {
            return out;
        }
        if self.flushing.is_none() {
            if !self.waiting.is_empty() {
                self.run_round(&mut out);
            }
            if self.flushing.is_none() {
                self.generate(&mut out);
            }
        }
        out
    }

    /// Change the document locally (client role). The closure may run
    /// transactions, merge other documents, and so on; whatever it adds is
    /// persisted and then offered to every connected peer.
    pub fn change<R>(&mut self, mutate: impl FnOnce(&mut Automerge) -> R) -> (R, Vec<DocEffect>) {
        let before = self.doc.get_heads();
        let result = mutate(&mut self.doc);
        let mut out = Vec::new();
        if self.doc.get_heads() != before {
            self.persist_new_changes(&mut out);
            for peer in self.peers.values_mut() {
                peer.dirty = true;
            }
        }
        if self.flushing.is_none() {
            self.generate(&mut out);
        }
        (result, out)
    }

    /// Replace the document by `rebuilt`, which drops changes of ours the
    /// peer refused (see [`crate::recovery`]). One snapshot replaces every
    /// stored chunk; until it is durable, nothing is sent. What each peer
    /// told us stays (their heads, what they have); what we sent is
    /// forgotten, so each peer hears our new heads and changes afresh.
    pub fn replace_document(&mut self, rebuilt: Automerge) -> Vec<DocEffect> {
        let mut out = Vec::new();
        self.doc = rebuilt;
        let bytes = self.doc.save();
        self.snapshot_bytes = bytes.len();
        self.incremental_bytes = 0;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.persisted_heads = self.doc.get_heads();
        self.flushing = Some(seq);
        out.push(DocEffect::Persist { document_id: self.document_id, seq, write: StorageWrite::Snapshot(bytes) });
        out.push(DocEffect::Flush { document_id: self.document_id, seq });
        for peer in self.peers.values_mut() {
            peer.sync.last_sent_heads.clear();
            peer.sync.sent_hashes.clear();
            peer.sync.in_flight = false;
            peer.sent_log.clear();
            peer.dirty = true;
        }
        out
    }

    /// The sync state of a connection, created on first use; a connection
    /// whose peer announced its storage starts from what we last shared with it.
    fn peer_entry(&mut self, conn: ConnectionId, peer_id: impl FnOnce() -> PeerId) -> &mut PeerState {
        self.peers.entry(conn).or_insert_with(|| {
            let mut state = PeerState::new(peer_id());
            if let Some(heads) = self.storages.get(&conn).and_then(|s| self.shared_with.get(s)) {
                state.sync.shared_heads.clone_from(heads);
            }
            state
        })
    }

    /// A departing peer's shared heads outlive its connection, by storage.
    fn keep_shared(&mut self, storage: StorageId, peer: PeerState, out: &mut Vec<DocEffect>) {
        let heads = peer.sync.shared_heads;
        if heads.is_empty() || self.shared_with.get(&storage) == Some(&heads) {
            return;
        }
        self.shared_with.insert(storage.clone(), heads.clone());
        out.push(DocEffect::SaveSyncState {
            document_id: self.document_id,
            storage,
            heads,
        });
    }

    fn fail(&mut self, reason: &str, out: &mut Vec<DocEffect>) {
        self.failed = true;
        self.flushing = None;
        self.waiting.clear();
        for (conn, _) in std::mem::take(&mut self.peers) {
            out.push(DocEffect::Close {
                conn,
                reason: format!("storage failure for document {}: {reason}", self.document_id),
            });
        }
    }

    fn relay_ephemeral(&mut self, from: ConnectionId, message: EphemeralMessage, out: &mut Vec<DocEffect>) {
        let key = (
            message.sender_id.clone(),
            message.session_id.clone(),
            message.count,
        );
        if !self.ephemeral_seen.insert(key.clone()) {
            return;
        }
        self.ephemeral_order.push_back(key);
        if self.ephemeral_order.len() > EPHEMERAL_DEDUP_WINDOW
            && let Some(old) = self.ephemeral_order.pop_front()
        {
            self.ephemeral_seen.remove(&old);
        }
        for (conn, peer) in &self.peers {
            if *conn == from || peer.peer_id == message.sender_id {
                continue;
            }
            out.push(DocEffect::Send {
                conn: *conn,
                message: Message::Ephemeral(EphemeralMessage {
                    target_id: peer.peer_id.clone(),
                    ..message.clone()
                }),
            });
        }
    }

    /// Apply every waiting sync message as one batch.
    fn run_round(&mut self, out: &mut Vec<DocEffect>) {
        let heads_before = self.doc.get_heads();
        let mut decoded = Vec::with_capacity(self.waiting.len());
        let mut slow: HashSet<ConnectionId> = HashSet::new();
        for Waiting {
            conn,
            message,
            request,
        } in std::mem::take(&mut self.waiting)
        {
            match sync::Message::decode(&message.data) {
                Ok(m) => {
                    let peer = self.peer_entry(conn, || message.sender_id.clone());
                    peer.dirty = true;
                    // A pure acknowledgement of our current heads is most of the
                    // traffic of a busy document (every peer confirms every
                    // round). It only updates the sync state, so do that here,
                    // without Automerge's walk of the change graph. Taken before
                    // this round's load, as if it had arrived a round earlier;
                    // only while no earlier message of the same peer waits, so
                    // each peer's messages keep their order.
                    if !request && !slow.contains(&conn) && is_pure_ack(&m, peer, &heads_before) {
                        fast_ack(peer, m, &heads_before);
                        peer.told_unavailable = false;
                        continue;
                    }
                    slow.insert(conn);
                    decoded.push((conn, m, request));
                }
                Err(e) => {
                    let error = ProtocolError::InvalidSyncMessage {
                        document: self.document_id.to_string(),
                        reason: e.to_string(),
                    };
                    self.reject(conn, error, out);
                }
            }
        }

        // One load for the changes of all messages: the expensive part, done once.
        let mut all_changes = Vec::new();
        for (_, m, _) in &decoded {
            for chunk in m.changes.iter() {
                all_changes.extend_from_slice(chunk);
            }
        }
        let batch_loaded = all_changes.is_empty() || self.doc.load_incremental(&all_changes).is_ok();
        if !batch_loaded {
            // Somebody sent changes we cannot apply. Find out whom by applying
            // message by message below; the good ones still land.
            tracing::debug!(document = %self.document_id, "batched load failed, applying per message");
        }

        for (conn, m, request) in decoded {
            let Some(peer) = self.peers.get_mut(&conn) else {
                continue;
            };
            tracing::trace!(
                document = %self.document_id,
                ?conn,
                request,
                heads = m.heads.len(),
                changes = m.changes.len(),
                need = m.need.len(),
                "received sync message"
            );
            // Changes already applied by the batched load: when the message
            // confirms everything we last sent, update the sync state directly.
            let m = if batch_loaded && !request {
                match fast_receive_changes(peer, m) {
                    Ok(()) => {
                        peer.told_unavailable = false;
                        continue;
                    }
                    Err(m) => m,
                }
            } else {
                m
            };
            // Automerge records "we told them our heads" when a message's heads
            // equal ours and it carries no changes. In a batch that is untrue:
            // our heads may include changes loaded this round that we have not
            // announced yet, and believing otherwise would swallow the reply
            // that acknowledges them. Only sending changes what we last sent.
            let last_sent = peer.sync.last_sent_heads.clone();
            let received = self.doc.receive_sync_message(&mut peer.sync, m);
            if !peer.sync.last_sent_heads.is_empty() {
                peer.sync.last_sent_heads = last_sent;
            }
            if let Err(e) = received {
                let error = ProtocolError::RejectedChanges {
                    document: self.document_id.to_string(),
                    reason: e.to_string(),
                };
                self.reject(conn, error, out);
                continue;
            }
            if !request {
                // A `sync` means the peer has (or is creating) the document:
                // it expects a reply even while we have nothing yet.
                peer.told_unavailable = false;
            }
            if request && self.doc.is_empty() {
                peer.told_unavailable = true;
                peer.dirty = false;
                out.push(DocEffect::Send {
                    conn,
                    message: Message::DocUnavailable {
                        sender_id: self.our_peer_id.clone(),
                        target_id: peer.peer_id.clone(),
                        document_id: self.document_id,
                    },
                });
            }
        }

        if self.doc.get_heads() != heads_before {
            self.persist_new_changes(out);
            // Everybody, not only the senders, should hear about the new changes.
            for peer in self.peers.values_mut() {
                peer.dirty = true;
            }
        }
    }

    fn reject(&mut self, conn: ConnectionId, error: ProtocolError, out: &mut Vec<DocEffect>) {
        tracing::warn!(document = %self.document_id, ?conn, %error, "rejecting peer input");
        let target_id = self.peers.remove(&conn).map(|p| p.peer_id);
        out.push(DocEffect::Send {
            conn,
            message: Message::Error {
                sender_id: Some(self.our_peer_id.clone()),
                target_id,
                message: error.to_string(),
                refusal: None,
            },
        });
        out.push(DocEffect::Close {
            conn,
            reason: error.to_string(),
        });
    }

    /// Hand the changes since the last persist to storage, compacting into a
    /// snapshot once the incrementals outweigh it.
    fn persist_new_changes(&mut self, out: &mut Vec<DocEffect>) {
        let incremental = self.doc.save_after(&self.persisted_heads);
        let write = if self.incremental_bytes + incremental.len() > self.snapshot_bytes.max(1024) {
            let snapshot = self.doc.save();
            self.snapshot_bytes = snapshot.len();
            self.incremental_bytes = 0;
            StorageWrite::Snapshot(snapshot)
        } else {
            self.incremental_bytes += incremental.len();
            StorageWrite::Incremental(incremental)
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.persisted_heads = self.doc.get_heads();
        self.flushing = Some(seq);
        out.push(DocEffect::Persist {
            document_id: self.document_id,
            seq,
            write,
        });
        out.push(DocEffect::Flush {
            document_id: self.document_id,
            seq,
        });
    }

    /// One message per dirty peer, at most.
    fn generate(&mut self, out: &mut Vec<DocEffect>) {
        let has_content = !self.doc.is_empty();
        let our_heads = self.doc.get_heads();
        // What peers in step with an earlier state of ours need, computed
        // once per such state instead of once per peer.
        let mut since: Vec<Since> = Vec::new();
        for (conn, peer) in self.peers.iter_mut() {
            if !peer.dirty {
                continue;
            }
            peer.dirty = false;
            if peer.told_unavailable {
                if !has_content {
                    continue;
                }
                peer.told_unavailable = false;
            }
            // A client that has nothing yet asks for the document with `request`.
            let request = self.role == Role::Client && !has_content;
            let mut fast_hashes = None;
            let base = fast_base(peer);
            // Automerge's own path: note what it had sent before, to log what it adds.
            let sent_before = (base.is_none() || request).then(|| peer.sync.sent_hashes.clone());
            let message = match base {
                Some(base) if !request => {
                    let at = match since.iter().position(|s| s.base == base) {
                        Some(at) => at,
                        None => {
                            since.push(Since::compute(&self.doc, base));
                            since.len() - 1
                        }
                    };
                    match since[at].message(&mut peer.sync, &our_heads) {
                        Fast::Done(m, hashes) => {
                            fast_hashes = Some(hashes);
                            m
                        }
                        Fast::Fallback => {
                            let before = peer.sync.sent_hashes.clone();
                            let m = self.doc.generate_sync_message(&mut peer.sync);
                            fast_hashes = Some(peer.sync.sent_hashes.difference(&before).copied().collect());
                            m
                        }
                    }
                }
                _ => self.doc.generate_sync_message(&mut peer.sync),
            };
            if let Some(message) = &message {
                // Remember what this message carried, for cheap acknowledgements.
                let hashes = match fast_hashes {
                    Some(h) => h,
                    // Automerge chose: what it added to the sent set.
                    None => match &sent_before {
                        Some(before) => peer.sync.sent_hashes.difference(before).copied().collect(),
                        None => Vec::new(),
                    },
                };
                peer.sent_log.push_back((message.heads.clone(), hashes));
                if peer.sent_log.len() > SENT_LOG {
                    peer.sent_log.pop_front();
                }
            }
            if let Some(message) = message {
                tracing::trace!(
                    document = %self.document_id,
                    ?conn,
                    heads = message.heads.len(),
                    changes = message.changes.len(),
                    need = message.need.len(),
                    "sending sync message"
                );
                let doc_message = DocMessage {
                    sender_id: self.our_peer_id.clone(),
                    target_id: peer.peer_id.clone(),
                    document_id: self.document_id,
                    data: message.encode(),
                };
                out.push(DocEffect::Send {
                    conn: *conn,
                    message: if request {
                        Message::Request(doc_message)
                    } else {
                        Message::Sync(doc_message)
                    },
                });
            }
        }
    }
}

/// Is this message only a confirmation of heads we know: our current ones, or
/// those of a message we recently sent this peer?
fn is_pure_ack(m: &sync::Message, peer: &PeerState, our_heads: &[ChangeHash]) -> bool {
    m.changes.is_empty()
        && !m.heads.is_empty()
        && (m.heads == our_heads || peer.sent_log.iter().any(|(heads, _)| *heads == m.heads))
}

fn take_flags(state: &mut sync::State, flags: Option<sync::MessageFlags>) {
    if let Some(flags) = flags {
        let mut caps = vec![sync::Capability::MessageV2];
        if flags.contains(sync::MessageFlags::SUPPORTS_SYNC_RESET) {
            caps.push(sync::Capability::SyncReset);
        }
        state.their_capabilities = Some(caps);
        if flags.contains(sync::MessageFlags::SYNC_RESET) {
            state.sent_hashes.clear();
        }
        state.peer_read_only = flags.contains(sync::MessageFlags::READ_ONLY);
    }
}

/// Forget the sent hashes that are ancestors of `heads`: with `heads` our
/// current heads, all of them; with the heads of a logged message, those sent
/// up to and including it (each message's changes lie below its heads, later
/// messages carry changes made after them). This is Automerge's
/// `filter_changes` without the walk of the change graph.
fn forget_sent(peer: &mut PeerState, heads: &[ChangeHash], our_heads: &[ChangeHash]) -> bool {
    if heads == our_heads {
        peer.sync.sent_hashes.clear();
        peer.sent_log.clear();
        return true;
    }
    let Some(upto) = peer.sent_log.iter().position(|(h, _)| h == heads) else {
        return false;
    };
    for (_, hashes) in peer.sent_log.drain(..=upto) {
        for h in hashes {
            peer.sync.sent_hashes.remove(&h);
        }
    }
    true
}

/// `receive_sync_message` for a pure acknowledgement (see [`is_pure_ack`]),
/// field by field as Automerge 0.12 does it, minus the graph walks.
fn fast_ack(peer: &mut PeerState, m: sync::Message, our_heads: &[ChangeHash]) {
    forget_sent(peer, &m.heads, our_heads);
    let state = &mut peer.sync;
    state.in_flight = false;
    take_flags(state, m.flags);
    // Unlike Automerge, never record "we told them" here: only sending
    // changes what we last sent (see run_round), or a reply held back by the
    // flush would be lost when the peer's heads-only message overtakes it.
    state.shared_heads.clone_from(&m.heads);
    state.their_have = Some(m.have);
    state.their_need = Some(m.need);
    state.their_heads = Some(m.heads);
}

/// `receive_sync_message` for a message whose changes the batched load has
/// already applied, when its heads are known to us and cover the heads of a
/// message we sent (so every hash sent up to that message is an ancestor of
/// them): Automerge would find nothing new to load, forget those sent hashes
/// and share the peer's heads. A typist's message usually covers our last
/// message, or an earlier one when it typed before that one arrived. Gives the
/// message back when no logged message qualifies.
fn fast_receive_changes(peer: &mut PeerState, m: sync::Message) -> Result<(), sync::Message> {
    if m.changes.is_empty() || m.heads.is_empty() || peer.sync.last_sent_heads.is_empty() {
        return Err(m);
    }
    let mut hashes = HashSet::new();
    let mut deps = HashSet::new();
    let mut parsed = true;
    for chunk in m.changes.iter() {
        match automerge::Change::from_bytes(chunk.to_vec()) {
            Ok(c) if c.raw_bytes().len() == chunk.len() => {
                hashes.insert(c.hash());
                deps.extend(c.deps().iter().copied());
            }
            _ => {
                parsed = false;
                break;
            }
        }
    }
    if !parsed {
        return Err(m);
    }
    let qualifies = |sent: &[ChangeHash]| {
        !sent.is_empty()
            && sent.iter().all(|h| m.heads.contains(h) || deps.contains(h))
            && m.heads.iter().all(|h| hashes.contains(h) || sent.contains(h))
    };
    if qualifies(&peer.sync.last_sent_heads) {
        peer.sent_log.clear();
        peer.sync.sent_hashes.clear();
    } else {
        // The newest logged message the peer's heads cover.
        let Some(upto) = peer.sent_log.iter().rposition(|(heads, _)| qualifies(heads)) else {
            return Err(m);
        };
        for (_, sent) in peer.sent_log.drain(..=upto) {
            for h in sent {
                peer.sync.sent_hashes.remove(&h);
            }
        }
    }
    let state = &mut peer.sync;
    state.in_flight = false;
    take_flags(state, m.flags);
    state.shared_heads.clone_from(&m.heads);
    state.their_have = Some(m.have);
    state.their_need = Some(m.need);
    state.their_heads = Some(m.heads);
    Ok(())
}

/// The heads a peer's fast path is computed from, when its state has the
/// shape the fast path covers: it summarised what it has since heads we sent
/// it (so we know them), and needs nothing.
fn fast_base(peer: &PeerState) -> Option<Vec<ChangeHash>> {
    let state = &peer.sync;
    if !state.have_responded || state.needs_reset || state.read_only || state.peer_read_only {
        return None;
    }
    let have = state.their_have.as_ref()?;
    let base = &have.first()?.last_sync;
    let known = *base == state.last_sent_heads || peer.sent_log.iter().any(|(h, _)| h == base);
    let ok = known
        && !base.is_empty()
        && have.len() == 1
        && state.their_need.as_ref().is_some_and(|n| n.is_empty())
        && state.their_heads.as_ref().is_some_and(|t| !t.is_empty() && *t == state.shared_heads);
    ok.then(|| base.clone())
}

enum Fast {
    /// What Automerge would have produced (possibly nothing), with the
    /// hashes of the changes it carries.
    Done(Option<sync::Message>, Vec<ChangeHash>),
    /// Outside what the fast path covers; ask Automerge.
    Fallback,
}

/// Our changes since `base` (heads we once had), with their bloom filter.
struct Since {
    base: Vec<ChangeHash>,
    changes: Vec<automerge::Change>,
    index: std::collections::HashMap<ChangeHash, usize>,
    have: sync::Have,
}

impl Since {
    fn compute(doc: &Automerge, base: Vec<ChangeHash>) -> Self {
        let changes = doc.get_changes(&base);
        let index = changes.iter().enumerate().map(|(i, c)| (c.hash(), i)).collect();
        let have = sync::Have {
            last_sync: base.clone(),
            bloom: sync::BloomFilter::from_hashes(changes.iter().map(|c| c.hash())),
        };
        Self { base, changes, index, have }
    }

    /// `generate_sync_message` for a peer whose state [`fast_base`] accepted
    /// with `self.base`, as Automerge 0.12 computes it: our heads, no need, a
    /// bloom of our changes the peer's heads lack, and the changes its bloom
    /// lacks (with their dependents) that we have not sent yet.
    fn message(&self, state: &mut sync::State, our_heads: &[ChangeHash]) -> Fast {
        let Some(their_heads) = state.their_heads.clone() else {
            return Fast::Fallback;
        };
        // The peer's heads must be known: ours since `base`, or `base` itself.
        if !their_heads.iter().all(|h| self.index.contains_key(h) || self.base.contains(h)) {
            return Fast::Fallback;
        }
        // Which of our changes since `base` the peer's heads already include.
        let mut included = vec![false; self.changes.len()];
        let mut stack: Vec<usize> = their_heads.iter().filter_map(|h| self.index.get(h).copied()).collect();
        let mut reached_base: HashSet<ChangeHash> = their_heads.iter().filter(|h| self.base.contains(h)).copied().collect();
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut included[i], true) {
                continue;
            }
            for d in self.changes[i].deps() {
                match self.index.get(d) {
                    Some(&j) => stack.push(j),
                    None if self.base.contains(d) => {
                        reached_base.insert(*d);
                    }
                    None => {}
                }
            }
        }
        // Every head of `base` must be below the peer's heads, else what lies
        // between is not "since base" and the walk above would miss it.
        if reached_base.len() != self.base.len() {
            return Fast::Fallback;
        }
        let have = if included.iter().any(|&x| x) {
            sync::Have {
                last_sync: their_heads.clone(),
                bloom: sync::BloomFilter::from_hashes(
                    self.changes
                        .iter()
                        .zip(&included)
                        .filter(|(_, inc)| !**inc)
                        .map(|(c, _)| c.hash())
                        .collect::<Vec<_>>()
                        .into_iter(),
                ),
            }
        } else {
            self.have.clone()
        };
        let Some(bloom) = state.their_have.as_ref().and_then(|h| h.first()).map(|h| &h.bloom) else {
            return Fast::Fallback;
        };
        let mut send: Vec<bool> = self.changes.iter().map(|c| !bloom.contains_hash(&c.hash())).collect();
        // Whatever depends on a change we send must be sent too (changes are
        // in causal order, so one forward pass suffices).
        for (i, c) in self.changes.iter().enumerate() {
            if !send[i] && c.deps().iter().any(|d| self.index.get(d).is_some_and(|&j| send[j])) {
                send[i] = true;
            }
        }
        let chosen: Vec<&automerge::Change> = self
            .changes
            .iter()
            .zip(&send)
            .filter(|(c, s)| **s && !state.sent_hashes.contains(&c.hash()))
            .map(|(c, _)| c)
            .collect();
        let heads_unchanged = state.last_sent_heads == our_heads;
        let heads_equal = their_heads == our_heads;
        if heads_unchanged && state.have_responded && ((heads_equal && chosen.is_empty()) || state.in_flight) {
            return Fast::Done(None, Vec::new());
        }
        let v2 = state
            .their_capabilities
            .as_ref()
            .is_some_and(|caps| caps.contains(&sync::Capability::MessageV2));
        let (changes, version) = if v2 {
            let joined: Vec<u8> = chosen.iter().flat_map(|c| c.raw_bytes().iter().copied()).collect();
            let chunks = if joined.is_empty() { Vec::new() } else { vec![joined] };
            (chunks, sync::MessageVersion::V2)
        } else {
            (chosen.iter().map(|c| c.raw_bytes().to_vec()).collect(), sync::MessageVersion::V1)
        };
        state.have_responded = true;
        state.last_sent_heads = our_heads.to_vec();
        state.sent_hashes.extend(chosen.iter().map(|c| c.hash()));
        state.in_flight = true;
        let mut flags = sync::MessageFlags::new();
        flags.set(sync::MessageFlags::SUPPORTS_SYNC_RESET);
        let hashes = chosen.iter().map(|c| c.hash()).collect();
        Fast::Done(
            Some(sync::Message {
                heads: our_heads.to_vec(),
                need: Vec::new(),
                have: vec![have],
                changes: sync::ChunkList::from(changes),
                flags: Some(flags),
                version,
            }),
            hashes,
        )
    }
}
