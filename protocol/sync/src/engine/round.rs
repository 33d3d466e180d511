//! A round: every sync message that waited for the last flush, applied as
//! one batch.

use std::collections::HashSet;

use super::peer::PeerState;
use super::{ConnectionId, DocEffect, DocEngine, Waiting};
use crate::close::CloseReason;
use crate::message::Message;
use crate::ProtocolError;

impl DocEngine {
    /// Apply every waiting sync message as one batch. Only [`DocEngine::advance`] calls this.
    pub(super) fn run_round(&mut self, out: &mut Vec<DocEffect>) {
        let heads_before = self.document.heads();
        let fast_paths = self.config.fast_paths;
        let mut decoded = Vec::with_capacity(self.waiting.len());
        let mut slow: HashSet<ConnectionId> = HashSet::new();
        for Waiting { conn, sender, message: m, request } in std::mem::take(&mut self.waiting) {
            let seed = self.kept.seed_for(conn);
            let peer = self.peers.entry(conn).or_insert_with(|| PeerState::new(sender, seed));
            peer.dirty = true;
            // A pure acknowledgement of our current heads is most of the
            // traffic of a busy document (every peer confirms every
            // round). It only updates the sync state, so do that here,
            // without Automerge's walk of the change graph. Taken before
            // this round's load, as if it had arrived a round earlier;
            // only while no earlier message of the same peer waits, so
            // each peer's messages keep their order.
            if fast_paths && !request && !slow.contains(&conn) && peer.sync.is_pure_ack(&m, &heads_before) {
                peer.sync.fast_ack(m, &heads_before);
                peer.told_unavailable = false;
                self.fast_counts.acks += 1;
                continue;
            }
            slow.insert(conn);
            decoded.push((conn, m, request));
        }

        // One load for the changes of all messages: the expensive part, done once.
        let mut all_changes = Vec::new();
        for (_, m, _) in &decoded {
            for chunk in m.changes.iter() {
                all_changes.extend_from_slice(chunk);
            }
        }
        let defer = self.config.deferred_changes > 0;
        let batch_loaded = all_changes.is_empty()
            || match self.document.add(&all_changes, defer) {
                Ok(deferred) => {
                    self.fast_counts.deferred += u64::from(deferred);
                    true
                }
                Err(_) => false,
            };
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
            // Changes already applied (or deferred) by the batched load: when
            // the message confirms everything we last sent, or its heads are
            // all known, update the sync state directly.
            let m = if fast_paths && batch_loaded && !request {
                let taken = peer
                    .sync
                    .fast_receive_changes(m, &self.document)
                    .map(|()| &mut self.fast_counts.received_changes)
                    .or_else(|m| peer.sync.fast_receive_known(m, &self.document).map(|()| &mut self.fast_counts.received_known));
                match taken {
                    Ok(counter) => {
                        *counter += 1;
                        peer.told_unavailable = false;
                        continue;
                    }
                    Err(m) => m,
                }
            } else {
                m
            };
            self.fast_counts.slow_received += 1;
            tracing::trace!(
                changes = m.changes.len(),
                heads = m.heads.len(),
                heads_known = m.heads.iter().all(|h| self.document.has(h)),
                need = m.need.len(),
                request,
                "receiving on Automerge's path"
            );
            if let Err(e) = self.document.mutate(|doc| peer.sync.receive(doc, m)) {
                let error = ProtocolError::RejectedChanges { document: self.document_id.to_string(), reason: e.to_string() };
                self.reject(conn, error, out);
                continue;
            }
            if !request {
                // A `sync` means the peer has (or is creating) the document:
                // it expects a reply even while we have nothing yet.
                peer.told_unavailable = false;
            }
            if request && self.document.is_empty() {
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

        if self.document.heads() != heads_before {
            self.persist_new_changes(out);
            // Everybody, not only the senders, should hear about the new changes.
            for peer in self.peers.values_mut() {
                peer.dirty = true;
            }
        }
    }

    /// The peer sent input we cannot take: tell it why, and close.
    fn reject(&mut self, conn: ConnectionId, error: ProtocolError, out: &mut Vec<DocEffect>) {
        tracing::warn!(document = %self.document_id, ?conn, %error, "rejecting peer input");
        let target_id = self.peers.remove(&conn).map(|p| p.peer_id);
        out.push(DocEffect::Send { conn, message: Message::error(Some(self.our_peer_id.clone()), target_id, error.to_string()) });
        out.push(DocEffect::Close { conn, reason: CloseReason::ProtocolViolation(error) });
    }
}
