//! The konsens document model: a *process* (a think tank's drafting process,
//! with workshops and members) and its *recommendations*.
//!
//! Both are Automerge documents with a `schema` field naming their version.
//! Reading goes through `autosurgeon`: unknown fields are ignored (a newer
//! client may add some), wrong shapes become a [`SchemaError`], never a panic.
//! Writing goes through the operations in this module, which touch only the
//! fields they change, so concurrent edits by others survive. The text fields
//! `problem`, `recommendation` and `rationale` are Automerge rich text (block
//! markers and marks, as `@automerge/prosemirror` reads and writes them), and
//! `title` is plain Automerge text so that browsers can co-edit it.
//!
//! Time and ids come in as arguments: this crate never reads a clock or draws
//! random numbers.

use std::collections::BTreeMap;
use std::fmt;

use automerge::iter::Span;
use automerge::transaction::{Transactable, Transaction};
use automerge::{Automerge, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use autosurgeon::{Hydrate, HydrateError, Reconcile};
use thiserror::Error;

use crate::names::closed_names;

/// Schema tag of a process document.
pub const PROCESS_SCHEMA: &str = "konsens/process@1";
/// Schema tag of a recommendation document.
pub const RECOMMENDATION_SCHEMA: &str = "konsens/recommendation@1";

/// The collaborative rich-text fields of a recommendation.
pub const TEXT_FIELDS: [&str; 3] = ["problem", "recommendation", "rationale"];

/// What can go wrong reading or changing a konsens document.
#[derive(Debug, Error)]
pub enum SchemaError {
    #[error("not a konsens {kind} document (expected schema {expected}, found {found})")]
    WrongSchema { kind: &'static str, expected: &'static str, found: String },
    #[error("the {kind} document is malformed: {reason}")]
    Malformed { kind: &'static str, reason: String },
    #[error("unknown field {0:?}; fields are title, problem, recommendation, rationale, sectors, addressees, workshop")]
    UnknownField(String),
    #[error("unknown status {0:?}; statuses are draft, discussion, consensus, adopted, rejected")]
    UnknownStatus(String),
    #[error("a recommendation cannot go from {from} to {to}")]
    ForbiddenTransition { from: Status, to: Status },
    #[error("unknown stance {0:?}; stances are support, concerns, object")]
    UnknownStance(String),
    #[error("unknown role {0:?}; roles are facilitator, participant, observer")]
    UnknownRole(String),
    #[error("unknown answer {0:?}; answers are agree, abstain, disagree, block")]
    UnknownAnswer(String),
    #[error("no workshop {0:?} in this process")]
    UnknownWorkshop(String),
    #[error("the text {quote:?} does not occur in the {field} field")]
    QuoteNotFound { field: String, quote: String },
    #[error("no comment {0:?}")]
    UnknownComment(String),
    #[error("unknown amendment state {0:?}; states are open, changes-requested, accepted, rejected, withdrawn")]
    UnknownAmendmentState(String),
    #[error(transparent)]
    Automerge(#[from] automerge::AutomergeError),
    #[error("cannot write: {0}")]
    Reconcile(#[from] autosurgeon::ReconcileError),
}

// ---------------------------------------------------------------------------
// Value types with a closed set of values.

/// Values kept in documents are stored by their names.
macro_rules! stored_by_name {
    ($($name:ident),+) => {$(
        impl Hydrate for $name {
            fn hydrate_string(s: &str) -> Result<Self, HydrateError> {
                s.parse().map_err(|e: SchemaError| HydrateError::unexpected("a known value", e.to_string()))
            }
        }

        impl Reconcile for $name {
            type Key<'a> = autosurgeon::reconcile::NoKey;
            fn reconcile<R: autosurgeon::Reconciler>(&self, reconciler: R) -> Result<(), R::Error> {
                self.as_str().reconcile(reconciler)
            }
        }
    )+};
}

closed_names!(
    /// Where a recommendation stands: `draft → discussion → consensus → adopted | rejected`.
    Status, SchemaError::UnknownStatus, {
        Draft => "draft",
        Discussion => "discussion",
        Consensus => "consensus",
        Adopted => "adopted",
        Rejected => "rejected",
    }
);

closed_names!(
    /// An organisation's position on a recommendation.
    Stance, SchemaError::UnknownStance, {
        Support => "support",
        Concerns => "concerns",
        Object => "object",
    }
);

closed_names!(
    /// What a member may do in a process.
    MemberRole, SchemaError::UnknownRole, {
        Facilitator => "facilitator",
        Participant => "participant",
        Observer => "observer",
    }
);

closed_names!(
    /// An organisation's answer in a consent round (see `consent`). A block
    /// stops an adoption where the process requires consent.
    Answer, SchemaError::UnknownAnswer, {
        Agree => "agree",
        Abstain => "abstain",
        Disagree => "disagree",
        Block => "block",
    }
);

stored_by_name!(Status, Stance, MemberRole, Answer);

impl Status {
    /// Allowed moves: forward one step, back one step for more discussion,
    /// a final decision only from consensus, and re-opening a decided
    /// recommendation for discussion (or back to consensus).
    pub fn can_move_to(self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (Draft, Discussion)
                | (Discussion, Draft)
                | (Discussion, Consensus)
                | (Consensus, Discussion)
                | (Consensus, Adopted)
                | (Consensus, Rejected)
                | (Adopted, Discussion)
                | (Adopted, Consensus)
                | (Rejected, Discussion)
                | (Rejected, Consensus)
        )
    }

    /// A decision: adopted or rejected. Moving into or out of one is for
    /// facilitators only (see `access`).
    pub fn is_decision(self) -> bool {
        matches!(self, Status::Adopted | Status::Rejected)
    }
}

/// A string that may be stored as a scalar or as Automerge text (JS clients
/// write strings as text by default).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Str(pub String);

impl Hydrate for Str {
    fn hydrate_string(s: &str) -> Result<Self, HydrateError> {
        Ok(Str(s.to_owned()))
    }
    fn hydrate_text<D: autosurgeon::ReadDoc>(doc: &D, obj: &ObjId) -> Result<Self, HydrateError> {
        Ok(Str(doc.text(obj)?))
    }
}

impl fmt::Display for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A rich-text field as Automerge spans: runs of text with their marks, and
/// block markers (paragraphs, headings, list items).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RichText(pub Vec<Span>);

/// autosurgeon's read interface has no spans, so hydration only remembers the
/// text object; [`Recommendation::from_doc`] then reads its spans.
#[derive(Debug, Clone, Default, PartialEq)]
struct TextRef(Option<ObjId>, RichText);

impl RichText {
    /// The text without marks, blocks joined by blank lines.
    pub fn plain(&self) -> String {
        let mut out = String::new();
        for span in &self.0 {
            match span {
                Span::Text { text, .. } => out.push_str(text),
                Span::Block(_) => {
                    if !out.is_empty() {
                        out.push_str("\n\n");
                    }
                }
            }
        }
        out
    }
}

impl Hydrate for TextRef {
    fn hydrate_string(s: &str) -> Result<Self, HydrateError> {
        Ok(TextRef(None, RichText(vec![Span::Text { text: s.to_owned(), marks: None }])))
    }
    fn hydrate_text<D: autosurgeon::ReadDoc>(_doc: &D, obj: &ObjId) -> Result<Self, HydrateError> {
        Ok(TextRef(Some(obj.clone()), RichText::default()))
    }
}

impl TextRef {
    fn load(self, doc: &Automerge) -> Result<RichText, SchemaError> {
        match self.0 {
            Some(obj) => Ok(RichText(doc.spans(&obj)?.collect())),
            None => Ok(self.1),
        }
    }
}

// ---------------------------------------------------------------------------
// The process document.

#[derive(Debug, Clone, PartialEq, Eq, Hydrate, Reconcile)]
pub struct Workshop {
    pub id: String,
    pub title: String,
    #[autosurgeon(missing = "Default::default")]
    pub theme: String,
    #[autosurgeon(missing = "Default::default")]
    pub sectors: Vec<String>,
    /// ISO date (`YYYY-MM-DD`), if scheduled.
    #[autosurgeon(missing = "Default::default")]
    pub date: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hydrate, Reconcile)]
pub struct Member {
    pub name: String,
    pub organisation: String,
    pub role: MemberRole,
}

#[derive(Debug, Clone, PartialEq, Hydrate)]
pub struct Process {
    pub schema: String,
    pub title: Str,
    #[autosurgeon(missing = "Default::default")]
    pub description: Str,
    #[autosurgeon(missing = "Default::default")]
    pub workshops: Vec<Workshop>,
    /// Participant id → member.
    #[autosurgeon(missing = "Default::default")]
    pub members: BTreeMap<String, Member>,
    /// Workshop id → `automerge:` URLs of its recommendations, in creation order.
    #[autosurgeon(missing = "Default::default")]
    pub recommendations: BTreeMap<String, Vec<String>>,
    /// `automerge:` URL → archived (hidden by default, never deleted; a
    /// facilitator restores it by setting `false`).
    #[autosurgeon(rename = "archivedRecommendations", missing = "Default::default")]
    pub archived_recommendations: BTreeMap<String, bool>,
    /// Workshop id → archived (hidden by default with its recommendations).
    #[autosurgeon(rename = "archivedWorkshops", missing = "Default::default")]
    pub archived_workshops: BTreeMap<String, bool>,
    /// Whether adopting needs a closed consent round without a block
    /// (facilitators only; see `consent::may_adopt`).
    #[autosurgeon(rename = "adoptionRequiresConsent", missing = "Default::default")]
    pub adoption_requires_consent: bool,
    /// The language the process works and publishes in (`"de"`, `"en"`).
    /// Kept as written: older documents have none and a newer client may
    /// write another, so reading never fails on it; the report falls back to
    /// German (`report::Language::of`).
    #[autosurgeon(missing = "Default::default")]
    pub language: Option<Str>,
}

impl Process {
    pub fn from_doc(doc: &Automerge) -> Result<Self, SchemaError> {
        check_schema(doc, PROCESS_SCHEMA)?;
        autosurgeon::hydrate(doc).map_err(|e| SchemaError::Malformed {
            kind: "process",
            reason: e.to_string(),
        })
    }

    /// The same, inside a transaction.
    fn from_doc_in(tx: &Transaction<'_>) -> Result<Self, SchemaError> {
        autosurgeon::hydrate(tx).map_err(|e| SchemaError::Malformed { kind: "process", reason: e.to_string() })
    }

    pub fn workshop(&self, id: &str) -> Option<&Workshop> {
        self.workshops.iter().find(|w| w.id == id || w.title == id)
    }
}

// ---------------------------------------------------------------------------
// The recommendation document.

#[derive(Debug, Clone, PartialEq, Eq, Hydrate, Reconcile)]
pub struct StatusChange {
    /// Participant id of who moved it.
    pub by: String,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    pub from: Status,
    pub to: Status,
    #[autosurgeon(missing = "Default::default")]
    pub note: String,
    /// For an adoption: the document's heads (hex change hashes) just before
    /// it, which fix the adopted wording.
    #[autosurgeon(missing = "Default::default")]
    pub heads: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hydrate, Reconcile)]
pub struct Reply {
    pub author: String,
    pub at: i64,
    pub body: String,
}

/// A comment anchored to a range of one text field by Automerge cursors, so
/// it follows the text through concurrent edits.
#[derive(Debug, Clone, PartialEq, Eq, Hydrate, Reconcile)]
pub struct Comment {
    pub author: String,
    pub at: i64,
    pub body: String,
    #[autosurgeon(missing = "Default::default")]
    pub resolved: bool,
    pub field: String,
    /// Cursor (Automerge `Cursor` text form) before the first quoted character.
    pub start: String,
    /// Cursor at the last quoted character.
    pub end: String,
    /// The text as quoted when the comment was made.
    #[autosurgeon(missing = "Default::default")]
    pub quote: String,
    #[autosurgeon(missing = "Default::default")]
    pub replies: Vec<Reply>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hydrate, Reconcile)]
