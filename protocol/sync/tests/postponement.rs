//! Are acknowledgements ever postponed indefinitely?
//!
//! The question from review: a `Durable` that arrives in the same batch as a
//! sync message carrying new changes ends the flush, and the round for the
//! new changes starts a new one. If that round started before the replies
//! the finished flush allowed went out, those replies would wait for the
//! next flush, and a peer that streams changes at least as fast as we flush
//! (a typist; the server runtime only holds messages back from three
//! connections on, so with one or two nothing else spaces them out) would
//! never hear that its changes are safe.
//!
//! It did happen: before `DocEngine::advance` generated first, these tests
//! saw no acknowledgement at all during the stream. Now every flush that
//! completes releases its acknowledgements, so a change is acknowledged by
//! the second flush after it arrives at the latest.

use automerge::sync::{self, SyncDoc};
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, Automerge, AutomergeError, ChangeHash, ROOT};
use konsens_sync::{ConnectionId, DocEffect, DocEngine, DocInput, DocumentId, Message, PeerId, Role};

const DOC: [u8; 16] = [5; 16];

struct Typist {
    doc: Automerge,
    state: sync::State,
    conn: ConnectionId,
    /// Per change of ours: the step it was made and the step the server
    /// first advertised heads that include it.
    made: Vec<(ChangeHash, usize, Option<usize>)>,
}

impl Typist {
    fn new(n: u8) -> Self {
        Self {
            doc: Automerge::new().with_actor(ActorId::from(vec![n; 16])),
            state: sync::State::new(),
            conn: ConnectionId(u64::from(n)),
            made: Vec::new(),
        }
    }

    fn type_one(&mut self, step: usize) -> Option<DocInput> {
        let hash = self
            .doc
            .transact_with::<_, _, AutomergeError, _>(|_| CommitOptions::default().with_time(0), |tx| {
                tx.put(ROOT, format!("key{}", self.conn.0), step as i64)?;
                Ok(())
            })
            .expect("a put on the root applies")
            .hash
            .expect("a put makes a change");
        self.made.push((hash, step, None));
        let m = self.doc.generate_sync_message(&mut self.state)?;
        Some(DocInput::Sync { conn: self.conn, sender: PeerId(format!("typist-{}", self.conn.0)), message: m, request: false })
    }

    fn hear(&mut self, m: sync::Message, server: &Automerge, step: usize) {
        for (hash, _, acked) in self.made.iter_mut() {
            if acked.is_none() && m.heads.iter().any(|h| h == hash || is_ancestor(server, hash, h)) {
                *acked = Some(step);
            }
        }
        self.doc.receive_sync_message(&mut self.state, m).expect("the typist takes the server's message");
    }
}

/// Is `a` an ancestor of (or equal to) `head` in `doc`?
fn is_ancestor(doc: &Automerge, a: &ChangeHash, head: &ChangeHash) -> bool {
    doc.get_changes(&[*a]).iter().any(|c| c.hash() == *head) || a == head
}

/// `typists` peers each type one change per step; every step, the durable
/// notice for the flush outstanding from the step before arrives in the
/// same batch as their new messages, the worst case for postponement.
/// Returns, per typist, how many steps each change waited for its
/// acknowledgement (None: never, during the stream).
fn stream(typists: u8, steps: usize) -> Vec<Vec<Option<usize>>> {
    let mut server = DocEngine::new(DocumentId::from_bytes(DOC), PeerId::from("server"), Role::Server);
    let mut peers: Vec<Typist> = (1..=typists).map(Typist::new).collect();
    let mut outstanding: Option<u64> = None;
    for step in 0..steps {
        let mut inputs = Vec::new();
        if let Some(seq) = outstanding.take() {
            inputs.push(DocInput::Durable { seq });
        }
        for p in peers.iter_mut() {
            inputs.extend(p.type_one(step));
        }
        for effect in server.handle(inputs) {
            match effect {
                DocEffect::Send { conn, message: Message::Sync(m) } => {
                    let m = sync::Message::decode(&m.data).expect("the engine's messages decode");
                    if let Some(p) = peers.iter_mut().find(|p| p.conn == conn) {
                        p.hear(m, server.doc(), step);
                    }
                }
                DocEffect::Persist { seq, .. } => outstanding = Some(seq),
                other => panic!("unexpected effect {other:?}"),
            }
        }
    }
    peers
        .iter()
        .map(|p| p.made.iter().map(|(_, made, acked)| acked.map(|a| a - made)).collect())
        .collect()
}

fn assert_acknowledged_within(waits: &[Vec<Option<usize>>], steps: usize, bound: usize) {
    for (i, waits) in waits.iter().enumerate() {
        // The last changes may still be in flight when the stream stops.
        for (n, wait) in waits.iter().take(steps - bound).enumerate() {
            match wait {
                Some(w) => assert!(*w <= bound, "typist {i}: change {n} waited {w} steps: {waits:?}"),
                None => panic!("typist {i}: change {n} was never acknowledged during the stream: {waits:?}"),
            }
        }
    }
}

#[test]
fn one_typist_streaming_is_acknowledged_within_two_flushes() {
    let steps = 40;
    assert_acknowledged_within(&stream(1, steps), steps, 2);
}

#[test]
fn two_typists_streaming_are_acknowledged_within_two_flushes() {
    let steps = 40;
    assert_acknowledged_within(&stream(2, steps), steps, 2);
}
