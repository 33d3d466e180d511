//! The engine's document: the materialised Automerge document, and changes
//! on the change graph that are not applied to it yet.
//!
//! Why: Automerge 0.12 applies a batch of changes by walking every operation
//! of each object the batch touches, so one keystroke costs time in
//! proportion to the text it lands in (4 ms at 20,000 characters, 41 ms at
//! 200,000 on our machine), while a batch of twenty costs the same as one.
//! The sync protocol needs only the change graph: hashes, dependencies and
//! the changes' bytes. So a change whose dependencies are known is
//! *deferred*: it joins our heads, is persisted as its own bytes and can be
//! acknowledged and relayed at once, and it is applied later together with
//! many others, when a path needs the materialised document (Automerge's own
//! sync logic, a local change, a snapshot) or when enough have gathered
//! ([`super::EngineConfig::deferred_changes`]: a sixteenth of the document's
//! changes, 1,024 to 4,096, so the applies' cost per change stays flat as
//! the text grows).
//!
//! Deferring must never acknowledge what Automerge would then refuse to
//! apply. Automerge 0.12 refuses a batch (an error, not a panic) for two
//! reasons only: a change repeating an actor's sequence number, and an
//! author given to an actor that has one. So a change is deferred only when
//! its sequence number is its actor's next one, it names no author, and all
//! its dependencies are known, and only while Automerge has no change queued
//! (waiting for dependencies: applying ours could release it); any other
//! batch is loaded by Automerge at once, as before.
//!
//! Nothing outside this module sees the two parts apart: heads, "do we have
//! this change", "changes since" and the bytes to persist all count the
//! deferred changes, and every path that needs Automerge's document gets it
//! materialised first ([`Document::materialised`], [`Document::mutate`]).

use std::collections::{HashMap, HashSet, VecDeque};

use automerge::{ActorId, Automerge, AutomergeError, Change, ChangeHash, ReadDoc};

use super::StorageWrite;
use super::compaction::Compaction;
use crate::limits::MAGIC;

#[derive(Debug)]
pub(super) struct Document {
    applied: Automerge,
    /// Deferred changes, in an order that respects their dependencies.
    deferred: Vec<Change>,
    deferred_index: HashMap<ChangeHash, usize>,
    /// Heads of the applied and deferred changes together, while any are deferred.
    heads: Vec<ChangeHash>,
    /// The last sequence number of each actor, applied or deferred; built
    /// on the first deferral (one walk of the change graph per engine).
    seqs: Option<HashMap<ActorId, u64>>,
    /// `deferred[..handed]` have been handed to storage.
    handed: usize,
    /// The applied document holds changes not handed to storage yet.
    applied_unhanded: bool,
    /// The dependencies of the last [`RECENT_CHANGES`] changes added, in
    /// the order they were added (applied or deferred).
    recent: Recent,
}

/// How many recent changes keep their dependencies and bytes at hand (see [`Recent`]).
pub(super) const RECENT_CHANGES: usize = 4096;

/// The most recently added changes (their dependencies and bytes), and the
/// heads the document had after each addition.
///
/// The changes we sent a peer and it has not confirmed are recent ones, and
/// every descendant of a recent change is recent too (it was added later),
/// so whether a recent change lies below a peer's heads is found by walking
/// recent changes only: Automerge 0.12's `filter_changes` walks the whole
/// history for it, on every message.
///
/// And a lagging peer's base is usually heads we had (a message of ours it
/// acknowledged). Every change we had then lies below those heads and every
/// change added since does not, so the changes since such a base are exactly
/// the ones added after it, in the order added: no walk at all, where
/// Automerge's `get_changes` builds a clock over the whole history and
/// re-encodes the changes it finds.
#[derive(Debug, Default)]
struct Recent {
    /// Dependencies, and the number of the change in the order added.
    deps: HashMap<ChangeHash, (Vec<ChangeHash>, u64)>,
    /// The changes themselves, oldest first; `changes[0]` is number `added - changes.len()`.
    changes: VecDeque<Change>,
    added: u64,
    /// Heads after an addition, with how many changes had been added then
    /// (at most [`RECENT_CHANGES`], oldest first).
    states: VecDeque<(Vec<ChangeHash>, u64)>,
}

