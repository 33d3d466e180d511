//! Access-control records, beside the documents in the same sled database:
//! tokens (stored only as SHA-256 hashes, computed by the caller), which
//! process each document belongs to, which member each Automerge actor belongs
//! to, and who delivered every accepted change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sled::Transactional;

use konsens_sync::DocumentId;

use crate::StoreError;

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

/// Actor → member bindings claimed in memory and not yet written to sled.
pub(crate) type PendingActors = Arc<Mutex<HashMap<Vec<u8>, String>>>;

/// Typed access to the access-control trees.
#[derive(Debug, Clone)]
pub struct AuthStore {
    tokens: sled::Tree,
    token_ids: sled::Tree,
    doc_process: sled::Tree,
    actors: sled::Tree,
    provenance: sled::Tree,
    /// Token id → up to when (ms) its member has seen the notifications.
    notifications_seen: sled::Tree,
    /// Claims made on an async worker wait here until the group-commit
    /// thread has written them, so every reader sees a claim at once.
    pending_actors: PendingActors,
}

fn lock_pending(pending: &PendingActors) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, String>> {
    // The map is only inserted into and removed from; a panic cannot leave it half-updated.
    pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn decode<T: for<'de> Deserialize<'de>>(tree: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::BadRecord { tree, reason: e.to_string() })
}

fn encode<T: Serialize>(tree: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::BadRecord { tree, reason: e.to_string() })
}

impl AuthStore {
    pub(crate) fn open(db: &sled::Db, pending_actors: PendingActors) -> Result<Self, StoreError> {
        Ok(Self {
            tokens: db.open_tree("auth-tokens")?,
            token_ids: db.open_tree("auth-token-ids")?,
            doc_process: db.open_tree("auth-doc-process")?,
            actors: db.open_tree("auth-actors")?,
            provenance: db.open_tree("auth-provenance")?,
            notifications_seen: db.open_tree("auth-notifications-seen")?,
            pending_actors,
        })
    }

    /// Store a new token record under the hash of its secret.
    pub fn put_token(&self, hash: &str, record: &TokenRecord) -> Result<(), StoreError> {
        self.tokens.insert(hash.as_bytes(), encode("auth-tokens", record)?)?;
        self.token_ids.insert(record.id.as_bytes(), hash.as_bytes())?;
        self.tokens.flush()?;
        Ok(())
    }

    /// Store several new token records at once: all or none (a bulk invitation).
    pub fn put_tokens(&self, tokens: &[(String, TokenRecord)]) -> Result<(), StoreError> {
        let mut records = sled::Batch::default();
        let mut ids = sled::Batch::default();
        for (hash, record) in tokens {
            records.insert(hash.as_bytes(), encode("auth-tokens", record)?);
            ids.insert(record.id.as_bytes(), hash.as_bytes());
        }
        (&self.tokens, &self.token_ids)
            .transaction(|(tokens, token_ids)| {
                tokens.apply_batch(&records)?;
                token_ids.apply_batch(&ids)?;
                Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                sled::transaction::TransactionError::Storage(e) => StoreError::from(e),
                sled::transaction::TransactionError::Abort(()) => StoreError::BadRecord { tree: "auth-tokens", reason: "batch aborted".into() },
            })?;
        self.tokens.flush()?;
        Ok(())
    }

    /// A token record by its public id.
    pub fn token_by_id(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        let Some(hash) = self.token_ids.get(id.as_bytes())? else {
            return Ok(None);
        };
        self.tokens.get(&hash)?.map(|b| decode("auth-tokens", &b)).transpose()
    }

