//! Fast paths: what Automerge 0.12's sync protocol would do, for the shapes
//! of message that make up most traffic of a busy document, without its walks
//! of the change graph.
//!
//! Each function here reproduces, field by field, what
//! `receive_sync_message` or `generate_sync_message` of Automerge 0.12.0
//! would write into a `sync::State`, or gives up (the caller then asks
//! Automerge). That is why `automerge` is pinned exactly: these functions are
//! checked against Automerge's own path by `tests/fast_paths.rs` and by the
//! simulation running every seed with fast paths on and off
//! ([`super::EngineConfig::fast_paths`]).
//!
//! One rule of Automerge's is left to Automerge rather than reproduced:
//! when more than a third of the document's changes are to be sent to a peer
//! that reads V2, it sends the whole document (`save()`), and records every
//! change as sent. [`Since::message`] falls back in that case. (Before it
//! did, it sent just the missing changes: the same changes reached the peer,
//! but `sent_hashes` differed, and the simulation with fast paths on and off
//! diverged in about one seed in twenty.)
//!
//! The same comparison found two more differences, both fixed: a change
//! message whose heads were queued by the load (their dependencies had not
//! arrived) was taken as if they were known, so we claimed to share heads we
//! did not have; and an acknowledgement kept in `sent_hashes` a change that is
//! one of the acknowledged heads when a later message had carried it again.
//!
//! Nothing here decides what we last sent: the receive functions never write
//! `last_sent_heads`, and [`super::peer::PeerSync`] is the one place that
//! hands a state to them (it uses this module, never the other way round).

use std::collections::{HashMap, HashSet, VecDeque};

use automerge::sync;
use automerge::ChangeHash;

use super::document::Document;

/// Heads and change hashes of one message we sent a peer.
#[derive(Debug)]
pub(super) struct Sent {
    pub(super) heads: Vec<ChangeHash>,
    pub(super) hashes: Vec<ChangeHash>,
}

/// Our recent messages to one peer, oldest first: an acknowledgement of any
/// of them is taken without a walk of the change graph.
pub(super) type SentLog = VecDeque<Sent>;

