//! What the dialer tells the world about its connection; a leaf module, so
//! the dialer, the repo and the workspace share it without depending on each
//! other.

use konsens_sync::PeerId;

/// Whether the repo is talking to its server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionStatus {
    Offline,
    Connecting,
    Online { server: PeerId },
    /// The server turned us away (e.g. a missing, wrong or revoked token);
    /// the dialer keeps retrying in case that changes. The text is the
    /// server's, for people.
    Refused(String),
}