impl Recent {
    fn add(&mut self, change: Change) {
        let hash = change.hash();
        if let std::collections::hash_map::Entry::Vacant(entry) = self.deps.entry(hash) {
            entry.insert((change.deps().to_vec(), self.added));
            self.added += 1;
            self.changes.push_back(change);
        }
        while self.changes.len() > RECENT_CHANGES {
            if let Some(old) = self.changes.pop_front() {
                self.deps.remove(&old.hash());
            }
        }
    }

    /// The document's heads are now `heads`.
    fn record_state(&mut self, heads: Vec<ChangeHash>) {
        if self.states.back().is_some_and(|(last, _)| *last == heads) {
            return;
        }
        self.states.push_back((heads, self.added));
        while self.states.len() > RECENT_CHANGES {
            self.states.pop_front();
        }
    }

    /// The changes added after the document's heads were `base`, when that
    /// state is recorded and all of them are still kept.
    fn since_state(&self, base: &[ChangeHash]) -> Option<Vec<Change>> {
        // Heads are kept sorted, as Automerge keeps them.
        let mut base = base.to_vec();
        base.sort_unstable();
        let (_, at) = self.states.iter().rev().find(|(heads, _)| *heads == base)?;
        let first = self.added - self.changes.len() as u64;
        let skip = usize::try_from(at.checked_sub(first)?).ok()?;
        Some(self.changes.range(skip..).cloned().collect())
    }

    fn clear(&mut self, heads: Vec<ChangeHash>) {
        self.deps.clear();
        self.changes.clear();
        self.states.clear();
        self.record_state(heads);
    }
}

