//! # konsens-sync
//!
//! The sans-IO sync core of konsens: peer, storage, connection and document
//! ids, the automerge-repo wire codec (protocol version "1"), the connection
//! handshake, the peer session after it ([`session::PeerSession`]), and the
//! per-document sync engine [`DocEngine`]. A runtime feeds
//! the engine [`DocInput`]s (a peer's message, a connection opening or closing,
//! "everything up to `seq` is on disk") and carries out the [`DocEffect`]s it
//! returns (send this, persist that, close this connection).
//!
//! **Architecture invariant:** nothing here opens a socket, touches a disk,
//! reads the clock or draws random numbers, and nothing here knows what a
//! document *means* (that is `konsens-model`). The engine never advertises a
//! change to a peer before the runtime has reported it durable.
//!
//! A server engine receiving one change from a client, persisting it and
//! acknowledging it only once it is durable:
//!
//! ```
//! use automerge::sync::{self, SyncDoc};
//! use automerge::{transaction::Transactable, Automerge, ROOT};
//! use konsens_sync::{ConnectionId, DocEffect, DocEngine, DocInput, DocumentId, Message, PeerId, Role};
//!
//! let id = DocumentId::from_random([7; 16]);
//! let mut server = DocEngine::new(id, PeerId::from("server"), Role::Server);
//!
//! // A client writes a title and sends what Automerge's sync protocol says.
//! let mut client = Automerge::new();
//! let mut tx = client.transaction();
//! tx.put(ROOT, "title", "Anerkennung ausländischer Abschlüsse").unwrap();
//! tx.commit();
//! let mut state = sync::State::new();
//! let first = client.generate_sync_message(&mut state).unwrap();
//! let conn = ConnectionId(1);
//! // The runtime decodes the payload once (`DocInput::decode_sync` from a wire message).
//! let from_client = |message: sync::Message| DocInput::Sync { conn, sender: PeerId::from("client"), message, request: false };
//! let mut effects = server.handle([from_client(first)]);
//! // Exchange until the server asks the runtime to store the change.
//! let seq = loop {
//!     if let Some(seq) = effects.iter().find_map(|e| match e {
//!         DocEffect::Persist { seq, .. } => Some(*seq),
//!         _ => None,
//!     }) {
//!         break seq;
//!     }
//!     let reply = effects.iter().find_map(|e| match e {
//!         DocEffect::Send { message: Message::Sync(m), .. } => Some(m.data.clone()),
//!         _ => None,
//!     });
//!     client.receive_sync_message(&mut state, sync::Message::decode(&reply.unwrap()).unwrap()).unwrap();
//!     let next = client.generate_sync_message(&mut state).unwrap();
//!     effects = server.handle([from_client(next)]);
//! };
//! // Nothing that advertises the new heads goes out before the write is durable …
//! let advertises = |effects: &[DocEffect]| effects.iter().any(|e| match e {
//!     DocEffect::Send { message: Message::Sync(m), .. } =>
//!         sync::Message::decode(&m.data).unwrap().heads == client.get_heads(),
//!     _ => false,
//! });
//! assert!(!advertises(&effects));
//! // … and once the runtime reports it durable, the acknowledgement follows.
//! let effects = server.handle([DocInput::Durable { seq }]);
//! assert!(advertises(&effects));
//! assert_eq!(server.doc().get_heads(), client.get_heads());
//! ```

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
