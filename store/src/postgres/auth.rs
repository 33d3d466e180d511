//! The access records in PostgreSQL. Each call is one statement, so it is
//! atomic and committed (durable) when it returns. A statement that changes
//! an existing token also notifies every node (`notify.rs`), delivered when
//! it commits.

use konsens_sync::DocumentId;

use super::{PostgresBackend, document_id, id_bytes};
use crate::StoreError;
use crate::auth::{Provenance, TokenRecord, decode, encode};

fn text(tree: &'static str, value: &impl serde::Serialize) -> Result<String, StoreError> {
    String::from_utf8(encode(tree, value)?).map_err(|e| StoreError::BadRecord { tree, reason: e.to_string() })
}

/// All or none: one `INSERT` of every row. Replacing a record (a role
/// change) notifies its id; the subquery reads the table as it was before
/// the statement, so new tokens, which have no connections yet, do not.
pub(super) fn put_tokens(store: &PostgresBackend, tokens: &[(String, TokenRecord)]) -> Result<(), StoreError> {
    let mut hashes = Vec::with_capacity(tokens.len());
    let mut ids = Vec::with_capacity(tokens.len());
    let mut records = Vec::with_capacity(tokens.len());
    for (hash, record) in tokens {
        hashes.push(hash.clone());
        ids.push(record.id.clone());
        records.push(text("tokens", record)?);
    }
    store.run(move |client| async move {
        client
            .execute(
                "WITH put AS (
                    INSERT INTO tokens (hash, id, record) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
                    ON CONFLICT (hash) DO UPDATE SET id = EXCLUDED.id, record = EXCLUDED.record
                    RETURNING id)
                 SELECT pg_notify('konsens_tokens', put.id) FROM put WHERE put.id IN (SELECT id FROM tokens)",
                &[&hashes, &ids, &records],
            )
            .await?;
        Ok(())
    })
}

/// A token by `column` (`hash` or `id`, both unique).
pub(super) fn token(store: &PostgresBackend, column: &'static str, value: &str) -> Result<Option<TokenRecord>, StoreError> {
    let sql = match column {
        "hash" => "SELECT record FROM tokens WHERE hash = $1",
        _ => "SELECT record FROM tokens WHERE id = $1",
    };
    let value = value.to_owned();
    store.run(move |client| async move {
        let row = client.query_opt(sql, &[&value]).await?;
        row.map(|row| decode("tokens", row.try_get::<_, &str>(0)?.as_bytes())).transpose()
    })
}

pub(super) fn token_entries(store: &PostgresBackend) -> Result<Vec<(String, TokenRecord)>, StoreError> {
    store.run(move |client| async move {
        let rows = client.query("SELECT hash, record FROM tokens ORDER BY hash", &[]).await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, decode("tokens", row.try_get::<_, &str>(1)?.as_bytes())?)))
            .collect()
    })
}

/// Written only if the record is still what was read (a revocation in
/// between must not be undone).
pub(super) fn mark_seen(store: &PostgresBackend, id: &str, now: i64, granularity: i64) -> Result<bool, StoreError> {
    let id = id.to_owned();
    store.run(move |client| async move {
        let Some(row) = client.query_opt("SELECT record FROM tokens WHERE id = $1", &[&id]).await? else {
            return Ok(false);
        };
        let old: String = row.try_get(0)?;
        let mut record: TokenRecord = decode("tokens", old.as_bytes())?;
        if !record.needs_seen_update(now, granularity) {
            return Ok(false);
        }
        record.joined_at.get_or_insert(now);
        record.last_seen = Some(now);
        let new = text("tokens", &record)?;
        let updated = client
            .execute("UPDATE tokens SET record = $3 WHERE id = $1 AND record = $2", &[&id, &old, &new])
            .await?;
        Ok(updated == 1)
    })
}

