//! Who may change what, decided before anything is applied: pure functions
//! over the document, the incoming changes and the sender. The server feeds
//! only admitted sync messages to the engine, so a refused change is never
//! stored and never relayed.
//!
//! Rules:
//! - observers change nothing;
//! - an Automerge actor belongs to the first member who delivered a change
//!   made by it; a change by an actor that belongs to someone else is refused,
//!   unless a facilitator relays it (merging a draft), which is recorded as
//!   "merged by";
//! - only facilitators set a status of `adopted` or `rejected` and change a
//!   process's membership;
//! - only facilitators change a process's structure: add, rename, re-order
//!   or archive workshops, move or archive recommendations (participants
//!   only add links to their new recommendations);
//! - a new document must be a recommendation of the sender's process (only
//!   administrators create processes or documents outside any process);
//! - consent rounds (see `consent`): only facilitators open and close a
//!   round or change its heads, deadline, question or outcome, and set
//!   whether adoption requires consent; an organisation's answer is given
//!   only by one of its members, in their own name, and never into a closed
//!   round; where the process requires it, nobody adopts without a closed
//!   round free of blocks;
//! - amendments (see `amendment`): anyone but an observer adds an entry in
//!   their own name, open and undecided; only its author changes its title
//!   and coauthors, withdraws or resubmits it; only facilitators decide it or
//!   change anything else about it; an endorsement of it only for one's own
//!   organisation. Its branch document is created with others' changes only
//!   when all of them are already in the recommendation it amends, and is
//!   written by its author, coauthors and facilitators, in the title and
//!   text fields only, while it is open or changes are requested.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;

use automerge::sync;
use automerge::{ActorId, Automerge, Change, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use thiserror::Error;

use crate::amendment::{self, AmendmentState};
use crate::consent::{self, ConsentMissing};
use crate::schema::{self, MemberRole, PROCESS_SCHEMA, RECOMMENDATION_SCHEMA, SchemaError};
use konsens_sync::{DocumentId, RefusalCode, WireRefusal};

/// What a connection may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessRole {
    /// Server administrator: every process, every document.
    Admin,
    Member(MemberRole),
}

impl AccessRole {
    fn is_facilitator(self) -> bool {
        matches!(self, AccessRole::Admin | AccessRole::Member(MemberRole::Facilitator))
    }
}

impl AccessRole {
    /// `admin`, or the member role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessRole::Admin => "admin",
            AccessRole::Member(role) => role.as_str(),
        }
    }
}

impl fmt::Display for AccessRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AccessRole {
    type Err = SchemaError;
    fn from_str(s: &str) -> Result<Self, SchemaError> {
        match s {
            "admin" => Ok(AccessRole::Admin),
            member => member.parse().map(AccessRole::Member),
        }
    }
}

impl serde::Serialize for AccessRole {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for AccessRole {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// The verified sender of a sync message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    /// Participant id (for administrators, `admin:<token id>`).
    pub participant: String,
    /// The verified name and organisation of the member.
    pub name: String,
    pub organisation: String,
    pub role: AccessRole,
    /// The process the sender belongs to (`None` for administrators).
    pub process: Option<DocumentId>,
}

/// Why changes were refused; sent to the peer as an `error` message with its
/// [`RefusalCode`] and the refused changes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    #[error("observers cannot change documents")]
    ReadOnly,
    #[error("change {change} was made by actor {actor}, which belongs to another member; only a facilitator may relay it")]
    ForeignActor { change: ChangeHash, actor: String },
    #[error("only facilitators may {}", .0.action())]
    FacilitatorOnly(Guarded),
    #[error("{0} must name you ({1}), as the server knows you")]
    Identity(&'static str, String),
    #[error("only administrators may create {0}")]
    AdminOnly(&'static str),
    #[error("a new document must be a recommendation of your process")]
    OutsideProcess,
    #[error("the changes would leave a {kind} the model cannot read: {reason}")]
    Malformed { kind: &'static str, reason: String },
    #[error("the changes cannot be read: {0}")]
    Unreadable(String),
    #[error("the document would exceed the size limit of {limit} bytes")]
    DocumentTooLarge { limit: usize },
    #[error("at most {per_hour} new documents per hour")]
    CreationLimit { per_hour: usize },
    #[error("the consent round is closed: answers can no longer be given or changed")]
    RoundClosed,
    #[error("this process adopts only after a consent round without a block: {0}")]
    ConsentRequired(ConsentMissing),
    #[error("{0}")]
    Amendment(AmendmentRule),
}

/// Which rule about amendments a change breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmendmentRule {
    /// Someone else than the author, a coauthor or a facilitator writes the branch.
    NotAnAuthor,
    /// The branch is written after the amendment was accepted, rejected or withdrawn.
    Closed,
    /// The branch changes something besides the title and the text fields.
    OnlyText,
    /// A new branch brings others' changes that its recommendation does not hold.
    ForeignHistory,
    /// The recommendation a branch amends is not on this server.
    UnknownRecommendation,
    /// An entry changed by someone else than its author or a facilitator, or
    /// in a way even the author may not (withdrawn is final).
    Entry,
}

impl fmt::Display for AmendmentRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AmendmentRule::NotAnAuthor => "only the amendment's author, its coauthors and facilitators may edit it",
            AmendmentRule::Closed => "the amendment was decided or withdrawn: it can no longer be edited",
            AmendmentRule::OnlyText => "an amendment changes only the title and the text fields",
            AmendmentRule::ForeignHistory => "a new amendment may carry others' changes only if they are already in the recommendation",
            AmendmentRule::UnknownRecommendation => "the recommendation this amendment amends is not on this server",
            AmendmentRule::Entry => "only an amendment's author (title, coauthors, withdrawing) and facilitators may change it",
        })
    }
}

impl Refusal {
    /// The code clients match on.
    pub fn code(&self) -> RefusalCode {
        match self {
            Refusal::ReadOnly => RefusalCode::ReadOnly,
            Refusal::ForeignActor { .. } => RefusalCode::ForeignActor,
            Refusal::FacilitatorOnly(Guarded::Decision) => RefusalCode::Decision,
            Refusal::FacilitatorOnly(Guarded::Membership) => RefusalCode::Membership,
            Refusal::FacilitatorOnly(Guarded::Kind) => RefusalCode::Kind,
            Refusal::FacilitatorOnly(Guarded::Structure) => RefusalCode::Structure,
            Refusal::FacilitatorOnly(Guarded::Consent) => RefusalCode::Consent,
            Refusal::RoundClosed => RefusalCode::RoundClosed,
            Refusal::ConsentRequired(_) => RefusalCode::ConsentRequired,
            Refusal::Amendment(_) => RefusalCode::Amendment,
            Refusal::Identity(..) => RefusalCode::Identity,
            Refusal::AdminOnly(_) => RefusalCode::AdminOnly,
            Refusal::OutsideProcess => RefusalCode::OutsideProcess,
            Refusal::Malformed { .. } => RefusalCode::Malformed,
            Refusal::Unreadable(_) => RefusalCode::Unreadable,
            Refusal::DocumentTooLarge { .. } => RefusalCode::DocumentTooLarge,
            Refusal::CreationLimit { .. } => RefusalCode::CreationLimit,
        }
    }
}

/// State only facilitators may change, whatever operations change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarded {
    /// A recommendation's effective status when it is (or becomes, or stops
    /// being) adopted or rejected, and the decisions in its status log.
    Decision,
    /// A process's members.
    Membership,
    /// What a document is: its schema, and the process a recommendation belongs to.
    Kind,
    /// How a process is organised: its workshops (titles, order, what is
    /// archived), which workshop each recommendation is in, and which are
    /// archived. Linking a new recommendation is everyone's.
    Structure,
    /// Consent rounds (everything but the answers) and the process's
    /// `adoptionRequiresConsent`.
    Consent,
}

impl Guarded {
    fn action(self) -> &'static str {
        match self {
            Guarded::Decision => "adopt, reject or re-open a recommendation",
            Guarded::Membership => "change the members of a process",
            Guarded::Kind => "change what kind of document this is or which process it belongs to",
            Guarded::Structure => "rename, re-order, move or archive workshops and recommendations, or set the process's language",
            Guarded::Consent => "open, word or close a consent round, or decide whether adoption requires one",
        }
    }
}

/// Refused changes: why, and which of them (a client drops these and every
/// change of its own that depends on them).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{reason}")]
pub struct Refused {
    pub reason: Refusal,
    pub changes: Vec<ChangeHash>,
}

impl Refused {
    fn all(reason: Refusal, changes: &[Change]) -> Self {
        Self { reason, changes: changes.iter().map(Change::hash).collect() }
    }

    /// The `error` message's text. The document leads it, for people reading logs.
    pub fn message(&self, document: DocumentId) -> String {
        format!("changes to {document} refused: {}", self.reason)
    }

    /// The machine-readable part of the `error` message.
    pub fn wire(&self, document: DocumentId) -> WireRefusal {
        WireRefusal { document_id: document, code: self.reason.code(), refused: self.changes.clone() }
    }
}

/// One admitted change and whom it is attributed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmittedChange {
    pub hash: ChangeHash,
    pub actor: ActorId,
    /// The member the actor belongs to.
    pub author: String,
    /// The facilitator who relayed someone else's change, if any.
    pub merged_by: Option<String>,
}

/// What admitting a batch of changes means.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Admitted {
    pub changes: Vec<AdmittedChange>,
    /// Actors seen for the first time, now bound to the sender.
    pub new_actors: Vec<ActorId>,
    /// For a document created by these changes: the process it belongs to
    /// (a process belongs to itself); `None` when nothing is created or an
    /// administrator created a document outside any process.
    pub creates_in: Option<DocumentId>,
}

/// The changes of a sync message for which `has` says we do not have them
/// yet, when every chunk splits cheaply into changes (plain or compressed
/// changes, whole documents); `None` when one does not, and
/// [`incoming_changes`] must load it onto the whole document.
pub fn incoming_changes_by(message: &sync::Message, has: impl Fn(&ChangeHash) -> bool) -> Option<Vec<Change>> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for chunk in message.changes.iter() {
        for change in parse_chunks(chunk)? {
            if !has(&change.hash()) && seen.insert(change.hash()) {
                out.push(change);
            }
        }
    }
    Some(out)
}

/// The changes of a sync message that the document does not have yet.
pub fn incoming_changes(doc: &Automerge, message: &sync::Message) -> Result<Vec<Change>, Refusal> {
    if let Some(changes) = incoming_changes_by(message, |h| doc.get_change_meta_by_hash(h).is_some()) {
        return Ok(changes);
    }
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for chunk in message.changes.iter() {
        let changes = match parse_chunks(chunk) {
            Some(changes) => changes,
            // Something we cannot split cheaply: let Automerge load it onto a
            // copy of the document and read back what it added.
            None => {
                let mut copy = doc.fork();
                copy.load_incremental(chunk).map_err(|e| Refusal::Unreadable(e.to_string()))?;
                copy.get_changes(&doc.get_heads()).into_iter().collect()
            }
        };
        for change in changes {
            if doc.get_change_by_hash(&change.hash()).is_none() && seen.insert(change.hash()) {
                out.push(change);
            }
        }
    }
    Ok(out)
}

/// Split a buffer of Automerge storage chunks (one or several changes, plain
/// or compressed, or a whole document) into changes. `None` when the buffer
/// does not have that shape.
fn parse_chunks(mut bytes: &[u8]) -> Option<Vec<Change>> {
    const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
    let mut out = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 9 || bytes[..4] != MAGIC {
            return None;
        }
        let kind = bytes[8];
        // uLEB128 length of the chunk's body.
        let mut length: u64 = 0;
        let mut shift = 0;
        let mut at = 9;
        loop {
            let byte = *bytes.get(at)?;
            length |= u64::from(byte & 0x7f).checked_shl(shift)?;
            at += 1;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return None;
            }
        }
        let end = at.checked_add(usize::try_from(length).ok()?)?;
        let chunk = bytes.get(..end)?;
        match kind {
            // A whole document.
            0 => out.extend(Automerge::load(chunk).ok()?.get_changes(&[])),
            // A change, plain or compressed.
            1 | 2 => out.push(Change::from_bytes(chunk.to_vec()).ok()?),
            _ => return None,
        }
        bytes = &bytes[end..];
    }
    Some(out)
}

