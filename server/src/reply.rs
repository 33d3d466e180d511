//! The `error` messages the server sends, built in one place.
// konsens-sync is adding `Message::error` constructors; use them here then.

use konsens_model::access;
use konsens_sync::{DocumentId, Message, PeerId};

/// An `error` from us to `target` (none before the peer has joined).
pub(crate) fn error(ours: &PeerId, target: Option<&PeerId>, text: impl std::fmt::Display) -> Message {
    Message::Error {
        sender_id: Some(ours.clone()),
        target_id: target.cloned(),
        message: text.to_string(),
        refusal: None,
    }
}

/// An `error` carrying a typed refusal of changes to `document`.
pub(crate) fn refusal(ours: &PeerId, target: &PeerId, refused: &access::Refused, document: DocumentId) -> Message {
    Message::Error {
        sender_id: Some(ours.clone()),
        target_id: Some(target.clone()),
        message: refused.message(document),
        refusal: Some(refused.wire(document)),
    }
}
