//! The automerge-repo network protocol, version "1": one CBOR map per binary
//! WebSocket frame.
//!
//! Decoding is tolerant where the JS client needs it (integers that arrive as
//! floats, `undefined` or `null` where a value is optional, unknown keys) and
//! strict where safety needs it (a size limit before parsing, typed errors for
//! wrong shapes, never a panic).

use std::collections::BTreeMap;
use std::fmt;

use ciborium::Value;

use crate::{DocumentId, ProtocolError};

mod fast_decode;

/// The only protocol version automerge-repo 2.x speaks.
pub const PROTOCOL_VERSION: &str = "1";

/// Longest peer, session or storage id we accept, in bytes. automerge-repo
/// and samod use UUID-sized ids; this leaves room for any reasonable scheme.
pub const MAX_ID_BYTES: usize = 256;

/// A peer's self-chosen id (any string; automerge-repo uses random text).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub String);

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({})", self.0)
    }
}

impl From<&str> for PeerId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// The id of a peer's durable storage (a UUID string kept for the life of its data).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageId(pub String);

/// What a peer tells about itself in `join` and `peer`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerMetadata {
    pub storage_id: Option<StorageId>,
    pub is_ephemeral: bool,
}

/// A message about one document that carries an Automerge sync message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocMessage {
    pub sender_id: PeerId,
    pub target_id: PeerId,
    pub document_id: DocumentId,
    /// An encoded `automerge::sync::Message`.
    pub data: Vec<u8>,
}

impl DocMessage {
    /// Decode the payload. A runtime does this once per message, after its
    /// read limits, and hands the result to the engine
    /// ([`crate::DocInput::Sync`]) and whatever else looks at the changes.
    /// A payload that does not decode is a protocol violation.
    pub fn decode_sync(&self) -> Result<automerge::sync::Message, ProtocolError> {
        automerge::sync::Message::decode(&self.data)
            .map_err(|e| ProtocolError::InvalidSyncMessage { document: self.document_id.to_string(), reason: e.to_string() })
    }
}

/// Transient data (presence, cursors) relayed to the document's other peers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EphemeralMessage {
    pub sender_id: PeerId,
    pub target_id: PeerId,
    pub document_id: DocumentId,
    pub session_id: String,
    pub count: u64,
    /// Opaque CBOR payload; the server never looks inside.
    pub data: Vec<u8>,
}

/// Heads of one storage, as gossiped in `remote-heads-changed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteHeads {
    /// bs58check-encoded change hashes.
    pub heads: Vec<String>,
    pub timestamp: u64,
}

/// Why the server refused changes, as a closed set of codes that clients
/// match on (never on the English `message`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefusalCode {
    /// The sender is an observer.
    ReadOnly,
    /// A change was made by an actor that belongs to another member.
    ForeignActor,
    /// Only facilitators adopt, reject or re-open a recommendation.
    Decision,
    /// Only facilitators change a process's members.
    Membership,
    /// Only facilitators change what kind of document this is (schema, process).
    Kind,
    /// Only facilitators rename, re-order, move or archive workshops and recommendations.
    Structure,
    /// A field names another person or organisation than the sender's verified one.
    Identity,
    /// Only administrators create processes or documents outside a process.
    AdminOnly,
    /// A new document must be a recommendation of the sender's process.
    OutsideProcess,
    /// The changes would leave a document the model cannot read.
    Malformed,
    /// The document would exceed the server's size limit.
    DocumentTooLarge,
    /// Too many new documents from this member.
    CreationLimit,
    /// The changes could not be decoded.
    Unreadable,
    /// Only facilitators open, word and close consent rounds, and set whether
    /// adoption requires consent.
    Consent,
    /// An answer into a consent round that is closed.
    RoundClosed,
    /// An adoption the process does not allow yet: its latest consent round
    /// is missing, open, or ended with a block.
    ConsentRequired,
    /// A change to an amendment's branch by someone who is not its author, a
    /// coauthor or a facilitator, outside the text fields and title, or after
    /// the amendment was decided; or to an amendment's entry by someone else
    /// than its author or a facilitator.
    Amendment,
    /// A code this version does not know (a newer server).
    Other,
}

