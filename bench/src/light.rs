//! A light automerge-repo sync peer: it speaks Automerge's sync protocol
//! message for message like `automerge::sync` does, but keeps only the change
//! graph (hashes and dependencies), not the operations. Applying a keystroke to
//! a 20k-op text costs a real replica milliseconds; forty of them on the one
//! core the driver has would measure the driver, not the server. The server
//! sees exactly what it would see from real peers: the same heads, needs,
//! bloom filters and changes.

use std::collections::{BTreeSet, HashMap, HashSet};

use automerge::sync::{BloomFilter, ChunkList, Have, Message, MessageFlags, MessageVersion};
use automerge::{Automerge, Change, ChangeHash};

#[derive(Debug, Default)]
pub struct LightSync {
    index: HashMap<ChangeHash, usize>,
    order: Vec<ChangeHash>,
    heads: BTreeSet<ChangeHash>,
    /// Dependencies of changes we hold that we have not seen: a bloom filter
    /// false positive made the server skip them. Asked for in `need`, as
    /// Automerge asks for the missing dependencies of its queued changes.
    missing: BTreeSet<ChangeHash>,
    own: HashMap<ChangeHash, Vec<u8>>,
    pending: Vec<Vec<u8>>,
    // Mirrors `automerge::sync::State`.
    shared_heads: Vec<ChangeHash>,
    last_sent_heads: Vec<ChangeHash>,
    their_heads: Option<Vec<ChangeHash>>,
    their_need: Vec<ChangeHash>,
    have_responded: bool,
    in_flight: bool,
}

impl LightSync {
    /// A peer that already holds `doc` (every change in it).
    pub fn holding(doc: &Automerge) -> Self {
        let mut s = Self::default();
        for change in doc.get_changes(&[]) {
            s.add(change.hash(), change.deps());
        }
        s
    }

    fn add(&mut self, hash: ChangeHash, deps: &[ChangeHash]) -> bool {
        if self.index.contains_key(&hash) {
            return false;
        }
        self.index.insert(hash, self.order.len());
        self.order.push(hash);
        self.missing.remove(&hash);
        for d in deps {
            self.heads.remove(d);
            if !self.index.contains_key(d) {
                self.missing.insert(*d);
            }
        }
        self.heads.insert(hash);
        true
    }

    pub fn heads(&self) -> Vec<ChangeHash> {
        self.heads.iter().copied().collect()
    }

    pub fn has(&self, hash: &ChangeHash) -> bool {
        self.index.contains_key(hash)
    }

    /// A change we made ourselves: known at once, sent with the next message.
    pub fn local_change(&mut self, change: &Change) {
        let hash = change.hash();
        self.add(hash, change.deps());
        let bytes = change.raw_bytes().to_vec();
        self.own.insert(hash, bytes.clone());
        self.pending.push(bytes);
    }

    /// Take in a message from the server; returns the hashes new to us.
    pub fn receive(&mut self, message: Message) -> Vec<ChangeHash> {
        self.in_flight = false;
        let before: Vec<ChangeHash> = self.heads();
        let mut new = Vec::new();
        let changes_empty = message.changes.is_empty();
        for chunk in message.changes.iter() {
            // A v2 message joins its changes into one chunk (or sends a whole
            // document): split it along the storage chunk headers.
            for piece in split_chunks(chunk) {
                match Change::from_bytes(piece.to_vec()) {
                    Ok(change) => {
                        if self.add(change.hash(), change.deps()) {
                            new.push(change.hash());
                        }
                    }
                    Err(_) => {
                        if let Ok(doc) = Automerge::load(piece) {
                            for change in doc.get_changes(&[]) {
                                if self.add(change.hash(), change.deps()) {
                                    new.push(change.hash());
                                }
                            }
                        }
                    }
                }
            }
        }
        if !changes_empty {
            let after: HashSet<ChangeHash> = self.heads.iter().copied().collect();
            let before_set: HashSet<&ChangeHash> = before.iter().collect();
            let mut shared: BTreeSet<ChangeHash> = after.iter().filter(|h| !before_set.contains(h)).copied().collect();
            shared.extend(self.shared_heads.iter().filter(|h| after.contains(h)));
            self.shared_heads = shared.into_iter().collect();
        }
        if changes_empty && message.heads == before {
            self.last_sent_heads.clone_from(&message.heads);
        }
        let all_known = message.heads.iter().all(|h| self.has(h));
        if all_known {
            self.shared_heads.clone_from(&message.heads);
        } else {
            let mut shared: BTreeSet<ChangeHash> = self.shared_heads.iter().copied().collect();
            shared.extend(message.heads.iter().filter(|h| self.index.contains_key(h)));
            self.shared_heads = shared.into_iter().collect();
        }
        self.their_need = message.need;
        self.their_heads = Some(message.heads);
        new
    }

