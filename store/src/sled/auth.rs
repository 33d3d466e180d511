//! The access records in sled: tokens by hash (and their public ids), each
//! document's process, actor bindings and provenance, one tree each.

use sled::Transactional;

use konsens_sync::DocumentId;

use crate::StoreError;
use crate::auth::{Provenance, TokenRecord, decode, encode};

#[derive(Debug, Clone)]
pub(super) struct SledAuth {
    tokens: sled::Tree,
    token_ids: sled::Tree,
    doc_process: sled::Tree,
    actors: sled::Tree,
    provenance: sled::Tree,
    /// Token id → up to when (ms) its member has seen the notifications.
    notifications_seen: sled::Tree,
}

fn provenance_key(document: &DocumentId, change: &[u8; 32]) -> Vec<u8> {
    let mut key = Vec::with_capacity(48);
    key.extend_from_slice(document.as_bytes());
    key.extend_from_slice(change);
    key
}

fn transaction_error(what: &'static str) -> impl Fn(sled::transaction::TransactionError<()>) -> StoreError {
    move |e| match e {
        sled::transaction::TransactionError::Storage(e) => StoreError::from(e),
        sled::transaction::TransactionError::Abort(()) => StoreError::BadRecord { tree: "auth-tokens", reason: format!("{what} aborted") },
    }
}

impl SledAuth {
    pub(super) fn open(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(Self {
            tokens: db.open_tree("auth-tokens")?,
            token_ids: db.open_tree("auth-token-ids")?,
            doc_process: db.open_tree("auth-doc-process")?,
            actors: db.open_tree("auth-actors")?,
            provenance: db.open_tree("auth-provenance")?,
            notifications_seen: db.open_tree("auth-notifications-seen")?,
        })
    }

    pub(super) fn notifications_seen(&self, id: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.notifications_seen.get(id.as_bytes())?.and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok()).map(i64::from_be_bytes))
    }

    pub(super) fn mark_notifications_seen(&self, id: &str, at: i64) -> Result<(), StoreError> {
        self.notifications_seen.fetch_and_update(id.as_bytes(), |old| {
            let old = old.and_then(|v| <[u8; 8]>::try_from(v).ok()).map(i64::from_be_bytes);
            Some(old.map_or(at, |o| o.max(at)).to_be_bytes().to_vec())
        })?;
        Ok(())
    }

    pub(super) fn put_tokens(&self, tokens: &[(String, TokenRecord)]) -> Result<(), StoreError> {
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
            .map_err(transaction_error("batch"))?;
        self.tokens.flush()?;
        Ok(())
    }

    pub(super) fn token_by_id(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        let Some(hash) = self.token_ids.get(id.as_bytes())? else {
            return Ok(None);
        };
        self.tokens.get(&hash)?.map(|b| decode("auth-tokens", &b)).transpose()
    }

    pub(super) fn mark_seen(&self, id: &str, now: i64, granularity: i64) -> Result<bool, StoreError> {
        let Some(hash) = self.token_ids.get(id.as_bytes())? else {
            return Ok(false);
        };
        let Some(bytes) = self.tokens.get(&hash)? else {
            return Ok(false);
        };
        let mut record: TokenRecord = decode("auth-tokens", &bytes)?;
        if !record.needs_seen_update(now, granularity) {
            return Ok(false);
        }
        record.joined_at.get_or_insert(now);
        record.last_seen = Some(now);
        // Only if nobody changed it meanwhile (a revocation must not be undone).
        let swapped = self.tokens.compare_and_swap(&hash, Some(bytes), Some(encode("auth-tokens", &record)?))?;
        Ok(swapped.is_ok())
    }

    pub(super) fn reissue(&self, id: &str, new_hash: &str) -> Result<Option<TokenRecord>, StoreError> {
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
            .map_err(transaction_error("reissue"))?;
        self.tokens.flush()?;
        Ok(Some(record))
    }

    pub(super) fn token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.tokens.get(hash.as_bytes())?.map(|b| decode("auth-tokens", &b)).transpose()
    }

    pub(super) fn revoke(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
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

    pub(super) fn token_entries(&self) -> Result<Vec<(String, TokenRecord)>, StoreError> {
        self.tokens
            .iter()
            .map(|entry| {
                let (hash, value) = entry?;
                Ok((String::from_utf8_lossy(&hash).into_owned(), decode("auth-tokens", &value)?))
            })
            .collect()
    }

    pub(super) fn set_document_process(&self, document: &DocumentId, process: &DocumentId) -> Result<(), StoreError> {
        let _ = self
            .doc_process
            .compare_and_swap(document.as_bytes(), None as Option<&[u8]>, Some(&process.as_bytes()[..]))?;
        Ok(())
    }

    pub(super) fn document_process(&self, document: &DocumentId) -> Result<Option<DocumentId>, StoreError> {
        Ok(self.doc_process.get(document.as_bytes())?.and_then(|v| {
            <[u8; 16]>::try_from(v.as_ref()).ok().map(DocumentId::from_bytes)
        }))
    }

    pub(super) fn document_processes(&self) -> Result<Vec<(DocumentId, DocumentId)>, StoreError> {
        let mut out = Vec::new();
        for entry in self.doc_process.iter() {
            let (k, v) = entry?;
            match (<[u8; 16]>::try_from(k.as_ref()), <[u8; 16]>::try_from(v.as_ref())) {
                (Ok(document), Ok(process)) => out.push((DocumentId::from_bytes(document), DocumentId::from_bytes(process))),
                _ => return Err(StoreError::BadKey { tree: "auth-doc-process", len: k.len() }),
            }
        }
        Ok(out)
    }

    pub(super) fn actor_owner(&self, actor: &[u8]) -> Result<Option<String>, StoreError> {
        Ok(self.actors.get(actor)?.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    pub(super) fn bind_actor(&self, actor: &[u8], participant: &str) -> Result<(), StoreError> {
        let _ = self.actors.compare_and_swap(actor, None as Option<&[u8]>, Some(participant.as_bytes()))?;
        Ok(())
    }

    pub(super) fn actor_bindings(&self) -> Result<Vec<(Vec<u8>, String)>, StoreError> {
        self.actors
            .iter()
            .map(|entry| {
                let (actor, member) = entry?;
                Ok((actor.to_vec(), String::from_utf8_lossy(&member).into_owned()))
            })
            .collect()
    }

    pub(super) fn record_provenance(&self, document: &DocumentId, change: &[u8; 32], provenance: &Provenance) -> Result<(), StoreError> {
        self.provenance.insert(provenance_key(document, change), encode("auth-provenance", provenance)?)?;
        Ok(())
    }

    pub(super) fn provenance(&self, document: &DocumentId, change: &[u8; 32]) -> Result<Option<Provenance>, StoreError> {
        self.provenance.get(provenance_key(document, change))?.map(|v| decode("auth-provenance", &v)).transpose()
    }

    pub(super) fn provenance_entries(&self) -> Result<Vec<(DocumentId, [u8; 32], Provenance)>, StoreError> {
        let mut out = Vec::new();
        for entry in self.provenance.iter() {
            let (key, value) = entry?;
            let (Some(document), Some(change)) = (
                key.get(..16).and_then(|k| <[u8; 16]>::try_from(k).ok()),
                key.get(16..).and_then(|k| <[u8; 32]>::try_from(k).ok()),
            ) else {
                return Err(StoreError::BadKey { tree: "auth-provenance", len: key.len() });
            };
            out.push((DocumentId::from_bytes(document), change, decode("auth-provenance", &value)?));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{TokenKind, TokenRole};

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
        let store = SledAuth::open(&db).expect("trees");
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
}
