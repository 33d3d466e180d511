//! Access-control records, beside the documents in the same database:
//! tokens (stored only as SHA-256 hashes, computed by the caller), which
//! process each document belongs to, which member each Automerge actor belongs
//! to, and who delivered every accepted change. The records' types and the
//! [`AuthStore`] handle; each backend stores them its own way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use konsens_sync::DocumentId;

use crate::StoreError;
use crate::backend::Backend;

/// Whose token it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// Server administrator.
    Admin,
    /// A member of one process.
    Member,
}

/// The role a token grants, stored by its lowercase name (the names the
/// server's access rules use; the store does not know those rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenRole {
    /// A server administrator's token ([`TokenKind::Admin`]).
    Admin,
    Facilitator,
    Participant,
    Observer,
}

impl TokenRole {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRole::Admin => "admin",
            TokenRole::Facilitator => "facilitator",
            TokenRole::Participant => "participant",
            TokenRole::Observer => "observer",
        }
    }
}

impl std::fmt::Display for TokenRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token, as stored (the token itself is never stored, only its hash).
/// JSON, with the role by name and the process as its bs58check id, as
/// records were written before these fields were typed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Public id for listing and revoking (not a secret).
    pub id: String,
    pub kind: TokenKind,
    /// The process a member token belongs to (stored as its bs58check id).
    #[serde(with = "process_id")]
    pub process: Option<DocumentId>,
    pub participant: String,
    pub name: String,
    pub organisation: String,
    /// A member's role in its process (admins: [`TokenRole::Admin`]).
    pub role: TokenRole,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked: bool,
    pub created_by: Option<String>,
    /// When the member first used the token (accepted the link or called the
    /// API), milliseconds since the epoch; absent while only invited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined_at: Option<i64>,
    /// When the token was last used, to a few minutes (see [`AuthStore::mark_seen`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<i64>,
    /// The e-mail address a facilitator gave when inviting, for their own records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// `Option<DocumentId>` as its bs58check text (or `null`).
mod process_id {
    use konsens_sync::DocumentId;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(process: &Option<DocumentId>, serializer: S) -> Result<S::Ok, S::Error> {
        match process {
            Some(id) => serializer.collect_str(id),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<DocumentId>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| text.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Who delivered a change, as recorded when it was accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The member the change's actor belongs to.
    pub author: String,
    /// The member whose connection delivered it.
    pub delivered_by: String,
    /// Set when a facilitator relayed someone else's change.
    pub merged_by: Option<String>,
    /// When it was accepted, milliseconds since the epoch.
    pub at: i64,
}

impl TokenRecord {
    /// Whether [`AuthStore::mark_seen`] at `now` has anything to write.
    pub(crate) fn needs_seen_update(&self, now: i64, granularity: i64) -> bool {
        self.joined_at.is_none() || self.last_seen.is_none_or(|seen| now - seen >= granularity)
    }
}

/// Actor → member bindings claimed in memory and not yet written.
pub(crate) type PendingActors = Arc<Mutex<HashMap<Vec<u8>, String>>>;

/// Typed access to the access-control records.
#[derive(Debug, Clone)]
pub struct AuthStore {
    backend: Arc<dyn Backend>,
    /// Claims made on an async worker wait here until the group-commit
    /// thread has written them, so every reader sees a claim at once.
    pending_actors: PendingActors,
}

fn lock_pending(pending: &PendingActors) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, String>> {
    // The map is only inserted into and removed from; a panic cannot leave it half-updated.
    pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(tree: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::BadRecord { tree, reason: e.to_string() })
}

pub(crate) fn encode<T: Serialize>(tree: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::BadRecord { tree, reason: e.to_string() })
}

impl AuthStore {
    pub(crate) fn new(backend: Arc<dyn Backend>, pending_actors: PendingActors) -> Self {
        Self { backend, pending_actors }
    }

    /// Store a new token record under the hash of its secret (durable).
    pub fn put_token(&self, hash: &str, record: &TokenRecord) -> Result<(), StoreError> {
        self.backend.put_tokens(&[(hash.to_owned(), record.clone())])
    }

    /// Store several new token records at once: all or none (a bulk invitation).
    pub fn put_tokens(&self, tokens: &[(String, TokenRecord)]) -> Result<(), StoreError> {
        self.backend.put_tokens(tokens)
    }

    /// A token record by its public id.
    pub fn token_by_id(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.backend.token_by_id(id)
    }

    /// Note that a token was used at `now`: sets when it joined, the first
    /// time, and when it was last seen, unless that was less than
    /// `granularity` ago (so a busy member does not write on every request).
    /// Returns whether anything was written. A record changed meanwhile
    /// (revoked, say) is left as it is.
    pub fn mark_seen(&self, id: &str, now: i64, granularity: i64) -> Result<bool, StoreError> {
        self.backend.mark_seen(id, now, granularity)
    }