pub struct Endorsement {
    pub stance: Stance,
    #[autosurgeon(missing = "Default::default")]
    pub note: String,
    /// Participant id of who endorsed on behalf of the organisation.
    pub by: String,
    pub at: i64,
}

/// A consent round on a recommendation's wording: facilitators open and
/// close it, each organisation answers once (see `consent`).
#[derive(Debug, Clone, PartialEq, Eq, Hydrate)]
pub struct Round {
    pub id: Str,
    #[autosurgeon(missing = "Default::default")]
    pub question: Str,
    /// The document's heads (hex change hashes) when the round opened: the
    /// wording it asks about.
    #[autosurgeon(missing = "Default::default")]
    pub heads: Vec<String>,
    /// Milliseconds since the Unix epoch.
    pub deadline: i64,
    #[autosurgeon(rename = "openedBy")]
    pub opened_by: Str,
    #[autosurgeon(rename = "openedAt")]
    pub opened_at: i64,
    /// Organisation → its answer.
    #[autosurgeon(missing = "Default::default")]
    pub answers: BTreeMap<String, RoundAnswer>,
    /// `null` while the round is open.
    #[autosurgeon(missing = "Default::default")]
    pub closed: Option<RoundClosure>,
}

/// An organisation's answer in a round, given by one of its members.
#[derive(Debug, Clone, PartialEq, Eq, Hydrate)]
pub struct RoundAnswer {
    pub answer: Answer,
    #[autosurgeon(missing = "Default::default")]
    pub reason: Str,
    /// Participant id of who answered for the organisation.
    pub by: Str,
    pub at: i64,
}

