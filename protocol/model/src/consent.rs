//! Consent rounds: before a recommendation is adopted, each organisation says
//! where it stands on the wording (agree, abstain, disagree, block).
//!
//! A facilitator opens a round on the current wording (its heads are
//! recorded), with a deadline and an optional question. One answer per
//! organisation, given by one of its members and changeable until a
//! facilitator closes the round with an outcome statement. At most one round
//! is open at a time. A process may require that the latest round is closed
//! without a block before a recommendation is adopted
//! (`adoptionRequiresConsent` in the process document; [`may_adopt`]).
//!
//! Stored in the recommendation document:
//! `rounds: [{id, question, heads, deadline, openedBy, openedAt,
//! answers: {organisation: {answer, reason, by, at}}, closed: {at, by, outcome} | null}]`.
//! Who may write what is decided in `access` (facilitators the round itself,
//! members only their own organisation's answer, nobody into a closed round).
//!
//! Like `schema`, this module reads no clock and draws no random numbers:
//! ids and times come in as arguments.

use std::collections::{BTreeMap, BTreeSet};

use automerge::transaction::{Transactable, Transaction};
use automerge::{Automerge, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use thiserror::Error;

use crate::schema::{Answer, MemberRole, Recommendation, Round, SchemaError};

/// What can go wrong changing a round.
#[derive(Debug, Error)]
pub enum ConsentError {
    #[error("a consent round is already open on this recommendation; close it first")]
    AlreadyOpen,
    #[error("no consent round is open on this recommendation")]
    NoOpenRound,
    #[error("an answer needs an organisation")]
    NoOrganisation,
    /// Boxed: a schema error is large, and these results are returned often.
    #[error(transparent)]
    Schema(Box<SchemaError>),
}

impl From<SchemaError> for ConsentError {
    fn from(error: SchemaError) -> Self {
        ConsentError::Schema(Box::new(error))
    }
}

impl From<automerge::AutomergeError> for ConsentError {
    fn from(error: automerge::AutomergeError) -> Self {
        SchemaError::from(error).into()
    }
}

/// Why a recommendation may not be adopted in a process that requires consent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConsentMissing {
    #[error("no consent round has been held on this recommendation")]
    NoRound,
    #[error("the latest consent round is still open")]
    RoundOpen,
    #[error("the latest consent round was closed with a block by {}", .0.join(", "))]
    Blocked(Vec<String>),
}

/// The rounds of a recommendation document (none when it has no `rounds`).
pub fn rounds<D: ReadDoc + autosurgeon::ReadDoc>(doc: &D) -> Result<Vec<Round>, SchemaError> {
    if ReadDoc::get(doc, ROOT, "rounds")?.is_none() {
        return Ok(Vec::new());
    }
    autosurgeon::hydrate_prop(doc, ROOT, "rounds").map_err(|e| SchemaError::Malformed { kind: "recommendation", reason: e.to_string() })
}

/// The open round, if any. Should two facilitators open rounds concurrently,
/// the later in the list is the one answered and closed.
pub fn open_round(rounds: &[Round]) -> Option<&Round> {
    rounds.iter().rev().find(|r| r.closed.is_none())
}

/// The latest round, open or closed.
pub fn latest_round(rounds: &[Round]) -> Option<&Round> {
    rounds.last()
}

pub use crate::schema::deciding_round;

/// How many organisations gave each answer (every answer listed, zeros too).
pub fn tally(round: &Round) -> BTreeMap<Answer, usize> {
    let mut out: BTreeMap<Answer, usize> = Answer::ALL.iter().map(|a| (*a, 0)).collect();
    for answer in round.answers.values() {
        *out.entry(answer.answer).or_default() += 1;
    }
    out
}

/// The organisations expected to answer: those with a participant among the
/// process's (verified) members. Facilitators moderate and observers watch,
/// so their organisations are not waited for (a facilitator may still answer
/// for their own organisation).
pub fn answering_organisations<'a>(members: impl IntoIterator<Item = (MemberRole, &'a str)>) -> BTreeSet<String> {
    members
        .into_iter()
        .filter(|(role, organisation)| *role == MemberRole::Participant && !organisation.is_empty())
        .map(|(_, organisation)| organisation.to_owned())
        .collect()
}

