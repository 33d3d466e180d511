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
//! - a new document must be a recommendation of the sender's process (only
//!   administrators create processes or documents outside any process).

use std::collections::{BTreeSet, HashMap};

use automerge::sync;
use automerge::{ActorId, Automerge, Change, ChangeHash, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use thiserror::Error;

use crate::DocumentId;
use crate::schema::{MemberRole, PROCESS_SCHEMA, RECOMMENDATION_SCHEMA};

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

/// The verified sender of a sync message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    /// Participant id (for administrators, `admin:<token id>`).
    pub participant: String,
    pub role: AccessRole,
    /// The process the sender belongs to (`None` for administrators).
    pub process: Option<DocumentId>,
}

/// Why changes were refused; sent to the peer as an `error` message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    #[error("observers cannot change documents")]
    ReadOnly,
    #[error("change {change} was made by actor {actor}, which belongs to another member; only a facilitator may relay it")]
    ForeignActor { change: String, actor: String },
    #[error("only facilitators may {0}")]
    FacilitatorOnly(&'static str),
    #[error("only administrators may create {0}")]
    AdminOnly(&'static str),
    #[error("a new document must be a recommendation of your process")]
    OutsideProcess,
    #[error("the changes cannot be read: {0}")]
    Unreadable(String),
}

/// The text of the `error` message that refuses changes to a document. The
/// protocol's `error` carries only text, so the document id leads it in a
/// fixed form that [`refused_document`] reads back.
pub fn refusal_message(document: DocumentId, reason: &str) -> String {
    format!("changes to {document} refused: {reason}")
}

/// The document an `error` message refused changes to, if it is one.
pub fn refused_document(message: &str) -> Option<DocumentId> {
    message.strip_prefix("changes to ")?.split_once(" refused: ")?.0.parse().ok()
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

/// The changes of a sync message that the document does not have yet.
pub fn incoming_changes(doc: &Automerge, message: &sync::Message) -> Result<Vec<Change>, Refusal> {
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

/// Decide on `changes` (new to `doc`, see [`incoming_changes`]) from `sender`.
/// `owner_of` tells which member an actor already belongs to.
pub fn admit(
    document: DocumentId,
    doc: &Automerge,
    changes: &[Change],
    sender: &Sender,
    owner_of: &dyn Fn(&ActorId) -> Option<String>,
) -> Result<Admitted, Refusal> {
    let mut admitted = Admitted::default();
    if changes.is_empty() {
        return Ok(admitted);
    }
    if sender.role == AccessRole::Member(MemberRole::Observer) {
        return Err(Refusal::ReadOnly);
    }
    let mut bound_here: HashMap<ActorId, String> = HashMap::new();
    for change in changes {
        let actor = change.actor_id().clone();
        let owner = owner_of(&actor).or_else(|| bound_here.get(&actor).cloned());
        let (author, merged_by) = match owner {
            None => {
                bound_here.insert(actor.clone(), sender.participant.clone());
                admitted.new_actors.push(actor.clone());
                (sender.participant.clone(), None)
            }
            Some(owner) if owner == sender.participant => (owner, None),
            Some(owner) if sender.role.is_facilitator() => (owner, Some(sender.participant.clone())),
            Some(_) => {
                return Err(Refusal::ForeignActor { change: change.hash().to_string(), actor: actor.to_hex_string() });
            }
        };
        admitted.changes.push(AdmittedChange { hash: change.hash(), actor, author, merged_by });
    }
    if !sender.role.is_facilitator() {
        check_facilitator_only(doc, changes)?;
    }
    if doc.is_empty() {
        admitted.creates_in = creation(document, changes, sender)?;
    }
    Ok(admitted)
}

/// Refuse what only facilitators may do: decide a recommendation, change membership.
fn check_facilitator_only(doc: &Automerge, changes: &[Change]) -> Result<(), Refusal> {
    // Objects of the membership list: the `members` map and every member entry in it.
    let mut membership: BTreeSet<String> = BTreeSet::new();
    if let Ok(Some((Value::Object(ObjType::Map), members))) = doc.get(ROOT, "members") {
        for key in doc.keys(&members) {
            if let Ok(Some((Value::Object(_), entry))) = doc.get(&members, key.as_str()) {
                membership.insert(entry.to_string());
            }
        }
        membership.insert(members.to_string());
    }
    let is_process = matches!(
        doc.get(ROOT, "schema"),
        Ok(Some((Value::Scalar(s), _))) if matches!(s.as_ref(), ScalarValue::Str(t) if t.as_str() == PROCESS_SCHEMA)
    );
    for change in changes {
        for op in change.decode().operations {
            let on_root = op.obj == automerge::legacy::ObjectId::Root;
            let key = match &op.key {
                automerge::legacy::Key::Map(k) => Some(k.as_str()),
                automerge::legacy::Key::Seq(_) => None,
            };
            if on_root && key == Some("status") {
                let decided = matches!(
                    op.primitive_value(),
                    Some(ScalarValue::Str(s)) if s.as_str() == "adopted" || s.as_str() == "rejected"
                );
                if decided {
                    return Err(Refusal::FacilitatorOnly("adopt or reject a recommendation"));
                }
            }
            if (on_root && key == Some("members") && is_process) || membership.contains(&op.obj.to_string()) {
                return Err(Refusal::FacilitatorOnly("change the members of a process"));
            }
        }
    }
    Ok(())
}

/// Which process a new document belongs to, if the sender may create it.
fn creation(document: DocumentId, changes: &[Change], sender: &Sender) -> Result<Option<DocumentId>, Refusal> {
    let mut scratch = Automerge::new();
    scratch
        .apply_changes(changes.iter().cloned())
        .map_err(|e| Refusal::Unreadable(e.to_string()))?;
    let text = |key: &str| match scratch.get(ROOT, key) {
        Ok(Some((Value::Scalar(s), _))) => s.as_str().map(str::to_owned),
        Ok(Some((Value::Object(ObjType::Text), id))) => scratch.text(&id).ok(),
        _ => None,
    };
    let schema = text("schema");
    let process_of_rec = text("process")
        .and_then(|url| url.parse::<crate::AutomergeUrl>().ok())
        .map(|u| u.document_id);
    match (sender.role, schema.as_deref()) {
        (AccessRole::Admin, Some(PROCESS_SCHEMA)) => Ok(Some(document)),
        (AccessRole::Admin, Some(RECOMMENDATION_SCHEMA)) => Ok(process_of_rec),
        (AccessRole::Admin, _) => Ok(None),
        (AccessRole::Member(_), Some(PROCESS_SCHEMA)) => Err(Refusal::AdminOnly("processes")),
        (AccessRole::Member(_), Some(RECOMMENDATION_SCHEMA)) if process_of_rec.is_some() && process_of_rec == sender.process => {
            Ok(process_of_rec)
        }
        (AccessRole::Member(_), _) => Err(Refusal::OutsideProcess),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{self, Member, Status};
    use automerge::transaction::Transactable;

    fn actor(n: u8) -> ActorId {
        ActorId::from(vec![n; 16])
    }

    fn sender(p: &str, role: AccessRole, process: DocumentId) -> Sender {
        Sender { participant: p.into(), role, process: Some(process) }
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
    fn refusal_messages_name_their_document() {
        let id = DocumentId::from_random([4; 16]);
        let text = refusal_message(id, "observers cannot change documents");
        assert_eq!(refused_document(&text), Some(id));
        assert_eq!(refused_document("something else"), None);
    }

    #[test]
    fn observers_and_foreign_actors_are_refused() {
        let base = Automerge::new();
        let doc = recommendation(1);
        let changes = new_changes(&base, &doc);
        let none = |_: &ActorId| None;
        let observer = sender("o", AccessRole::Member(MemberRole::Observer), process_id());
        assert_eq!(admit(DocumentId::from_random([2; 16]), &base, &changes, &observer, &none), Err(Refusal::ReadOnly));
        let participant = sender("p", AccessRole::Member(MemberRole::Participant), process_id());
        let owned_by_other = |_: &ActorId| Some("someone-else".to_owned());
        assert!(matches!(
            admit(DocumentId::from_random([2; 16]), &base, &changes, &participant, &owned_by_other),
            Err(Refusal::ForeignActor { .. })
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
        assert_eq!(admit(DocumentId::from_random([2; 16]), &base, &changes, &elsewhere, &none), Err(Refusal::OutsideProcess));
        let mut process = Automerge::new().with_actor(actor(3));
        process.transact::<_, _, schema::SchemaError>(|tx| schema::init_process(tx, "P", "")).expect("init");
        let changes = new_changes(&base, &process);
        assert_eq!(admit(process_id(), &base, &changes, &member, &none), Err(Refusal::AdminOnly("processes")));
        let admin = Sender { participant: "admin:x".into(), role: AccessRole::Admin, process: None };
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
        assert!(matches!(admit(process_id(), &before, &changes, &participant, &none), Err(Refusal::FacilitatorOnly(_))));
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
            admit(process_id(), &process, &changes, &participant, &none),
            Err(Refusal::FacilitatorOnly("change the members of a process"))
        );
    }
}