impl RefusalCode {
    pub const ALL: [RefusalCode; 17] = [
        RefusalCode::ReadOnly,
        RefusalCode::ForeignActor,
        RefusalCode::Decision,
        RefusalCode::Membership,
        RefusalCode::Kind,
        RefusalCode::Structure,
        RefusalCode::Identity,
        RefusalCode::AdminOnly,
        RefusalCode::OutsideProcess,
        RefusalCode::Malformed,
        RefusalCode::DocumentTooLarge,
        RefusalCode::CreationLimit,
        RefusalCode::Unreadable,
        RefusalCode::Consent,
        RefusalCode::RoundClosed,
        RefusalCode::ConsentRequired,
        RefusalCode::Amendment,
    ];

    /// The code on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalCode::ReadOnly => "read-only",
            RefusalCode::ForeignActor => "foreign-actor",
            RefusalCode::Decision => "decision",
            RefusalCode::Membership => "membership",
            RefusalCode::Kind => "kind",
            RefusalCode::Structure => "structure",
            RefusalCode::Identity => "identity",
            RefusalCode::AdminOnly => "admin-only",
            RefusalCode::OutsideProcess => "outside-process",
            RefusalCode::Malformed => "malformed",
            RefusalCode::DocumentTooLarge => "document-too-large",
            RefusalCode::CreationLimit => "creation-limit",
            RefusalCode::Unreadable => "unreadable",
            RefusalCode::Consent => "consent",
            RefusalCode::RoundClosed => "round-closed",
            RefusalCode::ConsentRequired => "consent-required",
            RefusalCode::Amendment => "amendment",
            RefusalCode::Other => "other",
        }
    }

    pub fn from_wire(s: &str) -> Self {
        Self::ALL.into_iter().find(|c| c.as_str() == s).unwrap_or(RefusalCode::Other)
    }
}

impl fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The machine-readable part of an `error` that refuses changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireRefusal {
    pub document_id: DocumentId,
    pub code: RefusalCode,
    /// The changes refused (hex hashes on the wire). A client drops them and
    /// every change of its own that depends on them.
    pub refused: Vec<automerge::ChangeHash>,
}

/// One protocol message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Join {
        sender_id: PeerId,
        peer_metadata: Option<PeerMetadata>,
        /// `None` when the list was absent, which means "1".
        supported_protocol_versions: Option<Vec<String>>,
    },
    Peer {
        sender_id: PeerId,
        target_id: PeerId,
        peer_metadata: Option<PeerMetadata>,
        selected_protocol_version: String,
    },
    Leave {
        sender_id: PeerId,
    },
    Error {
        sender_id: Option<PeerId>,
        target_id: Option<PeerId>,
        message: String,
        /// Set when the error refuses changes: which document, why and which
        /// changes, for clients that recover from it. Other automerge-repo
        /// clients ignore these extra keys and show `message`.
        refusal: Option<WireRefusal>,
    },
    Request(DocMessage),
    Sync(DocMessage),
    DocUnavailable {
        sender_id: PeerId,
        target_id: PeerId,
        document_id: DocumentId,
    },
    Ephemeral(EphemeralMessage),
    RemoteSubscriptionChange {
        sender_id: PeerId,
        target_id: PeerId,
        add: Vec<StorageId>,
        remove: Vec<StorageId>,
    },
    RemoteHeadsChanged {
        sender_id: PeerId,
        target_id: PeerId,
        document_id: DocumentId,
        new_heads: BTreeMap<StorageId, RemoteHeads>,
    },
}

impl Message {
    /// An `error` with words only: what automerge-repo clients show.
    pub fn error(sender_id: Option<PeerId>, target_id: Option<PeerId>, message: impl Into<String>) -> Self {
        Message::Error { sender_id, target_id, message: message.into(), refusal: None }
    }