/// The organisations of `organisations` that have not answered in `round`, sorted.
pub fn not_answered(round: &Round, organisations: &BTreeSet<String>) -> Vec<String> {
    organisations.iter().filter(|o| !round.answers.contains_key(*o)).cloned().collect()
}

/// The disagreements and blocks of a round with their reasons, by organisation:
/// what a report shows beside an adopted recommendation.
pub fn dissent(round: &Round) -> Vec<(&str, &crate::schema::RoundAnswer)> {
    round
        .answers
        .iter()
        .filter(|(_, a)| matches!(a.answer, Answer::Disagree | Answer::Block))
        .map(|(org, a)| (org.as_str(), a))
        .collect()
}

/// Whether a process that requires consent may adopt now: the latest round
/// is closed and nobody blocked in it. Whether the wording changed since
/// that round opened does not matter here (see [`wording_changed_since`]:
/// the app warns, the facilitator decides).
pub fn may_adopt(rounds: &[Round]) -> Result<(), ConsentMissing> {
    let round = latest_round(rounds).ok_or(ConsentMissing::NoRound)?;
    if round.closed.is_none() {
        return Err(ConsentMissing::RoundOpen);
    }
    let blocking: Vec<String> = round.answers.iter().filter(|(_, a)| a.answer == Answer::Block).map(|(o, _)| o.clone()).collect();
    if blocking.is_empty() { Ok(()) } else { Err(ConsentMissing::Blocked(blocking)) }
}

/// Whether the title or a text field differs from the wording the round was
/// opened on. `false` when this copy lacks the round's heads.
pub fn wording_changed_since(doc: &Automerge, round: &Round) -> Result<bool, SchemaError> {
    let Some(then) = wording_at_round(doc, round)? else {
        return Ok(false);
    };
    Ok(!Recommendation::from_doc(doc)?.same_wording(&then))
}

/// The recommendation as it stood when the round opened; `None` when this
/// copy lacks the round's heads.
pub fn wording_at_round(doc: &Automerge, round: &Round) -> Result<Option<Recommendation>, SchemaError> {
    round.wording(doc)
}

/// Whether a process document requires consent before adoption. Anything
/// but a `true` there means no.
pub fn adoption_requires_consent(process: &Automerge) -> bool {
    matches!(process.get(ROOT, "adoptionRequiresConsent"), Ok(Some((Value::Scalar(s), _))) if matches!(s.as_ref(), ScalarValue::Boolean(true)))
}

// ---------------------------------------------------------------------------
// Changes, each inside the caller's transaction.

/// Set whether the process requires a closed round without a block before adoption.
pub fn set_adoption_requires_consent(tx: &mut Transaction<'_>, on: bool) -> Result<(), ConsentError> {
    tx.put(ROOT, "adoptionRequiresConsent", on)?;
    Ok(())
}

/// Open a round on the wording as it stands (the heads before this change).
pub fn open(tx: &mut Transaction<'_>, id: &str, question: &str, deadline: i64, by: &str, at: i64) -> Result<(), ConsentError> {
    if open_round(&rounds(tx)?).is_some() {
        return Err(ConsentError::AlreadyOpen);
    }
    let heads: Vec<String> = tx.get_heads().iter().map(|h| h.to_string()).collect();
    let list = match tx.get(ROOT, "rounds")? {
        Some((Value::Object(ObjType::List), list)) => list,
        _ => tx.put_object(ROOT, "rounds", ObjType::List)?,
    };
    let index = tx.length(&list);
    let round = tx.insert_object(&list, index, ObjType::Map)?;
    tx.put(&round, "id", id)?;
    tx.put(&round, "question", question)?;
    let heads_list = tx.put_object(&round, "heads", ObjType::List)?;
    for (i, head) in heads.iter().enumerate() {
        tx.insert(&heads_list, i, head.as_str())?;
    }
    tx.put(&round, "deadline", deadline)?;
    tx.put(&round, "openedBy", by)?;
    tx.put(&round, "openedAt", at)?;
    tx.put_object(&round, "answers", ObjType::Map)?;
    tx.put(&round, "closed", ScalarValue::Null)?;
    Ok(())
}

/// The list object of the open round.
fn open_round_object(tx: &Transaction<'_>) -> Result<ObjId, ConsentError> {
    let all = rounds(tx)?;
    let index = all.iter().rposition(|r| r.closed.is_none()).ok_or(ConsentError::NoOpenRound)?;
    match tx.get(ROOT, "rounds")? {
        Some((Value::Object(ObjType::List), list)) => match tx.get(&list, index)? {
            Some((Value::Object(ObjType::Map), round)) => Ok(round),
            _ => Err(ConsentError::NoOpenRound),
        },
        _ => Err(ConsentError::NoOpenRound),
    }
}