impl Document {
    pub(super) fn new(applied: Automerge) -> Self {
        let mut recent = Recent::default();
        recent.record_state(applied.get_heads());
        Self {
            applied,
            deferred: Vec::new(),
            deferred_index: HashMap::new(),
            heads: Vec::new(),
            seqs: None,
            handed: 0,
            applied_unhanded: false,
            recent,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.deferred.is_empty() && self.applied.is_empty()
    }

    pub(super) fn heads(&self) -> Vec<ChangeHash> {
        if self.deferred.is_empty() { self.applied.get_heads() } else { self.heads.clone() }
    }

    pub(super) fn has(&self, hash: &ChangeHash) -> bool {
        self.deferred_index.contains_key(hash) || self.applied.get_change_meta_by_hash(hash).is_some()
    }

    /// How many changes the document has, applied or deferred.
    pub(super) fn change_count(&self) -> usize {
        usize::try_from(self.applied.stats().num_changes).unwrap_or(usize::MAX).saturating_add(self.deferred.len())
    }

    pub(super) fn deferred_count(&self) -> usize {
        self.deferred.len()
    }

    /// The applied document, which may lack the deferred changes: for
    /// lookups that do not depend on them.
    pub(super) fn applied(&self) -> &Automerge {
        &self.applied
    }

    /// The whole document, deferred changes applied first.
    pub(super) fn materialised(&mut self) -> &Automerge {
        self.apply_deferred();
        &self.applied
    }

    /// Let `f` change the whole document (deferred changes applied first).
    /// Whatever it adds counts as not yet handed to storage.
    pub(super) fn mutate<R>(&mut self, f: impl FnOnce(&mut Automerge) -> R) -> R {
        self.apply_deferred();
        let before = self.applied.get_heads();
        let result = f(&mut self.applied);
        let after = self.applied.get_heads();
        if after != before {
            self.applied_unhanded = true;
            for change in self.applied.get_changes(&before) {
                if let Some(seqs) = &mut self.seqs {
                    let seq = seqs.entry(change.actor_id().clone()).or_insert(0);
                    *seq = (*seq).max(change.seq());
                }
                self.recent.add(change);
            }
            self.recent.record_state(after);
        }
        result
    }

    /// Replace the whole document (nothing of it is handed to storage yet).
    pub(super) fn replace(&mut self, doc: Automerge) {
        self.applied = doc;
        self.deferred.clear();
        self.deferred_index.clear();
        self.heads.clear();
        self.seqs = None;
        self.handed = 0;
        self.applied_unhanded = true;
        self.recent.clear(self.applied.get_heads());
    }

    /// Add the changes in `bytes` (concatenated storage chunks, as a sync
    /// message carries them): deferred when every one qualifies (see the
    /// module documentation) and `defer` allows, else loaded by Automerge
    /// at once. True when deferred.
    pub(super) fn add(&mut self, bytes: &[u8], defer: bool) -> Result<bool, AutomergeError> {
        if defer
            && !self.applied.is_empty()
            // Automerge queues a change whose dependencies have not
            // arrived and applies it as soon as they do: with any queued,
            // applying a deferred change could bring in more than we
            // counted, so Automerge takes the batch.
            && self.applied.get_missing_deps(&[]).is_empty()
            && let Some(changes) = split_changes(bytes)
            && self.defer(changes)
        {
            return Ok(true);
        }
        self.mutate(|doc| doc.load_incremental(bytes).map(|_| false))
    }

    /// Defer `changes` if each qualifies, in order; false (and nothing
    /// changed) if any does not.
    fn defer(&mut self, changes: Vec<Change>) -> bool {
        let mut seqs = self.seqs.take().unwrap_or_else(|| self.last_seqs());
        let deferred = self.defer_with(changes, &mut seqs);
        self.seqs = Some(seqs);
        deferred
    }

    /// The last sequence number of each actor, applied or deferred: one walk
    /// of the change graph, on the first deferral.
    fn last_seqs(&self) -> HashMap<ActorId, u64> {
        let mut seqs = HashMap::new();
        for meta in self.applied.get_changes_meta(&[]) {
            let seq = seqs.entry(meta.actor.into_owned()).or_insert(0);
            *seq = (*seq).max(meta.seq);
        }
        for change in &self.deferred {
            seqs.insert(change.actor_id().clone(), change.seq());
        }
        seqs
    }

    fn defer_with(&mut self, changes: Vec<Change>, seqs: &mut HashMap<ActorId, u64>) -> bool {
        // Check the whole batch before taking any of it.
        let mut batch_seqs: HashMap<&ActorId, u64> = HashMap::new();
        let mut batch_hashes: HashSet<ChangeHash> = HashSet::new();
        for change in &changes {
            let hash = change.hash();
            if batch_hashes.contains(&hash) || self.has(&hash) {
                // Automerge ignores a change it has.
                continue;
            }
            let actor = change.actor_id();
            let last = batch_seqs.get(actor).copied().unwrap_or_else(|| seqs.get(actor).copied().unwrap_or(0));
            let qualifies = change.author().is_none()
                && change.seq() == last + 1
                && change.deps().iter().all(|d| batch_hashes.contains(d) || self.has(d));
            if !qualifies {
                return false;
            }
            batch_seqs.insert(actor, change.seq());
            batch_hashes.insert(hash);
        }
        for (actor, seq) in batch_seqs {
            seqs.insert(actor.clone(), seq);
        }
        if self.deferred.is_empty() {
            self.heads = self.applied.get_heads();
        }
        for change in changes {
            if !batch_hashes.contains(&change.hash()) || self.deferred_index.contains_key(&change.hash()) {
                continue;
            }
            self.heads.retain(|h| !change.deps().contains(h));
            self.heads.push(change.hash());
            self.recent.add(change.clone());
            self.deferred_index.insert(change.hash(), self.deferred.len());
            self.deferred.push(change);
        }
        self.heads.sort_unstable();
        self.recent.record_state(self.heads.clone());
        true
    }

    /// Is this one of the recent changes (see [`Recent`])?
    pub(super) fn is_recent(&self, hash: &ChangeHash) -> bool {
        self.recent.deps.contains_key(hash)
    }

    /// Which of `hashes` (recent changes) are `heads` or their ancestors.
    /// The walk stops at changes added before the oldest of `hashes`: an
    /// ancestor is always added before its descendants, so nothing older
    /// leads to one of them.
    pub(super) fn recent_ancestors_among(&self, heads: &[ChangeHash], hashes: &std::collections::BTreeSet<ChangeHash>) -> HashSet<ChangeHash> {
        let mut found = HashSet::new();
        let Some(floor) = hashes.iter().filter_map(|h| self.recent.deps.get(h).map(|(_, n)| *n)).min() else {
            return found;
        };
        let above_floor = |h: &ChangeHash| self.recent.deps.get(h).is_some_and(|(_, n)| *n >= floor);
        let mut seen = HashSet::new();
        let mut stack: Vec<ChangeHash> = heads.iter().filter(|h| above_floor(h)).copied().collect();
        while let Some(hash) = stack.pop() {
            if !seen.insert(hash) {
                continue;
            }
            if hashes.contains(&hash) {
                found.insert(hash);
            }
            if let Some((deps, _)) = self.recent.deps.get(&hash) {
                stack.extend(deps.iter().filter(|d| above_floor(d) && !seen.contains(*d)));
            }
        }
        found
    }

    /// Apply every deferred change to the materialised document, in one batch.
    pub(super) fn apply_deferred(&mut self) {
        if self.deferred.is_empty() {
            return;
        }
        if self.handed < self.deferred.len() {
            self.applied_unhanded = true;
        }
        self.handed = 0;
        self.deferred_index.clear();
        let heads = std::mem::take(&mut self.heads);
        let deferred = std::mem::take(&mut self.deferred);
        // Every deferred change was checked against the two reasons
        // Automerge's apply refuses a batch for (module documentation).
        if let Err(error) = self.applied.apply_changes(deferred) {
            tracing::error!(%error, "applying deferred changes failed, although each was checked");
        }
        debug_assert_eq!(heads, self.applied.get_heads(), "deferred heads differ from Automerge's");
    }

    /// Our changes that are not ancestors of `base`, as
    /// [`Document::walked_changes_since`] finds them, when `base` is a
    /// recorded state of ours whose later changes are all kept (see
    /// [`Recent`]); `None` otherwise.
    pub(super) fn recent_changes_since(&self, base: &[ChangeHash]) -> Option<Vec<Change>> {
        self.recent.since_state(base)
    }

    /// Our changes that are not ancestors of `base` (hashes we have), in an
    /// order that respects dependencies: Automerge's `get_changes`, counting
    /// the deferred changes.
    pub(super) fn walked_changes_since(&self, base: &[ChangeHash]) -> Vec<Change> {
        if self.deferred.is_empty() {
            return self.applied.get_changes(base);
        }
        let mut below = vec![false; self.deferred.len()];
        let mut applied_base = Vec::new();
        let mut stack = Vec::new();
        let mut visit = |h: &ChangeHash, stack: &mut Vec<usize>| match self.deferred_index.get(h) {
            Some(&i) => stack.push(i),
            None => applied_base.push(*h),
        };
        for h in base {
            visit(h, &mut stack);
        }
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut below[i], true) {
                continue;
            }
            for d in self.deferred[i].deps() {
                visit(d, &mut stack);
            }
        }
        applied_base.sort_unstable();
        applied_base.dedup();
        // No applied change below `base` (it reaches only deferred changes
        // without dependencies): then every applied change is since it, and
        // `get_changes(&[])` says so.
        let mut changes = self.applied.get_changes(&applied_base);
        changes.extend(self.deferred.iter().zip(&below).filter(|(_, below)| !**below).map(|(c, _)| c.clone()));
        changes
    }

    /// The write for everything not yet handed to storage (everything after
    /// `persisted`): the deferred changes' own bytes when they are all of
    /// it, else Automerge's `save_after`; or a snapshot, when compaction
    /// says so and nothing is deferred.
    pub(super) fn write_after(&mut self, persisted: &[ChangeHash], compaction: &mut Compaction) -> StorageWrite {
        let incremental = if self.applied_unhanded {
            self.apply_deferred();
            self.applied.save_after(persisted)
        } else {
            self.deferred[self.handed..].iter().flat_map(|c| c.raw_bytes().iter().copied()).collect()
        };
        self.handed = self.deferred.len();
        self.applied_unhanded = false;
        // A snapshot needs the materialised document: while changes are
        // deferred, compaction waits for their batch to be applied (at most
        // `deferred_changes` more incrementals), so it never forces one.
        let may_compact = self.deferred.is_empty();
        compaction.write(incremental, may_compact, || self.materialised().save())
    }

    /// A snapshot of the whole document, replacing every stored chunk.
    pub(super) fn snapshot(&mut self, compaction: &mut Compaction) -> StorageWrite {
        self.handed = self.deferred.len();
        self.applied_unhanded = false;
        compaction.snapshot(self.materialised().save())
    }
}

