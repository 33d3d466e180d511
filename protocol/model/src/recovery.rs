//! Getting out of a refusal without losing what the member wrote.
//!
//! When the server refuses changes, every later local change to that
//! document depends on them (Automerge's change graph), so it would be
//! refused too and the member's work would never sync. [`recover`] rebuilds
//! the document from everything except the refused changes and their local
//! dependents, then re-applies the *intent* of those dependents (the member's
//! edits made after the refused change) as fresh changes: text fields as a
//! minimal diff of text, blocks and marks, maps and lists entry by entry.
//! The refused changes themselves are returned, for the member to read or
//! copy. A decision (`status`, `statusLog`) is never re-applied: it is what
//! gets refused, and sending it again would only be refused again.
//!
//! Pure: documents in, a document and a report out.

use std::collections::BTreeSet;

use automerge::transaction::{Transactable, Transaction};
use automerge::{ActorId, Automerge, Change, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, Value};
use thiserror::Error;

use crate::schema::TEXT_FIELDS;

/// Root fields never re-applied: what only facilitators decide.
const NEVER_REAPPLIED: [&str; 2] = ["status", "statusLog"];

/// Nesting deeper than the model has is not re-applied.
const MAX_DEPTH: usize = 16;

#[derive(Debug, Error)]
pub enum RecoveryError {
    #[error("cannot rebuild the document: {0}")]
    Automerge(#[from] automerge::AutomergeError),
}

/// The rebuilt document and what happened to the member's work.
#[derive(Debug)]
pub struct Recovered {
    /// Every change but the dropped ones, plus the re-applied edits.
    pub doc: Automerge,
    /// The refused changes and the local changes that depended on them.
    pub dropped: Vec<Change>,
    /// Top-level fields whose later edits were re-applied.
    pub reapplied: Vec<String>,
    /// Top-level fields changed after the refusal but not re-applied.
    pub skipped: Vec<String>,
    /// Each text field as it read with the dropped changes (the member's
    /// wording), where that differs from the rebuilt document.
    pub dropped_wording: Vec<(String, String)>,
}

/// Rebuild `doc` without `refused` (and what depends on them); re-apply the
/// dependents' edits as new changes by `actor` when `reapply` (not for an
/// observer, whose every change is refused).
pub fn recover(doc: &Automerge, refused: &[ChangeHash], actor: ActorId, reapply: bool) -> Result<Recovered, RecoveryError> {
    let refused: BTreeSet<ChangeHash> = refused.iter().copied().filter(|h| doc.get_change_by_hash(h).is_some()).collect();
    let all = doc.get_changes(&[]);
    // In causal order, so a change's dependencies are decided before it.
    let mut dropped_hashes: BTreeSet<ChangeHash> = BTreeSet::new();
    for change in &all {
        if refused.contains(&change.hash()) || change.deps().iter().any(|d| dropped_hashes.contains(d)) {
            dropped_hashes.insert(change.hash());
        }
    }
    let keep = |c: &&Change| !dropped_hashes.contains(&c.hash());
    let mut clean = Automerge::new();
    clean.apply_changes(all.iter().filter(keep).map(|c| (*c).clone()))?;
    let mut before = clean.clone();
    before.apply_changes(all.iter().filter(|c| refused.contains(&c.hash())).map(|c| (*c).clone()))?;
    let dropped: Vec<Change> = all.iter().filter(|c| dropped_hashes.contains(&c.hash())).map(|c| (*c).clone()).collect();

    let mut dropped_wording = Vec::new();
    for key in doc.keys(ROOT) {
        if let Ok(Some((Value::Object(ObjType::Text), id))) = doc.get(ROOT, key.as_str()) {
            let wording = doc.text(&id)?;
            let now = match clean.get(ROOT, key.as_str())? {
                Some((Value::Object(ObjType::Text), c)) => clean.text(&c)?,
                _ => String::new(),
            };
            if wording != now {
                dropped_wording.push((key.clone(), wording));
            }
        }
    }

    let mut rebuilt = clean.with_actor(actor);
    let mut reapplied = Vec::new();
    let mut skipped = Vec::new();
    let dependents_exist = dropped.len() > refused.len();
    if dependents_exist {
        let mut changed = Vec::new();
        for key in keys_of(doc, &ROOT).union(&keys_of(&before, &ROOT)) {
            if canonical(doc, &ROOT, key) != canonical(&before, &ROOT, key) {
                changed.push(key.clone());
            }
        }
        for key in changed {
            if !reapply || NEVER_REAPPLIED.contains(&key.as_str()) {
                skipped.push(key);
            } else {
                reapplied.push(key);
            }
        }
        if !reapplied.is_empty() {
            let mut tx = rebuilt.transaction();
            for key in &reapplied {
                replay(&mut tx, &ROOT, key, doc, &ROOT, 0)?;
            }
            reanchor_comments(&mut tx, doc)?;
            tx.commit();
        }
    }
    Ok(Recovered { doc: rebuilt, dropped, reapplied, skipped, dropped_wording })
}

/// Comment anchors are cursors on characters; re-applied text has new
/// characters, so an anchor on a dropped one is moved to the same position
/// (the re-applied text reads as it did, so positions agree).
fn reanchor_comments(tx: &mut Transaction<'_>, after: &Automerge) -> Result<(), RecoveryError> {
    let Some((Value::Object(ObjType::Map), comments)) = tx.get(ROOT, "comments")? else { return Ok(()) };
    let Some((Value::Object(ObjType::Map), after_comments)) = after.get(ROOT, "comments")? else { return Ok(()) };
    for id in tx.keys(&comments).collect::<Vec<_>>() {
        let (Some((Value::Object(ObjType::Map), comment)), Some((Value::Object(ObjType::Map), was))) =
            (tx.get(&comments, id.as_str())?, after.get(&after_comments, id.as_str())?)
        else {
            continue;
        };
        let field = match tx.get(&comment, "field")? {
            Some((Value::Scalar(s), _)) => s.as_str().map(str::to_owned),
            _ => None,
        };
        let Some(field) = field else { continue };
        let (Some((Value::Object(ObjType::Text), text)), Some((Value::Object(ObjType::Text), after_text))) =
            (tx.get(ROOT, field.as_str())?, after.get(ROOT, field.as_str())?)
        else {
            continue;
        };
        for end in ["start", "end"] {
            let Some((Value::Scalar(s), _)) = after.get(&was, end)? else { continue };
            let Some(Ok(cursor)) = s.as_str().map(automerge::Cursor::try_from) else { continue };
            if tx.get_cursor_position(&text, &cursor, None).is_ok() {
                continue;
            }
            let Ok(position) = after.get_cursor_position(&after_text, &cursor, None) else { continue };
            let moved = tx.get_cursor(&text, position, None)?;
            tx.put(&comment, end, moved.to_string())?;
        }
    }
    Ok(())
}

fn keys_of(doc: &Automerge, obj: &ObjId) -> BTreeSet<String> {
    doc.keys(obj).collect()
}

/// A value as text, equal exactly when the values read the same.
fn canonical(doc: &Automerge, obj: &ObjId, key: &str) -> String {
    match doc.get(obj, key) {
        Ok(Some((value, id))) => canonical_value(doc, &value, &id, 0),
        _ => "∅".to_owned(),
    }
}

fn canonical_value<R: ReadDoc>(doc: &R, value: &Value<'_>, id: &ObjId, depth: usize) -> String {
    if depth > MAX_DEPTH {
        return "…".to_owned();
    }
    match value {
        Value::Scalar(s) => format!("{s:?}"),
        Value::Object(ObjType::Text) => {
            // Marks and blocks count too.
            format!("{:?}", doc.spans(id).map(|s| s.collect::<Vec<_>>()).unwrap_or_default())
        }
        Value::Object(ObjType::List) => {
            let items: Vec<String> = (0..doc.length(id))
                .map(|i| match doc.get(id, i) {
                    Ok(Some((v, child))) => canonical_value(doc, &v, &child, depth + 1),
                    _ => "∅".to_owned(),
                })
                .collect();
            format!("[{}]", items.join(","))
        }
        Value::Object(_) => {
            let entries: Vec<String> = doc
                .keys(id)
                .map(|k| match doc.get(id, k.as_str()) {
                    Ok(Some((v, child))) => format!("{k:?}:{}", canonical_value(doc, &v, &child, depth + 1)),
                    _ => format!("{k:?}:∅"),
                })
                .collect();
            format!("{{{}}}", entries.join(","))
        }
    }
}

/// Make `target[key]` in the transaction read like `source[key]` in `after`,
/// changing only what differs (text by a minimal diff, maps key by key).
fn replay(tx: &mut Transaction<'_>, target: &ObjId, key: &str, after: &Automerge, source: &ObjId, depth: usize) -> Result<(), RecoveryError> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let Some((value, id)) = after.get(source, key)? else {
        if tx.get(target, key)?.is_some() {
            tx.delete(target, key)?;
        }
        return Ok(());
    };
    match value {
        Value::Scalar(s) => {
            let same = matches!(tx.get(target, key)?, Some((Value::Scalar(t), _)) if t == s);
            if !same {
                tx.put(target, key, s.into_owned())?;
            }
        }
        Value::Object(ObjType::Text) => {
            let text = match tx.get(target, key)? {
                Some((Value::Object(ObjType::Text), t)) => t,
                _ => tx.put_object(target, key, ObjType::Text)?,
            };
            if depth == 0 && (TEXT_FIELDS.contains(&key) || key == "title") {
                // Blocks and marks as well as characters, as the editors write them.
                let spans: Vec<_> = after.spans(&id)?.collect();
                tx.update_spans(&text, crate::richtext::update_spans_config(), spans)?;
            } else {
                tx.update_text(&text, &after.text(&id)?)?;
            }
        }
        Value::Object(ObjType::Map | ObjType::Table) => {
            let map = match tx.get(target, key)? {
                Some((Value::Object(ObjType::Map), m)) => m,
                _ => tx.put_object(target, key, ObjType::Map)?,
            };
            let mut keys: BTreeSet<String> = after.keys(&id).collect();
            keys.extend(tx.keys(&map));
            for k in keys {
                replay(tx, &map, &k, after, &id, depth + 1)?;
            }
        }
        Value::Object(ObjType::List) => {
            // Lists are small here (addressees, sectors, replies): written
            // whole when they differ, appended to when only items were added.
            let list = match tx.get(target, key)? {
                Some((Value::Object(ObjType::List), l)) => l,
                _ => tx.put_object(target, key, ObjType::List)?,
            };
            let now = tx.length(&list);
            let wanted = after.length(&id);
            let prefix_equal = (0..now.min(wanted)).all(|i| {
                let a = after.get(&id, i).ok().flatten().map(|(v, c)| canonical_value(after, &v, &c, depth + 1));
                let t = tx.get(&list, i).ok().flatten().map(|(v, c)| canonical_value(tx, &v, &c, depth + 1));
                a == t
            });
            if !(prefix_equal && now <= wanted) {
                for i in (0..now).rev() {
                    tx.delete(&list, i)?;
                }
            }
            let start = tx.length(&list);
            for i in start..wanted {
                insert_copy(tx, &list, i, after, &id, depth + 1)?;
            }
        }
    }
    Ok(())
}

