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

use std::collections::{BTreeMap, HashSet, VecDeque};

use automerge::sync::{self, SyncDoc};
use automerge::{Automerge, ChangeHash};

use crate::message::{DocMessage, EphemeralMessage, Message, PeerId};
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
    /// The connection is gone; forget its sync state.
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
}

impl PeerState {
    fn new(peer_id: PeerId) -> Self {
        Self {
            peer_id,
            sync: sync::State::new(),
            dirty: false,
            told_unavailable: false,
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
        }
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
                    self.peers.entry(conn).or_insert_with(|| PeerState::new(peer)).dirty = true;
                }
                DocInput::Disconnected { conn } => {
                    self.peers.remove(&conn);
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
        for Waiting {
            conn,
            message,
            request,
        } in std::mem::take(&mut self.waiting)
        {
            match sync::Message::decode(&message.data) {
                Ok(m) => {
                    let peer = self
                        .peers
                        .entry(conn)
                        .or_insert_with(|| PeerState::new(message.sender_id.clone()));
                    peer.dirty = true;
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
        if !all_changes.is_empty() && self.doc.load_incremental(&all_changes).is_err() {
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
            if let Some(message) = self.doc.generate_sync_message(&mut peer.sync) {
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
