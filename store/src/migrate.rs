//! Moving a deployment from one store to another (`konsens-server migrate
//! --from sled DIR --to postgres://…`): copy everything, then prove it by
//! loading every document from both and comparing heads.

use std::collections::BTreeMap;

use konsens_sync::{DocumentId, StorageWrite};

use crate::backend::GroupItem;
use crate::{ChunkStore, Record, StoreError};

/// Records written per transaction when copying access records.
const RECORDS_PER_GROUP: usize = 1000;

/// What [`copy`] moved.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CopyReport {
    pub documents: usize,
    pub chunks: usize,
    pub sync_states: usize,
    /// Small values, the storage id among them.
    pub meta: usize,
    pub tokens: usize,
    pub document_processes: usize,
    pub actor_bindings: usize,
    pub provenance: usize,
    /// Up to when members have seen their notifications, one per token.
    pub notifications_seen: usize,
}

impl std::fmt::Display for CopyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} documents ({} chunks), {} sync states, {} meta values, {} tokens ({} with notifications seen), {} document processes, {} actor bindings, {} provenance records",
            self.documents,
            self.chunks,
            self.sync_states,
            self.meta,
            self.tokens,
            self.notifications_seen,
            self.document_processes,
            self.actor_bindings,
            self.provenance
        )
    }
}

/// Commit `items` to `to` as one group; any failed item fails the copy.
fn commit(to: &ChunkStore, items: Vec<GroupItem>) -> Result<(), StoreError> {
    if items.is_empty() {
        return Ok(());
    }
    to.commit_group(items)?.into_iter().collect()
}

/// Copy everything in `from` into `to`, which must hold no documents and no
/// tokens (a second copy would duplicate chunks). Each document, with its
/// sync states, is one transaction.
pub fn copy(from: &ChunkStore, to: &ChunkStore) -> Result<CopyReport, StoreError> {
    let to_auth = to.auth()?;
    if to.documents().next().is_some() || !to_auth.token_entries()?.is_empty() {
        return Err(StoreError::TargetNotEmpty { target: to.describe() });
    }
    let from_auth = from.auth()?;
    let mut report = CopyReport::default();

    let meta = from.scan_meta("")?;
    report.meta = meta.len();
    commit(to, meta.into_iter().map(|(key, value)| GroupItem::Record(Record::Meta { key, value })).collect())?;

    for document in from.documents() {
        let document = document?;
        let mut items = Vec::new();
        for chunk in from.load(&document)? {
            let write = if chunk.is_snapshot { StorageWrite::Snapshot(chunk.bytes) } else { StorageWrite::Incremental(chunk.bytes) };
            items.push(GroupItem::Document { document, write });
            report.chunks += 1;
        }
        for (storage, heads) in from.sync_states(&document)? {
            items.push(GroupItem::Record(Record::SyncState { document, storage, heads }));
            report.sync_states += 1;
        }
        commit(to, items)?;
        report.documents += 1;
    }

    let tokens = from_auth.token_entries()?;
    report.tokens = tokens.len();
    if !tokens.is_empty() {
        to_auth.put_tokens(&tokens)?;
    }
    // Kept per token id: a seen-time without its token is of no use.
    for (_, token) in &tokens {
        if let Some(seen) = from_auth.notifications_seen(&token.id)? {
            to_auth.mark_notifications_seen(&token.id, seen)?;
            report.notifications_seen += 1;
        }
    }

    let mut records = Vec::new();
    for (document, process) in from_auth.document_processes()? {
        records.push(Record::DocumentProcess { document, process });
        report.document_processes += 1;
    }
    for (actor, participant) in from_auth.actor_bindings()? {
        records.push(Record::BindActor { actor, participant });
        report.actor_bindings += 1;
    }
    for (document, change, provenance) in from_auth.provenance_entries()? {
        records.push(Record::Provenance { document, change, provenance });
        report.provenance += 1;
    }
    let mut records = records.into_iter().map(GroupItem::Record).peekable();
    while records.peek().is_some() {
        commit(to, records.by_ref().take(RECORDS_PER_GROUP).collect())?;
    }
    Ok(report)
}

/// A document's heads as its stored chunks load, sorted.
pub fn stored_heads(store: &ChunkStore, document: &DocumentId) -> Result<Vec<automerge::ChangeHash>, StoreError> {
    let mut doc = automerge::Automerge::new();
    for chunk in store.load(document)? {
        doc.load_incremental(&chunk.bytes)
            .map_err(|e| StoreError::Unloadable { document: document.to_string(), reason: e.to_string() })?;
    }
    let mut heads = doc.get_heads();
    heads.sort();
    Ok(heads)
}

/// Load every document of `from` from both stores and compare heads, and
/// compare the access records; returns how many documents agree, or which
/// records differ.
pub fn verify(from: &ChunkStore, to: &ChunkStore) -> Result<usize, StoreError> {
    let mut differ = Vec::new();
    let mut agree = 0;
    for document in from.documents() {
        let document = document?;
        if stored_heads(from, &document)? == stored_heads(to, &document)? {
            agree += 1;
        } else {
            differ.push(format!("document {document}"));
        }
    }
    let (from_auth, to_auth) = (from.auth()?, to.auth()?);
    let tokens = from_auth.token_entries()?;
    if tokens != to_auth.token_entries()? {
        differ.push("tokens".into());
    }
    for (_, token) in &tokens {
        if from_auth.notifications_seen(&token.id)? != to_auth.notifications_seen(&token.id)? {
            differ.push("notifications seen".into());
            break;
        }
    }
    let sorted = |mut pairs: Vec<(DocumentId, DocumentId)>| {
        pairs.sort_by_key(|(d, p)| (*d.as_bytes(), *p.as_bytes()));
        pairs
    };
    if sorted(from_auth.document_processes()?) != sorted(to_auth.document_processes()?) {
        differ.push("document processes".into());
    }
    let bindings = |auth: &crate::AuthStore| -> Result<BTreeMap<Vec<u8>, String>, StoreError> { Ok(auth.actor_bindings()?.into_iter().collect()) };
    if bindings(&from_auth)? != bindings(&to_auth)? {
        differ.push("actor bindings".into());
    }
    if from_auth.provenance_entries()?.len() != to_auth.provenance_entries()?.len() {
        differ.push("provenance".into());
    }
    if from.get_meta(crate::STORAGE_ID_KEY)? != to.get_meta(crate::STORAGE_ID_KEY)? {
        differ.push("storage id".into());
    }
    if differ.is_empty() {
        Ok(agree)
    } else {
        Err(StoreError::CopyDiffers { what: differ })
    }
}
