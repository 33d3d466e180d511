//! A document's history as people read it: *sessions*, not changes.
//!
//! Typing makes one Automerge change per keystroke, so a short
//! recommendation has hundreds. A session is what one person did to one
//! field in one sitting: their changes to that field with less than
//! [`SESSION_GAP_MS`] between one and the next, however others' changes
//! interleave ("Anna Schmidt (Caritas) edited Recommendation, 14:02–14:09,
//! +120 / −8 characters").
//!
//! [`change_facts`] reads what each change did from its operations (which
//! field, how many characters in and out, the status or stance it set);
//! [`sessions`] groups them. Both are pure; whoever has the verified
//! authors (the server, from its provenance records) says who made each
//! change. The server's `GET /api/docs/{id}/sessions`, the web app and
//! `konsens history` all show this one grouping.

use std::collections::{BTreeSet, HashMap};

use automerge::legacy::{Key, ObjectId, OpType};
use automerge::{ActorId, Automerge, Change, ObjType, ROOT, ReadDoc, ScalarValue, Value};

/// Two changes by the same person to the same field less than this apart
/// (five minutes, in milliseconds) belong to one session.
pub const SESSION_GAP_MS: i64 = 5 * 60 * 1000;

/// The field a session is about when a change touches several: the first of
/// these it touches. `created` is the change that made the document.
const FIELD_ORDER: [&str; 14] = [
    "created",
    "status",
    "title",
    "problem",
    "recommendation",
    "rationale",
    "description",
    "endorsements",
    "comments",
    "addressees",
    "sectors",
    "workshop",
    "workshops",
    "recommendations",
];

/// What one change did, read from its operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeFacts {
    /// Hex change hash.
    pub hash: String,
    /// Hex hashes of the changes it depends on (the version before it).
    pub deps: Vec<String>,
    /// Hex actor id.
    pub actor: String,
    /// Milliseconds since the epoch, as the writer recorded it (0: none).
    pub time: i64,
    /// The field it is about (see [`FIELD_ORDER`]); `other` when none is known.
    pub field: String,
    /// Characters inserted into and deleted from text.
    pub inserted: u64,
    pub deleted: u64,
    /// The status or stance it set, or the workshop it moved to.
    pub value: Option<String>,
}

/// The top-level field of every object, learnt from the operations that
/// made them (changes come in causal order, so an object is made before it
/// is used). Automerge's own `parents` cannot be asked about objects deleted
/// since (a paragraph that was removed), which history is full of.
#[derive(Default)]
struct Fields {
    known: HashMap<(u64, ActorId), Option<String>>,
}

impl Fields {
    fn of(&self, counter: u64, actor: &ActorId) -> Option<String> {
        self.known.get(&(counter, actor.clone())).cloned().flatten()
    }
}

/// What each change of `doc` did, in causal order.
pub fn change_facts(doc: &Automerge) -> Vec<ChangeFacts> {
    let mut fields = Fields::default();
    doc.get_changes(&[]).iter().map(|change| facts(change, &mut fields)).collect()
}

fn facts(change: &Change, fields: &mut Fields) -> ChangeFacts {
    let mut touched = BTreeSet::new();
    let (mut inserted, mut deleted, mut value) = (0u64, 0u64, None);
    let start = change.start_op().get();
    for (index, op) in change.decode().operations.into_iter().enumerate() {
        let field = match &op.obj {
            ObjectId::Root => match &op.key {
                Key::Map(key) => Some(key.to_string()),
                Key::Seq(_) => None,
            },
            ObjectId::Id(automerge::legacy::OpId(counter, actor)) => fields.of(*counter, actor),
        };
        if let OpType::Make(_) = op.action {
            fields.known.insert((start + index as u64, change.actor_id().clone()), field.clone());
        }
        let Some(field) = field else { continue };
        if field == "authors" {
            continue;
        }
        let in_text = matches!(op.key, Key::Seq(_));
        match (&op.action, &op.key) {
            (OpType::Put(ScalarValue::Str(s)), _) if in_text && op.insert => inserted += s.chars().count() as u64,
            (OpType::Delete, _) if in_text => deleted += 1,
            (OpType::Put(ScalarValue::Str(s)), Key::Map(key)) if matches!(key.as_str(), "status" | "stance" | "workshop") => {
                value = Some(s.to_string());
            }
            _ => {}
        }
        touched.insert(if field == "schema" { "created".to_owned() } else { field });
    }
    let field = FIELD_ORDER
        .iter()
        .find(|f| touched.contains(**f))
        .map(|f| (*f).to_owned())
        .or_else(|| touched.into_iter().next())
        .unwrap_or_else(|| "other".to_owned());
    ChangeFacts {
        hash: change.hash().to_string(),
        deps: change.deps().iter().map(ToString::to_string).collect(),
        actor: change.actor_id().to_hex_string(),
        time: change.timestamp().max(0) * 1000,
        field,
        inserted,
        deleted,
        value,
    }
}

