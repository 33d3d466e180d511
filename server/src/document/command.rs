//! What connections send to a document's owner.

use std::sync::Arc;

use konsens_sync::{ConnectionId, DocMessage, EphemeralMessage};

use crate::handle::ConnectionHandle;

#[derive(Debug)]
pub(crate) enum DocCommand {
    Sync {
        conn: Arc<ConnectionHandle>,
        message: DocMessage,
        request: bool,
    },
    Ephemeral {
        conn: Arc<ConnectionHandle>,
        message: EphemeralMessage,
    },
    Disconnected {
        conn: ConnectionId,
    },
}
