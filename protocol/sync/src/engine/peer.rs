//! One connected peer's sync state, and the rule "only sending changes what
//! we last sent".
//!
//! Automerge's `receive_sync_message` sets `last_sent_heads` to the peer's
//! heads when a message without changes carries heads equal to ours ("they
//! know, no need to tell them"). Inside a batch that is false: our heads may
//! include changes loaded this round that no message of ours announced yet,
//! and believing otherwise swallows the acknowledgement the peer waits for
//! (tests/batched_ack.rs). So [`PeerSync`] owns the `sync::State`, and every
//! path that receives — Automerge's or a fast one — runs through
//! [`PeerSync::received`], which restores what we last sent; only
//! [`PeerSync::generate`] (a message actually goes out) and
//! [`PeerSync::forget_sent`] (the document was replaced) change it.

use std::collections::VecDeque;

use automerge::sync::{self, SyncDoc};
use automerge::{Automerge, AutomergeError, ChangeHash};

use super::FastPathCounts;
use super::document::Document;
use super::fast::{self, Fast, Sent, SentLog, Since};
use crate::message::PeerId;

#[derive(Debug)]
pub(super) struct PeerState {
    pub(super) peer_id: PeerId,
    pub(super) sync: PeerSync,
    /// Needs a `generate_sync_message` at the next opportunity.
    pub(super) dirty: bool,
    /// The peer asked for a document we did not have; it got `doc-unavailable`
    /// and hears from us again once the document has content.
    pub(super) told_unavailable: bool,
}

impl PeerState {
    pub(super) fn new(peer_id: PeerId, shared_heads: Option<&[ChangeHash]>) -> Self {
        let mut state = sync::State::new();
        if let Some(heads) = shared_heads {
            state.shared_heads = heads.to_vec();
        }
        Self {
            peer_id,
            sync: PeerSync { state, sent_log: VecDeque::new(), awaiting_reply: false, reset_pending: false, unanswered_changes: false },
            dirty: false,
            told_unavailable: false,
        }
    }
}

/// A peer's `sync::State` with the log of what we sent it. Its fields are
/// private to this module on purpose: see the module documentation.
#[derive(Debug)]
pub(super) struct PeerSync {
    state: sync::State,
    sent_log: SentLog,
    /// The peer's last message acknowledged an older message of ours, and
    /// a later one (sent after it) is still unanswered: the peer will speak
    /// again when that one arrives. Only the fast receive paths, which know
    /// which message was acknowledged, set it.
    awaiting_reply: bool,
    /// The next message goes out without heads (see [`super::DocInput::Resync`]).
    reset_pending: bool,
    /// Our last message carried changes and the peer has not spoken since
    /// (see [`super::EngineConfig::changes_wait_for_reply`]).
    unanswered_changes: bool,
}

impl PeerSync {
    /// Send the next message without heads: the peer then clears what it
    /// believes it sent us, and sends anything we lack again.
    pub(super) fn reset_next(&mut self) {
        self.reset_pending = true;
    }

    /// The peer spoke, though its message never reached us (the runtime
    /// dropped it unread): it is not waiting for us.
    pub(super) fn heard(&mut self) {
        self.unanswered_changes = false;
    }

    /// Our last message brought the peer changes it has not answered: what
    /// is new waits for its answer (unless a reset must go out).
    pub(super) fn awaits_answer_to_changes(&self) -> bool {
        self.unanswered_changes && !self.reset_pending
    }

    pub(super) fn their_heads(&self) -> Option<&[ChangeHash]> {
        self.state.their_heads.as_deref()
    }

    pub(super) fn shared_heads(&self) -> &[ChangeHash] {
        &self.state.shared_heads
    }

    /// The one door for received messages: whatever `apply` does, what we
    /// last sent stays, unless the peer lost its data (Automerge then clears
    /// it so that everything is sent again, which we keep).
    fn received<R>(&mut self, apply: impl FnOnce(&mut sync::State, &mut SentLog) -> R) -> R {
        self.unanswered_changes = false;
        let last_sent = self.state.last_sent_heads.clone();
        let result = apply(&mut self.state, &mut self.sent_log);
        if !self.state.last_sent_heads.is_empty() {
            self.state.last_sent_heads = last_sent;
        }
        result
    }

    /// Is `m` only a confirmation of heads we know? Then [`Self::fast_ack`] takes it.
    pub(super) fn is_pure_ack(&self, m: &sync::Message, our_heads: &[ChangeHash]) -> bool {
        fast::is_pure_ack(m, &self.sent_log, our_heads)
    }