    /// An `error` that refuses changes: the words for every client, and the
    /// machine-readable [`WireRefusal`] for clients that recover from it.
    pub fn refusal(sender_id: Option<PeerId>, target_id: Option<PeerId>, message: impl Into<String>, refusal: WireRefusal) -> Self {
        Message::Error { sender_id, target_id, message: message.into(), refusal: Some(refusal) }
    }

    /// The wire name of this message's type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Message::Join { .. } => "join",
            Message::Peer { .. } => "peer",
            Message::Leave { .. } => "leave",
            Message::Error { .. } => "error",
            Message::Request(_) => "request",
            Message::Sync(_) => "sync",
            Message::DocUnavailable { .. } => "doc-unavailable",
            Message::Ephemeral(_) => "ephemeral",
            Message::RemoteSubscriptionChange { .. } => "remote-subscription-change",
            Message::RemoteHeadsChanged { .. } => "remote-heads-changed",
        }
    }

    /// Decode one frame, refusing frames over `max_size` bytes before parsing.
    pub fn decode(bytes: &[u8], max_size: usize) -> Result<Self, ProtocolError> {
        if bytes.len() > max_size {
            return Err(ProtocolError::TooLarge {
                size: bytes.len(),
                limit: max_size,
            });
        }
        match fast_decode::decode(bytes) {
            Some(message) => Ok(message),
            None => Self::decode_general(bytes),
        }
    }

    /// Any frame, through a CBOR value tree: every message type, and the
    /// typed error for whatever is not a message.
    pub(crate) fn decode_general(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let value: Value = ciborium::de::from_reader(bytes)
            .map_err(|e| ProtocolError::MalformedCbor(e.to_string()))?;
        let Value::Map(entries) = value else {
            return Err(ProtocolError::NotAMessage("top level is not a map"));
        };
        let fields = Fields::new(entries)?;
        fields.into_message()
    }

    /// Encode as one CBOR map, the way the JS client (cbor-x) expects it.
    pub fn encode(&self) -> Vec<u8> {
        let mut map: Vec<(Value, Value)> = Vec::with_capacity(8);
        let mut put = |key: &str, value: Value| map.push((Value::Text(key.to_owned()), value));
        put("type", text(self.type_name()));
        match self {
            Message::Join {
                sender_id,
                peer_metadata,
                supported_protocol_versions,
            } => {
                put("senderId", text(&sender_id.0));
                if let Some(meta) = peer_metadata {
                    put("peerMetadata", encode_metadata(meta));
                }
                let versions = supported_protocol_versions
                    .clone()
                    .unwrap_or_else(|| vec![PROTOCOL_VERSION.to_owned()]);
                put(
                    "supportedProtocolVersions",
                    Value::Array(versions.iter().map(|v| text(v)).collect()),
                );
            }
            Message::Peer {
                sender_id,
                target_id,
                peer_metadata,
                selected_protocol_version,
            } => {
                put("senderId", text(&sender_id.0));
                put("targetId", text(&target_id.0));
                if let Some(meta) = peer_metadata {
                    put("peerMetadata", encode_metadata(meta));
                }
                put("selectedProtocolVersion", text(selected_protocol_version));
            }
            Message::Leave { sender_id } => put("senderId", text(&sender_id.0)),
            Message::Error {
                sender_id,
                target_id,
                message,
                refusal,
            } => {
                if let Some(s) = sender_id {
                    put("senderId", text(&s.0));
                }
                if let Some(t) = target_id {
                    put("targetId", text(&t.0));
                }
                put("message", text(message));
                if let Some(r) = refusal {
                    put("documentId", text(&r.document_id.to_string()));
                    put("refusal", text(r.code.as_str()));
                    put("refused", Value::Array(r.refused.iter().map(|h| text(&h.to_string())).collect()));
                }
            }
            Message::Request(m) | Message::Sync(m) => {
                put("senderId", text(&m.sender_id.0));
                put("targetId", text(&m.target_id.0));
                put("documentId", text(&m.document_id.to_string()));
                put("data", Value::Bytes(m.data.clone()));
            }
            Message::DocUnavailable {
                sender_id,
                target_id,
                document_id,
            } => {
                put("senderId", text(&sender_id.0));
                put("targetId", text(&target_id.0));
                put("documentId", text(&document_id.to_string()));
            }
            Message::Ephemeral(m) => {
                put("senderId", text(&m.sender_id.0));
                put("targetId", text(&m.target_id.0));
                put("documentId", text(&m.document_id.to_string()));
                put("sessionId", text(&m.session_id));
                put("count", Value::Integer(m.count.into()));
                put("data", Value::Bytes(m.data.clone()));
            }
            Message::RemoteSubscriptionChange {
                sender_id,
                target_id,
                add,
                remove,
            } => {
                put("senderId", text(&sender_id.0));
                put("targetId", text(&target_id.0));
                put("add", Value::Array(add.iter().map(|s| text(&s.0)).collect()));
                put("remove", Value::Array(remove.iter().map(|s| text(&s.0)).collect()));
            }
            Message::RemoteHeadsChanged {
                sender_id,
                target_id,
                document_id,
                new_heads,
            } => {
                put("senderId", text(&sender_id.0));
                put("targetId", text(&target_id.0));
                put("documentId", text(&document_id.to_string()));
                let heads = new_heads
                    .iter()
                    .map(|(storage, h)| {
                        (
                            text(&storage.0),
                            Value::Map(vec![
                                (
                                    text("heads"),
                                    Value::Array(h.heads.iter().map(|x| text(x)).collect()),
                                ),
                                (text("timestamp"), Value::Integer(h.timestamp.into())),
                            ]),
                        )
                    })
                    .collect();
                put("newHeads", Value::Map(heads));
            }
        }
        let mut out = Vec::with_capacity(64);
        // Writing into a Vec cannot fail and every value above is encodable.
        if let Err(e) = ciborium::ser::into_writer(&Value::Map(map), &mut out) {
            unreachable!("encoding a CBOR value into a Vec failed: {e}");
        }
        out
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn encode_metadata(meta: &PeerMetadata) -> Value {
    let mut entries = Vec::with_capacity(2);
    if let Some(storage) = &meta.storage_id {
        entries.push((text("storageId"), text(&storage.0)));
    }
    entries.push((text("isEphemeral"), Value::Bool(meta.is_ephemeral)));
    Value::Map(entries)
}

/// The fields of one decoded map, looked up by name.
struct Fields {
    message_type: &'static str,
    entries: BTreeMap<String, Value>,
}

impl Fields {
    fn new(raw: Vec<(Value, Value)>) -> Result<Self, ProtocolError> {
        let mut entries = BTreeMap::new();
        for (key, value) in raw {
            // Non-text keys are not part of the protocol; ignore them like unknown keys.
            if let Value::Text(k) = key {
                entries.insert(k, value);
            }
        }
        let type_name = match entries.get("type") {
            Some(Value::Text(t)) => t.clone(),
            Some(_) => return Err(ProtocolError::NotAMessage("field \"type\" is not text")),
            None => return Err(ProtocolError::NotAMessage("no \"type\" field")),
        };
        let message_type = match type_name.as_str() {
            "join" => "join",
            "peer" => "peer",
            "leave" => "leave",
            "error" => "error",
            "request" => "request",
            "sync" => "sync",
            "doc-unavailable" => "doc-unavailable",
            "ephemeral" => "ephemeral",
            "remote-subscription-change" => "remote-subscription-change",
            "remote-heads-changed" => "remote-heads-changed",
            _ => {
                return Err(ProtocolError::UnknownType(
                    type_name.chars().take(64).collect(),
                ));
            }
        };
        Ok(Self {
            message_type,
            entries,
        })
    }

    fn missing(&self, field: &'static str) -> ProtocolError {
        ProtocolError::MissingField {
            message_type: self.message_type,
            field,
        }
    }

    fn invalid(&self, field: &'static str, problem: &'static str) -> ProtocolError {
        ProtocolError::InvalidField {
            message_type: self.message_type,
            field,
            problem,
        }
    }

    /// A present, non-null value. (ciborium reads CBOR `undefined`, which cbor-x
    /// writes for a JS `undefined`, as null too.)
    fn get(&self, field: &'static str) -> Option<&Value> {
        match self.entries.get(field) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    fn text(&self, field: &'static str) -> Result<String, ProtocolError> {
        match self.get(field) {
            Some(Value::Text(t)) => Ok(t.clone()),
            Some(_) => Err(self.invalid(field, "is not text")),
            None => Err(self.missing(field)),
        }
    }

    fn opt_text(&self, field: &'static str) -> Result<Option<String>, ProtocolError> {
        match self.get(field) {
            Some(Value::Text(t)) => Ok(Some(t.clone())),
            Some(_) => Err(self.invalid(field, "is not text")),
            None => Ok(None),
        }
    }

    fn peer(&self, field: &'static str) -> Result<PeerId, ProtocolError> {
        self.id(field).map(PeerId)
    }

    /// An id chosen by the peer (peer, session, storage): text of at most
    /// [`MAX_ID_BYTES`]. Ids are echoed in every log line and relayed to
    /// other peers; a megabyte-long one was.
    fn id(&self, field: &'static str) -> Result<String, ProtocolError> {
        let id = self.text(field)?;
        if id.len() > MAX_ID_BYTES {
            return Err(self.invalid(field, "is longer than 256 bytes"));
        }
        Ok(id)
    }

    fn document_id(&self) -> Result<DocumentId, ProtocolError> {
        self.text("documentId")?.parse()
    }

    fn bytes(&self, field: &'static str) -> Result<Vec<u8>, ProtocolError> {
        match self.get(field) {
            Some(Value::Bytes(b)) => Ok(b.clone()),
            // A typed-array tag around the bytes (cbor-x may add one): unwrap it.
            Some(Value::Tag(_, inner)) => match inner.as_ref() {
                Value::Bytes(b) => Ok(b.clone()),
                _ => Err(self.invalid(field, "is not a byte string")),
            },
            Some(_) => Err(self.invalid(field, "is not a byte string")),
            None => Err(self.missing(field)),
        }
    }

    fn count(&self, field: &'static str) -> Result<u64, ProtocolError> {
        match self.get(field) {
            Some(v) => number_as_u64(v).ok_or_else(|| self.invalid(field, "is not a non-negative integer")),
            None => Err(self.missing(field)),
        }
    }

    fn text_list(&self, field: &'static str) -> Result<Vec<String>, ProtocolError> {
        match self.get(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::Text(t) => Ok(t.clone()),
                    _ => Err(self.invalid(field, "contains a non-text item")),
                })
                .collect(),
            Some(_) => Err(self.invalid(field, "is not a list")),
        }
    }

    fn metadata(&self) -> Result<Option<PeerMetadata>, ProtocolError> {
        // The published spec calls it `metadata`; the code sends `peerMetadata`.
        let (field, value) = match (self.get("peerMetadata"), self.get("metadata")) {
            (Some(v), _) => ("peerMetadata", v),
            (None, Some(v)) => ("metadata", v),
            (None, None) => return Ok(None),
        };
        let Value::Map(entries) = value else {
            return Err(self.invalid(field, "is not a map"));
        };
        let mut meta = PeerMetadata::default();
        for (k, v) in entries {
            match (k, v) {
                (Value::Text(k), Value::Text(s)) if k == "storageId" => {
                    if s.len() > MAX_ID_BYTES {
                        return Err(self.invalid(field, "has a storageId longer than 256 bytes"));
                    }
                    meta.storage_id = Some(StorageId(s.clone()));
                }
                (Value::Text(k), Value::Bool(b)) if k == "isEphemeral" => meta.is_ephemeral = *b,
                (Value::Text(k), Value::Null) if k == "storageId" => {}
                (Value::Text(k), _) if k == "storageId" || k == "isEphemeral" => {
                    return Err(self.invalid(field, "has a mistyped storageId or isEphemeral"));
                }
                _ => {}
            }
        }
        Ok(Some(meta))
    }

    /// The refusal part of an `error`, when it has one.
    fn refusal(&self) -> Result<Option<WireRefusal>, ProtocolError> {
        let Some(code) = self.opt_text("refusal")? else {
            return Ok(None);
        };
        let refused = self
            .text_list("refused")?
            .iter()
            .map(|h| h.parse::<automerge::ChangeHash>().map_err(|_| self.invalid("refused", "holds a malformed change hash")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(WireRefusal { document_id: self.document_id()?, code: RefusalCode::from_wire(&code), refused }))
    }

    fn into_message(self) -> Result<Message, ProtocolError> {
        let doc_message = |f: &Self| -> Result<DocMessage, ProtocolError> {
            Ok(DocMessage {
                sender_id: f.peer("senderId")?,
                target_id: f.peer("targetId")?,
                document_id: f.document_id()?,
                data: f.bytes("data")?,
            })
        };
        Ok(match self.message_type {
            "join" => Message::Join {
                sender_id: self.peer("senderId")?,
                peer_metadata: self.metadata()?,
                supported_protocol_versions: match self.get("supportedProtocolVersions") {
                    None => None,
                    Some(_) => Some(self.text_list("supportedProtocolVersions")?),
                },
            },
            "peer" => Message::Peer {
                sender_id: self.peer("senderId")?,
                target_id: self.peer("targetId")?,
                peer_metadata: self.metadata()?,
                selected_protocol_version: self
                    .opt_text("selectedProtocolVersion")?
                    .unwrap_or_else(|| PROTOCOL_VERSION.to_owned()),
            },
            "leave" => Message::Leave {
                sender_id: self.peer("senderId")?,
            },
            "error" => Message::Error {
                sender_id: self.opt_text("senderId")?.map(PeerId),
                target_id: self.opt_text("targetId")?.map(PeerId),
                message: self.opt_text("message")?.unwrap_or_default(),
                refusal: self.refusal()?,
            },
            "request" => Message::Request(doc_message(&self)?),
            "sync" => Message::Sync(doc_message(&self)?),
            "doc-unavailable" => Message::DocUnavailable {
                sender_id: self.peer("senderId")?,
                target_id: self.peer("targetId")?,
                document_id: self.document_id()?,
            },
            "ephemeral" => Message::Ephemeral(EphemeralMessage {
                sender_id: self.peer("senderId")?,
                target_id: self.peer("targetId")?,
                document_id: self.document_id()?,
                session_id: self.id("sessionId")?,
                count: self.count("count")?,
                data: self.bytes("data")?,
            }),
            "remote-subscription-change" => Message::RemoteSubscriptionChange {
                sender_id: self.peer("senderId")?,
                target_id: self.peer("targetId")?,
                add: self.text_list("add")?.into_iter().map(StorageId).collect(),
                remove: self.text_list("remove")?.into_iter().map(StorageId).collect(),
            },
            "remote-heads-changed" => Message::RemoteHeadsChanged {
                sender_id: self.peer("senderId")?,
                target_id: self.peer("targetId")?,
                document_id: self.document_id()?,
                new_heads: self.new_heads()?,
            },
            other => return Err(ProtocolError::UnknownType(other.to_owned())),
        })
    }

    fn new_heads(&self) -> Result<BTreeMap<StorageId, RemoteHeads>, ProtocolError> {
        let Some(value) = self.get("newHeads") else {
            return Ok(BTreeMap::new());
        };
        let Value::Map(entries) = value else {
            return Err(self.invalid("newHeads", "is not a map"));
        };
        let mut out = BTreeMap::new();
        for (storage, info) in entries {
            let (Value::Text(storage), Value::Map(info)) = (storage, info) else {
                return Err(self.invalid("newHeads", "is not a map of storage id to heads"));
            };
            let mut heads = RemoteHeads {
                heads: Vec::new(),
                timestamp: 0,
            };
            for (k, v) in info {
                match (k, v) {
                    (Value::Text(k), Value::Array(items)) if k == "heads" => {
                        for item in items {
                            let Value::Text(h) = item else {
                                return Err(self.invalid("newHeads", "has a non-text head"));
                            };
                            heads.heads.push(h.clone());
                        }
                    }
                    (Value::Text(k), v) if k == "timestamp" => {
                        heads.timestamp = number_as_u64(v)
                            .ok_or_else(|| self.invalid("newHeads", "has a bad timestamp"))?;
                    }
                    _ => {}
                }
            }
            out.insert(StorageId(storage.clone()), heads);
        }
        Ok(out)
    }
}

/// JS numbers may arrive as CBOR floats; accept integral, non-negative ones.
fn number_as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Integer(i) => u64::try_from(*i).ok(),
        Value::Float(f) if f.is_finite() && *f >= 0.0 && f.fract() == 0.0 && *f < 1.8e19 => {
            Some(*f as u64)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> DocumentId {
        DocumentId::from_random([9; 16])
    }

    fn round_trip(m: Message) {
        let bytes = m.encode();
        assert_eq!(Message::decode(&bytes, 1 << 20).expect("decodes"), m);
    }

    #[test]
    fn every_message_round_trips() {
        let a = PeerId::from("a");
        let b = PeerId::from("b");
        round_trip(Message::Join {
            sender_id: a.clone(),
            peer_metadata: Some(PeerMetadata {
                storage_id: Some(StorageId("s".into())),
                is_ephemeral: false,
            }),
            supported_protocol_versions: Some(vec!["1".into()]),
        });
        round_trip(Message::Peer {
            sender_id: a.clone(),
            target_id: b.clone(),
            peer_metadata: Some(PeerMetadata::default()),
            selected_protocol_version: "1".into(),
        });
        round_trip(Message::Leave { sender_id: a.clone() });
        round_trip(Message::Error {
            sender_id: Some(a.clone()),
            target_id: None,
            message: "boom".into(),
            refusal: None,
        });
        round_trip(Message::Error {
            sender_id: Some(a.clone()),
            target_id: Some(b.clone()),
            message: "changes refused".into(),
            refusal: Some(WireRefusal {
                document_id: DocumentId::from_bytes([7; 16]),
                code: RefusalCode::Decision,
                refused: vec![automerge::ChangeHash([9; 32])],
            }),
        });
        let dm = DocMessage {
            sender_id: a.clone(),
            target_id: b.clone(),
            document_id: doc(),
            data: vec![1, 2, 3],
        };
        round_trip(Message::Request(dm.clone()));
        round_trip(Message::Sync(dm));
        round_trip(Message::DocUnavailable {
            sender_id: a.clone(),
            target_id: b.clone(),
            document_id: doc(),
        });
        round_trip(Message::Ephemeral(EphemeralMessage {
            sender_id: a.clone(),
            target_id: b.clone(),
            document_id: doc(),
            session_id: "sess".into(),
            count: 42,
            data: vec![0xa0],
        }));
        round_trip(Message::RemoteSubscriptionChange {
            sender_id: a.clone(),
            target_id: b.clone(),
            add: vec![StorageId("x".into())],
            remove: vec![],
        });
        let mut heads = BTreeMap::new();
        heads.insert(
            StorageId("x".into()),
            RemoteHeads {
                heads: vec!["h".into()],
                timestamp: 5,
            },
        );
        round_trip(Message::RemoteHeadsChanged {
            sender_id: a,
            target_id: b,
            document_id: doc(),
            new_heads: heads,
        });
    }

    fn encode_value(v: Value) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::ser::into_writer(&v, &mut out).expect("encodes");
        out
    }

    #[test]
    fn tolerates_what_the_js_client_sends() {
        // count as a float, storageId undefined, null lists, unknown keys.
        let eph = encode_value(Value::Map(vec![
            (text("type"), text("ephemeral")),
            (text("senderId"), text("a")),
            (text("targetId"), text("b")),
            (text("documentId"), text(&doc().to_string())),
            (text("sessionId"), text("s")),
            (text("count"), Value::Float(3.0)),
            (text("data"), Value::Bytes(vec![1])),
            (text("somethingNew"), Value::Bool(true)),
        ]));
        match Message::decode(&eph, 1024).expect("decodes") {
            Message::Ephemeral(e) => assert_eq!(e.count, 3),
            other => panic!("unexpected {other:?}"),
        }
        let mut join = encode_value(Value::Map(vec![
            (text("type"), text("join")),
            (text("senderId"), text("a")),
            (
                text("peerMetadata"),
                Value::Map(vec![
                    (text("storageId"), Value::Null),
                    (text("isEphemeral"), Value::Bool(true)),
                ]),
            ),
        ]));
        // Turn the one CBOR null (0xf6) into undefined (0xf7), as cbor-x sends it.
        let null_at = join.iter().position(|b| *b == 0xf6).expect("has a null");
        join[null_at] = 0xf7;
        match Message::decode(&join, 1024).expect("decodes") {
            Message::Join {
                peer_metadata,
                supported_protocol_versions,
                ..
            } => {
                assert_eq!(
                    peer_metadata,
                    Some(PeerMetadata {
                        storage_id: None,
                        is_ephemeral: true
                    })
                );
                assert_eq!(supported_protocol_versions, None);
            }
            other => panic!("unexpected {other:?}"),
        }
        let rsc = encode_value(Value::Map(vec![
            (text("type"), text("remote-subscription-change")),
            (text("senderId"), text("a")),
            (text("targetId"), text("b")),
            (text("add"), Value::Null),
        ]));
        assert!(matches!(
            Message::decode(&rsc, 1024),
            Ok(Message::RemoteSubscriptionChange { add, remove, .. }) if add.is_empty() && remove.is_empty()
        ));
    }

    #[test]
    fn rejects_bad_input_with_typed_errors() {
        assert!(matches!(
            Message::decode(&[0xff, 0x00], 1024),
            Err(ProtocolError::MalformedCbor(_))
        ));
        assert!(matches!(
            Message::decode(&encode_value(Value::Integer(1.into())), 1024),
            Err(ProtocolError::NotAMessage(_))
        ));
        assert!(matches!(
            Message::decode(
                &encode_value(Value::Map(vec![(text("type"), text("gossip"))])),
                1024
            ),
            Err(ProtocolError::UnknownType(t)) if t == "gossip"
        ));
        assert!(matches!(
            Message::decode(&[0u8; 2048], 1024),
            Err(ProtocolError::TooLarge { size: 2048, limit: 1024 })
        ));
        let wrong = encode_value(Value::Map(vec![
            (text("type"), text("sync")),
            (text("senderId"), text("a")),
            (text("targetId"), text("b")),
            (text("documentId"), text(&doc().to_string())),
            (text("data"), text("not bytes")),
        ]));
        assert!(matches!(
            Message::decode(&wrong, 1024),
            Err(ProtocolError::InvalidField { field: "data", .. })
        ));
        let negative = encode_value(Value::Map(vec![
            (text("type"), text("ephemeral")),
            (text("senderId"), text("a")),
            (text("targetId"), text("b")),
            (text("documentId"), text(&doc().to_string())),
            (text("sessionId"), text("s")),
            (text("count"), Value::Float(-1.5)),
            (text("data"), Value::Bytes(vec![])),
        ]));
        assert!(matches!(
            Message::decode(&negative, 1024),
            Err(ProtocolError::InvalidField { field: "count", .. })
        ));
    }
}
