//! Amendments: a branch of a recommendation kept as its own document, and
//! the entry in the recommendation that describes it and records the
//! facilitator's decision.
//!
//! The *branch* is a fork of the recommendation with its whole history plus
//! one change by the author that puts the root map `amendment = { of, base }`.
//! It has the recommendation's schema, so everything that reads a
//! recommendation reads it. The *entry* lives in the recommendation under
//! `amendments[<branch id>]` (see [`Amendment`]).
//!
//! What accepting would change is the difference between the
//! recommendation's current text and the *merged preview*, the
//! recommendation with the branch merged in (see [`hunks`]). Because the
//! preview is a CRDT merge, edits made to the recommendation since the fork
//! are never shown as removed and never lost. Accepting merges for real
//! (the author's changes keep their actors, so their authorship survives) and
//! then, in one change of the facilitator's, reverts the hunks not chosen
//! and records the decision.

use std::collections::{BTreeMap, BTreeSet};

use automerge::transaction::{Transactable, Transaction};
use automerge::{ActorId, Automerge, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use konsens_sync::{AutomergeUrl, DocumentId};
use thiserror::Error;

use crate::diff::{self, Unit};
use crate::schema::{self, Endorsement, SchemaError, Str, TEXT_FIELDS};

/// The fields an amendment changes, in reading order: the title, then the
/// text fields.
pub const FIELDS: [&str; 4] = ["title", TEXT_FIELDS[0], TEXT_FIELDS[1], TEXT_FIELDS[2]];

pub use crate::schema::{Amendment, AmendmentState, Decision};

/// What can go wrong opening, reading or deciding an amendment.
#[derive(Debug, Error)]
pub enum AmendmentError {
    #[error("no amendment {0} on this recommendation")]
    Unknown(String),
    #[error("the amendment is {0}: only open amendments (or those with changes requested) can be decided or edited")]
    Closed(AmendmentState),
    #[error("no hunk {0:?}; hunk ids are <field>:<n>, as `amendment show` lists them")]
    UnknownHunk(String),
    #[error("choose at least one hunk to accept (or reject the amendment)")]
    NothingChosen,
    #[error("this document is not an amendment of a recommendation")]
    NotABranch,
    /// Boxed, as in `consent`: a schema error is large.
    #[error(transparent)]
    Schema(Box<SchemaError>),
}

impl From<SchemaError> for AmendmentError {
    fn from(error: SchemaError) -> Self {
        AmendmentError::Schema(Box::new(error))
    }
}

impl From<automerge::AutomergeError> for AmendmentError {
    fn from(error: automerge::AutomergeError) -> Self {
        SchemaError::from(error).into()
    }
}

// ---------------------------------------------------------------------------
// The branch.

/// The recommendation a branch amends, from its root `amendment.of`.
pub fn branch_of(doc: &Automerge) -> Option<DocumentId> {
    let Ok(Some((Value::Object(ObjType::Map), mark))) = doc.get(ROOT, "amendment") else { return None };
    let of = string_at(doc, &mark, "of")?;
    of.parse::<AutomergeUrl>().ok().map(|u| u.document_id)
}

/// The entry of the amendment `branch` in the recommendation `rec`, read
/// without reading the rest of the recommendation (the access rules ask for
/// it on every edit of a branch). `None` when there is none or it cannot be read.
pub fn entry_of(rec: &Automerge, branch: DocumentId) -> Option<Amendment> {
    let Ok(Some((Value::Object(ObjType::Map), map))) = rec.get(ROOT, "amendments") else { return None };
    let key = branch.to_string();
    autosurgeon::hydrate_prop::<_, Option<Amendment>, _, _>(rec, &map, key.as_str()).ok().flatten()
}

/// Mark a document as the branch of the recommendation `of`, forked at `base`.
pub fn mark_branch(tx: &mut Transaction<'_>, of: DocumentId, base: &[ChangeHash]) -> Result<(), AmendmentError> {
    let mark = tx.put_object(ROOT, "amendment", ObjType::Map)?;
    tx.put(&mark, "of", of.url())?;
    let list = tx.put_object(&mark, "base", ObjType::List)?;
    for (i, head) in base.iter().enumerate() {
        tx.insert(&list, i, head.to_string())?;
    }
    Ok(())
}

/// A new branch of the recommendation `of` (its document `rec`), written by
/// `actor`: the whole history and the mark.
pub fn fork(rec: &Automerge, of: DocumentId, actor: ActorId) -> Result<Automerge, AmendmentError> {
    let base = rec.get_heads();
    let mut branch = rec.fork().with_actor(actor);
    branch.transact(|tx| mark_branch(tx, of, &base)).map_err(|f| f.error)?;
    Ok(branch)
}

// ---------------------------------------------------------------------------
// Entries in the recommendation.

/// The amendments of a recommendation, by branch id.
pub fn entries(rec: &Automerge) -> Result<BTreeMap<String, Amendment>, SchemaError> {
    Ok(schema::Recommendation::from_doc(rec)?.amendments)
}

fn amendments_map(tx: &mut Transaction<'_>) -> Result<ObjId, AmendmentError> {
    match tx.get(ROOT, "amendments")? {
        Some((Value::Object(ObjType::Map), id)) => Ok(id),
        _ => Ok(tx.put_object(ROOT, "amendments", ObjType::Map)?),
    }
}

fn entry(tx: &mut Transaction<'_>, branch: DocumentId) -> Result<ObjId, AmendmentError> {
    let map = amendments_map(tx)?;
    match tx.get(&map, branch.to_string())? {
        Some((Value::Object(ObjType::Map), id)) => Ok(id),
        _ => Err(AmendmentError::Unknown(branch.to_string())),
    }
}

fn state_of(tx: &Transaction<'_>, entry: &ObjId) -> Result<AmendmentState, AmendmentError> {
    let state = string_at(tx, entry, "state").unwrap_or_default();
    Ok(state.parse()?)
}

/// Add the entry of a new amendment, open, by `by`.
pub fn add(tx: &mut Transaction<'_>, branch: DocumentId, title: &str, by: &str, at: i64, base: &[ChangeHash]) -> Result<(), AmendmentError> {
    let map = amendments_map(tx)?;
    let entry = tx.put_object(&map, branch.to_string(), ObjType::Map)?;
    tx.put(&entry, "url", branch.url())?;
    tx.put(&entry, "title", title)?;
    tx.put(&entry, "by", by)?;
    tx.put(&entry, "opened", at)?;
    let list = tx.put_object(&entry, "base", ObjType::List)?;
    for (i, head) in base.iter().enumerate() {
        tx.insert(&list, i, head.to_string())?;
    }
    tx.put_object(&entry, "coauthors", ObjType::List)?;
    tx.put(&entry, "state", AmendmentState::Open.as_str())?;
    tx.put_object(&entry, "endorsements", ObjType::Map)?;
    tx.put(&entry, "decision", ScalarValue::Null)?;
    Ok(())
}

/// Set who may co-edit the branch besides its author.
pub fn set_coauthors(tx: &mut Transaction<'_>, branch: DocumentId, coauthors: &[String]) -> Result<(), AmendmentError> {
    let entry = entry(tx, branch)?;
    autosurgeon::reconcile_prop(tx, &entry, "coauthors", coauthors).map_err(SchemaError::from)?;
    Ok(())
}

/// An organisation's endorsement of the amendment.
pub fn endorse(tx: &mut Transaction<'_>, branch: DocumentId, organisation: &str, endorsement: &Endorsement) -> Result<(), AmendmentError> {
    let entry = entry(tx, branch)?;
    let map = match tx.get(&entry, "endorsements")? {
        Some((Value::Object(ObjType::Map), id)) => id,
        _ => tx.put_object(&entry, "endorsements", ObjType::Map)?,
    };
    autosurgeon::reconcile_prop(tx, &map, organisation, endorsement).map_err(SchemaError::from)?;
    Ok(())
}

/// The author withdraws the amendment (while it can still be edited).
pub fn withdraw(tx: &mut Transaction<'_>, branch: DocumentId) -> Result<(), AmendmentError> {
    let entry = entry(tx, branch)?;
    let state = state_of(tx, &entry)?;
    if !state.is_editable() {
        return Err(AmendmentError::Closed(state));
    }
    tx.put(&entry, "state", AmendmentState::Withdrawn.as_str())?;
    Ok(())
}

/// The author submits the amendment again after changes were requested.
pub fn resubmit(tx: &mut Transaction<'_>, branch: DocumentId) -> Result<(), AmendmentError> {
    let entry = entry(tx, branch)?;
    let state = state_of(tx, &entry)?;
    if state != AmendmentState::ChangesRequested {
        return Err(AmendmentError::Closed(state));
    }
    tx.put(&entry, "state", AmendmentState::Open.as_str())?;
    Ok(())
}

/// Write a decision and the state it leads to.
fn record(tx: &mut Transaction<'_>, entry: &ObjId, decision: &Decision) -> Result<(), AmendmentError> {
    tx.put(entry, "state", decision.state.as_str())?;
    let d = tx.put_object(entry, "decision", ObjType::Map)?;
    tx.put(&d, "state", decision.state.as_str())?;
    tx.put(&d, "answer", decision.answer.0.as_str())?;
    tx.put(&d, "by", decision.by.0.as_str())?;
    tx.put(&d, "at", decision.at)?;
    for (key, ids) in [("accepted", &decision.accepted), ("rejected", &decision.rejected)] {
        let list = tx.put_object(&d, key, ObjType::List)?;
        for (i, id) in ids.iter().enumerate() {
            tx.insert(&list, i, id.0.as_str())?;
        }
    }
    Ok(())
}

/// Reject the amendment, or ask its authors for changes, with an official
/// answer. The recommendation's text is untouched.
pub fn answer(rec: &mut Automerge, branch: DocumentId, state: AmendmentState, answer: &str, by: &str, at: i64) -> Result<Decision, AmendmentError> {
    debug_assert!(matches!(state, AmendmentState::Rejected | AmendmentState::ChangesRequested));
    let decision = Decision { state, answer: Str(answer.to_owned()), by: Str(by.to_owned()), at, accepted: Vec::new(), rejected: Vec::new() };
    rec.transact(|tx| {
        let entry = entry(tx, branch)?;
        let now = state_of(tx, &entry)?;
        if !now.is_editable() {
            return Err(AmendmentError::Closed(now));
        }
        record(tx, &entry, &decision)
    })
    .map_err(|f| f.error)?;
    Ok(decision)
}

// ---------------------------------------------------------------------------
// Hunks and accepting.

/// One hunk of an amendment: a field's text before (the recommendation now)
/// and after (the merged preview).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldHunk {
    /// `<field>:<n>`, n from 0 in reading order within the field.
    pub id: String,
    pub field: &'static str,
    pub before: String,
    pub after: String,
}