/// One person's work on one field in one sitting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session<A> {
    /// Who made the changes (`None`: nobody known).
    pub author: Option<A>,
    pub field: String,
    /// Milliseconds since the epoch: the first and the last change.
    pub start: i64,
    pub end: i64,
    pub inserted: u64,
    pub deleted: u64,
    /// The last status, stance or workshop set in the session.
    pub value: Option<String>,
    /// Hex hashes of the session's changes, in causal order.
    pub changes: Vec<String>,
    /// The version before the session (its first change's dependencies).
    pub before: Vec<String>,
}

impl<A> Session<A> {
    /// The API's form, with the author as a person.
    pub fn into_api(self, author: Option<crate::api::Person>, verified: bool) -> crate::api::HistorySession {
        crate::api::HistorySession {
            author,
            verified,
            field: self.field,
            start: self.start,
            end: self.end,
            inserted: self.inserted,
            deleted: self.deleted,
            value: self.value,
            changes: self.changes.len(),
            last: self.changes.last().cloned().unwrap_or_default(),
            before: self.before,
        }
    }
}

/// The sessions of a document with the authors it declares (none verified):
/// what a client shows without a server.
pub fn declared_sessions(doc: &Automerge) -> Vec<crate::api::HistorySession> {
    let declared = declared_authors(doc);
    sessions(&change_facts(doc), |f| declared.get(&f.actor).cloned())
        .into_iter()
        .map(|s| {
            let author = s.author.clone();
            s.into_api(author, false)
        })
        .collect()
}

/// Group changes (in causal order, each with its author and the time to go
/// by) into sessions, oldest first. A change joins the latest session of the
/// same author and field if it came less than [`SESSION_GAP_MS`] after that
/// session's last change; decisions (a status or stance set) and the change
/// that created the document always stand alone, so they are never hidden
/// inside a stretch of typing.
pub fn sessions<A: Clone + PartialEq>(facts: &[ChangeFacts], author: impl Fn(&ChangeFacts) -> Option<A>) -> Vec<Session<A>> {
    let mut out: Vec<Session<A>> = Vec::new();
    // Changes that name nothing and had no session of their author to join
    // yet (the empty change a new document starts with): they join the
    // author's next one, or stand alone at the end.
    let mut waiting: Vec<(Option<A>, &ChangeFacts)> = Vec::new();
    let near = |s: &Session<A>, time: i64| time - s.end < SESSION_GAP_MS && time >= s.end - SESSION_GAP_MS;
    for fact in facts {
        let who = author(fact);
        let alone = fact.field == "created" || fact.value.is_some();
        // A change that touched nothing a reader would name (only objects
        // deleted since, or nothing at all) joins whatever its author did then.
        let unnamed = fact.field == "other" && fact.inserted == 0 && fact.deleted == 0;
        let open = (!alone)
            .then(|| out.iter_mut().rev().find(|s| s.author == who && (unnamed || (s.field == fact.field && s.value.is_none()))))
            .flatten()
            .filter(|s| near(s, fact.time));
        match open {
            Some(session) => add(session, fact),
            None if unnamed => waiting.push((who, fact)),
            None => {
                let mut session = Session {
                    author: who.clone(),
                    field: fact.field.clone(),
                    start: fact.time,
                    end: fact.time,
                    inserted: 0,
                    deleted: 0,
                    value: fact.value.clone(),
                    changes: Vec::new(),
                    before: fact.deps.clone(),
                };
                let (earlier, rest): (Vec<_>, Vec<_>) =
                    waiting.drain(..).partition(|(w, f)| *w == who && fact.time - f.time < SESSION_GAP_MS);
                waiting = rest;
                if let Some((_, first)) = earlier.first() {
                    session.start = first.time;
                    session.before = first.deps.clone();
                }
                for (_, f) in earlier {
                    session.changes.push(f.hash.clone());
                }
                add(&mut session, fact);
                session.start = session.start.min(fact.time);
                out.push(session);
            }
        }
    }
    for (who, fact) in waiting {
        let mut session = Session {
            author: who,
            field: fact.field.clone(),
            start: fact.time,
            end: fact.time,
            inserted: 0,
            deleted: 0,
            value: None,
            changes: Vec::new(),
            before: fact.deps.clone(),
        };
        add(&mut session, fact);
        out.push(session);
    }
    out.sort_by_key(|s| s.start);
    out
}