/// How a facilitator closed a round.
#[derive(Debug, Clone, PartialEq, Eq, Hydrate)]
pub struct RoundClosure {
    pub at: i64,
    pub by: Str,
    #[autosurgeon(missing = "Default::default")]
    pub outcome: Str,
}

/// The latest closed round: the one whose outcome stands (what a report shows).
pub fn deciding_round(rounds: &[Round]) -> Option<&Round> {
    rounds.iter().rev().find(|r| r.closed.is_some())
}

impl Round {
    /// The recommendation as it stood when the round opened; `None` when this
    /// copy lacks the round's heads.
    pub fn wording(&self, doc: &Automerge) -> Result<Option<Recommendation>, SchemaError> {
        let heads = self
            .heads
            .iter()
            .map(|h| h.parse::<automerge::ChangeHash>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SchemaError::Malformed { kind: "recommendation", reason: format!("round heads: {e}") })?;
        if heads.is_empty() || heads.iter().any(|h| doc.get_change_by_hash(h).is_none()) {
            return Ok(None);
        }
        Recommendation::from_doc_at(doc, &heads).map(Some)
    }
}

// ---------------------------------------------------------------------------
// Amendments (operations in `amendment`).

closed_names!(
    /// Where an amendment stands. `open` and `changes-requested` may still be
    /// edited; the others are final (a withdrawn amendment may not come back).
    AmendmentState, SchemaError::UnknownAmendmentState, {
        Open => "open",
        ChangesRequested => "changes-requested",
        Accepted => "accepted",
        Rejected => "rejected",
        Withdrawn => "withdrawn",
    }
);
stored_by_name!(AmendmentState);

impl AmendmentState {
    /// Whether the branch may still be written.
    pub fn is_editable(self) -> bool {
        matches!(self, AmendmentState::Open | AmendmentState::ChangesRequested)
    }

    /// Whether only a facilitator may move an amendment into this state.
    pub fn is_decision(self) -> bool {
        matches!(self, AmendmentState::Accepted | AmendmentState::Rejected | AmendmentState::ChangesRequested)
    }
}

/// The entry of one amendment in its recommendation.
#[derive(Debug, Clone, PartialEq, Eq, Hydrate)]
pub struct Amendment {
    /// `automerge:<branch id>`.
    pub url: Str,
    /// A short description of what the amendment wants.
    #[autosurgeon(missing = "Default::default")]
    pub title: Str,
    /// Participant id of the author.
    pub by: Str,
    /// Milliseconds since the Unix epoch.
    #[autosurgeon(missing = "Default::default")]
    pub opened: i64,
    /// The recommendation's heads (hex) it was forked at.
    #[autosurgeon(missing = "Default::default")]
    pub base: Vec<Str>,
    /// Participant ids the author invited to co-edit the branch.
    #[autosurgeon(missing = "Default::default")]
    pub coauthors: Vec<Str>,
    pub state: AmendmentState,
    /// Organisation → its endorsement of the amendment.
    #[autosurgeon(missing = "Default::default")]
    pub endorsements: BTreeMap<String, Endorsement>,
    /// The facilitator's decision, `null` until there is one.
    #[autosurgeon(missing = "Default::default")]
    pub decision: Option<Decision>,
}

