//! # konsens-sync
//!
//! The sans-IO core of konsens: the automerge-repo wire protocol (version "1"),
//! document ids and URLs, the connection handshake, the peer session after
//! it, and the per-document sync engine. Nothing in this crate opens a
//! socket, touches a disk, reads the clock or draws random numbers: inputs
//! come in as values, effects go out as values ([`engine::DocEffect`],
//! [`session::SessionAction`]), and the runtimes in `konsens-server` and
//! `konsens-client` carry them out.

pub mod close;
pub mod document_id;
pub mod engine;
pub mod error;
pub mod handshake;
pub mod limits;
pub mod message;
pub mod session;
#[doc(hidden)]
pub mod fuzzing;

pub use document_id::{AutomergeUrl, DocumentId};
pub use close::{CloseReason, PersistError};
pub use engine::{ConnectionId, DocEffect, DocEngine, DocInput, EngineConfig, FastPathCounts, Role, StorageWrite, StoredSizes};
pub use error::ProtocolError;
pub use handshake::{Handshake, Joined};
pub use session::{Ignored, PeerSession, SessionAction};
pub use message::{DocMessage, EphemeralMessage, Message, PeerId, PeerMetadata, RefusalCode, StorageId, WireRefusal, PROTOCOL_VERSION};

/// Default limit for one WebSocket frame: 16 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;