/// Insert a copy of `after[source][index]` at `index` of the list `target`.
fn insert_copy(tx: &mut Transaction<'_>, target: &ObjId, index: usize, after: &Automerge, source: &ObjId, depth: usize) -> Result<(), RecoveryError> {
    let Some((value, id)) = after.get(source, index)? else { return Ok(()) };
    match value {
        Value::Scalar(s) => tx.insert(target, index, s.into_owned())?,
        Value::Object(kind) => {
            let obj = tx.insert_object(target, index, kind)?;
            fill(tx, &obj, after, &id, kind, depth + 1)?;
        }
    }
    Ok(())
}

/// Copy the contents of a new object.
fn fill(tx: &mut Transaction<'_>, target: &ObjId, after: &Automerge, source: &ObjId, kind: ObjType, depth: usize) -> Result<(), RecoveryError> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    match kind {
        ObjType::Text => tx.update_text(target, &after.text(source)?)?,
        ObjType::List => {
            for i in 0..after.length(source) {
                insert_copy(tx, target, i, after, source, depth)?;
            }
        }
        ObjType::Map | ObjType::Table => {
            for k in after.keys(source) {
                replay(tx, target, &k, after, source, depth)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{self, Recommendation, SchemaError, Status};

    fn actor(n: u8) -> ActorId {
        ActorId::from(vec![n; 16])
    }

    /// A recommendation at consensus, synced; then a member's local edits:
    /// a refused adoption, then a sentence and a comment on top of it.
    fn scenario() -> (Automerge, ChangeHash) {
        let mut doc = Automerge::new().with_actor(actor(1));
        doc.transact::<_, _, SchemaError>(|tx| {
            schema::init_recommendation(tx, "automerge:x", "w", "Fees", &[])?;
            let text = schema::text_object(tx, "recommendation")?;
            tx.splice_text(&text, 0, 0, "Agencies publish fees.")?;
            schema::change_status(tx, Status::Discussion, "f", 1, "")?;
            schema::change_status(tx, Status::Consensus, "f", 2, "")?;
            Ok(())
        })
        .expect("base");
        let mut mine = doc.fork().with_actor(actor(2));
        mine.transact::<_, _, SchemaError>(|tx| schema::change_status(tx, Status::Adopted, "p", 3, "").map(|_| ()))
            .expect("adopt");
        let adoption = mine.get_heads()[0];
        mine.transact::<_, _, SchemaError>(|tx| {
            let text = schema::text_object(tx, "recommendation")?;
            let end = tx.length(&text);
            tx.splice_text(&text, end, 0, " Employers pay.")?;
            schema::add_comment(tx, "c1", "recommendation", "Employers", "Which ones?", "p", 4)?;
            Ok(())
        })
        .expect("type");
        (mine, adoption)
    }

    #[test]
    fn later_edits_survive_a_refused_change() {
        let (mine, adoption) = scenario();
        let recovered = recover(&mine, &[adoption], actor(3), true).expect("recovers");
        assert_eq!(recovered.dropped.len(), 2, "the refusal and the change built on it");
        let rec = Recommendation::from_doc(&recovered.doc).expect("reads");
        assert_eq!(rec.status, Status::Consensus, "the refused decision is not re-applied");
        assert_eq!(rec.recommendation.plain(), "Agencies publish fees. Employers pay.");
        assert_eq!(rec.comments["c1"].body, "Which ones?");
        let (_, _, quoted) = schema::comment_range(&recovered.doc, &rec.comments["c1"]).expect("anchored");
        assert_eq!(quoted, "Employers", "the comment's anchor points into the re-applied text");
        assert_eq!(recovered.reapplied, vec!["comments".to_owned(), "recommendation".to_owned()]);
        assert!(recovered.skipped.is_empty());
        // None of the dropped changes is in the rebuilt document, and the
        // re-applied edits are new changes.
        for change in &recovered.dropped {
            assert!(recovered.doc.get_change_by_hash(&change.hash()).is_none());
        }
        let wording: Vec<&str> = recovered.dropped_wording.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(wording, ["recommendation"]);
    }

    #[test]
    fn an_observer_gets_nothing_reapplied_but_keeps_the_wording() {
        let (mine, adoption) = scenario();
        let recovered = recover(&mine, &[adoption], actor(3), false).expect("recovers");
        let rec = Recommendation::from_doc(&recovered.doc).expect("reads");
        assert_eq!(rec.recommendation.plain(), "Agencies publish fees.");
        assert!(recovered.reapplied.is_empty());
        assert_eq!(recovered.skipped, vec!["comments".to_owned(), "recommendation".to_owned()]);
        assert_eq!(recovered.dropped_wording, vec![("recommendation".to_owned(), "Agencies publish fees. Employers pay.".to_owned())]);
    }

    #[test]
    fn hashes_the_document_does_not_hold_change_nothing() {
        let (mine, _) = scenario();
        let recovered = recover(&mine, &[ChangeHash([5; 32])], actor(3), true).expect("recovers");
        assert!(recovered.dropped.is_empty());
        assert_eq!(recovered.doc.get_heads(), mine.get_heads());
    }
}