    /// Hashes we hold that are (probably) not ancestors of the shared heads:
    /// everything that arrived after the oldest shared head. A superset is
    /// harmless in a bloom filter. Like Automerge's `have`, and nothing more:
    /// an earlier version always added our 256 most recent own changes, which
    /// made a typist's filter three times the official client's (recorded by
    /// `--scenarios frames`), and the server probe a filter no client sends.
    fn since_shared(&self) -> Vec<ChangeHash> {
        let start = self
            .shared_heads
            .iter()
            .filter_map(|h| self.index.get(h))
            .min()
            .map(|i| i + 1);
        match start {
            Some(i) if !self.shared_heads.is_empty() => self.order[i.min(self.order.len())..].to_vec(),
            _ => self.order.clone(),
        }
    }

    /// The next message to send, following `generate_sync_message`'s rules.
    pub fn generate(&mut self) -> Option<Message> {
        let our_heads = self.heads();
        let mut need: BTreeSet<ChangeHash> = self
            .their_heads
            .iter()
            .flatten()
            .filter(|h| !self.has(h))
            .copied()
            .collect();
        need.extend(self.missing.iter().copied());
        let need: Vec<ChangeHash> = need.into_iter().collect();
        let since = self.since_shared();
        let have = vec![Have {
            last_sync: self.shared_heads.clone(),
            bloom: BloomFilter::from_hashes(since.iter()),
        }];
        let mut changes = std::mem::take(&mut self.pending);
        for h in std::mem::take(&mut self.their_need) {
            if let Some(bytes) = self.own.get(&h) {
                changes.push(bytes.clone());
            }
        }
        let heads_unchanged = self.last_sent_heads == our_heads;
        let heads_equal = self.their_heads.as_ref() == Some(&our_heads);
        if heads_unchanged && self.have_responded && changes.is_empty() && need.is_empty() && (heads_equal || self.in_flight) {
            return None;
        }
        self.have_responded = true;
        self.last_sent_heads.clone_from(&our_heads);
        self.in_flight = true;
        let mut flags = MessageFlags::new();
        flags.set(MessageFlags::SUPPORTS_SYNC_RESET);
        Some(Message {
            heads: our_heads,
            need,
            have,
            changes: ChunkList::from(changes),
            flags: Some(flags),
            version: MessageVersion::V1,
        })
    }

    /// Has the server told us heads equal to ours (everything acknowledged)?
    pub fn in_sync(&self) -> bool {
        self.their_heads.as_ref().is_some_and(|t| *t == self.heads())
    }
}