    /// Note that a token was used at `now`: sets when it joined, the first
    /// time, and when it was last seen, unless that was less than
    /// `granularity` ago (so a busy member does not write on every request).
    /// Returns whether anything was written.
    pub fn mark_seen(&self, id: &str, now: i64, granularity: i64) -> Result<bool, StoreError> {
        let Some(hash) = self.token_ids.get(id.as_bytes())? else {
            return Ok(false);
        };
        let Some(bytes) = self.tokens.get(&hash)? else {
            return Ok(false);
        };
        let mut record: TokenRecord = decode("auth-tokens", &bytes)?;
        if record.joined_at.is_some() && record.last_seen.is_some_and(|seen| now - seen < granularity) {
            return Ok(false);
        }
        record.joined_at.get_or_insert(now);
        record.last_seen = Some(now);
        // Only if nobody changed it meanwhile (a revocation must not be undone).
        let swapped = self.tokens.compare_and_swap(&hash, Some(bytes), Some(encode("auth-tokens", &record)?))?;
        Ok(swapped.is_ok())
    }

    /// Up to when (ms) a token's member has seen their notifications.
    pub fn notifications_seen(&self, id: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.notifications_seen.get(id.as_bytes())?.and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok()).map(i64::from_be_bytes))
    }

    /// Record that a token's member has seen their notifications up to `at`
    /// (never moved back: two devices may report out of order).
    pub fn mark_notifications_seen(&self, id: &str, at: i64) -> Result<(), StoreError> {
        self.notifications_seen.fetch_and_update(id.as_bytes(), |old| {
            let old = old.and_then(|v| <[u8; 8]>::try_from(v).ok()).map(i64::from_be_bytes);
            Some(old.map_or(at, |o| o.max(at)).to_be_bytes().to_vec())
        })?;
        Ok(())
    }

    /// Give a token a new secret (its hash `new_hash`): the old secret stops
    /// working at once, the member, role and id stay. Returns the record.
    pub fn reissue(&self, id: &str, new_hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let Some(old_hash) = self.token_ids.get(id.as_bytes())? else {
            return Ok(None);
        };
        let Some(bytes) = self.tokens.get(&old_hash)? else {
            return Ok(None);
        };
        let record: TokenRecord = decode("auth-tokens", &bytes)?;
        (&self.tokens, &self.token_ids)
            .transaction(|(tokens, token_ids)| {
                tokens.remove(&old_hash)?;
                tokens.insert(new_hash.as_bytes(), bytes.clone())?;
                token_ids.insert(id.as_bytes(), new_hash.as_bytes())?;
                Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                sled::transaction::TransactionError::Storage(e) => StoreError::from(e),
                sled::transaction::TransactionError::Abort(()) => StoreError::BadRecord { tree: "auth-tokens", reason: "reissue aborted".into() },
            })?;
        self.tokens.flush()?;
        Ok(Some(record))
    }

    pub fn token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.tokens.get(hash.as_bytes())?.map(|b| decode("auth-tokens", &b)).transpose()
    }

    /// Mark a token revoked; returns its record, if it exists.
    pub fn revoke(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        let Some(hash) = self.token_ids.get(id.as_bytes())? else {
            return Ok(None);
        };
        let Some(bytes) = self.tokens.get(&hash)? else {
            return Ok(None);
        };
        let mut record: TokenRecord = decode("auth-tokens", &bytes)?;
        record.revoked = true;
        self.tokens.insert(&hash, encode("auth-tokens", &record)?)?;
        self.tokens.flush()?;
        Ok(Some(record))
    }

    /// Every token record (for listing members; small).
    pub fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.tokens.iter().values().map(|v| decode("auth-tokens", &v?)).collect()
    }

    pub fn has_admin(&self) -> Result<bool, StoreError> {
        Ok(self.tokens()?.iter().any(|t| t.kind == TokenKind::Admin && !t.revoked))
    }

    /// Record which process a document belongs to (first writer wins).
    pub fn set_document_process(&self, document: &DocumentId, process: &DocumentId) -> Result<(), StoreError> {
        let _ = self
            .doc_process
            .compare_and_swap(document.as_bytes(), None as Option<&[u8]>, Some(&process.as_bytes()[..]))?;
        Ok(())
    }

    pub fn document_process(&self, document: &DocumentId) -> Result<Option<DocumentId>, StoreError> {
        Ok(self.doc_process.get(document.as_bytes())?.and_then(|v| {
            <[u8; 16]>::try_from(v.as_ref()).ok().map(DocumentId::from_bytes)
        }))
    }

    /// Every process (documents that belong to themselves).
    pub fn processes(&self) -> Result<Vec<DocumentId>, StoreError> {
        let mut out = Vec::new();
        for entry in self.doc_process.iter() {
            let (k, v) = entry?;
            if k == v
                && let Ok(bytes) = <[u8; 16]>::try_from(k.as_ref())
            {
                out.push(DocumentId::from_bytes(bytes));
            }
        }
        Ok(out)
    }

    /// The member an actor belongs to (claimed or written).
    pub fn actor_owner(&self, actor: &[u8]) -> Result<Option<String>, StoreError> {
        if let Some(owner) = lock_pending(&self.pending_actors).get(actor) {
            return Ok(Some(owner.clone()));
        }
        Ok(self.actors.get(actor)?.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Claim an actor for a member in memory, unless somebody owns it
    /// already; returns its owner. The claim is written to sled by the
    /// group-commit thread ([`crate::Record::BindActor`]), which then drops it
    /// from memory. Two documents admitting the same new actor for different
    /// members at once are decided here: the second sees the first's claim.
    pub fn claim_actor(&self, actor: &[u8], participant: &str) -> Result<String, StoreError> {
        let mut pending = lock_pending(&self.pending_actors);
        if let Some(owner) = pending.get(actor) {
            return Ok(owner.clone());
        }
        if let Some(owner) = self.actors.get(actor)? {
            return Ok(String::from_utf8_lossy(&owner).into_owned());
        }
        pending.insert(actor.to_vec(), participant.to_owned());
        Ok(participant.to_owned())
    }

    /// Write a claimed binding (on the group-commit thread), then forget the claim.
    pub(crate) fn write_claim(&self, actor: &[u8], participant: &str) -> Result<(), StoreError> {
        let written = self.bind_actor(actor, participant);
        let mut pending = lock_pending(&self.pending_actors);
        // On failure the claim stays in memory, so it still holds until restart.
        if written.is_ok() && pending.get(actor).is_some_and(|p| p == participant) {
            pending.remove(actor);
        }
        written
    }

    /// Bind an actor to a member, unless it is bound already.
    pub fn bind_actor(&self, actor: &[u8], participant: &str) -> Result<(), StoreError> {
        let _ = self.actors.compare_and_swap(actor, None as Option<&[u8]>, Some(participant.as_bytes()))?;
        Ok(())
    }

    /// Record who delivered a change (written with the document's next flush).
    pub fn record_provenance(&self, document: &DocumentId, change: &[u8; 32], provenance: &Provenance) -> Result<(), StoreError> {
        let mut key = Vec::with_capacity(48);
        key.extend_from_slice(document.as_bytes());
        key.extend_from_slice(change);
        self.provenance.insert(key, encode("auth-provenance", provenance)?)?;
        Ok(())
    }

    pub fn provenance(&self, document: &DocumentId, change: &[u8; 32]) -> Result<Option<Provenance>, StoreError> {
        let mut key = Vec::with_capacity(48);
        key.extend_from_slice(document.as_bytes());
        key.extend_from_slice(change);
        self.provenance.get(key)?.map(|v| decode("auth-provenance", &v)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A member token as written while role and process were strings.
    fn old_member_json(process: &DocumentId) -> String {
        format!(
            r#"{{"id":"t-00000000002a","kind":"member","process":"{process}","participant":"p-1","name":"Ada","organisation":"BMBF","role":"facilitator","created_at":1700000000000,"expires_at":null,"revoked":false,"created_by":"admin:t-1"}}"#
        )
    }

    const OLD_ADMIN_JSON: &str = r#"{"id":"t-000000000001","kind":"admin","process":null,"participant":"admin:t-000000000001","name":"root","organisation":"","role":"admin","created_at":1700000000000,"expires_at":null,"revoked":false,"created_by":null}"#;

    #[test]
    fn records_written_with_string_role_and_process_still_read_and_write_alike() {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        let store = AuthStore::open(&db, PendingActors::default()).expect("trees");
        let process = DocumentId::from_bytes([7; 16]);
        let member = old_member_json(&process);
        store.tokens.insert("member-hash", member.as_bytes()).expect("insert");
        store.tokens.insert("admin-hash", OLD_ADMIN_JSON.as_bytes()).expect("insert");

        let record = store.token("member-hash").expect("reads").expect("there");
        assert_eq!(record.role, TokenRole::Facilitator);
        assert_eq!(record.process, Some(process));
        assert_eq!(record.kind, TokenKind::Member);
        let admin = store.token("admin-hash").expect("reads").expect("there");
        assert_eq!((admin.kind, admin.role, admin.process), (TokenKind::Admin, TokenRole::Admin, None));

        // Written back, byte for byte the old form.
        assert_eq!(String::from_utf8(encode("auth-tokens", &record).expect("encodes")).expect("utf-8"), member);
        assert_eq!(String::from_utf8(encode("auth-tokens", &admin).expect("encodes")).expect("utf-8"), OLD_ADMIN_JSON);
    }

    fn member(id: &str) -> TokenRecord {
        TokenRecord {
            id: id.into(),
            kind: TokenKind::Member,
            process: Some(DocumentId::from_bytes([7; 16])),
            participant: format!("p-{id}"),
            name: id.into(),
            organisation: "O".into(),
            role: TokenRole::Participant,
            created_at: 1,
            expires_at: None,
            revoked: false,
            created_by: None,
            joined_at: None,
            last_seen: None,
            email: None,
        }
    }

    #[test]
    fn joining_is_recorded_once_and_last_seen_coarsely() {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        let store = AuthStore::open(&db, PendingActors::default()).expect("trees");
        store.put_tokens(&[("h1".into(), member("t1")), ("h2".into(), member("t2"))]).expect("put");
        assert!(store.mark_seen("t1", 1_000, 300_000).expect("seen"));
        assert!(!store.mark_seen("t1", 2_000, 300_000).expect("seen"), "within the granularity nothing is written");
        assert!(store.mark_seen("t1", 400_000, 300_000).expect("seen"));
        let record = store.token("h1").expect("reads").expect("there");
        assert_eq!((record.joined_at, record.last_seen), (Some(1_000), Some(400_000)));
        assert_eq!(store.token("h2").expect("reads").expect("there").joined_at, None);
        assert!(!store.mark_seen("t-unknown", 1, 1).expect("no such token"));
    }

    #[test]
    fn a_reissued_token_answers_to_the_new_secret_only() {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        let store = AuthStore::open(&db, PendingActors::default()).expect("trees");
        store.put_token("old", &member("t1")).expect("put");
        let record = store.reissue("t1", "new").expect("reissue").expect("there");
        assert_eq!(record.participant, "p-t1");
        assert_eq!(store.token("old").expect("reads"), None);
        assert_eq!(store.token("new").expect("reads").map(|r| r.id), Some("t1".into()));
        assert_eq!(store.token_by_id("t1").expect("reads").map(|r| r.participant), Some("p-t1".into()));
        assert_eq!(store.reissue("t-unknown", "x").expect("no such token"), None);
    }

    #[test]
    fn every_role_keeps_its_stored_name() {
        for role in [TokenRole::Admin, TokenRole::Facilitator, TokenRole::Participant, TokenRole::Observer] {
            assert_eq!(serde_json::to_string(&role).expect("encodes"), format!("\"{}\"", role.as_str()));
        }
    }
}
