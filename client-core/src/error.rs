//! The one error type of `konsens-client`.

use konsens_protocol::DocumentId;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClientError {
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] konsens_store::StoreError),
    /// A stored or received document is broken.
    #[error(transparent)]
    Protocol(#[from] konsens_protocol::ProtocolError),
    /// Neither the local store nor the server has the document.
    #[error("document {0} is not available (not in the local store, and the server does not have it)")]
    Unavailable(DocumentId),
    /// The document is not in the local store and there is no connection to ask.
    #[error("document {0} is not in the local store and the server is not reachable")]
    NotLocal(DocumentId),
    /// The repo's background task has stopped.
    #[error("the repo has shut down")]
    Closed,
    /// Connecting to the server failed.
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    /// A change could not be made.
    #[error("change failed: {0}")]
    Change(#[from] automerge::AutomergeError),
}