impl Amendment {
    /// Whether `participant` may write the branch: its author or a coauthor.
    pub fn is_author(&self, participant: &str) -> bool {
        self.by.0 == participant || self.coauthors.iter().any(|c| c.0 == participant)
    }
}

/// A facilitator's decision on an amendment, with the official answer.
#[derive(Debug, Clone, PartialEq, Eq, Hydrate)]
pub struct Decision {
    pub state: AmendmentState,
    #[autosurgeon(missing = "Default::default")]
    pub answer: Str,
    /// Participant id of the facilitator.
    pub by: Str,
    pub at: i64,
    /// Hunk ids taken over (when accepted).
    #[autosurgeon(missing = "Default::default")]
    pub accepted: Vec<Str>,
    /// Hunk ids left out (when accepted in part).
    #[autosurgeon(missing = "Default::default")]
    pub rejected: Vec<Str>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub schema: String,
    /// `automerge:` URL of the process this belongs to.
    pub process: String,
    pub workshop: String,
    pub title: Str,
    pub sectors: Vec<String>,
    pub addressees: Vec<String>,
    pub status: Status,
    pub status_log: Vec<StatusChange>,
    pub problem: RichText,
    pub recommendation: RichText,
    pub rationale: RichText,
    /// Comment id → comment.
    pub comments: BTreeMap<String, Comment>,
    /// Organisation → its endorsement.
    pub endorsements: BTreeMap<String, Endorsement>,
    /// Consent rounds, oldest first.
    pub rounds: Vec<Round>,
    /// Branch document id → the amendment it holds (see `amendment`).
    pub amendments: BTreeMap<String, Amendment>,
    /// Whether the adopted wording differs from the wording its deciding
    /// round (`consent::deciding_round`) was held on. Only
    /// [`Recommendation::from_doc_as_adopted`] compares, for an adopted
    /// recommendation (the final report notes it); every other reading
    /// leaves it `false`.
    pub changed_after_round: bool,
}

/// The stored shape, before rich text is read.
#[derive(Hydrate)]
struct RawRecommendation {
    schema: String,
    /// `automerge:` URL of the process this belongs to.
    process: String,
    workshop: String,
    title: Str,
    #[autosurgeon(missing = "Default::default")]
    sectors: Vec<String>,
    #[autosurgeon(missing = "Default::default")]
    addressees: Vec<String>,
    status: Status,
    #[autosurgeon(rename = "statusLog", missing = "Default::default")]
    status_log: Vec<StatusChange>,
    #[autosurgeon(missing = "Default::default")]
    problem: TextRef,
    #[autosurgeon(missing = "Default::default")]
    recommendation: TextRef,
    #[autosurgeon(missing = "Default::default")]
    rationale: TextRef,
    /// Comment id → comment.
    #[autosurgeon(missing = "Default::default")]
    comments: BTreeMap<String, Comment>,
    /// Organisation → its endorsement.
    #[autosurgeon(missing = "Default::default")]
    endorsements: BTreeMap<String, Endorsement>,
    #[autosurgeon(missing = "Default::default")]
    rounds: Vec<Round>,
    #[autosurgeon(missing = "Default::default")]
    amendments: BTreeMap<String, Amendment>,
}

impl Recommendation {
    pub fn from_doc(doc: &Automerge) -> Result<Self, SchemaError> {
        check_schema(doc, RECOMMENDATION_SCHEMA)?;
        let raw: RawRecommendation = autosurgeon::hydrate(doc).map_err(|e| SchemaError::Malformed {
            kind: "recommendation",
            reason: e.to_string(),
        })?;
        Ok(Recommendation {
            schema: raw.schema,
            process: raw.process,
            workshop: raw.workshop,
            title: raw.title,
            sectors: raw.sectors,
            addressees: raw.addressees,
            status: raw.status,
            status_log: raw.status_log,
            problem: raw.problem.load(doc)?,
            recommendation: raw.recommendation.load(doc)?,
            rationale: raw.rationale.load(doc)?,
            comments: raw.comments,
            endorsements: raw.endorsements,
            rounds: raw.rounds,
            amendments: raw.amendments,
            changed_after_round: false,
        })
    }

    /// The same, as of an earlier version.
    pub fn from_doc_at(doc: &Automerge, heads: &[automerge::ChangeHash]) -> Result<Self, SchemaError> {
        let mut past = doc.fork_at(heads)?;
        // fork_at gives a document with its own actor; reading needs nothing else.
        past.set_actor(automerge::ActorId::random());
        Self::from_doc(&past)
    }

    /// The adoption that fixes the wording now: the last status-log entry into
    /// `adopted`, while the recommendation is adopted and it recorded heads.
    pub fn adoption(&self) -> Option<&StatusChange> {
        if self.status != Status::Adopted {
            return None;
        }
        self.status_log.iter().rev().find(|c| c.to == Status::Adopted).filter(|c| !c.heads.is_empty())
    }

    /// What a report shows: for an adopted recommendation, its title and text
    /// fields as they stood when it was adopted (later or concurrent edits do
    /// not change the adopted wording); everything else as it is now.
    pub fn from_doc_as_adopted(doc: &Automerge) -> Result<Self, SchemaError> {
        let mut rec = Self::from_doc(doc)?;
        let Some(adoption) = rec.adoption() else {
            return Ok(rec);
        };
        let heads = adoption
            .heads
            .iter()
            .map(|h| h.parse::<automerge::ChangeHash>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SchemaError::Malformed { kind: "recommendation", reason: format!("adoption heads: {e}") })?;
        // Heads this copy does not hold (a partial sync) leave the current wording.
        if heads.iter().any(|h| doc.get_change_by_hash(h).is_none()) {
            return Ok(rec);
        }
        let adopted = Self::from_doc_at(doc, &heads)?;
        if let Some(round) = deciding_round(&rec.rounds) {
            rec.changed_after_round = round.wording(doc)?
                .is_some_and(|then| !then.same_wording(&adopted));
        }
        rec.title = adopted.title;
        rec.problem = adopted.problem;
        rec.recommendation = adopted.recommendation;
        rec.rationale = adopted.rationale;
        Ok(rec)
    }