/// What a document's process decides about it, beyond roles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Adopting needs a closed consent round without a block
    /// (`adoptionRequiresConsent` in the process; see `consent::may_adopt`).
    pub adoption_requires_consent: bool,
}

impl Policy {
    /// The policy a process document sets.
    pub fn of_process(process: &Automerge) -> Self {
        Policy { adoption_requires_consent: consent::adoption_requires_consent(process) }
    }
}

/// Decide on `changes` (new to `doc`, see [`incoming_changes`]) from `sender`.
/// `owner_of` tells which member an actor already belongs to. The process's
/// [`Policy`] is taken as the default one (nothing beyond roles); see
/// [`admit_under`].
pub fn admit(
    document: DocumentId,
    doc: &Automerge,
    changes: &[Change],
    sender: &Sender,
    owner_of: &dyn Fn(&ActorId) -> Option<String>,
) -> Result<Admitted, Refused> {
    admit_under(document, doc, changes, sender, owner_of, &Policy::default)
}

/// [`admit`] under the process's policy. `policy` is asked only when the
/// changes adopt a recommendation (reading it may mean loading the process).
pub fn admit_under(
    document: DocumentId,
    doc: &Automerge,
    changes: &[Change],
    sender: &Sender,
    owner_of: &dyn Fn(&ActorId) -> Option<String>,
    policy: &dyn Fn() -> Policy,
) -> Result<Admitted, Refused> {
    admit_amendable(document, doc, changes, sender, owner_of, policy, &|_| None)
}

/// [`admit_under`], where the document may be an amendment's branch:
/// `amended` gives the recommendation a branch amends (asked only for a
/// branch, at most once; reading it may mean loading it). A branch is decided
/// on that recommendation's entry for it.
pub fn admit_amendable(
    document: DocumentId,
    doc: &Automerge,
    changes: &[Change],
    sender: &Sender,
    owner_of: &dyn Fn(&ActorId) -> Option<String>,
    policy: &dyn Fn() -> Policy,
    amended: &dyn Fn(&DocumentId) -> Option<Automerge>,
) -> Result<Admitted, Refused> {
    let mut admitted = Admitted::default();
    if changes.is_empty() {
        return Ok(admitted);
    }
    if sender.role == AccessRole::Member(MemberRole::Observer) {
        return Err(Refused::all(Refusal::ReadOnly, changes));
    }
    // A new document is read once, from its changes alone.
    let scratch = if doc.is_empty() {
        let mut scratch = Automerge::new();
        scratch
            .apply_changes(changes.iter().cloned())
            .map_err(|e| Refused::all(Refusal::Unreadable(e.to_string()), changes))?;
        Some(scratch)
    } else {
        None
    };
    let of = amendment::branch_of(scratch.as_ref().unwrap_or(doc));
    let rec = match of {
        Some(of) => Some((of, amended(&of).ok_or_else(|| Refused::all(Refusal::Amendment(AmendmentRule::UnknownRecommendation), changes))?)),
        None => None,
    };
    let mut bound_here: HashMap<ActorId, String> = HashMap::new();
    for change in changes {
        let actor = change.actor_id().clone();
        let owner = owner_of(&actor).or_else(|| bound_here.get(&actor).cloned());
        // A new branch carries the recommendation's history: those changes
        // were admitted there, and keep their authors.
        let inherited = scratch.is_some() && rec.as_ref().is_some_and(|(_, r)| r.get_change_meta_by_hash(&change.hash()).is_some());
        let (author, merged_by) = match owner {
            None => {
                bound_here.insert(actor.clone(), sender.participant.clone());
                admitted.new_actors.push(actor.clone());
                (sender.participant.clone(), None)
            }
            Some(owner) if owner == sender.participant => (owner, None),
            Some(owner) if inherited => (owner, None),
            Some(owner) if sender.role.is_facilitator() => (owner, Some(sender.participant.clone())),
            Some(_) => {
                let reason = Refusal::ForeignActor { change: change.hash(), actor: actor.to_hex_string() };
                return Err(Refused { reason, changes: vec![change.hash()] });
            }
        };
        admitted.changes.push(AdmittedChange { hash: change.hash(), actor, author, merged_by });
    }
    // The actors that are the sender's: those this batch binds or credits to
    // them, and those bound to them before. Only for these may the sender
    // say who writes (an `authors` entry).
    let own: std::collections::HashSet<String> =
        admitted.changes.iter().filter(|c| c.author == sender.participant).map(|c| c.actor.to_hex_string()).collect();
    let own_actor = |hex: &str| {
        own.contains(hex) || ActorId::try_from(hex).ok().and_then(|actor| owner_of(&actor)).is_some_and(|owner| owner == sender.participant)
    };
    match (scratch, rec) {
        (Some(scratch), Some((_, rec))) => {
            admitted.creates_in =
                branch_creation(&scratch, &rec, changes, sender, &own_actor).map_err(|reason| Refused::all(reason, changes))?;
        }
        (Some(scratch), None) => {
            admitted.creates_in = creation(document, &scratch, sender, &own_actor).map_err(|reason| Refused::all(reason, changes))?;
        }
        (None, Some((_, rec))) => branch_write(document, doc, &rec, changes, sender, owner_of, &own_actor)?,
        (None, None) => check_meaning(doc, changes, sender, policy, &own_actor)?,
    }
    Ok(admitted)
}

/// Changes that only edit the text of the known text fields (typing) cannot
/// touch guarded state or the model's shape; everything else is checked by
/// applying it to a copy. Typing stays cheap, and no operation shape escapes.
///
/// The answer holds for a `doc` that lacks recent changes too (the sync
/// engine defers applying them): a text operation on a text object that
/// was a text field stays a text operation on a text object, and no guarded
/// state is text.
pub fn is_typing(doc: &Automerge, changes: &[Change]) -> bool {
    only_text_edits(doc, changes)
}

fn only_text_edits(doc: &Automerge, changes: &[Change]) -> bool {
    // The text objects as (counter, actor) pairs, compared as values: this
    // runs for every keystroke, and formatting ids into strings (hex of the
    // actor) was most of its cost.
    let mut texts: Vec<(u64, ActorId)> = Vec::new();
    for field in schema::TEXT_FIELDS.iter().chain(["title", "description"].iter()) {
        if let Ok(Some((Value::Object(ObjType::Text), ObjId::Id(counter, actor, _)))) = doc.get(ROOT, *field) {
            texts.push((counter, actor));
        }
    }
    if texts.is_empty() {
        return false;
    }
    changes.iter().all(|change| {
        change.decode().operations.iter().all(|op| {
            let is_text_op = matches!(
                op.action,
                automerge::legacy::OpType::Put(ScalarValue::Str(_))
                    | automerge::legacy::OpType::Delete
                    | automerge::legacy::OpType::MarkBegin(..)
                    | automerge::legacy::OpType::MarkEnd(..)
            );
            let in_a_text = match &op.obj {
                automerge::legacy::ObjectId::Id(automerge::legacy::OpId(counter, actor)) => {
                    texts.iter().any(|(c, a)| c == counter && a == actor)
                }
                automerge::legacy::ObjectId::Root => false,
            };
            is_text_op && in_a_text
        })
    })
}

/// What only facilitators may change, read the way the model reads it
/// (a status counts whether it is a scalar, a text or anything else).
#[derive(Debug, PartialEq, Eq)]
struct GuardedState {
    schema: Option<String>,
    process: Option<String>,
    /// The branch mark (`amendment`): what a recommendation amends.
    mark: Option<String>,
    /// The effective status, if it is a decision.
    decided: Option<String>,
    /// Status-log entries into or out of a decision.
    decisions: Vec<String>,
    members: Option<String>,
    /// Workshops and what is archived (a process), or the workshop a
    /// recommendation is in, as canonical text.
    structure: Vec<Option<String>>,
    /// Workshop → the recommendation links under it. Links may be added
    /// (anywhere: concurrent additions interleave), never removed or moved.
    linked: BTreeMap<String, Vec<String>>,
    /// The rounds without their answers, and the process's consent setting.
    rounds: Option<String>,
    consent_setting: Option<String>,
}

/// Whether a canonical value (as [`canonical_value`] writes it) is a decision
/// status. The statuses are named once, in [`schema::Status`].
fn is_decision_value(canonical: &str) -> bool {
    schema::Status::ALL.iter().any(|s| s.is_decision() && canonical == quoted(s.as_str()))
}

impl GuardedState {
    fn read(doc: &Automerge) -> Self {
        let at_root = |key: &str| doc.get(ROOT, key).ok().flatten();
        let status = at_root("status").map(|(v, id)| canonical_value(doc, &v, &id, 0));
        let decided = status.filter(|s| is_decision_value(s));
        let mut decisions = Vec::new();
        if let Some((Value::Object(ObjType::List), log)) = at_root("statusLog") {
            for i in 0..doc.length(&log) {
                let Ok(Some((Value::Object(_), entry))) = doc.get(&log, i) else { continue };
                let field = |k: &str| doc.get(&entry, k).ok().flatten().map(|(v, id)| canonical_value(doc, &v, &id, 0));
                let is_decision = [field("from"), field("to")]
                    .into_iter()
                    .flatten()
                    .any(|s| is_decision_value(&s));
                if is_decision {
                    decisions.push(canonical(doc, &entry, 0));
                }
            }
        }
        // The process's language (its reports' default) is the facilitators' too.
        let structure = ["workshops", "archivedWorkshops", "archivedRecommendations", "workshop", "language"]
            .into_iter()
            .map(|key| at_root(key).map(|(v, id)| canonical_value(doc, &v, &id, 0)))
            .collect();
        let mut linked = BTreeMap::new();
        if let Some((Value::Object(ObjType::Map), map)) = at_root("recommendations") {
            for workshop in doc.keys(&map) {
                let links = match doc.get(&map, workshop.as_str()) {
                    Ok(Some((Value::Object(ObjType::List), list))) => (0..doc.length(&list))
                        .filter_map(|i| doc.get(&list, i).ok().flatten().map(|(v, id)| canonical_value(doc, &v, &id, 0)))
                        .collect(),
                    Ok(Some((v, id))) => vec![canonical_value(doc, &v, &id, 0)],
                    _ => Vec::new(),
                };
                linked.insert(workshop, links);
            }
        } else if let Some((v, id)) = at_root("recommendations") {
            linked.insert(String::new(), vec![canonical_value(doc, &v, &id, 0)]);
        }
        GuardedState {
            schema: at_root("schema").map(|(v, id)| canonical_value(doc, &v, &id, 0)),
            process: at_root("process").map(|(v, id)| canonical_value(doc, &v, &id, 0)),
            mark: at_root("amendment").map(|(v, id)| canonical_value(doc, &v, &id, 0)),
            decided,
            decisions,
            members: at_root("members").map(|(v, id)| canonical_value(doc, &v, &id, 0)),
            structure,
            linked,
            rounds: at_root("rounds").map(|(v, id)| rounds_without_answers(doc, &v, &id)),
            consent_setting: at_root("adoptionRequiresConsent").map(|(v, id)| canonical_value(doc, &v, &id, 0)),
        }
    }

    /// Whether the effective status is `adopted`.
    fn is_adopted(&self) -> bool {
        self.decided.as_deref() == Some(quoted(schema::Status::Adopted.as_str()).as_str())
    }

    fn changed(&self, after: &GuardedState) -> Option<Guarded> {
        if self.schema != after.schema || self.process != after.process || self.mark != after.mark {
            Some(Guarded::Kind)
        } else if self.decided != after.decided || self.decisions != after.decisions {
            Some(Guarded::Decision)
        } else if self.members != after.members {
            Some(Guarded::Membership)
        } else if self.structure != after.structure || !only_added(&self.linked, &after.linked) {
            Some(Guarded::Structure)
        } else if self.rounds != after.rounds || self.consent_setting != after.consent_setting {
            Some(Guarded::Consent)
        } else {
            None
        }
    }
}

/// Whether `after` keeps every link of `before` under the same workshop in
/// the same order (it may add links, and workshops).
fn only_added(before: &BTreeMap<String, Vec<String>>, after: &BTreeMap<String, Vec<String>>) -> bool {
    before.iter().all(|(workshop, links)| {
        let Some(now) = after.get(workshop) else { return false };
        let mut rest = now.iter();
        links.iter().all(|link| rest.any(|l| l == link))
    })
}

fn quoted(s: &str) -> String {
    format!("{s:?}")
}

