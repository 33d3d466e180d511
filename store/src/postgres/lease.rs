//! The lease rows (`konsens_leases`, see `store/migrations/0003_leases.sql`)
//! and the fencing of group commits; the handle and the rules are in
//! `crate::lease`.
//!
//! Every time is the database's (`clock_timestamp()`, read when the row is
//! evaluated, so a claim that waited for a lock judges expiry when it got
//! it). Statements that lock several lease rows lock them in document order,
//! so a renewal and a group commit of the same node cannot deadlock.
//!
//! Leases have connections of their own: a claim may wait for another
//! node's commit to end, and must hold up neither the store's reads nor this
//! node's renewals meanwhile (PostgreSQL runs one statement at a time per
//! connection). So claims and holders use one, renewals and releases another.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use konsens_sync::DocumentId;
use tokio_postgres::{Config, Row, Statement, Transaction};

use super::link::Link;
use super::{OwnRuntime, run_on};
use crate::backend::GroupItem;
use crate::group_commit::Record;
use crate::lease::{Claim, Holder, LeaseConfig, LeaseState};
use crate::StoreError;

/// Insert the row, or take it over if it expired or is this node's own;
/// returns the new epoch, or nothing when another node holds it.
const CLAIM: &str = "INSERT INTO konsens_leases AS l (document, node, address, epoch, expires_at)
     VALUES ($1, $2, $3, 1, clock_timestamp() + $4::float8 * interval '1 second')
     ON CONFLICT (document) DO UPDATE
        SET node = EXCLUDED.node, address = EXCLUDED.address, epoch = l.epoch + 1,
            expires_at = clock_timestamp() + $4::float8 * interval '1 second'
        WHERE l.expires_at <= clock_timestamp() OR l.node = EXCLUDED.node
     RETURNING l.epoch";

/// Holders, with expiry judged at one instant.
const HOLDERS: &str = "SELECT l.document, l.node, l.address, l.epoch, l.expires_at <= c.at,
            GREATEST(EXTRACT(EPOCH FROM l.expires_at - c.at), 0)::float8
     FROM konsens_leases l CROSS JOIN (SELECT clock_timestamp() AS at) c
     WHERE l.document = ANY($1)";

/// Extend every lease still held at the remembered epoch, in one statement.
const RENEW: &str = "WITH mine AS (
         SELECT l.document FROM konsens_leases l
         JOIN unnest($1::text[], $2::int8[]) AS h(document, epoch) ON l.document = h.document AND l.epoch = h.epoch
         WHERE l.node = $3
         ORDER BY l.document
         FOR UPDATE OF l)
     UPDATE konsens_leases SET expires_at = clock_timestamp() + $4::float8 * interval '1 second'
     FROM mine WHERE konsens_leases.document = mine.document
     RETURNING konsens_leases.document";

/// Expire a lease now, keeping its row and epoch.
const RELEASE: &str = "UPDATE konsens_leases SET expires_at = clock_timestamp() WHERE document = $1 AND node = $2 AND epoch = $3";

/// The fencing read of a group commit: the lease rows of the group's
/// documents, share-locked until the group's transaction ends, so no claim
/// can take one over meanwhile.
pub(super) const FENCE: &str =
    "SELECT document, node, epoch FROM konsens_leases WHERE document = ANY($1) ORDER BY document FOR SHARE";

/// The lease rows, on connections of their own.
pub(crate) struct LeaseTable {
    /// Claims and holders.
    claims: Arc<Link>,
    /// Renewals and releases, which only ever wait for this node's own commits.
    renewals: Arc<Link>,
    handle: tokio::runtime::Handle,
    // Keeps the store's runtime alive while a lease handle outlives the store's handles.
    _runtime: Arc<OwnRuntime>,
}

impl std::fmt::Debug for LeaseTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseTable").finish_non_exhaustive()
    }
}

fn epoch(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::BadRecord { tree: "konsens_leases", reason: format!("negative epoch {value}") })
}

fn stored_epoch(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::BadRecord { tree: "konsens_leases", reason: format!("epoch {value} out of range") })
}

fn document(text: &str) -> Result<DocumentId, StoreError> {
    text.parse().map_err(|e: konsens_sync::ProtocolError| StoreError::BadRecord { tree: "konsens_leases", reason: e.to_string() })
}

fn holder(row: &Row) -> Result<(DocumentId, Holder), StoreError> {
    let expires_in: f64 = row.try_get(5)?;
    Ok((
        document(row.try_get(0)?)?,
        Holder {
            node: row.try_get(1)?,
            address: row.try_get(2)?,
            epoch: epoch(row.try_get(3)?)?,
            expired: row.try_get(4)?,
            expires_in: Duration::try_from_secs_f64(expires_in).unwrap_or_default(),
        },
    ))
}