    /// Whether the title and the text fields are the same as `other`'s.
    pub fn same_wording(&self, other: &Recommendation) -> bool {
        self.title == other.title
            && self.problem == other.problem
            && self.recommendation == other.recommendation
            && self.rationale == other.rationale
    }

    /// Whether the title or a text field differs from the adopted wording.
    pub fn changed_since_adoption(doc: &Automerge) -> Result<bool, SchemaError> {
        let now = Self::from_doc(doc)?;
        let adopted = Self::from_doc_as_adopted(doc)?;
        Ok(!now.same_wording(&adopted))
    }

    pub fn text(&self, field: &str) -> Option<&RichText> {
        match field {
            "problem" => Some(&self.problem),
            "recommendation" => Some(&self.recommendation),
            "rationale" => Some(&self.rationale),
            _ => None,
        }
    }
}

fn check_schema(doc: &Automerge, expected: &'static str) -> Result<(), SchemaError> {
    let found = match doc.get(ROOT, "schema")? {
        Some((Value::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Str(s) => s.to_string(),
            other => format!("{other}"),
        },
        Some((Value::Object(ObjType::Text), id)) => doc.text(&id)?,
        Some((other, _)) => format!("{other}"),
        None => "missing".to_owned(),
    };
    if found == expected {
        Ok(())
    } else {
        let kind = if expected == PROCESS_SCHEMA { "process" } else { "recommendation" };
        Err(SchemaError::WrongSchema { kind, expected, found })
    }
}

// ---------------------------------------------------------------------------
// Operations. Each works inside the caller's transaction and changes only
// what it must.

/// Fill an empty document as a new process.
pub fn init_process(tx: &mut Transaction<'_>, title: &str, description: &str) -> Result<(), SchemaError> {
    tx.put(ROOT, "schema", PROCESS_SCHEMA)?;
    let t = tx.put_object(ROOT, "title", ObjType::Text)?;
    tx.splice_text(&t, 0, 0, title)?;
    let d = tx.put_object(ROOT, "description", ObjType::Text)?;
    tx.splice_text(&d, 0, 0, description)?;
    tx.put_object(ROOT, "workshops", ObjType::List)?;
    tx.put_object(ROOT, "members", ObjType::Map)?;
    tx.put_object(ROOT, "recommendations", ObjType::Map)?;
    Ok(())
}

/// The language the process works and publishes in (`"de"`, `"en"`): its
/// reports' default (`report::Language::of`).
pub fn set_language(tx: &mut Transaction<'_>, code: &str) -> Result<(), SchemaError> {
    tx.put(ROOT, "language", code)?;
    Ok(())
}

fn child<T: ReadDoc>(tx: &T, parent: &ObjId, key: &str, kind: &'static str) -> Result<ObjId, SchemaError> {
    match tx.get(parent, key)? {
        Some((Value::Object(_), id)) => Ok(id),
        _ => Err(SchemaError::Malformed {
            kind,
            reason: format!("{key:?} is missing or not an object"),
        }),
    }
}

/// Append a workshop to a process.
pub fn add_workshop(tx: &mut Transaction<'_>, workshop: &Workshop) -> Result<(), SchemaError> {
    let list = child(tx, &ROOT, "workshops", "process")?;
    let index = tx.length(&list);
    autosurgeon::reconcile_insert(tx, list, index, workshop)?;
    Ok(())
}

/// Add or update a member of a process.
pub fn put_member(tx: &mut Transaction<'_>, id: &str, member: &Member) -> Result<(), SchemaError> {
    let members = child(tx, &ROOT, "members", "process")?;
    autosurgeon::reconcile_prop(tx, &members, id, member)?;
    Ok(())
}

/// The index of a workshop in the process's list.
fn workshop_index<T: ReadDoc>(tx: &T, list: &ObjId, id: &str) -> Result<usize, SchemaError> {
    (0..tx.length(list))
        .find(|&i| match tx.get(list, i) {
            Ok(Some((Value::Object(ObjType::Map), w))) => {
                matches!(tx.get(&w, "id"), Ok(Some((Value::Scalar(s), _))) if s.as_str() == Some(id))
                    || matches!(tx.get(&w, "id"), Ok(Some((Value::Object(ObjType::Text), t))) if tx.text(&t).is_ok_and(|t| t == id))
            }
            _ => false,
        })
        .ok_or_else(|| SchemaError::UnknownWorkshop(id.to_owned()))
}

/// Rename a workshop (its id, which recommendations refer to, stays).
pub fn rename_workshop(tx: &mut Transaction<'_>, id: &str, title: &str) -> Result<(), SchemaError> {
    let list = child(tx, &ROOT, "workshops", "process")?;
    let index = workshop_index(tx, &list, id)?;
    let Some((_, workshop)) = tx.get(&list, index)? else {
        return Err(SchemaError::UnknownWorkshop(id.to_owned()));
    };
    tx.put(&workshop, "title", title)?;
    Ok(())
}

/// Archive a workshop, or restore it.
pub fn archive_workshop(tx: &mut Transaction<'_>, id: &str, archived: bool) -> Result<(), SchemaError> {
    let list = child(tx, &ROOT, "workshops", "process")?;
    workshop_index(tx, &list, id)?;
    archive_in(tx, "archivedWorkshops", id, archived)
}

/// `map[key] = archived` in a top-level map, created if missing.
fn archive_in(tx: &mut Transaction<'_>, map: &str, key: &str, archived: bool) -> Result<(), SchemaError> {
    let map = match tx.get(ROOT, map)? {
        Some((Value::Object(ObjType::Map), id)) => id,
        _ => tx.put_object(ROOT, map, ObjType::Map)?,
    };
    tx.put(&map, key, archived)?;
    Ok(())
}

/// Move a workshop to position `to` of the list (a list has no move: the
/// workshop is written again there).
pub fn move_workshop(tx: &mut Transaction<'_>, id: &str, to: usize) -> Result<(), SchemaError> {
    let process = Process::from_doc_in(tx)?;
    let Some(workshop) = process.workshops.iter().find(|w| w.id == id).cloned() else {
        return Err(SchemaError::UnknownWorkshop(id.to_owned()));
    };
    let list = child(tx, &ROOT, "workshops", "process")?;
    let from = workshop_index(tx, &list, id)?;
    tx.delete(&list, from)?;
    let to = to.min(tx.length(&list));
    autosurgeon::reconcile_insert(tx, list, to, &workshop)?;
    Ok(())
}

/// Move a recommendation's link from its workshop to `to` (the
/// recommendation document's own `workshop` field is set by
/// [`set_workshop`] in that document).
pub fn move_recommendation(tx: &mut Transaction<'_>, url: &str, to: &str) -> Result<(), SchemaError> {
    let map = child(tx, &ROOT, "recommendations", "process")?;
    for workshop in tx.keys(&map).collect::<Vec<_>>() {
        if let Some((Value::Object(ObjType::List), list)) = tx.get(&map, workshop.as_str())? {
            let at = (0..tx.length(&list)).rev().filter(|&i| matches!(tx.get(&list, i), Ok(Some((Value::Scalar(s), _))) if s.as_str() == Some(url)));
            for i in at.collect::<Vec<_>>() {
                tx.delete(&list, i)?;
            }
        }
    }
    link_recommendation(tx, to, url)
}

/// Archive a recommendation in its process, or restore it.
pub fn archive_recommendation(tx: &mut Transaction<'_>, url: &str, archived: bool) -> Result<(), SchemaError> {
    archive_in(tx, "archivedRecommendations", url, archived)
}

/// Set which workshop a recommendation belongs to (in its own document).
pub fn set_workshop(tx: &mut Transaction<'_>, workshop: &str) -> Result<(), SchemaError> {
    tx.put(ROOT, "workshop", workshop)?;
    Ok(())
}

/// Record a recommendation document under its workshop.
pub fn link_recommendation(tx: &mut Transaction<'_>, workshop: &str, url: &str) -> Result<(), SchemaError> {
    let map = child(tx, &ROOT, "recommendations", "process")?;
    let list = match tx.get(&map, workshop)? {
        Some((Value::Object(ObjType::List), id)) => id,
        _ => tx.put_object(&map, workshop, ObjType::List)?,
    };
    let index = tx.length(&list);
    tx.insert(&list, index, url)?;
    Ok(())
}

/// Fill an empty document as a new recommendation.
pub fn init_recommendation(
    tx: &mut Transaction<'_>,
    process_url: &str,
    workshop: &str,
    title: &str,
    sectors: &[String],
) -> Result<(), SchemaError> {
    tx.put(ROOT, "schema", RECOMMENDATION_SCHEMA)?;
    tx.put(ROOT, "process", process_url)?;
    tx.put(ROOT, "workshop", workshop)?;
    let t = tx.put_object(ROOT, "title", ObjType::Text)?;
    tx.splice_text(&t, 0, 0, title)?;
    let list = tx.put_object(ROOT, "sectors", ObjType::List)?;
    for (i, s) in sectors.iter().enumerate() {
        tx.insert(&list, i, s.as_str())?;
    }
    tx.put_object(ROOT, "addressees", ObjType::List)?;
    tx.put(ROOT, "status", Status::Draft.as_str())?;
    tx.put_object(ROOT, "statusLog", ObjType::List)?;
    for field in TEXT_FIELDS {
        tx.put_object(ROOT, field, ObjType::Text)?;
    }
    tx.put_object(ROOT, "comments", ObjType::Map)?;
    tx.put_object(ROOT, "endorsements", ObjType::Map)?;
    Ok(())
}

/// The text object of a field, created if a concurrent writer has not made one yet.
pub fn text_object(tx: &mut Transaction<'_>, field: &str) -> Result<ObjId, SchemaError> {
    if field != "title" && !TEXT_FIELDS.contains(&field) {
        return Err(SchemaError::UnknownField(field.to_owned()));
    }
    match tx.get(ROOT, field)? {
        Some((Value::Object(ObjType::Text), id)) => Ok(id),
        _ => Ok(tx.put_object(ROOT, field, ObjType::Text)?),
    }
}

/// Replace the title by a minimal diff (concurrent edits elsewhere in it survive).
pub fn set_title(tx: &mut Transaction<'_>, title: &str) -> Result<(), SchemaError> {
    let obj = text_object(tx, "title")?;
    tx.update_text(&obj, title)?;
    Ok(())
}

/// Replace a rich-text field's content by a minimal diff of text, blocks and marks.
pub fn set_rich_text(tx: &mut Transaction<'_>, field: &str, spans: Vec<Span>) -> Result<(), SchemaError> {
    if !TEXT_FIELDS.contains(&field) {
        return Err(SchemaError::UnknownField(field.to_owned()));
    }
    let obj = text_object(tx, field)?;
    // Links do not grow when typing after them, as in the browser editor.
    tx.update_spans(&obj, crate::richtext::update_spans_config(), spans)?;
    Ok(())
}

/// Replace a list field (`sectors`, `addressees`) with these values.
pub fn set_list(tx: &mut Transaction<'_>, field: &str, values: &[String]) -> Result<(), SchemaError> {
    if field != "sectors" && field != "addressees" {
        return Err(SchemaError::UnknownField(field.to_owned()));
    }
    autosurgeon::reconcile_prop(tx, ROOT, field, values)?;
    Ok(())
}

/// Move a recommendation to another status, logging who, when and why.
pub fn change_status(
    tx: &mut Transaction<'_>,
    to: Status,
    by: &str,
    at: i64,
    note: &str,
) -> Result<StatusChange, SchemaError> {
    let from: Status = autosurgeon::hydrate_prop(tx, ROOT, "status").map_err(|e| SchemaError::Malformed {
        kind: "recommendation",
        reason: e.to_string(),
    })?;
    if !from.can_move_to(to) {
        return Err(SchemaError::ForbiddenTransition { from, to });
    }
    tx.put(ROOT, "status", to.as_str())?;
    let log = match tx.get(ROOT, "statusLog")? {
        Some((Value::Object(ObjType::List), id)) => id,
        _ => tx.put_object(ROOT, "statusLog", ObjType::List)?,
    };
    // The wording as it stands when adopted (the heads before this change).
    let heads = if to == Status::Adopted { tx.get_heads().iter().map(|h| h.to_string()).collect() } else { Vec::new() };
    let entry = StatusChange { by: by.to_owned(), at, from, to, note: note.to_owned(), heads };
    let index = tx.length(&log);
    autosurgeon::reconcile_insert(tx, log, index, &entry)?;
    Ok(entry)
}

/// Anchor a comment to the first occurrence of `quote` in a text field.
#[allow(clippy::too_many_arguments)]
pub fn add_comment(
    tx: &mut Transaction<'_>,
    id: &str,
    field: &str,
    quote: &str,
    body: &str,
    author: &str,
    at: i64,
) -> Result<Comment, SchemaError> {
    if !TEXT_FIELDS.contains(&field) && field != "title" {
        return Err(SchemaError::UnknownField(field.to_owned()));
    }
    let obj = text_object(tx, field)?;
    let text = tx.text(&obj)?;
    let not_found = || SchemaError::QuoteNotFound { field: field.to_owned(), quote: quote.to_owned() };
    if quote.is_empty() {
        return Err(not_found());
    }
    let byte_start = text.find(quote).ok_or_else(not_found)?;
    // Automerge positions count Unicode scalar values in Rust.
    let start = text[..byte_start].chars().count();
    let end = start + quote.chars().count() - 1;
    let start_cursor = tx.get_cursor(&obj, start, None)?;
    let end_cursor = tx.get_cursor(&obj, end, None)?;
    let comment = Comment {
        author: author.to_owned(),
        at,
        body: body.to_owned(),
        resolved: false,
        field: field.to_owned(),
        start: start_cursor.to_string(),
        end: end_cursor.to_string(),
        quote: quote.to_owned(),
        replies: Vec::new(),
    };
    let comments = match tx.get(ROOT, "comments")? {
        Some((Value::Object(ObjType::Map), id)) => id,
        _ => tx.put_object(ROOT, "comments", ObjType::Map)?,
    };
    autosurgeon::reconcile_prop(tx, &comments, id, &comment)?;
    Ok(comment)
}

/// Where a comment's quoted range is now, as (start, end-exclusive)
/// character positions, and the text it covers now.
pub fn comment_range<D: ReadDoc>(doc: &D, comment: &Comment) -> Result<(usize, usize, String), SchemaError> {
    let obj = match doc.get(ROOT, comment.field.as_str())? {
        Some((Value::Object(ObjType::Text), id)) => id,
        _ => return Err(SchemaError::UnknownField(comment.field.clone())),
    };
    let parse = |c: &str| {
        automerge::Cursor::try_from(c).map_err(|e| SchemaError::Malformed {
            kind: "recommendation",
            reason: format!("comment cursor {c:?}: {e}"),
        })
    };
    let start = doc.get_cursor_position(&obj, &parse(&comment.start)?, None)?;
    let end = doc.get_cursor_position(&obj, &parse(&comment.end)?, None)? + 1;
    let text: String = doc.text(&obj)?.chars().skip(start).take(end.saturating_sub(start)).collect();
    Ok((start, end, text))
}

/// Mark a comment resolved (or open again).
pub fn resolve_comment(tx: &mut Transaction<'_>, id: &str, resolved: bool) -> Result<(), SchemaError> {
    let comments = child(tx, &ROOT, "comments", "recommendation")?;
    let comment = match tx.get(&comments, id)? {
        Some((Value::Object(ObjType::Map), c)) => c,
        _ => return Err(SchemaError::UnknownComment(id.to_owned())),
    };
    tx.put(&comment, "resolved", resolved)?;
    Ok(())
}

/// Set an organisation's endorsement (one per organisation; the last one counts).
pub fn endorse(
    tx: &mut Transaction<'_>,
    organisation: &str,
    endorsement: &Endorsement,
) -> Result<(), SchemaError> {
    let map = match tx.get(ROOT, "endorsements")? {
        Some((Value::Object(ObjType::Map), id)) => id,
        _ => tx.put_object(ROOT, "endorsements", ObjType::Map)?,
    };
    autosurgeon::reconcile_prop(tx, &map, organisation, endorsement)?;
    Ok(())
}

/// A scalar field with concurrent values that Automerge resolved by picking one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub field: String,
    /// Every concurrent value, the one shown first.
    pub values: Vec<String>,
}