/// Nesting deeper than this is summarised; the model has nothing that deep.
const MAX_DEPTH: usize = 16;

/// A value as text that is equal exactly when the model would read the same
/// thing: strings alike whether scalar or text, maps by sorted key.
fn canonical_value(doc: &Automerge, value: &Value<'_>, id: &automerge::ObjId, depth: usize) -> String {
    match value {
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Str(t) => quoted(t),
            other => other.to_string(),
        },
        Value::Object(ObjType::Text) => quoted(&doc.text(id).unwrap_or_default()),
        Value::Object(_) => canonical(doc, id, depth + 1),
    }
}

fn canonical(doc: &Automerge, obj: &automerge::ObjId, depth: usize) -> String {
    if depth > MAX_DEPTH {
        return "…".to_owned();
    }
    let mut out = String::new();
    match doc.object_type(obj) {
        Ok(ObjType::Map | ObjType::Table) => {
            out.push('{');
            for key in doc.keys(obj) {
                if let Ok(Some((v, id))) = doc.get(obj, key.as_str()) {
                    out.push_str(&quoted(&key));
                    out.push(':');
                    out.push_str(&canonical_value(doc, &v, &id, depth));
                    out.push(',');
                }
            }
            out.push('}');
        }
        Ok(ObjType::List) => {
            out.push('[');
            for i in 0..doc.length(obj) {
                if let Ok(Some((v, id))) = doc.get(obj, i) {
                    out.push_str(&canonical_value(doc, &v, &id, depth));
                    out.push(',');
                }
            }
            out.push(']');
        }
        Ok(ObjType::Text) => out.push_str(&quoted(&doc.text(obj).unwrap_or_default())),
        Err(_) => {}
    }
    out
}

/// The `rounds` value as canonical text, each round without its `answers`
/// (answers are the members'; everything else about a round is the
/// facilitators').
fn rounds_without_answers(doc: &Automerge, value: &Value<'_>, id: &ObjId) -> String {
    let Value::Object(ObjType::List) = value else {
        return canonical_value(doc, value, id, 0);
    };
    let mut out = String::from("[");
    for i in 0..doc.length(id) {
        let Ok(Some((v, round))) = doc.get(id, i) else { continue };
        if let Value::Object(ObjType::Map) = v {
            out.push('{');
            for key in doc.keys(&round).filter(|k| k != "answers") {
                if let Ok(Some((v, c))) = doc.get(&round, key.as_str()) {
                    out.push_str(&format!("{key:?}:{},", canonical_value(doc, &v, &c, 1)));
                }
            }
            out.push('}');
        } else {
            out.push_str(&canonical_value(doc, &v, &round, 1));
        }
        out.push(',');
    }
    out.push(']');
    out
}

/// The answers of every consent round, read the way `Named` reads names.
#[derive(Debug, Default, PartialEq, Eq)]
struct Answers {
    /// (round index, organisation) → (the answer as canonical text, who
    /// answered). A round's `answers` that is not a map is kept under the
    /// organisation `None`, which nobody may change.
    entries: BTreeMap<(usize, Option<String>), (String, Option<String>)>,
    /// Rounds (by index) that are closed.
    closed: BTreeSet<usize>,
}

impl Answers {
    fn read(doc: &Automerge) -> Self {
        let mut out = Answers::default();
        let Ok(Some((Value::Object(ObjType::List), list))) = doc.get(ROOT, "rounds") else { return out };
        for i in 0..doc.length(&list) {
            let Ok(Some((Value::Object(ObjType::Map), round))) = doc.get(&list, i) else { continue };
            if !is_null_or_missing(doc, &round) {
                out.closed.insert(i);
            }
            match doc.get(&round, "answers") {
                Ok(Some((Value::Object(ObjType::Map), answers))) => {
                    for org in doc.keys(&answers) {
                        let Ok(Some((v, id))) = doc.get(&answers, org.as_str()) else { continue };
                        let by = match &v {
                            Value::Object(ObjType::Map) => string_at(doc, &id, "by"),
                            _ => None,
                        };
                        out.entries.insert((i, Some(org)), (canonical_value(doc, &v, &id, 1), by));
                    }
                }
                Ok(Some((v, id))) => {
                    out.entries.insert((i, None), (canonical_value(doc, &v, &id, 1), None));
                }
                _ => {}
            }
        }
        out
    }

    /// Why `after` could not have been written by `sender`: an answer for
    /// another organisation or in someone else's name, or any answer changed
    /// in a closed round.
    fn refusal(&self, after: &Answers, sender: &Sender) -> Option<Refusal> {
        for key in self.entries.keys().chain(after.entries.keys()) {
            let now = after.entries.get(key);
            if self.entries.get(key) == now {
                continue;
            }
            let (round, org) = key;
            let own = org.as_deref().is_some_and(|o| !o.is_empty() && o == sender.organisation);
            if !own || now.is_some_and(|(_, by)| by.as_deref() != Some(sender.participant.as_str())) {
                return Some(Refusal::Identity("a consent answer", format!("{}, {}", sender.name, sender.organisation)));
            }
            if self.closed.contains(round) || after.closed.contains(round) {
                return Some(Refusal::RoundClosed);
            }
        }
        None
    }
}

/// Whether a round's `closed` is `null` or absent (the round is open).
fn is_null_or_missing(doc: &Automerge, round: &ObjId) -> bool {
    match doc.get(round, "closed") {
        Ok(None) => true,
        Ok(Some((Value::Scalar(s), _))) => matches!(s.as_ref(), ScalarValue::Null),
        _ => false,
    }
}

/// A string field, whether a scalar or a text (anything else is no string).
fn string_at(doc: &Automerge, obj: &ObjId, key: &str) -> Option<String> {
    match doc.get(obj, key).ok().flatten()? {
        (Value::Scalar(s), _) => s.as_str().map(str::to_owned),
        (Value::Object(ObjType::Text), id) => doc.text(&id).ok(),
        _ => None,
    }
}

/// Everything in a document that names a person or an organisation, entry
/// by entry, as canonical text (so it compares whatever wrote it).
#[derive(Debug, Default)]
struct Named {
    /// Organisation → (its endorsement, who endorsed).
    endorsements: BTreeMap<String, (String, Option<String>)>,
    /// Comment id → (the comment without its replies, author, replies as (text, author)).
    comments: BTreeMap<String, (String, Option<String>, Vec<(String, Option<String>)>)>,
    /// Status-log entries as (text, by).
    status_log: Vec<(String, Option<String>)>,
    /// Actor → its `authors` entry as (participant, name, organisation).
    authors: BTreeMap<String, (String, [Option<String>; 3])>,
}

impl Named {
    fn read(doc: &Automerge) -> Self {
        let mut named = Named::default();
        let text = |obj: &automerge::ObjId, key: &str| -> Option<String> {
            match doc.get(obj, key).ok().flatten()? {
                (Value::Scalar(s), _) => match s.as_ref() {
                    ScalarValue::Str(t) => Some(t.to_string()),
                    other => Some(other.to_string()),
                },
                (Value::Object(ObjType::Text), id) => doc.text(&id).ok(),
                _ => None,
            }
        };
        let map_at_root = |key: &str| match doc.get(ROOT, key) {
            Ok(Some((Value::Object(ObjType::Map), id))) => Some(id),
            _ => None,
        };
        if let Some(map) = map_at_root("endorsements") {
            for org in doc.keys(&map) {
                if let Ok(Some((v, id))) = doc.get(&map, org.as_str()) {
                    let by = matches!(v, Value::Object(_)).then(|| text(&id, "by")).flatten();
                    named.endorsements.insert(org, (canonical_value(doc, &v, &id, 0), by));
                }
            }
        }
        if let Some(map) = map_at_root("comments") {
            for cid in doc.keys(&map) {
                let Ok(Some((v, id))) = doc.get(&map, cid.as_str()) else { continue };
                let mut replies = Vec::new();
                let mut body = canonical_value(doc, &v, &id, 0);
                if let Value::Object(ObjType::Map) = v {
                    body = doc
                        .keys(&id)
                        .filter(|k| k != "replies" && k != "resolved")
                        .filter_map(|k| doc.get(&id, k.as_str()).ok().flatten().map(|(v, c)| format!("{k:?}:{}", canonical_value(doc, &v, &c, 1))))
                        .collect::<Vec<_>>()
                        .join(",");
                    if let Ok(Some((Value::Object(ObjType::List), list))) = doc.get(&id, "replies") {
                        for i in 0..doc.length(&list) {
                            if let Ok(Some((rv, rid))) = doc.get(&list, i) {
                                let author = matches!(rv, Value::Object(_)).then(|| text(&rid, "author")).flatten();
                                replies.push((canonical_value(doc, &rv, &rid, 1), author));
                            }
                        }
                    }
                }
                let author = text(&id, "author");
                named.comments.insert(cid, (body, author, replies));
            }
        }
        if let Ok(Some((Value::Object(ObjType::List), log))) = doc.get(ROOT, "statusLog") {
            for i in 0..doc.length(&log) {
                if let Ok(Some((v, id))) = doc.get(&log, i) {
                    let by = matches!(v, Value::Object(_)).then(|| text(&id, "by")).flatten();
                    named.status_log.push((canonical_value(doc, &v, &id, 0), by));
                }
            }
        }
        if let Some(map) = map_at_root("authors") {
            for actor in doc.keys(&map) {
                if let Ok(Some((v, id))) = doc.get(&map, actor.as_str()) {
                    let fields = if matches!(v, Value::Object(_)) {
                        [text(&id, "participant"), text(&id, "name"), text(&id, "organisation")]
                    } else {
                        [None, None, None]
                    };
                    named.authors.insert(actor, (canonical_value(doc, &v, &id, 0), fields));
                }
            }
        }
        named
    }

    /// What `after` names differently from `self` in a way only someone else
    /// could: an endorsement of another organisation or by someone else, a
    /// comment or reply by someone else (new, rewritten or deleted), a
    /// status-log entry by someone else, an `authors` entry that is not the
    /// sender as verified or is about an actor that is not the sender's. Resolving or answering others' comments is fine.
    fn forged(&self, after: &Named, sender: &Sender, own_actor: &dyn Fn(&str) -> bool) -> Option<&'static str> {
        let me = Some(sender.participant.as_str());
        for org in self.endorsements.keys().chain(after.endorsements.keys()) {
            if self.endorsements.get(org) != after.endorsements.get(org)
                && (org != &sender.organisation || after.endorsements.get(org).is_some_and(|(_, by)| by.as_deref() != me))
            {
                return Some("an endorsement");
            }
        }
        for (cid, (body, author, replies)) in &after.comments {
            match self.comments.get(cid) {
                None if author.as_deref() != me => return Some("a comment's author"),
                Some((was_body, was_author, _)) if (was_body != body || was_author != author) && author.as_deref() != me => {
                    return Some("a comment's author");
                }
                _ => {}
            }
            let before: Vec<&(String, Option<String>)> = self.comments.get(cid).map(|c| c.2.iter().collect()).unwrap_or_default();
            if replies.iter().any(|r| !before.contains(&r) && r.1.as_deref() != me) {
                return Some("a reply's author");
            }
            if before.iter().any(|r| !replies.contains(r) && r.1.as_deref() != me) {
                return Some("a reply's author");
            }
        }
        if self.comments.iter().any(|(cid, c)| !after.comments.contains_key(cid) && c.1.as_deref() != me) {
            return Some("a comment's author");
        }
        if after.status_log.iter().any(|e| !self.status_log.contains(e) && e.1.as_deref() != me)
            || self.status_log.iter().any(|e| !after.status_log.contains(e))
        {
            return Some("a status-log entry");
        }
        let verified = [Some(sender.participant.clone()), Some(sender.name.clone()), Some(sender.organisation.clone())];
        for actor in self.authors.keys().chain(after.authors.keys()) {
            if self.authors.get(actor) != after.authors.get(actor)
                && (!own_actor(actor) || after.authors.get(actor).is_none_or(|(_, fields)| *fields != verified))
            {
                return Some("an authors entry");
            }
        }
        None
    }
}