/// Split concatenated storage chunks into changes, when every chunk is one
/// change (plain or deflated); `None` for anything else (a whole document,
/// a bundle), which Automerge loads itself.
fn split_changes(mut bytes: &[u8]) -> Option<Vec<Change>> {
    let mut changes = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 9 || bytes[..4] != MAGIC || !matches!(bytes[8], 1 | 2) {
            return None;
        }
        let mut length: u64 = 0;
        let mut at = 9;
        for shift in (0..64).step_by(7) {
            let byte = *bytes.get(at)?;
            at += 1;
            length |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
        }
        let end = at.checked_add(usize::try_from(length).ok()?)?;
        let chunk = bytes.get(..end)?;
        changes.push(Change::from_bytes(chunk.to_vec()).ok()?);
        bytes = &bytes[end..];
    }
    Some(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{ObjType, ROOT};

    fn typed(n: usize) -> (Automerge, automerge::ObjId) {
        let mut doc = Automerge::new().with_actor(ActorId::from(vec![1u8; 16]));
        let mut tx = doc.transaction();
        let text = tx.put_object(ROOT, "text", ObjType::Text).expect("text");
        tx.commit();
        for _ in 0..n {
            let mut tx = doc.transaction();
            let len = tx.length(&text);
            tx.splice_text(&text, len, 0, "a").expect("splice");
            tx.commit();
        }
        (doc, text)
    }

    /// Changes since `base` by the walk, checked against the recent
    /// changes whenever `base` is a recorded state.
    fn since_hashes(document: &Document, base: &[ChangeHash]) -> Vec<ChangeHash> {
        let walked: Vec<ChangeHash> = document.walked_changes_since(base).iter().map(Change::hash).collect();
        if let Some(recent) = document.recent_changes_since(base) {
            assert_eq!(recent.iter().map(Change::hash).collect::<Vec<_>>(), walked, "recent and walked differ");
        }
        walked
    }

    fn keystroke(doc: &mut Automerge, text: &automerge::ObjId, s: &str) -> Change {
        let mut tx = doc.transaction();
        tx.splice_text(text, 0, 0, s).expect("splice");
        tx.commit();
        doc.get_last_local_change().expect("a change").clone()
    }

    #[test]
    fn deferred_changes_count_everywhere_and_apply_to_the_same_document() {
        let (base, text) = typed(20);
        let mut peer = base.fork().with_actor(ActorId::from(vec![2u8; 16]));
        let mut document = Document::new(base.fork());
        let mut reference = base.fork();
        let start = document.heads();
        let mut bytes = Vec::new();
        for s in ["x", "y", "z"] {
            let change = keystroke(&mut peer, &text, s);
            bytes.push(change.raw_bytes().to_vec());
            document.add(change.raw_bytes(), true).expect("add");
            reference.apply_changes([change]).expect("apply");
        }
        assert_eq!(document.deferred_count(), 3, "typing is deferred");
        assert_eq!(document.heads(), reference.get_heads());
        assert!(document.has(&peer.get_heads()[0]));
        let since: Vec<ChangeHash> = since_hashes(&document, &start);
        let expected: Vec<ChangeHash> = reference.get_changes(&start).iter().map(Change::hash).collect();
        assert_eq!(since, expected);
        let since_mid: Vec<ChangeHash> = since_hashes(&document, &[Change::from_bytes(bytes[1].clone()).expect("c").hash()]);
        assert_eq!(since_mid.len(), 1);
        assert_eq!(document.change_count(), reference.get_changes(&[]).len());
        // A change already deferred is ignored, as Automerge ignores one it has.
        document.add(&bytes[0], true).expect("again");
        assert_eq!(document.deferred_count(), 3);
        assert_eq!(document.materialised().text(&text).expect("text"), reference.text(&text).expect("text"));
        assert_eq!(document.deferred_count(), 0);
    }

    /// A deferred change without dependencies (a peer's own history, merged
    /// in): no applied change lies below it, so every one is "since" it.
    #[test]
    fn changes_since_a_deferred_root_include_every_applied_change() {
        let (base, _) = typed(5);
        let mut stranger = Automerge::new().with_actor(ActorId::from(vec![7u8; 16]));
        let mut tx = stranger.transaction();
        tx.put(ROOT, "elsewhere", 1).expect("put");
        tx.commit();
        let root = stranger.get_last_local_change().expect("a change").clone();
        assert!(root.deps().is_empty());
        let mut document = Document::new(base.fork());
        document.add(root.raw_bytes(), true).expect("add");
        assert_eq!(document.deferred_count(), 1, "a root change of a new actor is deferred");
        let mut reference = base.fork();
        reference.apply_changes([root.clone()]).expect("apply");
        let since: Vec<ChangeHash> = since_hashes(&document, &[root.hash()]);
        let expected: Vec<ChangeHash> = reference.get_changes(&[root.hash()]).iter().map(Change::hash).collect();
        assert_eq!(since, expected);
        assert_eq!(since.len(), 6, "the text object's change and five keystrokes");
    }

    /// Two typists, concurrent, their changes arriving interleaved, some
    /// deferred and some loaded by Automerge: at every state the document
    /// had, the changes added since are what Automerge finds below it.
    #[test]
    fn changes_since_a_recorded_state_are_those_added_after_it() {
        let (base, text) = typed(10);
        let mut anna = base.fork().with_actor(ActorId::from(vec![4u8; 16]));
        let mut ben = base.fork().with_actor(ActorId::from(vec![5u8; 16]));
        let mut document = Document::new(base.fork());
        let mut reference = base.fork();
        let mut states = vec![document.heads()];
        for round in 0..12 {
            let a = keystroke(&mut anna, &text, "a");
            let b = keystroke(&mut ben, &text, "b");
            // Every third round Automerge loads the pair (as it would a batch
            // that does not qualify for deferral).
            let defer = round % 3 != 0;
            let pair: Vec<u8> = a.raw_bytes().iter().chain(b.raw_bytes()).copied().collect();
            document.add(&pair, defer).expect("add");
            reference.apply_changes([a, b]).expect("apply");
            states.push(document.heads());
            if round % 4 == 3 {
                // Each learns the other's typing: the branches merge.
                anna.merge(&mut ben.clone()).expect("merge");
                ben.merge(&mut anna.clone()).expect("merge");
            }
        }
        assert_eq!(document.heads(), reference.get_heads());
        for state in &states {
            assert!(document.recent_changes_since(state).is_some(), "every state is recorded");
            let expected: Vec<ChangeHash> = reference.get_changes(state).iter().map(Change::hash).collect();
            assert_eq!(since_hashes(&document, state), expected);
        }
        // Heads we never had (one typist's change alone) are walked.
        let lone = [anna.get_heads()[0]];
        assert!(document.recent_changes_since(&lone).is_none());
        let expected: Vec<ChangeHash> = reference.get_changes(&lone).iter().map(Change::hash).collect();
        assert_eq!(since_hashes(&document, &lone), expected);
    }

    #[test]
    fn a_state_whose_later_changes_were_dropped_is_walked() {
        let (base, text) = typed(3);
        let mut peer = base.fork().with_actor(ActorId::from(vec![6u8; 16]));
        let mut document = Document::new(base.fork());
        let start = document.heads();
        for _ in 0..=RECENT_CHANGES {
            let change = keystroke(&mut peer, &text, "k");
            document.add(change.raw_bytes(), true).expect("add");
        }
        assert!(document.recent_changes_since(&start).is_none(), "the first change after it is no longer kept");
        assert_eq!(document.walked_changes_since(&start).len(), RECENT_CHANGES + 1);
    }

    #[test]
    fn what_automerge_would_refuse_is_never_deferred() {
        let (base, text) = typed(5);
        let mut peer = base.fork().with_actor(ActorId::from(vec![2u8; 16]));
        let first = keystroke(&mut peer, &text, "x");
        // Same actor and sequence number, other content: Automerge refuses it.
        let mut twin = base.fork().with_actor(ActorId::from(vec![2u8; 16]));
        let clash = keystroke(&mut twin, &text, "q");
        let mut document = Document::new(base.fork());
        document.add(first.raw_bytes(), true).expect("first");
        assert_eq!(document.deferred_count(), 1);
        assert!(document.add(clash.raw_bytes(), true).is_err(), "Automerge's refusal reaches the caller");
        // A change whose dependency is missing is left to Automerge (it queues it).
        let second = keystroke(&mut peer, &text, "y");
        let third = keystroke(&mut peer, &text, "z");
        let mut fresh = Document::new(base.fork());
        fresh.add(third.raw_bytes(), true).expect("queued");
        assert_eq!(fresh.deferred_count(), 0);
        assert!(!fresh.has(&third.hash()), "queued, not applied");
        let _ = second;
    }

    #[test]
    fn the_persisted_bytes_load_to_the_same_document() {
        let (base, text) = typed(10);
        let mut peer = base.fork().with_actor(ActorId::from(vec![3u8; 16]));
        let mut document = Document::new(base.fork());
        let mut compaction = Compaction::new(super::super::StoredSizes { snapshot_bytes: 1 << 20, incremental_bytes: 0 }, 1024);
        let persisted = document.heads();
        for s in ["a", "b"] {
            let change = keystroke(&mut peer, &text, s);
            document.add(change.raw_bytes(), true).expect("add");
        }
        let StorageWrite::Incremental(bytes) = document.write_after(&persisted, &mut compaction) else {
            panic!("an incremental");
        };
        let mut loaded = base.fork();
        loaded.load_incremental(&bytes).expect("load");
        assert_eq!(loaded.get_heads(), document.heads());
        // Nothing is handed twice.
        let persisted = document.heads();
        let change = keystroke(&mut peer, &text, "c");
        document.add(change.raw_bytes(), true).expect("add");
        let StorageWrite::Incremental(bytes) = document.write_after(&persisted, &mut compaction) else {
            panic!("an incremental");
        };
        assert_eq!(bytes, change.raw_bytes());
    }
}