/// Concurrent writes to the same top-level scalar or object field.
pub fn conflicts(doc: &Automerge) -> Result<Vec<Conflict>, SchemaError> {
    let mut out = Vec::new();
    for key in doc.keys(ROOT) {
        let all = doc.get_all(ROOT, key.as_str())?;
        if all.len() > 1 {
            let values = all
                .iter()
                .map(|(v, id)| match v {
                    Value::Scalar(s) => match s.as_ref() {
                        ScalarValue::Str(s) => s.to_string(),
                        other => other.to_string(),
                    },
                    Value::Object(ObjType::Text) => doc.text(id).unwrap_or_default(),
                    Value::Object(kind) => format!("({kind})"),
                })
                .collect::<Vec<String>>();
            // Two people setting the same value concurrently is no disagreement.
            if values.iter().any(|v| *v != values[0]) {
                out.push(Conflict { field: key, values });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recommendation() -> Automerge {
        let mut doc = Automerge::new();
        doc.transact::<_, _, SchemaError>(|tx| {
            init_recommendation(tx, "automerge:x", "w1", "Fair recruitment", &["care".into()])?;
            let obj = text_object(tx, "recommendation")?;
            tx.splice_text(&obj, 0, 0, "Agencies must publish all fees.")?;
            Ok(())
        })
        .expect("init");
        doc
    }

    #[test]
    fn recommendation_round_trips_and_tolerates_unknown_fields() {
        let mut doc = recommendation();
        doc.transact::<_, _, SchemaError>(|tx| {
            tx.put(ROOT, "somethingNewer", 42)?;
            Ok(())
        })
        .expect("extra field");
        let rec = Recommendation::from_doc(&doc).expect("reads");
        assert_eq!(rec.title.0, "Fair recruitment");
        assert_eq!(rec.status, Status::Draft);
        assert_eq!(rec.recommendation.plain(), "Agencies must publish all fees.");
        assert_eq!(rec.sectors, vec!["care".to_owned()]);
    }

    #[test]
    fn wrong_schema_and_wrong_shape_are_errors() {
        let mut doc = Automerge::new();
        doc.transact::<_, _, SchemaError>(|tx| init_process(tx, "P", "")).expect("init");
        assert!(matches!(Recommendation::from_doc(&doc), Err(SchemaError::WrongSchema { .. })));
        let mut doc = recommendation();
        doc.transact::<_, _, SchemaError>(|tx| {
            tx.put(ROOT, "status", "maybe")?;
            Ok(())
        })
        .expect("put");
        assert!(matches!(Recommendation::from_doc(&doc), Err(SchemaError::Malformed { .. })));
        assert!(matches!(Recommendation::from_doc(&Automerge::new()), Err(SchemaError::WrongSchema { .. })));
    }

    #[test]
    fn status_moves_are_checked_and_logged() {
        let mut doc = recommendation();
        let err = doc
            .transact::<_, _, SchemaError>(|tx| change_status(tx, Status::Adopted, "p1", 1, "").map(|_| ()))
            .expect_err("draft cannot be adopted");
        assert!(matches!(err.error, SchemaError::ForbiddenTransition { .. }));
        doc.transact::<_, _, SchemaError>(|tx| change_status(tx, Status::Discussion, "p1", 5, "first reading").map(|_| ()))
            .expect("draft → discussion");
        let rec = Recommendation::from_doc(&doc).expect("reads");
        assert_eq!(rec.status, Status::Discussion);
        assert_eq!(rec.status_log.len(), 1);
        assert_eq!(rec.status_log[0].note, "first reading");
    }

    #[test]
    fn comment_follows_its_text_through_concurrent_edits() {
        let mut doc = recommendation();
        doc.transact::<_, _, SchemaError>(|tx| {
            add_comment(tx, "c1", "recommendation", "publish all fees", "Which fees?", "p2", 7).map(|_| ())
        })
        .expect("comment");
        let mut other = doc.fork();
        other
            .transact::<_, _, SchemaError>(|tx| {
                let obj = text_object(tx, "recommendation")?;
                tx.splice_text(&obj, 0, 0, "Recruitment ")?;
                Ok(())
            })
            .expect("edit before");
        doc.transact::<_, _, SchemaError>(|tx| {
            let obj = text_object(tx, "recommendation")?;
            let len = tx.length(&obj);
            tx.splice_text(&obj, len, 0, " Now.")?;
            Ok(())
        })
        .expect("edit after");
        doc.merge(&mut other).expect("merge");
        let rec = Recommendation::from_doc(&doc).expect("reads");
        let (_, _, quoted) = comment_range(&doc, &rec.comments["c1"]).expect("range");
        assert_eq!(quoted, "publish all fees");
    }

    #[test]
    fn concurrent_scalar_writes_are_listed_as_conflicts() {
        let mut a = recommendation();
        let mut b = a.fork();
        a.transact::<_, _, SchemaError>(|tx| {
            tx.put(ROOT, "workshop", "w2")?;
            Ok(())
        })
        .expect("a");
        b.transact::<_, _, SchemaError>(|tx| {
            tx.put(ROOT, "workshop", "w3")?;
            Ok(())
        })
        .expect("b");
        a.merge(&mut b).expect("merge");
        let conflicts = conflicts(&a).expect("conflicts");
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].field, "workshop");
        let mut values = conflicts[0].values.clone();
        values.sort();
        assert_eq!(values, vec!["w2".to_owned(), "w3".to_owned()]);
    }
}