/// Whether the document reads as the model it says it is (a process or a
/// recommendation); other documents have no model to check.
fn model_error(doc: &Automerge) -> Option<(&'static str, String)> {
    let schema = match doc.get(ROOT, "schema") {
        Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
            ScalarValue::Str(t) => Some(t.to_string()),
            _ => None,
        },
        Ok(Some((Value::Object(ObjType::Text), id))) => doc.text(&id).ok(),
        _ => None,
    };
    match schema.as_deref() {
        Some(PROCESS_SCHEMA) => schema::Process::from_doc(doc).err().map(|e| ("process", e.to_string())),
        Some(RECOMMENDATION_SCHEMA) => schema::Recommendation::from_doc(doc).err().map(|e| ("recommendation", e.to_string())),
        _ => None,
    }
}

/// Decide on what the changes mean, not on how they are written: apply them
/// one by one to a copy and compare what only facilitators may change before
/// and after each (so a flip and a flip back in one message is seen too),
/// and refuse a document the model could read before and cannot after.
fn check_meaning(
    doc: &Automerge,
    changes: &[Change],
    sender: &Sender,
    policy: &dyn Fn() -> Policy,
    own_actor: &dyn Fn(&str) -> bool,
) -> Result<(), Refused> {
    if only_text_edits(doc, changes) {
        return Ok(());
    }
    let guard = !sender.role.is_facilitator();
    let before = GuardedState::read(doc);
    let mut named = guard.then(|| Named::read(doc));
    // Answers are checked for facilitators too: they answer only for their
    // own organisation.
    let mut answers = Answers::read(doc);
    let mut entries = Entries::read(doc);
    let mut was_adopted = before.is_adopted();
    let mut policy_now: Option<Policy> = None;
    let mut copy = doc.fork();
    for change in changes {
        copy.apply_changes([change.clone()])
            .map_err(|e| Refused::all(Refusal::Unreadable(e.to_string()), changes))?;
        let state = GuardedState::read(&copy);
        if guard && let Some(what) = before.changed(&state) {
            return Err(Refused { reason: Refusal::FacilitatorOnly(what), changes: vec![change.hash()] });
        }
        let answers_now = Answers::read(&copy);
        if let Some(reason) = answers.refusal(&answers_now, sender) {
            return Err(Refused { reason, changes: vec![change.hash()] });
        }
        answers = answers_now;
        let entries_now = Entries::read(&copy);
        if let Some(reason) = entries.refusal(&entries_now, sender) {
            return Err(Refused { reason, changes: vec![change.hash()] });
        }
        entries = entries_now;
        // An adoption, where the process requires consent, needs the latest
        // round closed without a block, as the document stands with it.
        if !was_adopted && state.is_adopted() && policy_now.get_or_insert_with(policy).adoption_requires_consent {
            let verdict = consent::rounds(&copy).map_err(|_| ConsentMissing::NoRound).and_then(|rounds| consent::may_adopt(&rounds));
            if let Err(missing) = verdict {
                return Err(Refused { reason: Refusal::ConsentRequired(missing), changes: vec![change.hash()] });
            }
        }
        was_adopted = state.is_adopted();
        if let Some(was) = named.as_mut() {
            let now = Named::read(&copy);
            if let Some(field) = was.forged(&now, sender, own_actor) {
                let reason = Refusal::Identity(field, format!("{}, {}", sender.name, sender.organisation));
                return Err(Refused { reason, changes: vec![change.hash()] });
            }
            *was = now;
        }
    }
    if model_error(doc).is_none()
        && let Some((kind, reason)) = model_error(&copy)
    {
        return Err(Refused::all(Refusal::Malformed { kind, reason }, changes));
    }
    Ok(())
}

/// Which process a new document belongs to, if the sender may create it.
fn creation(document: DocumentId, scratch: &Automerge, sender: &Sender, own_actor: &dyn Fn(&str) -> bool) -> Result<Option<DocumentId>, Refusal> {
    let text = |key: &str| match scratch.get(ROOT, key) {
        Ok(Some((Value::Scalar(s), _))) => s.as_str().map(str::to_owned),
        Ok(Some((Value::Object(ObjType::Text), id))) => scratch.text(&id).ok(),
        _ => None,
    };
    let schema = text("schema");
    let process_of_rec = text("process")
        .and_then(|url| url.parse::<konsens_sync::AutomergeUrl>().ok())
        .map(|u| u.document_id);
    let created = match (sender.role, schema.as_deref()) {
        (AccessRole::Admin, Some(PROCESS_SCHEMA)) => Some(document),
        (AccessRole::Admin, Some(RECOMMENDATION_SCHEMA)) => process_of_rec,
        (AccessRole::Admin, _) => None,
        (AccessRole::Member(_), Some(PROCESS_SCHEMA)) => return Err(Refusal::AdminOnly("processes")),
        (AccessRole::Member(_), Some(RECOMMENDATION_SCHEMA)) if process_of_rec.is_some() && process_of_rec == sender.process => {
            process_of_rec
        }
        (AccessRole::Member(_), _) => return Err(Refusal::OutsideProcess),
    };
    // A member's new recommendation starts as a draft nobody has decided on,
    // and reads as the model.
    if let AccessRole::Member(_) = sender.role {
        if GuardedState::read(scratch).decided.is_some() || !GuardedState::read(scratch).decisions.is_empty() {
            return Err(Refusal::FacilitatorOnly(Guarded::Decision));
        }
        // Nor with consent rounds a member made up.
        let rounds = GuardedState::read(scratch).rounds;
        if !sender.role.is_facilitator() && rounds.is_some_and(|r| r != "[]") {
            return Err(Refusal::FacilitatorOnly(Guarded::Consent));
        }
        if let Some((kind, reason)) = model_error(scratch) {
            return Err(Refusal::Malformed { kind, reason });
        }
        if let Some(field) = Named::default().forged(&Named::read(scratch), sender, own_actor) {
            return Err(Refusal::Identity(field, format!("{}, {}", sender.name, sender.organisation)));
        }
        // Nor with amendments that are not the sender's own, open ones.
        if let Some(reason) = Entries::default().refusal(&Entries::read(scratch), sender) {
            return Err(reason);
        }
    }
    Ok(created)
}

/// Which process a new branch belongs to (its recommendation's), if the
/// sender may create it: a member of that process, and every change that is
/// not in the recommendation changes only the title and the text fields
/// (and adds the mark).
fn branch_creation(
    scratch: &Automerge,
    rec: &Automerge,
    changes: &[Change],
    sender: &Sender,
    own_actor: &dyn Fn(&str) -> bool,
) -> Result<Option<DocumentId>, Refusal> {
    let process = schema::Recommendation::from_doc(rec)
        .ok()
        .and_then(|r| r.process.parse::<konsens_sync::AutomergeUrl>().ok())
        .map(|u| u.document_id)
        .ok_or(Refusal::Amendment(AmendmentRule::UnknownRecommendation))?;
    if sender.role != AccessRole::Admin && sender.process != Some(process) {
        return Err(Refusal::OutsideProcess);
    }
    // What the recommendation's own changes make, against what the whole branch makes.
    let mut inherited = Automerge::new();
    inherited
        .apply_changes(changes.iter().filter(|c| rec.get_change_meta_by_hash(&c.hash()).is_some()).cloned())
        .map_err(|e| Refusal::Unreadable(e.to_string()))?;
    let outside = |doc: &Automerge| outside_text(doc, &["amendment", "authors"]);
    if outside(&inherited) != outside(scratch) {
        return Err(Refusal::Amendment(AmendmentRule::OnlyText));
    }
    if let Some((kind, reason)) = model_error(scratch) {
        return Err(Refusal::Malformed { kind, reason });
    }
    if let Some(field) = Named::read(&inherited).forged(&Named::read(scratch), sender, own_actor) {
        return Err(Refusal::Identity(field, format!("{}, {}", sender.name, sender.organisation)));
    }
    Ok(Some(process))
}

/// Changes to an existing branch: by its author (the entry's, or before
/// there is one, whoever made the mark), a coauthor or a facilitator; while
/// it is open or changes are requested; only the title and the text fields.
fn branch_write(
    document: DocumentId,
    doc: &Automerge,
    rec: &Automerge,
    changes: &[Change],
    sender: &Sender,
    owner_of: &dyn Fn(&ActorId) -> Option<String>,
    own_actor: &dyn Fn(&str) -> bool,
) -> Result<(), Refused> {
    let refuse = |rule| Err(Refused::all(Refusal::Amendment(rule), changes));
    let writer = match amendment::entry_of(rec, document) {
        Some(entry) => {
            if !entry.state.is_editable() {
                return refuse(AmendmentRule::Closed);
            }
            entry.is_author(&sender.participant)
        }
        None => mark_owner(doc, owner_of).is_some_and(|owner| owner == sender.participant),
    };
    if !writer && !sender.role.is_facilitator() {
        return refuse(AmendmentRule::NotAnAuthor);
    }
    if only_text_edits(doc, changes) {
        return Ok(());
    }
    let outside = |doc: &Automerge| outside_text(doc, &["authors"]);
    let before = outside(doc);
    let mut named = Named::read(doc);
    let mut copy = doc.fork();
    for change in changes {
        copy.apply_changes([change.clone()])
            .map_err(|e| Refused::all(Refusal::Unreadable(e.to_string()), changes))?;
        if outside(&copy) != before {
            return Err(Refused { reason: Refusal::Amendment(AmendmentRule::OnlyText), changes: vec![change.hash()] });
        }
        let now = Named::read(&copy);
        if let Some(field) = named.forged(&now, sender, own_actor) {
            let reason = Refusal::Identity(field, format!("{}, {}", sender.name, sender.organisation));
            return Err(Refused { reason, changes: vec![change.hash()] });
        }
        named = now;
    }
    Ok(())
}

/// Who made a branch's mark: the member its actor belongs to.
fn mark_owner(doc: &Automerge, owner_of: &dyn Fn(&ActorId) -> Option<String>) -> Option<String> {
    match doc.get(ROOT, "amendment") {
        Ok(Some((_, ObjId::Id(_, actor, _)))) => owner_of(&actor),
        _ => None,
    }
}

/// The document's root as canonical text without the title, the text
/// fields and `except`: what a branch may not change.
fn outside_text(doc: &Automerge, except: &[&str]) -> String {
    let mut out = String::new();
    for key in doc.keys(ROOT) {
        if key == "title" || schema::TEXT_FIELDS.contains(&key.as_str()) || except.contains(&key.as_str()) {
            continue;
        }
        if let Ok(Some((v, id))) = doc.get(ROOT, key.as_str()) {
            out.push_str(&format!("{key:?}:{},", canonical_value(doc, &v, &id, 0)));
        }
    }
    out
}

/// The amendments' entries in a recommendation, read the way `Named` reads names.
#[derive(Debug, Default, PartialEq, Eq)]
struct Entries(BTreeMap<Option<String>, EntryView>);

/// One entry, in the parts different people may change. `None` keys hold an
/// `amendments` (or an entry) that is not a map, which only facilitators change.
#[derive(Debug, Default, PartialEq, Eq)]
struct EntryView {
    by: Option<String>,
    /// Title and coauthors (the author's).
    authored: String,
    state: Option<String>,
    decision: Option<String>,
    /// Organisation → (its endorsement, who endorsed).
    endorsements: BTreeMap<String, (String, Option<String>)>,
    /// Everything else (url, opened, base, unknown keys): nobody changes it.
    rest: String,
}

impl Entries {
    fn read(doc: &Automerge) -> Self {
        let mut out = BTreeMap::new();
        let map = match doc.get(ROOT, "amendments") {
            Ok(Some((Value::Object(ObjType::Map), map))) => map,
            Ok(Some((v, id))) => {
                out.insert(None, EntryView { rest: canonical_value(doc, &v, &id, 0), ..EntryView::default() });
                return Entries(out);
            }
            _ => return Entries(out),
        };
        for key in doc.keys(&map) {
            let Ok(Some((v, id))) = doc.get(&map, key.as_str()) else { continue };
            let Value::Object(ObjType::Map) = v else {
                out.insert(Some(key), EntryView { rest: canonical_value(doc, &v, &id, 1), ..EntryView::default() });
                continue;
            };
            let field = |k: &str| doc.get(&id, k).ok().flatten().map(|(v, c)| canonical_value(doc, &v, &c, 1));
            let mut view = EntryView {
                by: string_at(doc, &id, "by"),
                authored: format!("{:?}{:?}", field("title"), field("coauthors")),
                state: string_at(doc, &id, "state"),
                decision: field("decision").filter(|d| d != "null"),
                ..EntryView::default()
            };
            match doc.get(&id, "endorsements") {
                Ok(Some((Value::Object(ObjType::Map), e))) => {
                    for org in doc.keys(&e) {
                        if let Ok(Some((v, c))) = doc.get(&e, org.as_str()) {
                            let by = matches!(v, Value::Object(_)).then(|| string_at(doc, &c, "by")).flatten();
                            view.endorsements.insert(org, (canonical_value(doc, &v, &c, 2), by));
                        }
                    }
                }
                Ok(Some((v, c))) => view.rest.push_str(&format!("endorsements:{},", canonical_value(doc, &v, &c, 1))),
                _ => {}
            }
            for k in doc.keys(&id).filter(|k| !["by", "title", "coauthors", "state", "decision", "endorsements"].contains(&k.as_str())) {
                if let Some(value) = field(&k) {
                    view.rest.push_str(&format!("{k:?}:{value},"));
                }
            }
            out.insert(Some(key), view);
        }
        Entries(out)
    }

