//! Generating sync messages: at most one per dirty peer, only in the idle
//! phase, and only ever advertising durable heads.

use super::{DocEffect, DocEngine, Phase, Role};
use crate::message::{DocMessage, Message};

impl DocEngine {
    /// One message per dirty peer, at most. Only [`DocEngine::advance`] calls this.
    pub(super) fn generate(&mut self, out: &mut Vec<DocEffect>) {
        let has_content = !self.document.is_empty();
        let our_heads = self.document.heads();
        // Acknowledged means durable: a message advertises our heads, so they
        // must be what storage holds (in the idle phase every persisted write
        // is flushed).
        debug_assert!(
            self.phase == Phase::Idle && our_heads == self.persisted_heads,
            "generating while {:?} or with heads that are not persisted",
            self.phase
        );
        // What peers in step with an earlier state of ours need, computed
        // once per such state instead of once per peer.
        let mut cache = Vec::new();
        let mut encoded: Vec<(automerge::sync::Message, Vec<u8>)> = Vec::new();
        let fast_paths = self.config.fast_paths;
        let sent_log = self.config.sent_log;
        let quiet = self.config.quiet_while_awaiting_reply;
        let wait_for_reply = self.config.changes_wait_for_reply;
        for (conn, peer) in self.peers.iter_mut() {
            if !peer.dirty {
                continue;
            }
            // It stays dirty: its message goes out when it answers.
            if wait_for_reply && peer.sync.awaits_answer_to_changes() {
                self.fast_counts.held_for_answer += 1;
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
            let since = (fast_paths && !request).then_some(&mut cache);
            let Some(message) = peer.sync.generate(&mut self.document, &our_heads, since, sent_log, quiet, &mut self.fast_counts) else {
                continue;
            };
            tracing::trace!(
                document = %self.document_id,
                ?conn,
                heads = message.heads.len(),
                changes = message.changes.len(),
                need = message.need.len(),
                "sending sync message"
            );
            // Peers in step with the same state of ours get the same message
            // (a keystroke relayed to a room): encode it once.
            let data = match encoded.iter().find(|(sent, _)| *sent == message) {
                Some((_, bytes)) => bytes.clone(),
                None => {
                    let bytes = message.clone().encode();
                    encoded.push((message, bytes.clone()));
                    bytes
                }
            };
            let doc_message = DocMessage {
                sender_id: self.our_peer_id.clone(),
                target_id: peer.peer_id.clone(),
                document_id: self.document_id,
                data,
            };
            out.push(DocEffect::Send {
                conn: *conn,
                message: if request { Message::Request(doc_message) } else { Message::Sync(doc_message) },
            });
        }
    }
}
