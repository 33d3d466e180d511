//! The `error` messages the server sends, built in one place on konsens-sync's
//! constructors ([`Message::error`], [`Message::refusal`]).

use konsens_model::access;
use konsens_sync::{DocumentId, Message, PeerId};

/// An `error` from us to `target` (none before the peer has joined).
pub(crate) fn error(ours: &PeerId, target: Option<&PeerId>, text: impl std::fmt::Display) -> Message {
    Message::error(Some(ours.clone()), target.cloned(), text.to_string())
}

/// An `error` carrying a typed refusal of changes to `document`.
pub(crate) fn refusal(ours: &PeerId, target: &PeerId, refused: &access::Refused, document: DocumentId) -> Message {
    Message::refusal(Some(ours.clone()), Some(target.clone()), refused.message(document), refused.wire(document))
}
