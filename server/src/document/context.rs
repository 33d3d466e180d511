//! What every document owner is given by the hub, instead of the hub itself.

use std::sync::Arc;
use std::time::Duration;

use konsens_store::{ChunkStore, GroupCommit};
use konsens_sync::PeerId;
use tokio_util::sync::CancellationToken;

use crate::auth::Auth;
use crate::awaiting::AwaitingCreation;
use crate::document::creation_limit::CreationLimit;

/// Shared by all owners (one `Arc`).
#[derive(Debug)]
pub(crate) struct DocumentContext {
    /// Every document engine's settings.
    pub engine: Arc<konsens_sync::EngineConfig>,
    /// Documents are loaded from it (writes go through `commit`).
    pub store: ChunkStore,
    pub commit: GroupCommit,
    pub auth: Auth,
    /// Ours, from the handshake: the sender of everything we say.
    pub our_peer_id: PeerId,
    /// A loaded document with no connected peer is evicted after this long.
    pub idle_evict_after: Duration,
    /// See `ServerConfig::coalesce_window`.
    pub coalesce_window: Duration,
    /// Largest document, in stored bytes, that accepts more changes.
    pub max_document_bytes: usize,
    pub creations: CreationLimit,
    /// Shared with the connections, which add to it.
    pub awaiting: Arc<AwaitingCreation>,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
}