/// Give (or change) an organisation's answer in the open round.
pub fn answer(
    tx: &mut Transaction<'_>,
    organisation: &str,
    answer: Answer,
    reason: &str,
    by: &str,
    at: i64,
) -> Result<(), ConsentError> {
    if organisation.is_empty() {
        return Err(ConsentError::NoOrganisation);
    }
    let round = open_round_object(tx)?;
    let answers = match tx.get(&round, "answers")? {
        Some((Value::Object(ObjType::Map), answers)) => answers,
        _ => tx.put_object(&round, "answers", ObjType::Map)?,
    };
    // One object per answer: answer and reason change together.
    let entry = tx.put_object(&answers, organisation, ObjType::Map)?;
    tx.put(&entry, "answer", answer.as_str())?;
    tx.put(&entry, "reason", reason)?;
    tx.put(&entry, "by", by)?;
    tx.put(&entry, "at", at)?;
    Ok(())
}

/// Close the open round with an outcome statement.
pub fn close(tx: &mut Transaction<'_>, outcome: &str, by: &str, at: i64) -> Result<(), ConsentError> {
    let round = open_round_object(tx)?;
    let closed = tx.put_object(&round, "closed", ObjType::Map)?;
    tx.put(&closed, "at", at)?;
    tx.put(&closed, "by", by)?;
    tx.put(&closed, "outcome", outcome)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{self, Status};

    fn recommendation() -> Automerge {
        let mut doc = Automerge::new();
        doc.transact::<_, _, SchemaError>(|tx| {
            schema::init_recommendation(tx, "automerge:x", "w1", "Faire Anwerbung", &[])?;
            let obj = schema::text_object(tx, "recommendation")?;
            tx.splice_text(&obj, 0, 0, "Keine Gebühren.")?;
            Ok(())
        })
        .expect("init");
        doc
    }

    fn run(doc: &mut Automerge, f: impl FnOnce(&mut Transaction<'_>) -> Result<(), ConsentError>) -> Result<(), ConsentError> {
        doc.transact(f).map(|_| ()).map_err(|failure| failure.error)
    }

    #[test]
    fn a_document_without_rounds_reads_and_may_not_adopt() {
        let doc = recommendation();
        let rec = Recommendation::from_doc(&doc).expect("reads");
        assert!(rec.rounds.is_empty());
        assert_eq!(may_adopt(&rec.rounds), Err(ConsentMissing::NoRound));
    }

    #[test]
    fn a_round_is_opened_answered_changed_and_closed() {
        let mut doc = recommendation();
        let heads_at_opening: Vec<String> = doc.get_heads().iter().map(|h| h.to_string()).collect();
        run(&mut doc, |tx| open(tx, "r1", "Stimmen Sie zu?", 2_000, "f", 1_000)).expect("open");
        assert!(matches!(run(&mut doc, |tx| open(tx, "r2", "", 2_000, "f", 1_001)), Err(ConsentError::AlreadyOpen)));
        run(&mut doc, |tx| answer(tx, "Gewerkschaft", Answer::Agree, "", "p1", 1_100)).expect("answer");
        run(&mut doc, |tx| answer(tx, "Arbeitgeber", Answer::Block, "Zu teuer", "p2", 1_200)).expect("answer");
        run(&mut doc, |tx| answer(tx, "Ministerium", Answer::Abstain, "", "p3", 1_300)).expect("answer");
        run(&mut doc, |tx| answer(tx, "Arbeitgeber", Answer::Disagree, "Zu teuer, aber tragbar", "p2", 1_400)).expect("change");

        let rec = Recommendation::from_doc(&doc).expect("reads");
        let round = open_round(&rec.rounds).expect("open");
        assert_eq!(round.heads, heads_at_opening);
        assert_eq!(round.question.0, "Stimmen Sie zu?");
        let counts = tally(round);
        assert_eq!((counts[&Answer::Agree], counts[&Answer::Abstain], counts[&Answer::Disagree], counts[&Answer::Block]), (1, 1, 1, 0));
        let expected: BTreeSet<String> = ["Arbeitgeber", "Gewerkschaft", "Ministerium", "Pflegedienst"].map(String::from).into();
        assert_eq!(not_answered(round, &expected), vec!["Pflegedienst".to_owned()]);
        assert_eq!(dissent(round).iter().map(|(o, a)| (*o, a.reason.0.as_str())).collect::<Vec<_>>(), vec![("Arbeitgeber", "Zu teuer, aber tragbar")]);
        assert_eq!(may_adopt(&rec.rounds), Err(ConsentMissing::RoundOpen));

        run(&mut doc, |tx| close(tx, "Konsens ohne Veto.", "f", 3_000)).expect("close");
        assert!(matches!(run(&mut doc, |tx| answer(tx, "Gewerkschaft", Answer::Block, "", "p1", 3_100)), Err(ConsentError::NoOpenRound)));
        let rec = Recommendation::from_doc(&doc).expect("reads");
        assert_eq!(rec.rounds[0].closed.as_ref().map(|c| c.outcome.0.as_str()), Some("Konsens ohne Veto."));
        assert_eq!(may_adopt(&rec.rounds), Ok(()));
        assert_eq!(deciding_round(&rec.rounds).map(|r| r.id.0.as_str()), Some("r1"));
    }

    #[test]
    fn a_block_in_the_latest_closed_round_stops_adoption_and_a_new_round_can_lift_it() {
        let mut doc = recommendation();
        run(&mut doc, |tx| open(tx, "r1", "", 2_000, "f", 1_000)).expect("open");
        run(&mut doc, |tx| answer(tx, "Arbeitgeber", Answer::Block, "Nein", "p2", 1_200)).expect("answer");
        run(&mut doc, |tx| close(tx, "Veto", "f", 1_500)).expect("close");
        let rounds_now = rounds(&doc).expect("rounds");
        assert_eq!(may_adopt(&rounds_now), Err(ConsentMissing::Blocked(vec!["Arbeitgeber".into()])));
        assert!(!wording_changed_since(&doc, &rounds_now[0]).expect("compare"), "nothing edited yet");
        doc.transact::<_, _, SchemaError>(|tx| {
            let obj = schema::text_object(tx, "recommendation")?;
            tx.splice_text(&obj, 0, 0, "Fast ")?;
            Ok(())
        })
        .expect("edit");
        assert!(wording_changed_since(&doc, &rounds(&doc).expect("rounds")[0]).expect("compare"));
        run(&mut doc, |tx| open(tx, "r2", "", 3_000, "f", 2_000)).expect("open again");
        run(&mut doc, |tx| answer(tx, "Arbeitgeber", Answer::Agree, "", "p2", 2_100)).expect("answer");
        run(&mut doc, |tx| close(tx, "Konsens", "f", 2_500)).expect("close");
        assert_eq!(may_adopt(&rounds(&doc).expect("rounds")), Ok(()));
        // The status itself is untouched by rounds.
        assert_eq!(Recommendation::from_doc(&doc).expect("reads").status, Status::Draft);
    }

    #[test]
    fn answering_organisations_are_the_participants_ones() {
        let members = [
            (MemberRole::Participant, "Gewerkschaft"),
            (MemberRole::Participant, "Gewerkschaft"),
            (MemberRole::Facilitator, "Moderation"),
            (MemberRole::Observer, "Presse"),
            (MemberRole::Participant, "Arbeitgeber"),
        ];
        assert_eq!(answering_organisations(members).into_iter().collect::<Vec<_>>(), vec!["Arbeitgeber".to_owned(), "Gewerkschaft".to_owned()]);
    }

    #[test]
    fn the_process_setting_is_read_strictly() {
        let mut process = Automerge::new();
        process.transact::<_, _, SchemaError>(|tx| schema::init_process(tx, "P", "")).expect("init");
        assert!(!adoption_requires_consent(&process));
        assert!(!schema::Process::from_doc(&process).expect("reads").adoption_requires_consent);
        run(&mut process, |tx| set_adoption_requires_consent(tx, true)).expect("on");
        assert!(adoption_requires_consent(&process));
        assert!(schema::Process::from_doc(&process).expect("reads").adoption_requires_consent);
        process
            .transact::<_, _, SchemaError>(|tx| {
                tx.put(ROOT, "adoptionRequiresConsent", "yes")?;
                Ok(())
            })
            .expect("a string");
        assert!(!adoption_requires_consent(&process));
    }
}