/// The recommendation with the branch merged in: what accepting all of it gives.
pub fn preview(rec: &Automerge, branch: &Automerge) -> Result<Automerge, AmendmentError> {
    let mut merged = rec.fork();
    merged.merge(&mut branch.clone())?;
    Ok(merged)
}

/// A field's units as the document holds it (a missing field is empty).
fn field_units(doc: &Automerge, field: &str) -> Result<Vec<Unit>, AmendmentError> {
    let Some((Value::Object(ObjType::Text), obj)) = doc.get(ROOT, field)? else { return Ok(Vec::new()) };
    if field == "title" {
        Ok(diff::units_of_text(&doc.text(&obj)?))
    } else {
        Ok(diff::units_of_spans(&doc.spans(&obj)?.collect::<Vec<_>>()))
    }
}

/// One field before and after, and the hunks between them.
struct FieldDiff {
    field: &'static str,
    before: Vec<Unit>,
    after: Vec<Unit>,
    hunks: Vec<diff::Hunk>,
}

fn field_hunks(before: &Automerge, after: &Automerge) -> Result<Vec<FieldDiff>, AmendmentError> {
    FIELDS
        .iter()
        .map(|field| {
            let a = field_units(before, field)?;
            let b = field_units(after, field)?;
            let hunks = diff::hunks(&a, &b);
            Ok(FieldDiff { field, before: a, after: b, hunks })
        })
        .collect()
}