pub(super) fn notifications_seen(store: &PostgresBackend, id: &str) -> Result<Option<i64>, StoreError> {
    let id = id.to_owned();
    store.run(move |client| async move {
        let row = client.query_opt("SELECT seen FROM notifications_seen WHERE token_id = $1", &[&id]).await?;
        row.map(|row| row.try_get::<_, i64>(0)).transpose().map_err(StoreError::from)
    })
}

pub(super) fn mark_notifications_seen(store: &PostgresBackend, id: &str, at: i64) -> Result<(), StoreError> {
    let id = id.to_owned();
    store.run(move |client| async move {
        client
            .execute(
                "INSERT INTO notifications_seen (token_id, seen) VALUES ($1, $2) \
                 ON CONFLICT (token_id) DO UPDATE SET seen = GREATEST(notifications_seen.seen, EXCLUDED.seen)",
                &[&id, &at],
            )
            .await?;
        Ok(())
    })
}

pub(super) fn reissue(store: &PostgresBackend, id: &str, new_hash: &str) -> Result<Option<TokenRecord>, StoreError> {
    let (id, new_hash) = (id.to_owned(), new_hash.to_owned());
    store.run(move |client| async move {
        let row = client
            .query_opt(
                "WITH changed AS (UPDATE tokens SET hash = $2 WHERE id = $1 RETURNING id, record)
                 SELECT record, pg_notify('konsens_tokens', id) FROM changed",
                &[&id, &new_hash],
            )
            .await?;
        row.map(|row| decode("tokens", row.try_get::<_, &str>(0)?.as_bytes())).transpose()
    })
}

pub(super) fn revoke(store: &PostgresBackend, id: &str) -> Result<Option<TokenRecord>, StoreError> {
    let id = id.to_owned();
    store.run(move |client| async move {
        let Some(row) = client.query_opt("SELECT record FROM tokens WHERE id = $1", &[&id]).await? else {
            return Ok(None);
        };
        let mut record: TokenRecord = decode("tokens", row.try_get::<_, &str>(0)?.as_bytes())?;
        record.revoked = true;
        let new = text("tokens", &record)?;
        client
            .execute(
                "WITH changed AS (UPDATE tokens SET record = $2 WHERE id = $1 RETURNING id)
                 SELECT pg_notify('konsens_tokens', id) FROM changed",
                &[&id, &new],
            )
            .await?;
        Ok(Some(record))
    })
}

pub(super) fn record_provenance(store: &PostgresBackend, document: &DocumentId, change: &[u8; 32], provenance: &Provenance) -> Result<(), StoreError> {
    let (document, change, record) = (id_bytes(document), change.to_vec(), text("provenance", provenance)?);
    store.run(move |client| async move {
        client.execute(super::PUT_PROVENANCE, &[&document, &change, &record]).await?;
        Ok(())
    })
}

pub(super) fn provenance(store: &PostgresBackend, document: &DocumentId, change: &[u8; 32]) -> Result<Option<Provenance>, StoreError> {
    let (document, change) = (id_bytes(document), change.to_vec());
    store.run(move |client| async move {
        let row = client
            .query_opt("SELECT record FROM provenance WHERE document = $1 AND change = $2", &[&document, &change])
            .await?;
        row.map(|row| decode("provenance", row.try_get::<_, &str>(0)?.as_bytes())).transpose()
    })
}

pub(super) fn provenance_entries(store: &PostgresBackend) -> Result<Vec<(DocumentId, [u8; 32], Provenance)>, StoreError> {
    store.run(move |client| async move {
        let rows = client.query("SELECT document, change, record FROM provenance ORDER BY document, change", &[]).await?;
        rows.iter()
            .map(|row| {
                let change: &[u8] = row.try_get(1)?;
                let change = <[u8; 32]>::try_from(change).map_err(|_| StoreError::BadKey { tree: "provenance", len: change.len() })?;
                Ok((document_id("provenance", row.try_get(0)?)?, change, decode("provenance", row.try_get::<_, &str>(2)?.as_bytes())?))
            })
            .collect()
    })
}