/// Split joined Automerge storage chunks: each is magic (4 bytes), checksum
/// (4), type (1), a LEB128 length, then that many bytes.
fn split_chunks(mut bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while bytes.len() > 9 {
        let mut len: u64 = 0;
        let mut shift = 0;
        let mut at = 9;
        loop {
            let Some(&b) = bytes.get(at) else {
                return out;
            };
            len |= u64::from(b & 0x7f) << shift;
            at += 1;
            shift += 7;
            if b & 0x80 == 0 || shift > 63 {
                break;
            }
        }
        let end = at.saturating_add(len as usize);
        if end > bytes.len() {
            out.push(bytes);
            return out;
        }
        out.push(&bytes[..end]);
        bytes = &bytes[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::sync::SyncDoc;
    use automerge::transaction::Transactable;

    /// Hand `inputs` to a server engine and carry out its effects until it
    /// waits for nothing: every persist is reported durable at once, and
    /// every sync message it sends goes to `deliver`.
    pub(super) fn drive(engine: &mut konsens_sync::DocEngine, inputs: Vec<konsens_sync::DocInput>, mut deliver: impl FnMut(konsens_sync::ConnectionId, Message)) {
        use konsens_sync::{DocEffect, DocInput, Message as Wire};
        let mut effects = engine.handle(inputs);
        loop {
            let mut durable = None;
            for e in effects.drain(..) {
                match e {
                    DocEffect::Send { conn, message: Wire::Sync(d) } => deliver(conn, Message::decode(&d.data).expect("decode")),
                    DocEffect::Persist { seq, .. } => durable = Some(seq),
                    _ => {}
                }
            }
            match durable {
                Some(seq) => effects = engine.handle([DocInput::Durable { seq }]),
                None => break,
            }
        }
    }

    /// A light peer and a real one stay in sync through a real Automerge server replica.
    #[test]
    fn light_peer_follows_a_real_server() {
        let (base, text) = crate::trace::empty_text_doc().expect("doc");
        let mut server = base.fork();
        let mut state = automerge::sync::State::new();
        let mut light = LightSync::holding(&base);
        let mut author = base.fork().with_actor(automerge::ActorId::from(vec![7; 16]));
        for round in 0..5 {
            let mut t = author.transaction();
            t.splice_text(&text, 0, 0, "x").expect("splice");
            t.commit();
            let change = author.get_last_local_change().expect("change");
            server.apply_changes([change.clone()]).expect("apply");
            for _ in 0..3 {
                if let Some(m) = light.generate() {
                    server.receive_sync_message(&mut state, m).expect("receive");
                }
                if let Some(m) = server.generate_sync_message(&mut state) {
                    let m = automerge::sync::Message::decode(&m.encode()).expect("decode");
                    light.receive(m);
                }
            }
            assert_eq!(light.heads(), server.get_heads(), "round {round}");
            assert!(light.in_sync(), "round {round}");
        }
    }
}

#[cfg(test)]
mod engine_tests {
    use super::*;
    use automerge::transaction::Transactable;
    use konsens_sync::{ConnectionId, DocEngine, DocInput, DocumentId, PeerId, Role};

    /// Two typists and two watchers, all light, through konsens' engine: every
    /// keystroke reaches everyone and nobody ever needs anything.
    #[test]
    fn light_peers_through_the_engine() {
        let (base, text) = crate::trace::empty_text_doc().expect("doc");
        let id = DocumentId::from_bytes([3; 16]);
        let mut engine = DocEngine::load(id, PeerId::from("server"), Role::Server, [(true, base.save().as_slice())]).expect("load");
        let mut peers: Vec<LightSync> = (0..4).map(|_| LightSync::holding(&base)).collect();
        let mut authors: Vec<Automerge> =
            (0..2).map(|i| base.fork().with_actor(automerge::ActorId::from(vec![i + 1; 16]))).collect();
        let mut inbox: Vec<DocInput> = Vec::new();
        let send = |i: usize, m: Message| DocInput::Sync { conn: ConnectionId(i as u64), sender: PeerId(format!("p{i}")), message: m, request: false };
        for (i, p) in peers.iter_mut().enumerate() {
            inbox.push(send(i, p.generate().expect("first")));
        }
        for step in 0..320 {
            // Bloom filters have false positives, so a peer may need to ask
            // for a change now and then; quiet steps at the end settle that.
            if step % 3 == 0 && step < 300 {
                for (i, a) in authors.iter_mut().enumerate() {
                    let mut t = a.transaction();
                    t.splice_text(&text, 0, 0, "x").expect("splice");
                    t.commit();
                    let c = a.get_last_local_change().expect("change");
                    peers[i].local_change(&c);
                    if let Some(m) = peers[i].generate() {
                        inbox.push(send(i, m));
                    }
                }
            }
            crate::light::tests::drive(&mut engine, std::mem::take(&mut inbox), |conn, m| {
                let i = conn.0 as usize;
                peers[i].receive(m);
                if let Some(m) = peers[i].generate() {
                    inbox.push(send(i, m));
                }
            });
        }
        let heads = engine.doc().get_heads();
        for (i, p) in peers.iter().enumerate() {
            assert_eq!(p.heads(), heads, "peer {i}");
        }
    }
}

#[cfg(test)]
mod lag_tests {
    use super::*;
    use automerge::transaction::Transactable;
    use konsens_sync::{ConnectionId, DocEngine, DocInput, DocumentId, PeerId, Role};

    /// One typist, eight watchers, through konsens' engine; watchers read
    /// what the server sent them only every `lag + 1` keystrokes (answering
    /// each message in turn, as automerge-repo does), like official clients
    /// on a saturated machine. Returns the engine's fast-path counts, the
    /// messages it sent, and its time per keystroke.
    fn run(lag: usize) -> (konsens_sync::FastPathCounts, usize, std::time::Duration) {
        let (mut base, text) = crate::trace::empty_text_doc().expect("doc");
        // A text of a few thousand keystrokes, so a slow path shows.
        for i in 0..3000 {
            let mut t = base.transaction();
            t.splice_text(&text, i, 0, "a").expect("splice");
            t.commit();
        }
        let id = DocumentId::from_bytes([5; 16]);
        let mut engine = DocEngine::load(id, PeerId::from("server"), Role::Server, [(true, base.save().as_slice())]).expect("load");
        let watchers = 8;
        let mut peers: Vec<LightSync> = (0..=watchers).map(|_| LightSync::holding(&base)).collect();
        let mut inboxes: Vec<Vec<Message>> = vec![Vec::new(); watchers + 1];
        let mut author = base.fork().with_actor(automerge::ActorId::from(vec![9; 16]));
        let send = |i: usize, m: Message| DocInput::Sync { conn: ConnectionId(i as u64), sender: PeerId(format!("p{i}")), message: m, request: false };
        let mut inbox: Vec<DocInput> = peers.iter_mut().enumerate().filter_map(|(i, p)| p.generate().map(|m| send(i, m))).collect();
        let mut sent = 0;
        let mut busy = std::time::Duration::ZERO;
        let keystrokes = 200;
        for step in 0..keystrokes + 2 * (lag + 1) + 20 {
            if step < keystrokes {
                let mut t = author.transaction();
                t.splice_text(&text, 1500 + step, 0, "x").expect("splice");
                t.commit();
                let c = author.get_last_local_change().expect("change");
                peers[0].local_change(&c);
                if let Some(m) = peers[0].generate() {
                    inbox.push(send(0, m));
                }
            }
            // The engine works until it has nothing more to say this step.
            loop {
                let started = std::time::Instant::now();
                crate::light::tests::drive(&mut engine, std::mem::take(&mut inbox), |conn, m| {
                    sent += 1;
                    inboxes[conn.0 as usize].push(m);
                });
                busy += started.elapsed();
                // The typist always keeps up; watchers read every lag + 1 steps.
                for (i, p) in peers.iter_mut().enumerate() {
                    if i == 0 || step % (lag + 1) == lag || step >= keystrokes {
                        for m in std::mem::take(&mut inboxes[i]) {
                            p.receive(m);
                            if let Some(m) = p.generate() {
                                inbox.push(send(i, m));
                            }
                        }
                    }
                }
                if inbox.is_empty() {
                    break;
                }
            }
        }
        let heads = engine.doc().get_heads();
        for (i, p) in peers.iter().enumerate() {
            assert_eq!(p.heads(), heads, "peer {i} with lag {lag}");
        }
        (engine.fast_path_counts(), sent, busy / keystrokes as u32)
    }

    /// Prints what lagging watchers cost the engine (`--nocapture`); the
    /// assertion is only that everybody converges.
    #[test]
    fn lagging_watchers_through_the_engine() {
        for lag in [0, 4, 16] {
            let (counts, sent, per_keystroke) = run(lag);
            eprintln!("lag {lag:>2}: {counts:?}, {sent} messages sent, engine {per_keystroke:?} per keystroke");
        }
    }
}
