//! The one error type of `konsens-server`.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ServerError {
    /// The data directory could not be opened or written.
    #[error(transparent)]
    Store(#[from] konsens_store::StoreError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("server error: {0}")]
    Serve(#[from] std::io::Error),
    /// A node-to-node frame that does not follow `cluster/envelope.rs`.
    #[error("bad frame from another node: {0}")]
    BadRelayFrame(&'static str),
    /// The server refuses to start with an unsafe configuration.
    #[error("{0}")]
    Config(String),
}