    /// Up to when (ms) a token's member has seen their notifications.
    pub fn notifications_seen(&self, id: &str) -> Result<Option<i64>, StoreError> {
        self.backend.notifications_seen(id)
    }

    /// Record that a token's member has seen their notifications up to `at`
    /// (never moved back: two devices may report out of order).
    pub fn mark_notifications_seen(&self, id: &str, at: i64) -> Result<(), StoreError> {
        self.backend.mark_notifications_seen(id, at)
    }

    /// Give a token a new secret (its hash `new_hash`): the old secret stops
    /// working at once, the member, role and id stay. Returns the record.
    pub fn reissue(&self, id: &str, new_hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.backend.reissue(id, new_hash)
    }

    pub fn token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.backend.token(hash)
    }

    /// Mark a token revoked; returns its record, if it exists.
    pub fn revoke(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.backend.revoke(id)
    }

    /// Every token record (for listing members; small).
    pub fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        Ok(self.backend.token_entries()?.into_iter().map(|(_, record)| record).collect())
    }

    /// Every token record with the hash of its secret (for copying a store).
    pub fn token_entries(&self) -> Result<Vec<(String, TokenRecord)>, StoreError> {
        self.backend.token_entries()
    }

    pub fn has_admin(&self) -> Result<bool, StoreError> {
        Ok(self.tokens()?.iter().any(|t| t.kind == TokenKind::Admin && !t.revoked))
    }

    /// Record which process a document belongs to (first writer wins).
    pub fn set_document_process(&self, document: &DocumentId, process: &DocumentId) -> Result<(), StoreError> {
        self.backend.set_document_process(document, process)
    }

    pub fn document_process(&self, document: &DocumentId) -> Result<Option<DocumentId>, StoreError> {
        self.backend.document_process(document)
    }

    /// Every (document, process) pair.
    pub fn document_processes(&self) -> Result<Vec<(DocumentId, DocumentId)>, StoreError> {
        self.backend.document_processes()
    }

    /// Every process (documents that belong to themselves).
    pub fn processes(&self) -> Result<Vec<DocumentId>, StoreError> {
        Ok(self
            .backend
            .document_processes()?
            .into_iter()
            .filter_map(|(document, process)| (document == process).then_some(document))
            .collect())
    }

    /// The member an actor belongs to (claimed or written).
    pub fn actor_owner(&self, actor: &[u8]) -> Result<Option<String>, StoreError> {
        if let Some(owner) = lock_pending(&self.pending_actors).get(actor) {
            return Ok(Some(owner.clone()));
        }
        self.backend.actor_owner(actor)
    }

    /// Claim an actor for a member in memory, unless somebody owns it
    /// already; returns its owner. The claim is written by the group-commit
    /// thread ([`crate::Record::BindActor`]), which then drops it from
    /// memory. Two documents admitting the same new actor for different
    /// members at once are decided here: the second sees the first's claim.
    pub fn claim_actor(&self, actor: &[u8], participant: &str) -> Result<String, StoreError> {
        let mut pending = lock_pending(&self.pending_actors);
        if let Some(owner) = pending.get(actor) {
            return Ok(owner.clone());
        }
        if let Some(owner) = self.backend.actor_owner(actor)? {
            return Ok(owner);
        }
        pending.insert(actor.to_vec(), participant.to_owned());
        Ok(participant.to_owned())
    }

    /// A claim is written (on the group-commit thread): forget it. A claim
    /// whose write failed stays in memory, so it still holds until restart.
    pub(crate) fn forget_claim(&self, actor: &[u8], participant: &str) {
        let mut pending = lock_pending(&self.pending_actors);
        if pending.get(actor).is_some_and(|p| p == participant) {
            pending.remove(actor);
        }
    }

    /// Bind an actor to a member, unless it is bound already.
    pub fn bind_actor(&self, actor: &[u8], participant: &str) -> Result<(), StoreError> {
        self.backend.bind_actor(actor, participant)
    }

    /// Every written (actor, member) binding.
    pub fn actor_bindings(&self) -> Result<Vec<(Vec<u8>, String)>, StoreError> {
        self.backend.actor_bindings()
    }

    /// Record who delivered a change (durable with the store's next flush).
    pub fn record_provenance(&self, document: &DocumentId, change: &[u8; 32], provenance: &Provenance) -> Result<(), StoreError> {
        self.backend.record_provenance(document, change, provenance)
    }

    pub fn provenance(&self, document: &DocumentId, change: &[u8; 32]) -> Result<Option<Provenance>, StoreError> {
        self.backend.provenance(document, change)
    }

    /// Every provenance record.
    pub fn provenance_entries(&self) -> Result<Vec<(DocumentId, [u8; 32], Provenance)>, StoreError> {
        self.backend.provenance_entries()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_keeps_its_stored_name() {
        for role in [TokenRole::Admin, TokenRole::Facilitator, TokenRole::Participant, TokenRole::Observer] {
            assert_eq!(serde_json::to_string(&role).expect("encodes"), format!("\"{}\"", role.as_str()));
        }
    }
}