/// What accepting the branch would change in the recommendation as it is now.
pub fn hunks(rec: &Automerge, branch: &Automerge) -> Result<Vec<FieldHunk>, AmendmentError> {
    let merged = preview(rec, branch)?;
    let mut out = Vec::new();
    for FieldDiff { field, before: a, after: b, hunks } in field_hunks(rec, &merged)? {
        for h in hunks {
            out.push(FieldHunk {
                id: format!("{field}:{}", h.index),
                field,
                before: diff::text_of_units(&a[h.before.clone()]),
                after: diff::text_of_units(&b[h.after.clone()]),
            });
        }
    }
    Ok(out)
}

/// Accept the amendment `branch` (its document `branch_doc`) into `rec`:
/// all of it (`chosen` is `None`) or the hunks `chosen` names. Merges the
/// branch (its changes keep their actors), then writes one change as `rec`'s
/// actor that removes the branch mark the merge brought in, reverts the hunks
/// not chosen and records the decision.
pub fn accept(
    rec: &mut Automerge,
    branch: DocumentId,
    branch_doc: &Automerge,
    chosen: Option<&[String]>,
    answer: &str,
    by: &str,
    at: i64,
) -> Result<Decision, AmendmentError> {
    let state = entries(rec)?.get(&branch.to_string()).map(|e| e.state).ok_or_else(|| AmendmentError::Unknown(branch.to_string()))?;
    if !state.is_editable() {
        return Err(AmendmentError::Closed(state));
    }
    let before = rec.fork();
    let merged = preview(rec, branch_doc)?;
    let fields = field_hunks(&before, &merged)?;
    let all: Vec<String> = fields.iter().flat_map(|f| f.hunks.iter().map(move |h| format!("{}:{}", f.field, h.index))).collect();
    let taken: BTreeSet<String> = match chosen {
        None => all.iter().cloned().collect(),
        Some(ids) => {
            if let Some(unknown) = ids.iter().find(|id| !all.contains(id)) {
                return Err(AmendmentError::UnknownHunk(unknown.clone()));
            }
            if ids.is_empty() && !all.is_empty() {
                return Err(AmendmentError::NothingChosen);
            }
            ids.iter().cloned().collect()
        }
    };
    rec.merge(&mut branch_doc.clone())?;
    let decision = Decision {
        state: AmendmentState::Accepted,
        answer: Str(answer.to_owned()),
        by: Str(by.to_owned()),
        at,
        accepted: all.iter().filter(|id| taken.contains(*id)).map(|id| Str(id.clone())).collect(),
        rejected: all.iter().filter(|id| !taken.contains(*id)).map(|id| Str(id.clone())).collect(),
    };
    rec.transact(|tx| {
        if tx.get(ROOT, "amendment")?.is_some() {
            tx.delete(ROOT, "amendment")?;
        }
        for FieldDiff { field, before: a, after: b, hunks } in &fields {
            if hunks.iter().all(|h| taken.contains(&format!("{field}:{}", h.index))) {
                continue;
            }
            let target = diff::choose(a, b, hunks, |i| taken.contains(&format!("{field}:{i}")));
            let obj = schema::text_object(tx, field)?;
            if *field == "title" {
                tx.update_text(&obj, diff::text_of_units(&target))?;
            } else {
                tx.update_spans(&obj, crate::richtext::update_spans_config(), diff::spans_of_units(&target))?;
            }
        }
        let entry = entry(tx, branch)?;
        record(tx, &entry, &decision)
    })
    .map_err(|f| f.error)?;
    Ok(decision)
}


