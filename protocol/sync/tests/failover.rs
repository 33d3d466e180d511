//! A document moves to another owner (a cluster node died) while a peer
//! stays connected: the peer's change that reached the old owner but never
//! became durable there must reach the new owner. Automerge resends nothing
//! it believes it sent, so without `DocInput::Resync` it would be stranded
//! on the peer for good; the peers here are Automerge's own sync code.

use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ReadDoc, ROOT};
use konsens_sync::{ConnectionId, DocEffect, DocEngine, DocInput, DocMessage, DocumentId, Message, PeerId, Role, StorageWrite};

const CONN: ConnectionId = ConnectionId(1);

/// One owner and what it made durable (its disk).
struct Owner {
    engine: DocEngine,
    disk: Vec<(bool, Vec<u8>)>,
    /// Writes handed to storage and not reported durable yet.
    pending: Vec<(u64, StorageWrite)>,
}

impl Owner {
    fn new(engine: DocEngine) -> Self {
        Self { engine, disk: Vec::new(), pending: Vec::new() }
    }

    fn load(document_id: DocumentId, disk: &[(bool, Vec<u8>)]) -> Self {
        let engine = DocEngine::load(document_id, PeerId::from("server"), Role::Server, disk.iter().map(|(s, b)| (*s, b.as_slice())))
            .expect("the durable chunks load");
        Self { engine, disk: disk.to_vec(), pending: Vec::new() }
    }

    /// Handle inputs; keep the writes; return the sync messages for the peer.
    fn handle(&mut self, inputs: Vec<DocInput>) -> Vec<sync::Message> {
        let mut out = Vec::new();
        for effect in self.engine.handle(inputs) {
            match effect {
                DocEffect::Persist { seq, write, .. } => self.pending.push((seq, write)),
                DocEffect::Send { message: Message::Sync(m), .. } => out.push(sync::Message::decode(&m.data).expect("our message decodes")),
                _ => {}
            }
        }
        out
    }

    /// Make every pending write durable and tell the engine.
    fn flush(&mut self) -> Vec<sync::Message> {
        let mut out = Vec::new();
        for (seq, write) in std::mem::take(&mut self.pending) {
            match write {
                StorageWrite::Incremental(bytes) => self.disk.push((false, bytes)),
                StorageWrite::Snapshot(bytes) => self.disk = vec![(true, bytes)],
            }
            out.extend(self.handle(vec![DocInput::Durable { seq }]));
        }
        out
    }
}

fn from_peer(document_id: DocumentId, message: sync::Message) -> DocInput {
    let message = DocMessage { sender_id: PeerId::from("laptop"), target_id: PeerId::from("server"), document_id, data: message.encode() };
    DocInput::decode_sync(CONN, &message, false).expect("decodes")
}

/// Exchange messages until both sides are quiet, flushing every write.
fn converse(document_id: DocumentId, owner: &mut Owner, peer: &mut Automerge, state: &mut sync::State, to_peer: Vec<sync::Message>) {
    assert!(exchange(document_id, owner, peer, state, to_peer), "the sync did not settle");
}

/// Up to 50 rounds of messages, flushing every write; true when both sides went quiet.
fn exchange(document_id: DocumentId, owner: &mut Owner, peer: &mut Automerge, state: &mut sync::State, mut to_peer: Vec<sync::Message>) -> bool {
    for _ in 0..50 {
        for message in to_peer.drain(..) {
            peer.receive_sync_message(state, message).expect("the peer takes our message");
        }
        let from = peer.generate_sync_message(state);
        let mut replies = match from {
            Some(message) => owner.handle(vec![from_peer(document_id, message)]),
            None => Vec::new(),
        };
        replies.extend(owner.flush());
        if replies.is_empty() && owner.pending.is_empty() && peer.generate_sync_message(&mut state.clone()).is_none() {
            return true;
        }
        to_peer = replies;
    }
    false
}

fn typed(peer: &mut Automerge, text: &str) {
    let mut tx = peer.transaction();
    tx.put(ROOT, "text", text).expect("put");
    tx.commit();
}

/// The old owner acknowledged the first change; the second reached it but
/// was never flushed before it died. Returns the new owner (loaded from the
/// old one's disk), the peer and its sync state, which still believes it
/// sent the second change.
fn after_failover() -> (DocumentId, Owner, Automerge, sync::State) {
    let document_id = DocumentId::from_random([9; 16]);
    let mut old = Owner::new(DocEngine::new(document_id, PeerId::from("server"), Role::Server));
    let mut peer = Automerge::new().with_actor(ActorId::from(vec![7; 16]));
    let mut state = sync::State::new();
    typed(&mut peer, "acknowledged");
    converse(document_id, &mut old, &mut peer, &mut state, Vec::new());
    assert_eq!(old.engine.heads(), peer.get_heads(), "the first change is acknowledged");

    typed(&mut peer, "never durable");
    let message = peer.generate_sync_message(&mut state).expect("the peer sends its change");
    let replies = old.handle(vec![from_peer(document_id, message)]);
    assert!(replies.is_empty(), "nothing is acknowledged before the flush");
    assert_eq!(old.pending.len(), 1, "the change waits for its flush when the owner dies");

    let new = Owner::load(document_id, &old.disk);
    assert_ne!(new.engine.heads(), peer.get_heads(), "the new owner lacks the unflushed change");
    (document_id, new, peer, state)
}

#[test]
fn a_resync_gets_the_change_the_old_owner_never_made_durable() {
    let (document_id, mut new, mut peer, mut state) = after_failover();
    let to_peer = new.handle(vec![DocInput::Resync { conn: CONN, peer: PeerId::from("laptop") }]);
    assert_eq!(to_peer.len(), 1, "the new owner speaks first");
    assert!(to_peer[0].heads.is_empty(), "and tells the peer to forget what it sent");
    converse(document_id, &mut new, &mut peer, &mut state, to_peer);
    assert_eq!(new.engine.heads(), peer.get_heads(), "converged");
    let stored = Automerge::load(&new.disk.iter().flat_map(|(_, b)| b.clone()).collect::<Vec<u8>>()).expect("the disk loads");
    let text = stored.get(ROOT, "text").expect("read").map(|(v, _)| v.to_string());
    assert_eq!(text.as_deref(), Some("\"never durable\""), "the change is durable at the new owner");

    // Later changes flow as usual.
    typed(&mut peer, "after");
    converse(document_id, &mut new, &mut peer, &mut state, Vec::new());
    assert_eq!(new.engine.heads(), peer.get_heads());
}

#[test]
fn without_a_resync_automerge_never_sends_the_change_again() {
    // What Resync is for: announcing the peer as a fresh connection is not
    // enough, because the peer keeps its record of what it sent.
    let (document_id, mut new, mut peer, mut state) = after_failover();
    let to_peer = new.handle(vec![DocInput::Connected { conn: CONN, peer: PeerId::from("laptop") }]);
    // The two sides keep talking (the owner asks for the change the peer
    // believes it sent) or fall silent; either way it never arrives.
    exchange(document_id, &mut new, &mut peer, &mut state, to_peer);
    assert_ne!(new.engine.heads(), peer.get_heads(), "the change stays stranded on the peer");
}