impl LeaseTable {
    pub(super) fn new(config: Arc<Config>, ttl: Duration, handle: tokio::runtime::Handle, runtime: Arc<OwnRuntime>) -> Self {
        // A claim waits for a commit holding the row; such a transaction
        // lasts at most about one ttl even on a paused node (its commit
        // connection's idle timeout), so a longer wait means trouble.
        let lock_timeout = ttl * 2 + Duration::from_secs(5);
        let session = format!("SET synchronous_commit = on; SET lock_timeout = {}", lock_timeout.as_millis());
        Self {
            claims: Arc::new(Link::new(config.clone(), session.clone(), None)),
            renewals: Arc::new(Link::new(config, session, None)),
            handle,
            _runtime: runtime,
        }
    }

    fn run<T, F>(&self, link: &Arc<Link>, query: impl FnOnce(Arc<tokio_postgres::Client>) -> F + Send + 'static) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let link = link.clone();
        run_on(&self.handle, async move { query(link.client().await?).await })
    }

    pub(crate) fn claim(&self, config: &LeaseConfig, document: &DocumentId) -> Result<Claim, StoreError> {
        let id = *document;
        let (text, node, address, ttl) = (document.to_string(), config.node.clone(), config.address.clone(), config.ttl.as_secs_f64());
        self.run(&self.claims, move |client| async move {
            // The row cannot vanish (rows are never deleted), so the holder
            // read after a refused claim is there; a second round covers
            // the one case it is not: a row inserted after our snapshot.
            for _ in 0..2 {
                if let Some(row) = client.query_opt(CLAIM, &[&text, &node, &address, &ttl]).await? {
                    return Ok(Claim::Owned { epoch: epoch(row.try_get(0)?)? });
                }
                if let Some(row) = client.query_opt(HOLDERS, &[&vec![text.clone()]]).await? {
                    return Ok(Claim::HeldBy(holder(&row)?.1));
                }
            }
            Err(StoreError::BadRecord { tree: "konsens_leases", reason: format!("the lease of {id} neither granted nor held") })
        })
    }

    /// The documents of `held` still held at their epoch, now extended.
    pub(crate) fn renew(&self, config: &LeaseConfig, held: &[(DocumentId, u64)]) -> Result<HashSet<DocumentId>, StoreError> {
        let documents: Vec<String> = held.iter().map(|(d, _)| d.to_string()).collect();
        let epochs = held.iter().map(|(_, e)| stored_epoch(*e)).collect::<Result<Vec<i64>, _>>()?;
        let (node, ttl) = (config.node.clone(), config.ttl.as_secs_f64());
        self.run(&self.renewals, move |client| async move {
            let rows = client.query(RENEW, &[&documents, &epochs, &node, &ttl]).await?;
            rows.iter().map(|row| document(row.try_get(0)?)).collect()
        })
    }

    pub(crate) fn release(&self, config: &LeaseConfig, document: &DocumentId, held_at: u64) -> Result<(), StoreError> {
        let (text, node, held_at) = (document.to_string(), config.node.clone(), stored_epoch(held_at)?);
        self.run(&self.renewals, move |client| async move {
            client.execute(RELEASE, &[&text, &node, &held_at]).await?;
            Ok(())
        })
    }

    pub(crate) fn holders(&self, documents: &[DocumentId]) -> Result<HashMap<DocumentId, Holder>, StoreError> {
        let documents: Vec<String> = documents.iter().map(ToString::to_string).collect();
        self.run(&self.claims, move |client| async move {
            let rows = client.query(HOLDERS, &[&documents]).await?;
            rows.iter().map(holder).collect()
        })
    }
}

/// The document a group item writes, if fencing applies to it: document
/// bytes (snapshots too: they delete older chunks) and sync states.
pub(super) fn fenced_document(item: &GroupItem) -> Option<&DocumentId> {
    match item {
        GroupItem::Document { document, .. } | GroupItem::Record(Record::SyncState { document, .. }) => Some(document),
        GroupItem::Record(_) => None,
    }
}

/// Inside the group's transaction: lock the lease rows of the group's
/// documents and return those this node does not hold at the epoch it
/// remembers. One statement per group, whatever its size.
pub(super) async fn refused(
    tx: &Transaction<'_>,
    fence: &Statement,
    state: &LeaseState,
    group: &[GroupItem],
) -> Result<HashSet<DocumentId>, StoreError> {
    let documents: HashSet<DocumentId> = group.iter().filter_map(fenced_document).copied().collect();
    if documents.is_empty() {
        return Ok(documents);
    }
    let texts: Vec<String> = documents.iter().map(ToString::to_string).collect();
    let rows = tx.query(fence, &[&texts]).await?;
    let mut refused = documents;
    for row in rows {
        let id = document(row.try_get(0)?)?;
        let (node, at): (&str, i64) = (row.try_get(1)?, row.try_get(2)?);
        if node == state.config.node && state.epoch(&id) == Some(epoch(at)?) {
            refused.remove(&id);
        }
    }
    Ok(refused)
}
