//! Documents a connection may not read, and documents that do not exist,
//! answered by the connection itself, alike, without starting an owner.
//!
//! Requests for random ids used to start an owner task each (26,000 in ten
//! seconds from one token, 371 MiB). Now a document that does not exist
//! costs a lookup and an answer, and nothing is kept; the token pays from a
//! budget of such answers (`Hub::charge_miss`).
//!
//! The answers must not tell a document of another process from a missing
//! one. Both are answered here, by the same code: what a fresh engine for an
//! empty document answers (`doc-unavailable` to a `request`, a sync reply to
//! a `sync`), and for changes, the refusal a creation would get. Changes that
//! would create a document where one exists get `doc-unavailable`; telling
//! those apart needs a valid creation under an id one already knows, which
//! only leaks that the id is taken.

use automerge::{Automerge, sync};
use konsens_model::access;
use konsens_sync::{ConnectionId, DocEffect, DocEngine, DocInput, DocumentId, Message, PeerId, Role};

use crate::auth::Principal;
use crate::hub::Hub;
use crate::reply;

/// Where a `sync` or `request` goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// A document the connection may read that exists (or is loaded): its owner.
    Owner,
    /// Nothing by that id: answered here; changes go to an owner, since they
    /// may create the document.
    Missing,
    /// A document the connection may not read: answered here, as if missing.
    Unreadable,
}

/// Decide where a message about `id` goes. Lookups only: nothing is loaded.
pub(crate) fn route(hub: &Hub, principal: &Principal, id: &DocumentId) -> Route {
    let loaded = hub.is_loaded(id);
    let readable = hub.auth.can_read(principal, id);
    let exists = loaded || hub.auth.is_registered(id) || hub.store.contains(id).unwrap_or(true);
    match (readable, exists) {
        (true, true) => Route::Owner,
        (_, false) => Route::Missing,
        (false, true) => Route::Unreadable,
    }
}

/// What the owner of an empty document `id` would send back for `message`
/// from `sender` on `conn`.
pub(crate) fn answer_as_empty(hub: &Hub, conn: ConnectionId, sender: &PeerId, id: DocumentId, message: sync::Message, request: bool) -> Vec<Message> {
    let mut engine = DocEngine::new(id, hub.handshake.our_peer_id.clone(), Role::Server);
    engine
        .handle([DocInput::Sync { conn, sender: sender.clone(), message, request }])
        .into_iter()
        .filter_map(|effect| match effect {
            DocEffect::Send { message, .. } => Some(message),
            _ => None,
        })
        .collect()
}

/// Changes for a document the sender may not read: the refusal they would
/// get if the document did not exist, or `doc-unavailable` where they would
/// have created it.
pub(crate) fn answer_changes_as_missing(hub: &Hub, principal: &Principal, sender: &PeerId, id: DocumentId, sync: &sync::Message) -> Message {
    let unavailable = Message::DocUnavailable {
        sender_id: hub.handshake.our_peer_id.clone(),
        target_id: sender.clone(),
        document_id: id,
    };
    let empty = Automerge::new();
    let refused = match access::incoming_changes(&empty, sync) {
        Err(reason) => Some(access::Refused { reason, changes: Vec::new() }),
        Ok(changes) if changes.is_empty() => None,
        Ok(changes) => {
            let limit = hub.config.limits.max_document_bytes;
            let size: usize = changes.iter().map(|c| c.raw_bytes().len()).sum();
            if size > limit {
                let hashes = changes.iter().map(|c| c.hash()).collect();
                Some(access::Refused { reason: access::Refusal::DocumentTooLarge { limit }, changes: hashes })
            } else {
                let store = &hub.auth.store;
                let owner_of = |actor: &automerge::ActorId| store.actor_owner(actor.to_bytes()).ok().flatten();
                access::admit(id, &empty, &changes, &principal.sender(), &owner_of).err()
            }
        }
    };
    match refused {
        Some(refused) => {
            // The line an owner logs for a refused creation.
            tracing::warn!(document = %id, participant = %principal.participant, role = principal.role_name(), code = %refused.reason.code(), reason = %refused.reason, "refused changes");
            reply::refusal(&hub.handshake.our_peer_id, sender, &refused, id)
        }
        None => unavailable,
    }
}
