//! What connections send to a document's owner.

use std::sync::Arc;

use konsens_sync::{ConnectionId, EphemeralMessage};

use crate::handle::ConnectionHandle;

#[derive(Debug)]
pub(crate) enum DocCommand {
    /// A `sync` or `request` from `conn` (its sender), its payload decoded
    /// once by the connection, after the read limits.
    Sync {
        conn: Arc<ConnectionHandle>,
        message: automerge::sync::Message,
        request: bool,
    },
    Ephemeral {
        conn: Arc<ConnectionHandle>,
        message: EphemeralMessage,
    },
    Disconnected {
        conn: ConnectionId,
    },
    /// `conn` synced this document with another owner until now (the
    /// document moved here): start its sync afresh (`DocInput::Resync`).
    Resync {
        conn: Arc<ConnectionHandle>,
    },
    /// This node's lease on the document moved to another node: stop, write
    /// nothing more, and hand the connections on.
    LeaseLost,
}
