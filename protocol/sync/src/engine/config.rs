//! The engine's tunables in one place, with today's values as the default.

/// The deferred batch is this fraction (1/n) of the document's changes,
/// between its floor and its cap (see [`EngineConfig::deferred_changes`]).
const DEFERRED_SHARE: usize = 16;

/// How a [`super::DocEngine`] behaves where there is a choice. Like quinn's
/// `TransportConfig`: build one (usually the default), share it behind an
/// `Arc` among every document's engine, pass it to
/// [`super::DocEngine::with_config`] or [`super::DocEngine::load_with_config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    pub(crate) fast_paths: bool,
    pub(crate) sent_log: usize,
    pub(crate) ephemeral_dedup_window: usize,
    pub(crate) compaction_floor_bytes: usize,
    pub(crate) deferred_changes: usize,
    pub(crate) deferred_changes_max: usize,
    pub(crate) quiet_while_awaiting_reply: bool,
    pub(crate) changes_wait_for_reply: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            fast_paths: true,
            sent_log: 1024,
            ephemeral_dedup_window: 4096,
            compaction_floor_bytes: 1024,
            deferred_changes: 1024,
            // A sixteenth of the document's changes, up to the changes whose
            // dependencies the document keeps at hand (engine/document.rs),
            // so "changes since" a recent state never walks the change graph.
            deferred_changes_max: super::document::RECENT_CHANGES,
            quiet_while_awaiting_reply: true,
            changes_wait_for_reply: true,
        }
    }
}

impl EngineConfig {
    /// Take acknowledgements, change-carrying replies and bloom-filter
    /// replies without Automerge's walks of the change graph (see
    /// `engine/fast.rs`). Off, every message goes through Automerge's own
    /// `receive_sync_message`/`generate_sync_message`: slower on busy
    /// documents, and the reference the fast paths are tested against.
    pub fn fast_paths(&mut self, on: bool) -> &mut Self {
        self.fast_paths = on;
        self
    }

    /// How many sent messages per peer are remembered, so that an
    /// acknowledgement of any of them takes the fast path. A peer that lags
    /// further behind falls back to Automerge's path; nothing is lost.
    pub fn sent_log(&mut self, messages: usize) -> &mut Self {
        self.sent_log = messages;
        self
    }

    /// How many ephemeral message ids are remembered to drop duplicates
    /// (a message relayed back to us through another path).
    pub fn ephemeral_dedup_window(&mut self, ids: usize) -> &mut Self {
        self.ephemeral_dedup_window = ids;
        self
    }

    /// Incrementals are compacted into a snapshot once they outweigh the
    /// snapshot, or this many bytes while the snapshot is smaller, so a
    /// young document is not rewritten on every change.
    pub fn compaction_floor_bytes(&mut self, bytes: usize) -> &mut Self {
        self.compaction_floor_bytes = bytes;
        self
    }

    /// How many received changes wait on the change graph before they are
    /// applied to the materialised document, in one batch (see
    /// `engine/document.rs`); 0 applies every round's changes at once.
    /// Automerge applies a batch in time proportional to the objects it
    /// touches, not to the batch. By default the batch grows with the
    /// document: a sixteenth of its changes, at least 1,024 and at most
    /// 4,096, so an apply (which walks the whole text) comes once per
    /// sixteenth of the text's growth and a change's share of it does not
    /// grow with the text. Set here, the batch is this many, whatever the
    /// size.
    pub fn deferred_changes(&mut self, changes: usize) -> &mut Self {
        self.deferred_changes = changes;
        self.deferred_changes_max = changes;
        self
    }

    /// The batch for a document of `changes` changes (see
    /// [`Self::deferred_changes`]); at least 1.
    pub(crate) fn deferred_batch(&self, changes: usize) -> usize {
        let floor = self.deferred_changes.max(1);
        (changes / DEFERRED_SHARE).min(self.deferred_changes_max).max(floor)
    }

    /// Send a peer nothing in answer to its acknowledgement of an older
    /// message of ours while a later one is on its way to it, when the
    /// answer would carry no change and heads it is about to receive. This
    /// is where we differ from Automerge's own `generate_sync_message`,
    /// which answers: with watchers that lag one message behind (a slow
    /// device, a long round trip, a busy room) that answer and the peer's
    /// reply to it doubled the messages per keystroke. Only the fast paths
    /// apply it; off, the messages are Automerge's exactly (the reference
    /// the simulation compares with).
    pub fn quiet_while_awaiting_reply(&mut self, on: bool) -> &mut Self {
        self.quiet_while_awaiting_reply = on;
        self
    }

    /// After a message carrying changes, send that peer nothing more until
    /// it speaks again (any message: its answer, or one that crossed ours);
    /// what gathers meanwhile goes out in one message then. A peer that
    /// keeps up sees no difference: it answers before the next change. A
    /// slow one (a phone, a busy tab, a client applying into a long text,
    /// where Automerge pays per message, not per change) gets one message
    /// per round trip of its own instead of a backlog of one per change,
    /// and catches up. Automerge peers answer every message that brings
    /// them changes; a runtime that drops a peer's message unread must still
    /// tell the engine it spoke ([`super::DocInput::Heard`]). Off, the
    /// messages are Automerge's (the reference the simulation compares with).
    pub fn changes_wait_for_reply(&mut self, on: bool) -> &mut Self {
        self.changes_wait_for_reply = on;
        self
    }

    pub fn fast_paths_enabled(&self) -> bool {
        self.fast_paths
    }
}

#[cfg(test)]
mod tests {
    use super::EngineConfig;

    #[test]
    fn the_default_batch_grows_with_the_document_between_its_floor_and_cap() {
        let config = EngineConfig::default();
        assert_eq!(config.deferred_batch(0), 1024);
        assert_eq!(config.deferred_batch(20_000), 1250);
        assert_eq!(config.deferred_batch(40_000), 2500);
        assert_eq!(config.deferred_batch(200_000), 4096);
    }

    #[test]
    fn a_batch_set_by_hand_is_that_size_at_every_size() {
        let mut config = EngineConfig::default();
        config.deferred_changes(3);
        assert_eq!(config.deferred_batch(10), 3);
        assert_eq!(config.deferred_batch(200_000), 3);
        config.deferred_changes(0);
        assert_eq!(config.deferred_batch(200_000), 1, "never zero: the engine does not defer then anyway");
    }
}
