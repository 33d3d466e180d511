//! The one error type of `konsens-client`.

use konsens_sync::DocumentId;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClientError {
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] konsens_store::StoreError),
    /// A stored or received document is broken.
    #[error(transparent)]
    Protocol(#[from] konsens_sync::ProtocolError),
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
    /// The document does not have the expected shape or refuses the change.
    #[error(transparent)]
    Schema(#[from] konsens_model::schema::SchemaError),
    /// A consent round cannot change that way (none open, one open already).
    #[error(transparent)]
    Consent(#[from] konsens_model::consent::ConsentError),
    /// No identity is set for this store.
    #[error("no identity: run `konsens identity --name NAME --org ORGANISATION` first")]
    NoIdentity,
    /// A past version (`#heads`) cannot be changed.
    #[error("a past version (a URL with #heads) is read-only; use the URL without #heads")]
    ReadOnlyVersion,
    #[error("no draft named {0:?} (see `konsens draft list`)")]
    NoDraft(String),
    #[error("a draft named {0:?} exists already")]
    DraftExists(String),
    #[error("{0:?} is not a usable draft name (non-empty, no '/')")]
    BadDraftName(String),
    /// The server refused changes (e.g. an observer's, or someone else's actor).
    #[error("{0}")]
    Refused(String),
    /// The member's role does not allow this; nothing was changed.
    #[error("as {role} you cannot {action}; nothing was changed")]
    NotAllowed { role: konsens_model::access::AccessRole, action: &'static str },
    /// This store has not joined a server.
    #[error("this store has not joined a server: run `konsens join <invitation link>` first")]
    NoSession,
    /// The server's API answered with an error.
    #[error("the server refused ({status}): {message}")]
    Api { status: u16, message: String },
    /// Local data is unreadable.
    #[error("local store is damaged: {0}")]
    Corrupt(String),
    /// No connection to the server came up in time.
    #[error("cannot reach the server within {seconds} s")]
    Unreachable { seconds: u64 },
    /// The server turned the connection away (its reason, for people).
    #[error("{0}; join with a valid invitation link (`konsens join <link>`)")]
    NotAdmitted(String),
    /// Connected, but the server did not answer in time.
    #[error("{0}")]
    TimedOut(String),
    /// The server's API answered with something that is not its JSON.
    #[error("unexpected answer from {path}: {reason}")]
    UnexpectedAnswer { path: String, reason: String },
    /// Not an invitation link.
    #[error("{0:?} is not an invitation link (http://host:port/join/<token>)")]
    BadInvitationLink(String),
    /// An amendment cannot be decided that way (unknown, closed, an unknown hunk).
    #[error(transparent)]
    Amendment(Box<konsens_model::amendment::AmendmentError>),
    /// A dossier that cannot be imported.
    #[error(transparent)]
    Dossier(#[from] konsens_model::dossier::DossierError),
}

impl ClientError {
    /// The server could not be reached or did not answer in time (the CLI
    /// exits 3 for these): no connection, no answer in time, a document
    /// that only the unreachable server could have provided, or a proxy or
    /// gateway in front of it saying so (502 bad gateway, 503 unavailable,
    /// 504 gateway timeout).
    pub fn is_network(&self) -> bool {
        match self {
            ClientError::Connect { .. } | ClientError::Unreachable { .. } | ClientError::TimedOut(_) | ClientError::NotLocal(_) => true,
            ClientError::Api { status, .. } => matches!(status, 502..=504),
            _ => false,
        }
    }
}