/// Is this message only a confirmation of heads we know: our current ones, or
/// those of a message we recently sent this peer?
pub(super) fn is_pure_ack(m: &sync::Message, log: &SentLog, our_heads: &[ChangeHash]) -> bool {
    m.changes.is_empty()
        && !m.heads.is_empty()
        && (m.heads == our_heads || log.iter().any(|sent| sent.heads == m.heads))
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

/// What every fast receive path records of a message whose heads we know:
/// Automerge's tail of `receive_sync_message` for that case.
fn take_received(state: &mut sync::State, m: sync::Message) {
    state.in_flight = false;
    take_flags(state, m.flags);
    state.shared_heads.clone_from(&m.heads);
    state.their_have = Some(m.have);
    state.their_need = Some(m.need);
    state.their_heads = Some(m.heads);
}

/// Forget the sent hashes that are ancestors of `heads`: with `heads` our
/// current heads, all of them; with the heads of a logged message, those sent
/// up to and including it (each message's changes lie below its heads, later
/// messages carry changes made after them). This is Automerge's
/// `filter_changes` without the walk of the change graph.
fn forget_sent(state: &mut sync::State, log: &mut SentLog, heads: &[ChangeHash], our_heads: &[ChangeHash]) -> bool {
    if heads == our_heads {
        state.sent_hashes.clear();
        log.clear();
        return true;
    }
    let Some(upto) = log.iter().position(|sent| sent.heads == heads) else {
        return false;
    };
    for sent in log.drain(..=upto) {
        for h in sent.hashes {
            state.sent_hashes.remove(&h);
        }
    }
    forget_heads(state, log, heads);
    true
}

/// A later message may have carried a change that is one of `heads` (a
/// whole-document message, or a peer that asked again): the peer has it
/// now, and Automerge's `filter_changes` forgets it, so do we.
fn forget_heads(state: &mut sync::State, log: &mut SentLog, heads: &[ChangeHash]) {
    for h in heads {
        state.sent_hashes.remove(h);
    }
    for sent in log.iter_mut() {
        sent.hashes.retain(|h| !heads.contains(h));
    }
}

/// `receive_sync_message` for a pure acknowledgement (see [`is_pure_ack`]),
/// field by field as Automerge 0.12 does it, minus the graph walks.
///
/// Unlike Automerge, never record "we told them" here: a reply held back by
/// the flush would be lost when the peer's heads-only message overtakes it
/// (tests/batched_ack.rs). [`super::peer::PeerSync`] enforces that for every
/// receive path.
pub(super) fn fast_ack(state: &mut sync::State, log: &mut SentLog, m: sync::Message, our_heads: &[ChangeHash]) {
    forget_sent(state, log, &m.heads, our_heads);
    take_received(state, m);
}

/// `receive_sync_message` for a message whose changes the batched load has
/// already applied, when its heads are known to us and cover the heads of a
/// message we sent (so every hash sent up to that message is an ancestor of
/// them): Automerge would find nothing new to load, forget those sent hashes
/// and share the peer's heads. A typist's message usually covers our last
/// message, or an earlier one when it typed before that one arrived. Gives the
/// message back when no logged message qualifies.
pub(super) fn fast_receive_changes(
    state: &mut sync::State,
    log: &mut SentLog,
    doc: &Document,
    m: sync::Message,
) -> Result<(), sync::Message> {
    if m.changes.is_empty() || m.heads.is_empty() || state.last_sent_heads.is_empty() {
        return Err(m);
    }
    // A change whose dependencies have not arrived is queued by the load,
    // not applied: its hash is then no head Automerge would share.
    if !m.heads.iter().all(|h| doc.has(h)) {
        return Err(m);
    }
    let mut hashes = HashSet::new();
    let mut deps = HashSet::new();
    let mut parsed = true;
    for chunk in m.changes.iter() {
        match automerge::Change::from_bytes(chunk.to_vec()) {
            // A chunk holding more than one change (or a document) is not
            // what this path understands; Automerge takes it.
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
    if qualifies(&state.last_sent_heads) {
        log.clear();
        state.sent_hashes.clear();
    } else {
        // The newest logged message the peer's heads cover.
        let Some(upto) = log.iter().rposition(|sent| qualifies(&sent.heads)) else {
            return Err(m);
        };
        for sent in log.drain(..=upto) {
            for h in sent.hashes {
                state.sent_hashes.remove(&h);
            }
        }
        forget_heads(state, log, &m.heads);
    }
    take_received(state, m);
    Ok(())
}

/// `receive_sync_message` for a message whose changes (if any) the batched
/// load has applied or deferred, and whose heads we all have: Automerge would
/// load nothing new, forget the sent hashes that are ancestors of the
/// peer's heads (`filter_changes`), and share the peer's heads. The hashes
/// we sent and it has not confirmed must be recent changes, whose
/// dependencies the document keeps at hand; then the ancestors among them
/// are found without Automerge's walk of the whole change graph. Typists take this
/// path: their heads mix their own latest change with a state of ours, so
/// they match no message we sent. Gives the message back otherwise.
pub(super) fn fast_receive_known(
    state: &mut sync::State,
    log: &mut SentLog,
    doc: &Document,
    m: sync::Message,
) -> Result<(), sync::Message> {
    if m.heads.is_empty() || !m.heads.iter().all(|h| doc.has(h)) || !state.sent_hashes.iter().all(|h| doc.is_recent(h)) {
        return Err(m);
    }
    let below = doc.recent_ancestors_among(&m.heads, &state.sent_hashes);
    state.sent_hashes.retain(|h| !below.contains(h));
    for sent in log.iter_mut() {
        sent.hashes.retain(|h| !below.contains(h));
    }
    take_received(state, m);
    Ok(())
}

/// The heads a peer's fast path is computed from, when its state has the
/// shape the fast path covers: it summarised what it has since heads we
/// have, and needs nothing.
pub(super) fn fast_base(state: &sync::State, log: &SentLog, doc: &Document) -> Option<Vec<ChangeHash>> {
    if !state.have_responded || state.needs_reset || state.read_only || state.peer_read_only {
        return None;
    }
    let have = state.their_have.as_ref()?;
    let base = &have.first()?.last_sync;
    // Heads we sent are known without a lookup; others (a watcher's last
    // sync at a message of ours we no longer log) are looked up.
    let known = *base == state.last_sent_heads || log.iter().any(|sent| sent.heads == *base) || base.iter().all(|h| doc.has(h));
    let ok = known
        && !base.is_empty()
        && have.len() == 1
        && state.their_need.as_ref().is_some_and(|n| n.is_empty())
        && state.their_heads.as_ref().is_some_and(|t| !t.is_empty() && *t == state.shared_heads);
    ok.then(|| base.clone())
}

pub(super) enum Fast {
    /// What Automerge would have produced (possibly nothing), with the
    /// hashes of the changes it carries.
    Done(Option<sync::Message>, Vec<ChangeHash>),
    /// Outside what the fast path covers; ask Automerge.
    Fallback,
}

/// Our changes since `base` (heads we once had), with their bloom filter.
/// Computed once per base per `generate`, shared by every peer in step with
/// that earlier state of ours.
pub(super) struct Since {
    pub(super) base: Vec<ChangeHash>,
    changes: Vec<automerge::Change>,
    index: HashMap<ChangeHash, usize>,
    have: sync::Have,
    /// How many changes the whole document has (for Automerge's "send the
    /// whole document" rule).
    doc_changes: usize,
}

impl Since {
    pub(super) fn compute(doc: &Document, base: Vec<ChangeHash>, counts: &mut super::FastPathCounts) -> Self {
        let changes = match doc.recent_changes_since(&base) {
            Some(changes) => {
                counts.since_recent += 1;
                changes
            }
            None => {
                counts.since_walked += 1;
                tracing::trace!(base = base.len(), "changes since a base that is no recorded state: walking the history");
                doc.walked_changes_since(&base)
            }
        };
        let index = changes.iter().enumerate().map(|(i, c)| (c.hash(), i)).collect();
        let have = sync::Have {
            last_sync: base.clone(),
            bloom: sync::BloomFilter::from_hashes(changes.iter().map(|c| c.hash())),
        };
        let doc_changes = doc.change_count();
        Self { base, changes, index, have, doc_changes }
    }

    /// `generate_sync_message` for a peer whose state [`fast_base`] accepted
    /// with `self.base`, as Automerge 0.12 computes it: our heads, no need, a
    /// bloom of our changes the peer's heads lack, and the changes its bloom
    /// lacks (with their dependents) that we have not sent yet.
    ///
    /// With `awaiting_reply` (the peer acknowledged an older message of
    /// ours while a later one is on its way to it), a message that would
    /// carry no change and heads we already sent is not sent: Automerge
    /// would send it (its `in_flight` ends with any message received), but
    /// it tells the peer nothing the message on its way does not, and the
    /// peer answers that one. A watcher that lags one message behind would
    /// otherwise cost a second message per keystroke, and its answer a
    /// third (see [`super::EngineConfig::quiet_while_awaiting_reply`]).
    pub(super) fn message(&self, state: &mut sync::State, our_heads: &[ChangeHash], awaiting_reply: bool) -> Fast {
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
        let nothing_new = chosen.is_empty() && (heads_equal || awaiting_reply);
        if heads_unchanged && state.have_responded && (nothing_new || state.in_flight) {
            return Fast::Done(None, Vec::new());
        }
        let v2 = state
            .their_capabilities
            .as_ref()
            .is_some_and(|caps| caps.contains(&sync::Capability::MessageV2));
        // Automerge sends the whole document instead when the changes are
        // more than a third of it and the peer reads V2; leave that to it.
        if v2 && chosen.len() > self.doc_changes / 3 {
            return Fast::Fallback;
        }
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