fn add<A>(session: &mut Session<A>, fact: &ChangeFacts) {
    session.end = session.end.max(fact.time);
    session.inserted += fact.inserted;
    session.deleted += fact.deleted;
    session.changes.push(fact.hash.clone());
}

/// Who each actor declares itself to be in the document's `authors` map
/// (written by clients of an `--open` server; not verified by anyone).
pub fn declared_authors(doc: &Automerge) -> HashMap<String, crate::api::Person> {
    let mut out = HashMap::new();
    let Ok(Some((Value::Object(ObjType::Map), authors))) = doc.get(ROOT, "authors") else {
        return out;
    };
    let text = |obj: &automerge::ObjId, key: &str| match doc.get(obj, key).ok().flatten() {
        Some((Value::Scalar(s), _)) => s.as_str().map(str::to_owned),
        Some((Value::Object(ObjType::Text), id)) => doc.text(&id).ok(),
        _ => None,
    };
    for actor in doc.keys(&authors) {
        if let Ok(Some((Value::Object(ObjType::Map), entry))) = doc.get(&authors, actor.as_str())
            && let Some(participant) = text(&entry, "participant")
        {
            let person = crate::api::Person { participant, name: text(&entry, "name"), organisation: text(&entry, "organisation") };
            out.insert(actor, person);
        }
    }
    out
}

