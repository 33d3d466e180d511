//! The one error type of `konsens-sync`.

use thiserror::Error;

/// Everything that can go wrong while decoding input or driving the sync engine.
///
/// Every variant describes bad *input*: the engine itself never fails on its own
/// state. Callers answer these with an `error` message or a close reason and keep
/// serving everybody else.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// The frame is larger than the configured limit.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// The frame is not valid CBOR.
    #[error("malformed CBOR: {0}")]
    MalformedCbor(String),
    /// The frame is CBOR but not a map with a `type` text field.
    #[error("not a protocol message: {0}")]
    NotAMessage(&'static str),
    /// The `type` field names a message we do not know.
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// A field is missing.
    #[error("message {message_type:?} lacks required field {field:?}")]
    MissingField {
        message_type: &'static str,
        field: &'static str,
    },
    /// A field has the wrong CBOR type or an out-of-range value.
    #[error("message {message_type:?}: field {field:?} {problem}")]
    InvalidField {
        message_type: &'static str,
        field: &'static str,
        problem: &'static str,
    },
    /// A document id that is not bs58check of 16 bytes.
    #[error("invalid document id {id:?}: {reason}")]
    InvalidDocumentId { id: String, reason: String },
    /// An `automerge:` URL that does not parse.
    #[error("invalid automerge URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// The payload of a `sync` or `request` is not an Automerge sync message.
    #[error("invalid sync message for document {document}: {reason}")]
    InvalidSyncMessage { document: String, reason: String },
    /// The changes in a sync message could not be applied.
    #[error("document {document} rejected changes: {reason}")]
    RejectedChanges { document: String, reason: String },
    /// The peer offers no protocol version we speak.
    #[error("unsupported protocol version (offered {offered:?}, we speak \"1\")")]
    UnsupportedProtocolVersion { offered: Vec<String> },
    /// A message arrived that is not valid in the connection's current state.
    #[error("unexpected {message_type:?} message {state}")]
    UnexpectedMessage {
        message_type: &'static str,
        state: &'static str,
    },
    /// A message's changes would inflate past the limit (see `limits`).
    #[error("the changes would inflate past the limit of {limit} bytes")]
    InflatedTooLarge { limit: usize },
    /// A message's changes hold more operations than the limit, once their
    /// run-length encoding is expanded (see `limits`).
    #[error("the changes hold more than {limit} operations")]
    TooManyOperations { limit: usize },
    /// A storage chunk in a sync message that cannot be walked safely.
    #[error("malformed change data: {reason}")]
    MalformedChunk { reason: &'static str },
    /// A Bloom filter in a sync message that would make us panic or spin.
    #[error("invalid Bloom filter in a sync message: {reason}")]
    BadBloomFilter { reason: &'static str },
    /// Stored bytes of a document could not be loaded.
    #[error("stored document {document} is unreadable: {reason}")]
    CorruptDocument { document: String, reason: String },
}
