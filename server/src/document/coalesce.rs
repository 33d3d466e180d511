//! Coalescing: which inputs of a shared document wait for its next round.

use konsens_sync::DocInput;

/// Decide which inputs the engine sees now. A document shared by many
/// connections applies changes at most once per coalescing window: while
/// `hold` (a round that applied changes started less than a window ago), sync
/// messages are held in order and join the next round, so a burst of
/// keystrokes costs one load, one flush and one message per peer. Everything
/// else (durability, presence, departures) passes at once; a departure drops
/// what its connection had held. Once `hold` ends, held messages go first, so
/// each peer's messages keep their order.
pub(super) fn coalesce(hold: bool, inputs: Vec<DocInput>, held: &mut Vec<DocInput>) -> Vec<DocInput> {
    let mut now_inputs = Vec::with_capacity(inputs.len());
    for input in inputs {
        match input {
            DocInput::Sync { .. } if hold => held.push(input),
            DocInput::Disconnected { conn } => {
                held.retain(|h| !matches!(h, DocInput::Sync { conn: c, .. } if *c == conn));
                now_inputs.push(input);
            }
            other => now_inputs.push(other),
        }
    }
    if !hold && !held.is_empty() {
        let mut ordered = std::mem::take(held);
        ordered.append(&mut now_inputs);
        now_inputs = ordered;
    }
    now_inputs
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::sync::{self, SyncDoc};
    use konsens_sync::{ConnectionId, PeerId};

    /// The `n`th sync message of connection `conn` (`n` travels in the sender's name).
    fn sync(conn: u64, n: u8) -> DocInput {
        let message = automerge::Automerge::new().generate_sync_message(&mut sync::State::new()).expect("a first message");
        DocInput::Sync { conn: ConnectionId(conn), sender: PeerId(format!("{n}")), message, request: false }
    }

    /// (connection, payload) of each sync input, and the other inputs by name.
    fn shape(inputs: &[DocInput]) -> Vec<String> {
        inputs
            .iter()
            .map(|i| match i {
                DocInput::Sync { conn, sender, .. } => format!("sync {} {sender}", conn.0),
                DocInput::Durable { seq } => format!("durable {seq}"),
                DocInput::Disconnected { conn } => format!("gone {}", conn.0),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn syncs_wait_during_the_window_and_go_first_after_it() {
        let mut held = Vec::new();
        let now = coalesce(true, vec![sync(1, 1), DocInput::Durable { seq: 3 }, sync(2, 1)], &mut held);
        assert_eq!(shape(&now), ["durable 3"], "durability passes at once");
        assert_eq!(shape(&held), ["sync 1 1", "sync 2 1"]);
        let now = coalesce(false, vec![sync(1, 2)], &mut held);
        assert_eq!(shape(&now), ["sync 1 1", "sync 2 1", "sync 1 2"], "held messages keep their order, first");
        assert!(held.is_empty());
    }

    #[test]
    fn a_departure_drops_what_its_connection_had_held() {
        let mut held = Vec::new();
        let _ = coalesce(true, vec![sync(1, 1), sync(2, 1)], &mut held);
        let now = coalesce(true, vec![DocInput::Disconnected { conn: ConnectionId(1) }], &mut held);
        assert_eq!(shape(&now), ["gone 1"]);
        assert_eq!(shape(&held), ["sync 2 1"]);
    }

    #[test]
    fn without_a_window_nothing_waits() {
        let mut held = Vec::new();
        let now = coalesce(false, vec![sync(1, 1), sync(2, 1)], &mut held);
        assert_eq!(shape(&now), ["sync 1 1", "sync 2 1"]);
        assert!(held.is_empty());
    }
}