    pub(super) fn fast_ack(&mut self, m: sync::Message, our_heads: &[ChangeHash]) {
        self.received(|state, log| fast::fast_ack(state, log, m, our_heads));
        // What is left in the log was sent after the acknowledged message.
        self.awaiting_reply = !self.sent_log.is_empty();
    }

    /// See [`fast::fast_receive_changes`]; gives the message back when it does not apply.
    pub(super) fn fast_receive_changes(&mut self, m: sync::Message, doc: &Document) -> Result<(), sync::Message> {
        let result = self.received(|state, log| fast::fast_receive_changes(state, log, doc, m));
        if result.is_ok() {
            self.awaiting_reply = !self.sent_log.is_empty();
        }
        result
    }

    /// See [`fast::fast_receive_known`]; gives the message back when it does not apply.
    pub(super) fn fast_receive_known(&mut self, m: sync::Message, doc: &Document) -> Result<(), sync::Message> {
        let result = self.received(|state, log| fast::fast_receive_known(state, log, doc, m));
        if result.is_ok() {
            // Which of our messages it answers is not known: as Automerge.
            self.awaiting_reply = false;
        }
        result
    }

    /// Automerge's own receive path.
    pub(super) fn receive(&mut self, doc: &mut Automerge, m: sync::Message) -> Result<(), AutomergeError> {
        self.awaiting_reply = false;
        self.received(|state, _| doc.receive_sync_message(state, m))
    }

    /// At most one message for this peer: the fast path when `since` is given
    /// (fast paths on) and the peer's state has its shape, else Automerge's.
    /// `since` caches the changes since an earlier state of ours across the
    /// peers of one `generate`. `quiet`: see
    /// [`super::EngineConfig::quiet_while_awaiting_reply`].
    pub(super) fn generate(
        &mut self,
        doc: &mut Document,
        our_heads: &[ChangeHash],
        since: Option<&mut Vec<Since>>,
        sent_log_len: usize,
        quiet: bool,
        counts: &mut FastPathCounts,
    ) -> Option<sync::Message> {
        let fast = match (since, fast::fast_base(&self.state, &self.sent_log, doc)) {
            (Some(since), Some(base)) if !self.reset_pending => {
                let at = match since.iter().position(|s| s.base == base) {
                    Some(at) => at,
                    None => {
                        since.push(Since::compute(doc, base, counts));
                        since.len() - 1
                    }
                };
                match since[at].message(&mut self.state, our_heads, quiet && self.awaiting_reply) {
                    Fast::Done(message, hashes) => Some((message, hashes)),
                    Fast::Fallback => None,
                }
            }
            _ => None,
        };
        let (message, hashes) = match fast {
            Some(done) => {
                counts.generated += 1;
                done
            }
            None => {
                counts.slow_generated += 1;
                tracing::trace!(
                    have = self.state.their_have.as_ref().map(Vec::len),
                    need = self.state.their_need.as_ref().map(Vec::len),
                    heads_shared = self.state.their_heads.as_ref() == Some(&self.state.shared_heads),
                    responded = self.state.have_responded,
                    "generating on Automerge's path"
                );
                // Note what Automerge had sent before, to log what it adds.
                let before = self.state.sent_hashes.clone();
                let message = doc.materialised().generate_sync_message(&mut self.state);
                let added = self.state.sent_hashes.difference(&before).copied().collect();
                (message, added)
            }
        };
        let mut message = message;
        if let Some(message) = &mut message {
            // An Automerge peer answers every message that changes its heads.
            // Only one whose heads we have heard surely lacks what we send;
            // before it spoke, or after a resync, it may hold those changes
            // already and stay silent, so nothing waits for it then.
            self.unanswered_changes = !message.changes.is_empty() && self.state.their_heads.is_some() && !self.reset_pending;
            self.sent_log.push_back(Sent { heads: message.heads.clone(), hashes });
            while self.sent_log.len() > sent_log_len {
                self.sent_log.pop_front();
            }
            if std::mem::take(&mut self.reset_pending) {
                message.heads.clear();
            }
        }
        message
    }

    /// The document was replaced: what we sent may no longer exist, so the
    /// peer hears our heads and changes afresh. What it told us stays.
    pub(super) fn forget_sent(&mut self) {
        self.state.last_sent_heads.clear();
        self.state.sent_hashes.clear();
        self.state.in_flight = false;
        self.sent_log.clear();
        self.unanswered_changes = false;
    }
}