    /// Why `after` could not have been written by `sender` (see the module's rules).
    fn refusal(&self, after: &Entries, sender: &Sender) -> Option<Refusal> {
        let facilitator = sender.role.is_facilitator();
        let me = Some(sender.participant.as_str());
        let identity = |what| Some(Refusal::Identity(what, format!("{}, {}", sender.name, sender.organisation)));
        let entry = Some(Refusal::Amendment(AmendmentRule::Entry));
        let is = |state: &Option<String>, s: AmendmentState| state.as_deref() == Some(s.as_str());
        for key in self.0.keys().chain(after.0.keys()) {
            let (was, now) = (self.0.get(key), after.0.get(key));
            if was == now {
                continue;
            }
            let empty = EntryView::default();
            let (was_view, now_view) = (was.unwrap_or(&empty), now.unwrap_or(&empty));
            // Endorsements: one's own organisation, in one's own name, whoever one is.
            for org in was_view.endorsements.keys().chain(now_view.endorsements.keys()) {
                let now_e = now_view.endorsements.get(org);
                if was_view.endorsements.get(org) != now_e && (org != &sender.organisation || now_e.is_some_and(|(_, by)| by.as_deref() != me)) {
                    return identity("an amendment's endorsement");
                }
            }
            if key.is_none() {
                return (!facilitator).then_some(entry).flatten();
            }
            match (was, now) {
                (None, Some(new)) => {
                    if new.by.as_deref() != me {
                        return identity("an amendment's author");
                    }
                    if !facilitator && (!is(&new.state, AmendmentState::Open) || new.decision.is_some()) {
                        return Some(Refusal::FacilitatorOnly(Guarded::Decision));
                    }
                }
                (Some(_), None) if !facilitator => return entry,
                (Some(old), Some(new)) if !facilitator => {
                    if old.decision != new.decision {
                        return Some(Refusal::FacilitatorOnly(Guarded::Decision));
                    }
                    let author = old.by.as_deref() == me;
                    if old.state != new.state {
                        let decided = |s: &Option<String>| s.as_deref().and_then(|s| s.parse::<AmendmentState>().ok()).is_some_and(AmendmentState::is_decision);
                        let withdraws = is(&new.state, AmendmentState::Withdrawn)
                            && (is(&old.state, AmendmentState::Open) || is(&old.state, AmendmentState::ChangesRequested));
                        let resubmits = is(&old.state, AmendmentState::ChangesRequested) && is(&new.state, AmendmentState::Open);
                        if !(author && (withdraws || resubmits)) {
                            return if decided(&old.state) || decided(&new.state) { Some(Refusal::FacilitatorOnly(Guarded::Decision)) } else { entry };
                        }
                    }
                    if (old.authored != new.authored && !author) || old.by != new.by || old.rest != new.rest {
                        return entry;
                    }
                }
                _ => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{self, Answer, Member, SchemaError, Status};
    use automerge::transaction::Transactable;

    fn actor(n: u8) -> ActorId {
        ActorId::from(vec![n; 16])
    }

    fn sender(p: &str, role: AccessRole, process: DocumentId) -> Sender {
        Sender { participant: p.into(), name: format!("{p} name"), organisation: format!("{p} org"), role, process: Some(process) }
    }

    fn process_id() -> DocumentId {
        DocumentId::from_random([1; 16])
    }

    fn new_changes(before: &Automerge, after: &Automerge) -> Vec<Change> {
        after.get_changes(&before.get_heads()).into_iter().collect()
    }

    fn recommendation(by: u8) -> Automerge {
        let mut doc = Automerge::new().with_actor(actor(by));
        doc.transact::<_, _, schema::SchemaError>(|tx| {
            schema::init_recommendation(tx, &process_id().url(), "w", "T", &[])?;
            Ok(())
        })
        .expect("init");
        doc
    }

    #[test]
    fn several_changes_in_one_chunk_are_all_seen() {
        let base = recommendation(1);
        let mut doc = base.fork().with_actor(actor(8));
        for title in ["a", "b", "c"] {
            doc.transact::<_, _, schema::SchemaError>(|tx| schema::set_title(tx, title)).expect("edit");
        }
        let changes = new_changes(&base, &doc);
        let mut joined = Vec::new();
        for c in &changes {
            joined.extend_from_slice(c.raw_bytes());
        }
        let message = sync::Message {
            heads: doc.get_heads(),
            need: vec![],
            have: vec![],
            changes: sync::ChunkList::from(vec![joined]),
            flags: None,
            version: sync::MessageVersion::V1,
        };
        let incoming = incoming_changes(&base, &message).expect("readable");
        assert_eq!(incoming.len(), 3);
        let whole = sync::Message { changes: sync::ChunkList::from(vec![doc.save()]), ..message };
        assert_eq!(incoming_changes(&base, &whole).expect("a whole document").len(), 3);
    }

    #[test]
    fn refusals_name_their_document_code_and_changes() {
        let id = DocumentId::from_random([4; 16]);
        let refused = Refused { reason: Refusal::ReadOnly, changes: vec![ChangeHash([3; 32])] };
        assert!(refused.message(id).starts_with(&format!("changes to {id} refused: ")));
        let wire = refused.wire(id);
        assert_eq!((wire.document_id, wire.code, wire.refused), (id, RefusalCode::ReadOnly, vec![ChangeHash([3; 32])]));
    }

    #[test]
    fn observers_and_foreign_actors_are_refused() {
        let base = Automerge::new();
        let doc = recommendation(1);
        let changes = new_changes(&base, &doc);
        let none = |_: &ActorId| None;
        let observer = sender("o", AccessRole::Member(MemberRole::Observer), process_id());
        let refused = admit(DocumentId::from_random([2; 16]), &base, &changes, &observer, &none).expect_err("observer");
        assert_eq!(refused.reason, Refusal::ReadOnly);
        assert_eq!(refused.changes, changes.iter().map(Change::hash).collect::<Vec<_>>());
        let participant = sender("p", AccessRole::Member(MemberRole::Participant), process_id());
        let owned_by_other = |_: &ActorId| Some("someone-else".to_owned());
        assert!(matches!(
            admit(DocumentId::from_random([2; 16]), &base, &changes, &participant, &owned_by_other),
            Err(Refused { reason: Refusal::ForeignActor { .. }, .. })
        ));
        let facilitator = sender("f", AccessRole::Member(MemberRole::Facilitator), process_id());
        let ok = admit(DocumentId::from_random([2; 16]), &base, &changes, &facilitator, &owned_by_other).expect("relayed");
        assert_eq!(ok.changes[0].author, "someone-else");
        assert_eq!(ok.changes[0].merged_by.as_deref(), Some("f"));
    }

    #[test]
    fn new_documents_must_belong_to_the_senders_process() {
        let base = Automerge::new();
        let doc = recommendation(1);
        let changes = new_changes(&base, &doc);
        let none = |_: &ActorId| None;
        let member = sender("p", AccessRole::Member(MemberRole::Participant), process_id());
        let admitted = admit(DocumentId::from_random([2; 16]), &base, &changes, &member, &none).expect("admitted");
        assert_eq!(admitted.creates_in, Some(process_id()));
        assert_eq!(admitted.new_actors, vec![actor(1)]);
        let elsewhere = sender("p", AccessRole::Member(MemberRole::Participant), DocumentId::from_random([9; 16]));
        assert_eq!(admit(DocumentId::from_random([2; 16]), &base, &changes, &elsewhere, &none).map_err(|r| r.reason), Err(Refusal::OutsideProcess));
        let mut process = Automerge::new().with_actor(actor(3));
        process.transact::<_, _, schema::SchemaError>(|tx| schema::init_process(tx, "P", "")).expect("init");
        let changes = new_changes(&base, &process);
        assert_eq!(admit(process_id(), &base, &changes, &member, &none).map_err(|r| r.reason), Err(Refusal::AdminOnly("processes")));
        let admin = Sender { participant: "admin:x".into(), name: String::new(), organisation: String::new(), role: AccessRole::Admin, process: None };
        assert_eq!(admit(process_id(), &base, &changes, &admin, &none).expect("admin").creates_in, Some(process_id()));
    }

    #[test]
    fn only_facilitators_decide_and_change_membership() {
        let mut doc = recommendation(1);
        doc.transact::<_, _, schema::SchemaError>(|tx| {
            schema::change_status(tx, Status::Discussion, "p", 1, "")?;
            schema::change_status(tx, Status::Consensus, "p", 2, "")?;
            Ok(())
        })
        .expect("to consensus");
        let before = doc.clone();
        let mut after = doc.fork().with_actor(actor(4));
        after
            .transact::<_, _, schema::SchemaError>(|tx| schema::change_status(tx, Status::Adopted, "p", 3, "").map(|_| ()))
            .expect("adopt");
        let changes = new_changes(&before, &after);
        let none = |_: &ActorId| None;
        let participant = sender("p", AccessRole::Member(MemberRole::Participant), process_id());
        assert_eq!(
            admit(process_id(), &before, &changes, &participant, &none).map_err(|r| r.reason),
            Err(Refusal::FacilitatorOnly(Guarded::Decision))
        );
        let facilitator = sender("f", AccessRole::Member(MemberRole::Facilitator), process_id());
        assert!(admit(process_id(), &before, &changes, &facilitator, &none).is_ok());

        let mut process = Automerge::new().with_actor(actor(5));
        process
            .transact::<_, _, schema::SchemaError>(|tx| {
                schema::init_process(tx, "P", "")?;
                schema::put_member(tx, "f", &Member { name: "F".into(), organisation: "O".into(), role: MemberRole::Facilitator })
            })
            .expect("process");
        let mut promoted = process.fork().with_actor(actor(6));
        promoted
            .transact::<_, _, schema::SchemaError>(|tx| {
                let members = match tx.get(ROOT, "members")? {
                    Some((_, id)) => id,
                    None => return Err(schema::SchemaError::UnknownField("members".into())),
                };
                let entry = match tx.get(&members, "f")? {
                    Some((_, id)) => id,
                    None => return Err(schema::SchemaError::UnknownField("f".into())),
                };
                tx.put(&entry, "role", "observer")?;
                Ok(())
            })
            .expect("demote");
        let changes = new_changes(&process, &promoted);
        assert_eq!(
            admit(process_id(), &process, &changes, &participant, &none).map_err(|r| r.reason),
            Err(Refusal::FacilitatorOnly(Guarded::Membership))
        );
    }

    fn participant() -> Sender {
        sender("p", AccessRole::Member(MemberRole::Participant), process_id())
    }

    /// A recommendation at consensus, and a participant's edit of it.
    fn edited(by: u8, edit: impl FnOnce(&mut automerge::transaction::Transaction<'_>) -> Result<(), schema::SchemaError>) -> (Automerge, Vec<Change>) {
        let mut doc = recommendation(1);
        doc.transact::<_, _, schema::SchemaError>(|tx| {
            schema::change_status(tx, Status::Discussion, "f", 1, "")?;
            schema::change_status(tx, Status::Consensus, "f", 2, "")?;
            Ok(())
        })
        .expect("to consensus");
        let mut after = doc.fork().with_actor(actor(by));
        after.transact(edit).expect("edit");
        let changes = new_changes(&doc, &after);
        (doc, changes)
    }

    fn refusal_of(doc: &Automerge, changes: &[Change], who: &Sender) -> Option<Refusal> {
        admit(process_id(), doc, changes, who, &|_: &ActorId| None).err().map(|r| r.reason)
    }

    #[test]
    fn a_status_written_as_text_is_still_a_decision() {
        let (doc, changes) = edited(7, |tx| {
            let text = tx.put_object(ROOT, "status", ObjType::Text)?;
            tx.splice_text(&text, 0, 0, "adopted")?;
            Ok(())
        });
        assert_eq!(refusal_of(&doc, &changes, &participant()), Some(Refusal::FacilitatorOnly(Guarded::Decision)));
        // A facilitator may decide, but not leave a status the model cannot read.
        let facilitator = sender("f", AccessRole::Member(MemberRole::Facilitator), process_id());
        assert!(matches!(refusal_of(&doc, &changes, &facilitator), Some(Refusal::Malformed { .. })));
    }

    #[test]
    fn participants_neither_decide_nor_reopen_but_move_the_rest() {
        let (doc, changes) = edited(7, |tx| schema::change_status(tx, Status::Discussion, "p", 3, "").map(|_| ()));
        assert_eq!(refusal_of(&doc, &changes, &participant()), None, "consensus → discussion is anyone's");
        let mut adopted = doc.clone();
        adopted
            .transact::<_, _, schema::SchemaError>(|tx| schema::change_status(tx, Status::Adopted, "f", 4, "").map(|_| ()))
            .expect("adopt");
        let mut reopened = adopted.fork().with_actor(actor(7));
        reopened
            .transact::<_, _, schema::SchemaError>(|tx| schema::change_status(tx, Status::Discussion, "p", 5, "").map(|_| ()))
            .expect("re-open");
        let changes = new_changes(&adopted, &reopened);
        assert_eq!(refusal_of(&adopted, &changes, &participant()), Some(Refusal::FacilitatorOnly(Guarded::Decision)));
        let facilitator = sender("f", AccessRole::Member(MemberRole::Facilitator), process_id());
        assert_eq!(refusal_of(&adopted, &changes, &facilitator), None);
    }

    #[test]
    fn a_schema_flip_and_flip_back_is_refused_at_the_flip() {
        let (doc, changes) = edited(7, |tx| {
            tx.put(ROOT, "schema", "something/else")?;
            Ok(())
        });
        let flip = changes[0].hash();
        let mut later = doc.fork().with_actor(actor(7));
        later.apply_changes(changes.clone()).expect("apply");
        later
            .transact::<_, _, schema::SchemaError>(|tx| {
                tx.put(ROOT, "schema", RECOMMENDATION_SCHEMA)?;
                Ok(())
            })
            .expect("flip back");
        let both = new_changes(&doc, &later);
        let refused = admit(process_id(), &doc, &both, &participant(), &|_: &ActorId| None).expect_err("refused");
        assert_eq!(refused.reason, Refusal::FacilitatorOnly(Guarded::Kind));
        assert_eq!(refused.changes, vec![flip], "the flip itself is named");
    }

    #[test]
    fn forged_decisions_in_the_status_log_are_refused() {
        let (doc, changes) = edited(7, |tx| {
            let log = match tx.get(ROOT, "statusLog")? {
                Some((_, id)) => id,
                None => return Err(schema::SchemaError::UnknownField("statusLog".into())),
            };
            let entry = schema::StatusChange { by: "f".into(), at: 9, from: Status::Consensus, to: Status::Adopted, note: String::new(), heads: vec![] };
            let n = tx.length(&log);
            autosurgeon::reconcile_insert(tx, log, n, &entry)?;
            Ok(())
        });
        assert_eq!(refusal_of(&doc, &changes, &participant()), Some(Refusal::FacilitatorOnly(Guarded::Decision)));
    }

    #[test]
    fn typing_takes_the_fast_path_and_passes() {
        let (doc, changes) = edited(7, |tx| {
            let text = schema::text_object(tx, "recommendation")?;
            tx.splice_text(&text, 0, 0, "Employers pay.")?;
            Ok(())
        });
        assert!(only_text_edits(&doc, &changes));
        assert_eq!(refusal_of(&doc, &changes, &participant()), None);
        let (doc, changes) = edited(7, |tx| {
            tx.put(ROOT, "status", "maybe")?;
            Ok(())
        });
        assert!(!only_text_edits(&doc, &changes));
        assert!(matches!(refusal_of(&doc, &changes, &participant()), Some(Refusal::Malformed { .. })));
    }

    #[test]
    fn a_members_new_recommendation_cannot_start_decided() {
        let base = Automerge::new();
        let mut doc = recommendation(1);
        doc.transact::<_, _, schema::SchemaError>(|tx| {
            tx.put(ROOT, "status", "adopted")?;
            Ok(())
        })
        .expect("forged");
        let changes = new_changes(&base, &doc);
        assert_eq!(
            admit(DocumentId::from_random([2; 16]), &base, &changes, &participant(), &|_: &ActorId| None).map_err(|r| r.reason),
            Err(Refusal::FacilitatorOnly(Guarded::Decision))
        );
    }

    /// A process with two workshops and one linked recommendation.
    fn structured_process() -> Automerge {
        let mut process = Automerge::new().with_actor(actor(5));
        process
            .transact::<_, _, schema::SchemaError>(|tx| {
                schema::init_process(tx, "P", "")?;
                for (id, title) in [("a", "Anerkennung"), ("b", "Bleiberecht")] {
                    let w = schema::Workshop { id: id.into(), title: title.into(), theme: String::new(), sectors: vec![], date: None };
                    schema::add_workshop(tx, &w)?;
                }
                schema::link_recommendation(tx, "a", "automerge:r1")
            })
            .expect("process");
        process
    }

    fn process_edit(process: &Automerge, by: u8, edit: impl FnOnce(&mut automerge::transaction::Transaction<'_>) -> Result<(), schema::SchemaError>) -> Vec<Change> {
        let mut after = process.fork().with_actor(actor(by));
        after.transact(edit).expect("edit");
        new_changes(process, &after)
    }

    #[test]
    fn only_facilitators_rename_reorder_move_or_archive() {
        let process = structured_process();
        let facilitator = sender("f", AccessRole::Member(MemberRole::Facilitator), process_id());
        let observer = sender("o", AccessRole::Member(MemberRole::Observer), process_id());
        let edits: Vec<(&str, Vec<Change>)> = vec![
            ("rename", process_edit(&process, 7, |tx| schema::rename_workshop(tx, "a", "Anerkennung von Abschlüssen"))),
            ("reorder", process_edit(&process, 7, |tx| schema::move_workshop(tx, "b", 0))),
            ("set the language", process_edit(&process, 7, |tx| schema::set_language(tx, "en"))),
            ("archive a workshop", process_edit(&process, 7, |tx| schema::archive_workshop(tx, "a", true))),
            ("archive a recommendation", process_edit(&process, 7, |tx| schema::archive_recommendation(tx, "automerge:r1", true))),
            ("move a recommendation", process_edit(&process, 7, |tx| schema::move_recommendation(tx, "automerge:r1", "b"))),
            (
                "add a workshop",
                process_edit(&process, 7, |tx| {
                    let w = schema::Workshop { id: "c".into(), title: "C".into(), theme: String::new(), sectors: vec![], date: None };
                    schema::add_workshop(tx, &w)
                }),
            ),
            (
                "unlink a recommendation",
                process_edit(&process, 7, |tx| {
                    let map = match tx.get(ROOT, "recommendations")? {
                        Some((_, id)) => id,
                        None => return Err(schema::SchemaError::UnknownField("recommendations".into())),
                    };
                    tx.delete(&map, "a")?;
                    Ok(())
                }),
            ),
        ];
        for (what, changes) in &edits {
            assert_eq!(refusal_of(&process, changes, &participant()), Some(Refusal::FacilitatorOnly(Guarded::Structure)), "{what}");
            assert_eq!(refusal_of(&process, changes, &observer), Some(Refusal::ReadOnly), "{what}");
            assert_eq!(refusal_of(&process, changes, &facilitator), None, "{what}");
        }
        assert_eq!(Refusal::FacilitatorOnly(Guarded::Structure).code(), RefusalCode::Structure);
    }

    #[test]
    fn participants_still_link_their_new_recommendations_and_cannot_move_one() {
        let process = structured_process();
        let link = process_edit(&process, 7, |tx| schema::link_recommendation(tx, "a", "automerge:r2"));
        assert_eq!(refusal_of(&process, &link, &participant()), None);
        let first_in_b = process_edit(&process, 7, |tx| schema::link_recommendation(tx, "b", "automerge:r3"));
        assert_eq!(refusal_of(&process, &first_in_b, &participant()), None);

        // In the recommendation itself, its workshop is structure too.
        let (doc, changes) = edited(7, |tx| schema::set_workshop(tx, "b"));
        assert_eq!(refusal_of(&doc, &changes, &participant()), Some(Refusal::FacilitatorOnly(Guarded::Structure)));
        let facilitator = sender("f", AccessRole::Member(MemberRole::Facilitator), process_id());
        assert_eq!(refusal_of(&doc, &changes, &facilitator), None);
    }

    #[test]
    fn names_in_the_document_must_be_the_senders_verified_ones() {
        let me = participant();
        let endorse = |org: &'static str, by: &'static str| {
            move |tx: &mut automerge::transaction::Transaction<'_>| {
                let e = schema::Endorsement { stance: schema::Stance::Object, note: String::new(), by: by.into(), at: 1 };
                schema::endorse(tx, org, &e)
            }
        };
        let (doc, changes) = edited(7, endorse("p org", "p"));
        assert_eq!(refusal_of(&doc, &changes, &me), None, "one's own organisation's endorsement");
        let (doc, changes) = edited(7, endorse("Ministry of Labour", "p"));
        assert!(matches!(refusal_of(&doc, &changes, &me), Some(Refusal::Identity("an endorsement", _))));
        let (doc, changes) = edited(7, endorse("p org", "someone-else"));
        assert!(matches!(refusal_of(&doc, &changes, &me), Some(Refusal::Identity(..))));

        let (doc, changes) = edited(7, |tx| schema::add_comment(tx, "c1", "title", "T", "Why?", "p", 1).map(|_| ()));
        assert_eq!(refusal_of(&doc, &changes, &me), None);
        let (doc, changes) = edited(7, |tx| schema::add_comment(tx, "c1", "title", "T", "Why?", "f", 1).map(|_| ()));
        assert!(matches!(refusal_of(&doc, &changes, &me), Some(Refusal::Identity("a comment's author", _))));

        let (doc, changes) = edited(7, |tx| {
            let authors = tx.put_object(ROOT, "authors", ObjType::Map)?;
            let entry = tx.put_object(&authors, "0707", ObjType::Map)?;
            tx.put(&entry, "participant", "f")?;
            tx.put(&entry, "name", "FORGED NAME")?;
            tx.put(&entry, "organisation", "O")?;
            Ok(())
        });
        assert!(matches!(refusal_of(&doc, &changes, &me), Some(Refusal::Identity("an authors entry", _))));
        // Who writes is said only of one's own actors, even in one's own name:
        // the entry for the actor of this very change passes, one for another
        // member's actor (say, to pass their words off as one's own) does not.
        let entry_for = |key: String| {
            move |tx: &mut automerge::transaction::Transaction<'_>| -> Result<(), schema::SchemaError> {
                let authors = tx.put_object(ROOT, "authors", ObjType::Map)?;
                let entry = tx.put_object(&authors, key.as_str(), ObjType::Map)?;
                tx.put(&entry, "participant", "p")?;
                tx.put(&entry, "name", "p name")?;
                tx.put(&entry, "organisation", "p org")?;
                Ok(())
            }
        };
        let (doc, changes) = edited(7, entry_for(actor(7).to_hex_string()));
        assert_eq!(refusal_of(&doc, &changes, &me), None, "one's own actor, as verified");
        let (doc, changes) = edited(7, entry_for(actor(8).to_hex_string()));
        assert!(matches!(refusal_of(&doc, &changes, &me), Some(Refusal::Identity("an authors entry", _))), "another member's actor");

        let (doc, changes) = edited(7, |tx| schema::change_status(tx, Status::Discussion, "f", 3, "").map(|_| ()));
        assert!(matches!(refusal_of(&doc, &changes, &me), Some(Refusal::Identity("a status-log entry", _))), "a move logged as someone else's");
        let facilitator = sender("f", AccessRole::Member(MemberRole::Facilitator), process_id());
        assert_eq!(refusal_of(&doc, &changes, &facilitator), None, "facilitators relay others' changes");
    }

    // -- consent rounds ---------------------------------------------------------

    fn facilitator() -> Sender {
        sender("f", AccessRole::Member(MemberRole::Facilitator), process_id())
    }

    /// A recommendation at consensus, prepared by a facilitator's `setup`
    /// (say, opening a round), and the changes `edit` makes on it.
    fn on_round(
        setup: impl FnOnce(&mut automerge::transaction::Transaction<'_>) -> Result<(), consent::ConsentError>,
        by: u8,
        edit: impl FnOnce(&mut automerge::transaction::Transaction<'_>) -> Result<(), consent::ConsentError>,
    ) -> (Automerge, Vec<Change>) {
        let (mut doc, _) = edited(2, |_| Ok(()));
        doc.transact(setup).expect("setup");
        let mut after = doc.fork().with_actor(actor(by));
        after.transact(edit).expect("edit");
        let changes = new_changes(&doc, &after);
        (doc, changes)
    }

    fn opened(tx: &mut automerge::transaction::Transaction<'_>) -> Result<(), consent::ConsentError> {
        consent::open(tx, "r1", "Zustimmung?", 10_000, "f", 1_000)
    }

    fn consent_refusal(doc: &Automerge, changes: &[Change], who: &Sender, requires: bool) -> Option<Refusal> {
        let policy = move || Policy { adoption_requires_consent: requires };
        admit_under(process_id(), doc, changes, who, &|_: &ActorId| None, &policy).err().map(|r| r.reason)
    }

    #[test]
    fn only_facilitators_open_word_and_close_rounds() {
        let (doc, changes) = on_round(|_| Ok(()), 7, opened);
        assert_eq!(refusal_of(&doc, &changes, &participant()), Some(Refusal::FacilitatorOnly(Guarded::Consent)));
        assert_eq!(refusal_of(&doc, &changes, &facilitator()), None);

        let (doc, changes) = on_round(opened, 7, |tx| consent::close(tx, "Angenommen", "p", 2_000));
        assert_eq!(refusal_of(&doc, &changes, &participant()), Some(Refusal::FacilitatorOnly(Guarded::Consent)), "a participant closing");
        assert_eq!(refusal_of(&doc, &changes, &facilitator()), None);

        for (key, value) in [("deadline", ScalarValue::Int(99)), ("question", ScalarValue::Str("Andere Frage".into()))] {
            let (doc, changes) = on_round(opened, 7, |tx| {
                let Some((_, list)) = tx.get(ROOT, "rounds")? else { return Err(consent::ConsentError::NoOpenRound) };
                let Some((_, round)) = tx.get(&list, 0)? else { return Err(consent::ConsentError::NoOpenRound) };
                tx.put(&round, key, value.clone())?;
                Ok(())
            });
            assert_eq!(refusal_of(&doc, &changes, &participant()), Some(Refusal::FacilitatorOnly(Guarded::Consent)), "{key}");
        }
        let (doc, changes) = on_round(opened, 7, |tx| {
            tx.delete(ROOT, "rounds")?;
            Ok(())
        });
        assert_eq!(refusal_of(&doc, &changes, &participant()), Some(Refusal::FacilitatorOnly(Guarded::Consent)), "deleting the rounds");
    }

    #[test]
    fn an_organisation_answers_only_through_its_own_members() {
        let (doc, changes) = on_round(opened, 7, |tx| consent::answer(tx, "p org", Answer::Block, "Zu teuer", "p", 1_100));
        assert_eq!(refusal_of(&doc, &changes, &participant()), None, "one's own organisation");
        let observer = sender("o", AccessRole::Member(MemberRole::Observer), process_id());
        assert_eq!(refusal_of(&doc, &changes, &observer), Some(Refusal::ReadOnly));

        let (doc, changes) = on_round(opened, 7, |tx| consent::answer(tx, "Arbeitgeberverband", Answer::Agree, "", "p", 1_100));
        assert!(matches!(refusal_of(&doc, &changes, &participant()), Some(Refusal::Identity("a consent answer", _))), "forged for another organisation");
        assert!(matches!(refusal_of(&doc, &changes, &facilitator()), Some(Refusal::Identity("a consent answer", _))), "facilitators answer only for their own");

        let (doc, changes) = on_round(opened, 7, |tx| consent::answer(tx, "p org", Answer::Agree, "", "someone-else", 1_100));
        assert!(matches!(refusal_of(&doc, &changes, &participant()), Some(Refusal::Identity(..))), "in another member's name");

        // Changing one's answer is fine; removing another organisation's is not.
        let (doc, changes) = on_round(
            |tx| {
                opened(tx)?;
                consent::answer(tx, "p org", Answer::Block, "", "p", 1_100)?;
                consent::answer(tx, "q org", Answer::Agree, "", "q", 1_100)
            },
            7,
            |tx| consent::answer(tx, "p org", Answer::Agree, "Nach Klärung", "p", 1_200),
        );
        assert_eq!(refusal_of(&doc, &changes, &participant()), None);
        let (doc, changes) = on_round(
            |tx| {
                opened(tx)?;
                consent::answer(tx, "q org", Answer::Agree, "", "q", 1_100)
            },
            7,
            |tx| {
                let Some((_, list)) = tx.get(ROOT, "rounds")? else { return Err(consent::ConsentError::NoOpenRound) };
                let Some((_, round)) = tx.get(&list, 0)? else { return Err(consent::ConsentError::NoOpenRound) };
                let Some((_, answers)) = tx.get(&round, "answers")? else { return Err(consent::ConsentError::NoOpenRound) };
                tx.delete(&answers, "q org")?;
                Ok(())
            },
        );
        assert!(matches!(refusal_of(&doc, &changes, &participant()), Some(Refusal::Identity(..))));
    }

    #[test]
    fn no_answer_goes_into_a_closed_round() {
        // The member's client did not see the close yet: its answer arrives after it.
        let (mut doc, _) = edited(2, |_| Ok(()));
        doc.transact(opened).expect("open");
        let mut member = doc.fork().with_actor(actor(7));
        member
            .transact(|tx| consent::answer(tx, "p org", Answer::Block, "", "p", 1_100))
            .expect("answer");
        let late = new_changes(&doc, &member);
        doc.transact(|tx| consent::close(tx, "Konsens", "f", 1_050)).expect("close");
        assert_eq!(refusal_of(&doc, &late, &participant()), Some(Refusal::RoundClosed));
        assert_eq!(refusal_of(&doc, &late, &facilitator()), Some(Refusal::Identity("a consent answer", "f name, f org".into())));
    }

    #[test]
    fn a_close_and_reopen_in_one_message_is_refused_at_the_close() {
        let (mut doc, _) = edited(2, |_| Ok(()));
        doc.transact(opened).expect("open");
        let mut later = doc.fork().with_actor(actor(7));
        later.transact(|tx| consent::close(tx, "Erledigt", "p", 2_000)).expect("close");
        let close_hash = later.get_heads()[0];
        later
            .transact::<_, _, consent::ConsentError>(|tx| {
                let Some((_, list)) = tx.get(ROOT, "rounds")? else { return Err(consent::ConsentError::NoOpenRound) };
                let Some((_, round)) = tx.get(&list, 0)? else { return Err(consent::ConsentError::NoOpenRound) };
                tx.put(&round, "closed", ScalarValue::Null)?;
                Ok(())
            })
            .expect("re-open");
        let both = new_changes(&doc, &later);
        assert_eq!(both.len(), 2);
        let refused = admit(process_id(), &doc, &both, &participant(), &|_: &ActorId| None).expect_err("refused");
        assert_eq!(refused.reason, Refusal::FacilitatorOnly(Guarded::Consent));
        assert_eq!(refused.changes, vec![close_hash]);
    }

    #[test]
    fn where_required_adoption_needs_a_closed_round_without_a_block() {
        let adopt = |tx: &mut automerge::transaction::Transaction<'_>| schema::change_status(tx, Status::Adopted, "f", 5_000, "").map(|_| ()).map_err(consent::ConsentError::from);
        let (doc, changes) = on_round(|_| Ok(()), 4, adopt);
        assert_eq!(consent_refusal(&doc, &changes, &facilitator(), false), None, "not required by default");
        assert_eq!(consent_refusal(&doc, &changes, &facilitator(), true), Some(Refusal::ConsentRequired(ConsentMissing::NoRound)));

        let (doc, changes) = on_round(opened, 4, adopt);
        assert_eq!(consent_refusal(&doc, &changes, &facilitator(), true), Some(Refusal::ConsentRequired(ConsentMissing::RoundOpen)));

        let blocked = |tx: &mut automerge::transaction::Transaction<'_>| {
            opened(tx)?;
            consent::answer(tx, "q org", Answer::Block, "Nein", "q", 1_100)?;
            consent::close(tx, "Veto", "f", 2_000)
        };
        let (doc, changes) = on_round(blocked, 4, adopt);
        let refusal = consent_refusal(&doc, &changes, &facilitator(), true);
        assert_eq!(refusal, Some(Refusal::ConsentRequired(ConsentMissing::Blocked(vec!["q org".into()]))));
        assert_eq!(refusal.map(|r| r.code()), Some(RefusalCode::ConsentRequired));

        let agreed = |tx: &mut automerge::transaction::Transaction<'_>| {
            blocked(tx)?;
            consent::open(tx, "r2", "", 20_000, "f", 3_000)?;
            consent::answer(tx, "q org", Answer::Disagree, "Bedenken bleiben", "q", 3_100)?;
            consent::close(tx, "Konsens mit Bedenken", "f", 4_000)
        };
        let (doc, changes) = on_round(agreed, 4, adopt);
        assert_eq!(consent_refusal(&doc, &changes, &facilitator(), true), None);

        // Closing a blocked round and adopting in one message is judged as a whole.
        let (doc, changes) = on_round(
            |tx| {
                opened(tx)?;
                consent::answer(tx, "q org", Answer::Block, "Nein", "q", 1_100)
            },
            4,
            |tx| {
                consent::close(tx, "Veto", "f", 2_000)?;
                adopt(tx)
            },
        );
        assert!(matches!(consent_refusal(&doc, &changes, &facilitator(), true), Some(Refusal::ConsentRequired(ConsentMissing::Blocked(_)))));
    }

    #[test]
    fn only_facilitators_set_whether_adoption_requires_consent() {
        let mut process = Automerge::new().with_actor(actor(5));
        process.transact::<_, _, schema::SchemaError>(|tx| schema::init_process(tx, "P", "")).expect("process");
        let mut after = process.fork().with_actor(actor(6));
        after.transact(|tx| consent::set_adoption_requires_consent(tx, true)).expect("on");
        let changes = new_changes(&process, &after);
        assert_eq!(refusal_of(&process, &changes, &participant()), Some(Refusal::FacilitatorOnly(Guarded::Consent)));
        assert_eq!(refusal_of(&process, &changes, &facilitator()), None);
        assert_eq!(Refusal::FacilitatorOnly(Guarded::Consent).code(), RefusalCode::Consent);
    }

    #[test]
    fn a_members_new_recommendation_cannot_bring_its_own_rounds() {
        let base = Automerge::new();
        let mut doc = recommendation(1);
        doc.transact(|tx| {
            opened(tx)?;
            consent::close(tx, "Konsens", "p", 2)
        })
        .expect("made up");
        let changes = new_changes(&base, &doc);
        assert_eq!(
            admit(DocumentId::from_random([2; 16]), &base, &changes, &participant(), &|_: &ActorId| None).map_err(|r| r.reason),
            Err(Refusal::FacilitatorOnly(Guarded::Consent))
        );
    }

    // -- amendments -------------------------------------------------------------

    fn rec_id() -> DocumentId {
        DocumentId::from_random([6; 16])
    }

    fn branch_id() -> DocumentId {
        DocumentId::from_random([5; 16])
    }

    /// A recommendation by actor 1 with an amendment entry by `p`
    /// (coauthor `c`), prepared with `setup` by a facilitator's actor.
    fn amended_rec(setup: impl FnOnce(&mut automerge::transaction::Transaction<'_>) -> Result<(), amendment::AmendmentError>) -> Automerge {
        let mut rec = recommendation(1);
        rec.transact::<_, _, SchemaError>(|tx| schema::set_rich_text(tx, "recommendation", crate::richtext::to_spans("Eins zwei drei.")))
            .expect("text");
        let base = rec.get_heads();
        rec.transact(|tx| {
            amendment::add(tx, branch_id(), "Klarer", "p", 2, &base)?;
            amendment::set_coauthors(tx, branch_id(), &["c".to_owned()])?;
            setup(tx)
        })
        .expect("entry");
        rec
    }

    fn entry_edit(
        rec: &Automerge,
        edit: impl FnOnce(&mut automerge::transaction::Transaction<'_>) -> Result<(), amendment::AmendmentError>,
    ) -> Vec<Change> {
        let mut after = rec.fork().with_actor(actor(9));
        after.transact(edit).expect("edit");
        new_changes(rec, &after)
    }

    #[test]
    fn anyone_but_an_observer_opens_an_amendment_in_their_own_name() {
        let rec = recommendation(1);
        let base = rec.get_heads();
        let open = |by: &'static str| {
            let base = base.clone();
            entry_edit(&rec, move |tx| amendment::add(tx, branch_id(), "Klarer", by, 1, &base))
        };
        assert_eq!(refusal_of(&rec, &open("p"), &participant()), None);
        let observer = sender("o", AccessRole::Member(MemberRole::Observer), process_id());
        assert_eq!(refusal_of(&rec, &open("o"), &observer), Some(Refusal::ReadOnly));
        assert!(matches!(refusal_of(&rec, &open("q"), &participant()), Some(Refusal::Identity("an amendment's author", _))));
        assert!(matches!(refusal_of(&rec, &open("q"), &facilitator()), Some(Refusal::Identity(..))), "facilitators too open in their own name");
        let decided = entry_edit(&rec, |tx| {
            amendment::add(tx, branch_id(), "Klarer", "p", 1, &base)?;
            tx.put(ROOT, "x", 1)?;
            let Some((_, map)) = tx.get(ROOT, "amendments")? else { return Err(amendment::AmendmentError::NotABranch) };
            let Some((_, entry)) = tx.get(&map, branch_id().to_string())? else { return Err(amendment::AmendmentError::NotABranch) };
            tx.put(&entry, "state", "accepted")?;
            Ok(())
        });
        assert_eq!(refusal_of(&rec, &decided, &participant()), Some(Refusal::FacilitatorOnly(Guarded::Decision)));
    }

    #[test]
    fn only_facilitators_decide_an_amendment_and_only_its_author_withdraws_it() {
        let rec = amended_rec(|_| Ok(()));
        let decide = |state| {
            let mut after = rec.fork().with_actor(actor(9));
            amendment::answer(&mut after, branch_id(), state, "Nein", "p", 3).expect("answered");
            new_changes(&rec, &after)
        };
        for state in [AmendmentState::Rejected, AmendmentState::ChangesRequested] {
            assert_eq!(refusal_of(&rec, &decide(state), &participant()), Some(Refusal::FacilitatorOnly(Guarded::Decision)), "{state}");
            assert_eq!(Refusal::FacilitatorOnly(Guarded::Decision).code(), RefusalCode::Decision);
        }
        let by_facilitator = {
            let mut after = rec.fork().with_actor(actor(9));
            amendment::answer(&mut after, branch_id(), AmendmentState::Rejected, "Nein", "f", 3).expect("answered");
            new_changes(&rec, &after)
        };
        assert_eq!(refusal_of(&rec, &by_facilitator, &facilitator()), None);

        let withdraw = entry_edit(&rec, |tx| amendment::withdraw(tx, branch_id()));
        assert_eq!(refusal_of(&rec, &withdraw, &participant()), None, "the author");
        let other = sender("q", AccessRole::Member(MemberRole::Participant), process_id());
        assert_eq!(refusal_of(&rec, &withdraw, &other), Some(Refusal::Amendment(AmendmentRule::Entry)));
        assert_eq!(Refusal::Amendment(AmendmentRule::Entry).code(), RefusalCode::Amendment);
        let coauthors = entry_edit(&rec, |tx| amendment::set_coauthors(tx, branch_id(), &["q".to_owned()]));
        assert_eq!(refusal_of(&rec, &coauthors, &participant()), None);
        assert_eq!(refusal_of(&rec, &coauthors, &other), Some(Refusal::Amendment(AmendmentRule::Entry)));

        // Resubmitting after changes were requested is the author's; nothing comes back from withdrawn.
        let asked = amended_rec(|tx| {
            let Some((_, map)) = tx.get(ROOT, "amendments")? else { return Err(amendment::AmendmentError::NotABranch) };
            let Some((_, entry)) = tx.get(&map, branch_id().to_string())? else { return Err(amendment::AmendmentError::NotABranch) };
            tx.put(&entry, "state", "changes-requested")?;
            Ok(())
        });
        let resubmit = entry_edit(&asked, |tx| amendment::resubmit(tx, branch_id()));
        assert_eq!(refusal_of(&asked, &resubmit, &participant()), None);
        let withdrawn = amended_rec(|tx| amendment::withdraw(tx, branch_id()));
        let back = entry_edit(&withdrawn, |tx| {
            let Some((_, map)) = tx.get(ROOT, "amendments")? else { return Err(amendment::AmendmentError::NotABranch) };
            let Some((_, entry)) = tx.get(&map, branch_id().to_string())? else { return Err(amendment::AmendmentError::NotABranch) };
            tx.put(&entry, "state", "open")?;
            Ok(())
        });
        assert_eq!(refusal_of(&withdrawn, &back, &participant()), Some(Refusal::Amendment(AmendmentRule::Entry)));
    }

    #[test]
    fn an_amendment_is_endorsed_only_for_ones_own_organisation() {
        let rec = amended_rec(|_| Ok(()));
        let endorse = |org: &'static str, by: &'static str| {
            entry_edit(&rec, move |tx| {
                let e = schema::Endorsement { stance: schema::Stance::Support, note: String::new(), by: by.into(), at: 4 };
                amendment::endorse(tx, branch_id(), org, &e)
            })
        };
        let other = sender("q", AccessRole::Member(MemberRole::Participant), process_id());
        assert_eq!(refusal_of(&rec, &endorse("q org", "q"), &other), None);
        assert!(matches!(refusal_of(&rec, &endorse("p org", "q"), &other), Some(Refusal::Identity("an amendment's endorsement", _))));
        assert!(matches!(refusal_of(&rec, &endorse("q org", "p"), &other), Some(Refusal::Identity(..))));
        assert!(matches!(refusal_of(&rec, &endorse("p org", "p"), &facilitator()), Some(Refusal::Identity(..))));
    }

    /// Who owns which actor in the branch tests: 1 wrote the recommendation
    /// (`a`), 7 is `p`'s, 8 is `c`'s, 9 is `q`'s.
    fn owners(actor_id: &ActorId) -> Option<String> {
        [(1, "a"), (7, "p"), (8, "c"), (9, "q")].into_iter().find(|(n, _)| actor(*n) == *actor_id).map(|(_, who)| who.to_owned())
    }

    fn branch_refusal(doc: &Automerge, changes: &[Change], who: &Sender, rec: Option<&Automerge>) -> Result<Admitted, Refusal> {
        let amended = |id: &DocumentId| (*id == rec_id()).then(|| rec.cloned()).flatten();
        admit_amendable(branch_id(), doc, changes, who, &owners, &Policy::default, &amended).map_err(|r| r.reason)
    }

    #[test]
    fn a_new_branch_carries_only_the_recommendations_history_and_text_edits() {
        let rec = amended_rec(|_| Ok(()));
        let mut branch = amendment::fork(&rec, rec_id(), actor(7)).expect("fork");
        branch.transact::<_, _, SchemaError>(|tx| schema::set_rich_text(tx, "recommendation", crate::richtext::to_spans("Eins zwei vier."))).expect("edit");
        let all = new_changes(&Automerge::new(), &branch);
        let empty = Automerge::new();
        let admitted = branch_refusal(&empty, &all, &participant(), Some(&rec)).expect("a participant opens a branch");
        assert_eq!(admitted.creates_in, Some(process_id()), "read by the recommendation's process");
        assert!(admitted.changes.iter().any(|c| c.author == "a" && c.merged_by.is_none()), "the recommendation's changes keep their author");
        let observer = sender("o", AccessRole::Member(MemberRole::Observer), process_id());
        assert_eq!(branch_refusal(&empty, &all, &observer, Some(&rec)).err(), Some(Refusal::ReadOnly));
        let elsewhere = sender("p", AccessRole::Member(MemberRole::Participant), DocumentId::from_random([9; 16]));
        assert_eq!(branch_refusal(&empty, &all, &elsewhere, Some(&rec)).err(), Some(Refusal::OutsideProcess));
        assert_eq!(branch_refusal(&empty, &all, &participant(), None).err(), Some(Refusal::Amendment(AmendmentRule::UnknownRecommendation)));

        // Someone else's change that the recommendation does not hold.
        let mut foreign = branch.fork().with_actor(actor(9));
        foreign.transact::<_, _, SchemaError>(|tx| schema::set_title(tx, "Anders")).expect("q");
        let all = new_changes(&Automerge::new(), &foreign);
        assert!(matches!(branch_refusal(&empty, &all, &participant(), Some(&rec)), Err(Refusal::ForeignActor { .. })));

        // More than text.
        let mut status = branch.fork();
        status.transact::<_, _, SchemaError>(|tx| schema::change_status(tx, Status::Discussion, "p", 3, "").map(|_| ())).expect("status");
        let all = new_changes(&Automerge::new(), &status);
        assert_eq!(branch_refusal(&empty, &all, &participant(), Some(&rec)).err(), Some(Refusal::Amendment(AmendmentRule::OnlyText)));
    }

    #[test]
    fn a_branch_is_written_by_its_authors_and_facilitators_in_its_text_while_open() {
        let rec = amended_rec(|_| Ok(()));
        let branch = amendment::fork(&rec, rec_id(), actor(7)).expect("fork");
        let typed = |by: u8| {
            let mut after = branch.fork().with_actor(actor(by));
            after.transact::<_, _, SchemaError>(|tx| schema::set_title(tx, "Neuer Titel")).expect("typed");
            new_changes(&branch, &after)
        };
        let as_member = |p: &str| sender(p, AccessRole::Member(MemberRole::Participant), process_id());
        assert!(branch_refusal(&branch, &typed(7), &as_member("p"), Some(&rec)).is_ok(), "the author");
        assert!(branch_refusal(&branch, &typed(8), &as_member("c"), Some(&rec)).is_ok(), "a coauthor");
        assert_eq!(branch_refusal(&branch, &typed(9), &as_member("q"), Some(&rec)).err(), Some(Refusal::Amendment(AmendmentRule::NotAnAuthor)));
        assert!(branch_refusal(&branch, &typed(5), &facilitator(), Some(&rec)).is_ok(), "a facilitator");
        assert_eq!(Refusal::Amendment(AmendmentRule::NotAnAuthor).code(), RefusalCode::Amendment);

        let mut comment = branch.fork().with_actor(actor(7));
        comment.transact(|tx| schema::add_comment(tx, "c1", "title", "T", "Warum?", "p", 1).map(|_| ())).expect("comment");
        let comment = new_changes(&branch, &comment);
        assert_eq!(branch_refusal(&branch, &comment, &as_member("p"), Some(&rec)).err(), Some(Refusal::Amendment(AmendmentRule::OnlyText)));
        assert_eq!(branch_refusal(&branch, &comment, &facilitator(), Some(&rec)).err(), Some(Refusal::Amendment(AmendmentRule::OnlyText)));

        let decided = amended_rec(|tx| amendment::withdraw(tx, branch_id()));
        assert_eq!(branch_refusal(&branch, &typed(7), &as_member("p"), Some(&decided)).err(), Some(Refusal::Amendment(AmendmentRule::Closed)));

        // Before its entry reaches the server, the branch is its mark's maker's.
        let bare = recommendation(1);
        assert!(branch_refusal(&branch, &typed(7), &as_member("p"), Some(&bare)).is_ok());
        assert_eq!(branch_refusal(&branch, &typed(9), &as_member("q"), Some(&bare)).err(), Some(Refusal::Amendment(AmendmentRule::NotAnAuthor)));
    }

    #[test]
    fn a_participant_cannot_turn_a_recommendation_into_a_branch() {
        let rec = recommendation(1);
        let mut after = rec.fork().with_actor(actor(7));
        after.transact(|tx| amendment::mark_branch(tx, rec_id(), &[])).expect("mark");
        let changes = new_changes(&rec, &after);
        assert_eq!(refusal_of(&rec, &changes, &participant()), Some(Refusal::FacilitatorOnly(Guarded::Kind)));
    }
}