/// The text of a field as the history compares it: rich text with its
/// paragraphs as blank lines, plain text as it is.
pub fn field_text(doc: &Automerge, field: &str) -> String {
    match doc.get(ROOT, field) {
        Ok(Some((Value::Object(ObjType::Text), id))) => match doc.spans(&id) {
            Ok(spans) => crate::schema::RichText(spans.collect()).plain(),
            Err(_) => doc.text(&id).unwrap_or_default(),
        },
        Ok(Some((Value::Scalar(s), _))) => s.as_str().map(str::to_owned).unwrap_or_default(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{self, Status};
    use automerge::transaction::{CommitOptions, Transactable};

    fn actor(n: u8) -> ActorId {
        ActorId::from(vec![n; 16])
    }

    /// One change as `who` at `seconds`.
    fn edit(doc: &mut Automerge, who: u8, seconds: i64, f: impl FnOnce(&mut automerge::transaction::Transaction<'_>)) {
        doc.set_actor(actor(who));
        let mut tx = doc.transaction();
        f(&mut tx);
        tx.commit_with(CommitOptions::default().with_time(seconds));
    }

    fn type_into(doc: &mut Automerge, who: u8, field: &str, at: i64, text: &str) {
        for (i, c) in text.chars().enumerate() {
            edit(doc, who, at + i as i64, |tx| {
                let obj = schema::text_object(tx, field).expect("field");
                let len = tx.length(&obj);
                tx.splice_text(&obj, len, 0, &c.to_string()).expect("type");
            });
        }
    }

    fn new_recommendation() -> Automerge {
        let mut doc = Automerge::new();
        edit(&mut doc, 1, 1_000, |tx| schema::init_recommendation(tx, "automerge:x", "w", "T", &[]).expect("init"));
        doc
    }

    fn by_actor(f: &ChangeFacts) -> Option<String> {
        Some(f.actor[..2].to_owned())
    }

    #[test]
    fn typing_a_sentence_is_one_session_with_its_character_counts() {
        let mut doc = new_recommendation();
        type_into(&mut doc, 2, "recommendation", 2_000, "Keine Gebühren für Beschäftigte.");
        edit(&mut doc, 2, 2_100, |tx| {
            let obj = schema::text_object(tx, "recommendation").expect("field");
            tx.splice_text(&obj, 0, 6, "").expect("delete");
        });
        let facts = change_facts(&doc);
        assert_eq!(facts.len(), 1 + 32 + 1);
        let sessions = sessions(&facts, by_actor);
        assert_eq!(sessions.len(), 2, "{sessions:#?}");
        assert_eq!(sessions[0].field, "created");
        let typed = &sessions[1];
        assert_eq!((typed.field.as_str(), typed.author.as_deref()), ("recommendation", Some("02")));
        assert_eq!((typed.inserted, typed.deleted, typed.changes.len()), (32, 6, 33));
        assert_eq!((typed.start, typed.end), (2_000_000, 2_100_000));
        assert_eq!(typed.before, vec![facts[0].hash.clone()]);
    }

    #[test]
    fn a_pause_another_field_or_another_person_starts_a_new_session() {
        let mut doc = new_recommendation();
        type_into(&mut doc, 2, "problem", 2_000, "ab");
        // Someone else types in between: Anna's session goes on.
        type_into(&mut doc, 3, "problem", 2_010, "x");
        type_into(&mut doc, 2, "problem", 2_020, "cd");
        // Anna in another field, then back after a long pause.
        type_into(&mut doc, 2, "rationale", 2_030, "r");
        type_into(&mut doc, 2, "problem", 2_030 + 5 * 60 + 1, "e");
        let summary: Vec<(String, Option<String>, u64)> =
            sessions(&change_facts(&doc), by_actor).into_iter().skip(1).map(|s| (s.field, s.author, s.inserted)).collect();
        assert_eq!(
            summary,
            vec![
                ("problem".into(), Some("02".into()), 4),
                ("problem".into(), Some("03".into()), 1),
                ("rationale".into(), Some("02".into()), 1),
                ("problem".into(), Some("02".into()), 1),
            ]
        );
    }

    #[test]
    fn a_status_change_stands_alone_and_names_the_new_status() {
        let mut doc = new_recommendation();
        edit(&mut doc, 2, 2_000, |tx| {
            schema::change_status(tx, Status::Discussion, "p", 2_000_000, "").expect("move");
        });
        edit(&mut doc, 2, 2_001, |tx| {
            schema::change_status(tx, Status::Consensus, "p", 2_001_000, "").expect("move");
        });
        let sessions = sessions(&change_facts(&doc), by_actor);
        let statuses: Vec<(&str, Option<&str>)> = sessions.iter().skip(1).map(|s| (s.field.as_str(), s.value.as_deref())).collect();
        assert_eq!(statuses, vec![("status", Some("discussion")), ("status", Some("consensus"))]);
    }

    #[test]
    fn a_change_that_names_nothing_joins_its_authors_session() {
        let mut doc = new_recommendation();
        edit(&mut doc, 1, 1_001, |tx| {
            tx.put(ROOT, "authors", "x").expect("put");
        });
        type_into(&mut doc, 2, "problem", 2_000, "ab");
        let sessions = sessions(&change_facts(&doc), by_actor);
        assert_eq!(sessions.iter().map(|s| s.changes.len()).collect::<Vec<_>>(), vec![2, 2], "{sessions:#?}");
    }

    #[test]
    fn the_empty_change_a_document_starts_with_joins_its_creation() {
        let mut doc = Automerge::new().with_actor(actor(1));
        doc.empty_commit(CommitOptions::default().with_time(999));
        edit(&mut doc, 1, 1_000, |tx| schema::init_recommendation(tx, "automerge:x", "w", "T", &[]).expect("init"));
        let facts = change_facts(&doc);
        assert_eq!(facts.len(), 2);
        let sessions = sessions(&facts, by_actor);
        assert_eq!(sessions.len(), 1, "{sessions:#?}");
        assert_eq!((sessions[0].field.as_str(), sessions[0].changes.len(), sessions[0].start), ("created", 2, 999_000));
        assert!(sessions[0].before.is_empty());
    }

    #[test]
    fn paragraphs_deleted_since_are_still_counted_in_their_field() {
        let mut doc = new_recommendation();
        edit(&mut doc, 2, 2_000, |tx| {
            schema::set_rich_text(tx, "problem", crate::richtext::to_spans("Eins.\n\nZwei.")).expect("set");
        });
        edit(&mut doc, 3, 2_010, |tx| {
            schema::set_rich_text(tx, "problem", crate::richtext::to_spans("Alles neu.")).expect("set");
        });
        // Marks on a paragraph that is gone now.
        let facts = change_facts(&doc);
        assert!(facts.iter().skip(1).all(|f| f.field == "problem"), "{facts:#?}");
        assert_eq!(facts[1].inserted, "Eins.Zwei.".len() as u64);
    }

    #[test]
    fn field_text_keeps_paragraphs_apart() {
        let mut doc = new_recommendation();
        edit(&mut doc, 2, 2_000, |tx| {
            let spans = crate::richtext::to_spans("Principle.\n\nDie Bundesregierung handelt.");
            schema::set_rich_text(tx, "problem", spans).expect("set");
        });
        assert_eq!(field_text(&doc, "problem"), "Principle.\n\nDie Bundesregierung handelt.");
    }
}