/// A string field, whether a scalar or a text.
fn string_at<D: ReadDoc>(doc: &D, obj: &ObjId, key: &str) -> Option<String> {
    match doc.get(obj, key).ok().flatten()? {
        (Value::Scalar(s), _) => s.as_str().map(str::to_owned),
        (Value::Object(ObjType::Text), id) => doc.text(&id).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::iter::Span;

    fn actor(n: u8) -> ActorId {
        ActorId::from(vec![n; 16])
    }

    fn rec_id() -> DocumentId {
        DocumentId::from_random([7; 16])
    }

    fn branch_id() -> DocumentId {
        DocumentId::from_random([8; 16])
    }

    fn paragraphs(text: &str) -> Vec<Span> {
        crate::richtext::to_spans(text)
    }

    /// A recommendation by actor 1 with a text, its branch by actor 2 with
    /// `edit` applied, and the entry added by actor 2.
    fn setup(text: &str, edit: &str) -> (Automerge, Automerge) {
        let mut rec = Automerge::new().with_actor(actor(1));
        rec.transact::<_, _, SchemaError>(|tx| {
            schema::init_recommendation(tx, &DocumentId::from_random([1; 16]).url(), "w", "Titel", &[])?;
            schema::set_rich_text(tx, "recommendation", paragraphs(text))
        })
        .expect("rec");
        let mut branch = fork(&rec, rec_id(), actor(2)).expect("fork");
        branch.transact::<_, _, SchemaError>(|tx| schema::set_rich_text(tx, "recommendation", paragraphs(edit))).expect("edit");
        let base = rec.get_heads();
        let mut author = rec.fork().with_actor(actor(5));
        author.transact(|tx| add(tx, branch_id(), "Klarer", "anna", 5, &base)).expect("entry");
        rec.merge(&mut author).expect("entry merged");
        (rec.with_actor(actor(3)), branch)
    }

    fn text(rec: &Automerge) -> String {
        schema::Recommendation::from_doc(rec).expect("reads").recommendation.plain()
    }

    #[test]
    fn accepting_all_keeps_a_concurrent_edit_to_the_recommendation() {
        let (mut rec, branch) = setup("Die Kosten tragen die Arbeitgeber.", "Die Kosten tragen allein die Arbeitgeber.");
        // Someone edits the recommendation after the fork.
        let mut other = rec.fork().with_actor(actor(4));
        other
            .transact::<_, _, SchemaError>(|tx| schema::set_rich_text(tx, "recommendation", paragraphs("Die Kosten tragen die Arbeitgeber. Ab 2027.")))
            .expect("concurrent");
        rec.merge(&mut other).expect("synced");
        let shown = hunks(&rec, &branch).expect("hunks");
        assert_eq!(shown.len(), 1, "the concurrent edit is no hunk: {shown:?}");
        assert_eq!((shown[0].id.as_str(), shown[0].after.as_str()), ("recommendation:0", "allein "));
        let decision = accept(&mut rec, branch_id(), &branch, None, "Danke", "f", 10).expect("accepted");
        assert_eq!(text(&rec), "Die Kosten tragen allein die Arbeitgeber. Ab 2027.");
        assert_eq!(decision.accepted, vec![Str("recommendation:0".into())]);
        let entry = &entries(&rec).expect("entries")[&branch_id().to_string()];
        assert_eq!(entry.state, AmendmentState::Accepted);
        assert_eq!(entry.decision.as_ref().map(|d| d.answer.0.as_str()), Some("Danke"));
        assert!(branch_of(&rec).is_none(), "the mark stays on the branch");
    }

    #[test]
    fn accepting_two_of_three_hunks_leaves_the_third_and_keeps_the_authors_ops() {
        let (mut rec, branch) = setup("Eins zwei drei vier fünf.", "One zwei three vier five.");
        let shown = hunks(&rec, &branch).expect("hunks");
        let ids: Vec<&str> = shown.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, vec!["recommendation:0", "recommendation:1", "recommendation:2"]);
        let chosen = vec!["recommendation:0".to_owned(), "recommendation:2".to_owned()];
        let decision = accept(&mut rec, branch_id(), &branch, Some(&chosen), "", "f", 10).expect("accepted");
        assert_eq!(text(&rec), "One zwei drei vier five.");
        assert_eq!(decision.rejected, vec![Str("recommendation:1".into())]);
        // The accepted words are the author's operations (actor 2).
        let Some((_, obj)) = rec.get(ROOT, "recommendation").expect("get") else { panic!("no text") };
        let plain = rec.text(&obj).expect("text");
        let start = plain.find("One").expect("One");
        let start = plain[..start].chars().count();
        let cursor = rec.get_cursor(&obj, start, None).expect("cursor").to_string();
        assert!(cursor.contains(&actor(2).to_hex_string()), "{cursor} is the author's");
        let at = plain[..plain.find("drei").expect("drei")].chars().count();
        let cursor = rec.get_cursor(&obj, at, None).expect("cursor").to_string();
        assert!(cursor.contains(&actor(3).to_hex_string()), "{cursor}: the reverted hunk is written anew by the facilitator");
    }

    #[test]
    fn rejecting_leaves_the_text_untouched() {
        let (mut rec, _branch) = setup("Eins zwei.", "One two.");
        let heads = rec.get_heads();
        let before = text(&rec);
        let decision = answer(&mut rec, branch_id(), AmendmentState::Rejected, "Nicht im Sinne des Workshops", "f", 9).expect("rejected");
        assert_eq!(text(&rec), before);
        assert_eq!(decision.state, AmendmentState::Rejected);
        let entry = &entries(&rec).expect("entries")[&branch_id().to_string()];
        assert_eq!(entry.state, AmendmentState::Rejected);
        assert_eq!(entry.decision.as_ref().map(|d| d.answer.0.as_str()), Some("Nicht im Sinne des Workshops"));
        assert_eq!(rec.get_changes(&heads).len(), 1, "one change, to the entry");
        assert!(matches!(
            answer(&mut rec, branch_id(), AmendmentState::ChangesRequested, "", "f", 10),
            Err(AmendmentError::Closed(AmendmentState::Rejected))
        ));
    }

    #[test]
    fn hunk_ids_and_empty_choices_are_checked() {
        let (mut rec, branch) = setup("Eins zwei.", "One zwei.");
        assert!(matches!(accept(&mut rec, branch_id(), &branch, Some(&["problem:4".to_owned()]), "", "f", 1), Err(AmendmentError::UnknownHunk(_))));
        assert!(matches!(accept(&mut rec, branch_id(), &branch, Some(&[]), "", "f", 1), Err(AmendmentError::NothingChosen)));
        assert!(matches!(accept(&mut rec, DocumentId::from_random([9; 16]), &branch, None, "", "f", 1), Err(AmendmentError::Unknown(_))));
    }

    #[test]
    fn the_branch_names_what_it_amends_and_the_author_withdraws() {
        let (mut rec, branch) = setup("Eins.", "Zwei.");
        assert_eq!(branch_of(&branch), Some(rec_id()));
        assert_eq!(branch_of(&rec), None);
        rec.transact(|tx| set_coauthors(tx, branch_id(), &["bert".to_owned()])).expect("coauthors");
        let entry = &entries(&rec).expect("entries")[&branch_id().to_string()];
        assert!(entry.is_author("bert") && entry.is_author("anna") && !entry.is_author("carl"));
        assert!(matches!(rec.transact(|tx| resubmit(tx, branch_id())).map_err(|f| f.error), Err(AmendmentError::Closed(AmendmentState::Open))));
        rec.transact(|tx| withdraw(tx, branch_id())).expect("withdrawn");
        assert_eq!(entries(&rec).expect("entries")[&branch_id().to_string()].state, AmendmentState::Withdrawn);
    }
}
