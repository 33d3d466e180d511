//! Relaying ephemeral messages (presence, cursors) to a document's other peers.

use std::collections::{HashSet, VecDeque};

use super::{ConnectionId, DocEffect, DocEngine};
use crate::message::{EphemeralMessage, Message, PeerId};

/// The ids of recently relayed messages: a message that comes back to us
/// through another path is not relayed twice (that could loop forever).
#[derive(Debug)]
pub(super) struct Dedup {
    seen: HashSet<(PeerId, String, u64)>,
    order: VecDeque<(PeerId, String, u64)>,
    window: usize,
}

impl Dedup {
    pub(super) fn new(window: usize) -> Self {
        Self { seen: HashSet::new(), order: VecDeque::new(), window }
    }

    /// True the first time an id is seen within the window.
    fn first_time(&mut self, message: &EphemeralMessage) -> bool {
        let key = (message.sender_id.clone(), message.session_id.clone(), message.count);
        if !self.seen.insert(key.clone()) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > self.window
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }
}

impl DocEngine {
    pub(super) fn relay_ephemeral(&mut self, from: ConnectionId, message: EphemeralMessage, out: &mut Vec<DocEffect>) {
        if !self.ephemeral.first_time(&message) {
            return;
        }
        for (conn, peer) in &self.peers {
            if *conn == from || peer.peer_id == message.sender_id {
                continue;
            }
            out.push(DocEffect::Send {
                conn: *conn,
                message: Message::Ephemeral(EphemeralMessage { target_id: peer.peer_id.clone(), ..message.clone() }),
            });
        }
    }
}
