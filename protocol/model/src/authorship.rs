//! Who wrote what: each character of a recommendation's title and text
//! fields belongs to the actor whose operation inserted it.
//!
//! Automerge gives every element of a text object the id of the operation
//! that inserted it (`(counter, actor)`); [`ReadDoc::list_range`] yields it
//! beside the character. Merging a fork (an amendment, an offline branch)
//! keeps those ids, so accepted text stays its author's. The actor is mapped
//! to a participant by the caller's `owner_of` (the server's actor
//! bindings), never by a name the document declares about itself.
//!
//! A run is a maximal stretch of consecutive characters with the same
//! [`Author`]. Block markers of rich text (paragraphs, list items) read as a
//! line break, owned by whoever started the block; the first block's marker
//! is left out, as the text starts there.

use automerge::{ActorId, Automerge, ObjId, ObjType, ROOT, ReadDoc, ScalarValueRef, Value, ValueRef};
use serde::Serialize;
use thiserror::Error;

use crate::schema::TEXT_FIELDS;

/// What can go wrong reading authorship.
#[derive(Debug, Error)]
pub enum AuthorshipError {
    #[error("no such field: {0} (title, problem, recommendation or rationale)")]
    UnknownField(String),
    #[error(transparent)]
    Automerge(#[from] automerge::AutomergeError),
}

/// Whom a run of text belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Author {
    /// An actor bound to this participant.
    Member { participant: String },
    /// An actor without a binding (written before access control, or on an
    /// open server): only its hex id is known.
    Unbound { actor: String },
}

/// Consecutive characters by the same author.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthorRun {
    pub text: String,
    pub author: Author,
}

/// The fields authorship is read for, in reading order.
pub fn fields() -> impl Iterator<Item = &'static str> {
    std::iter::once("title").chain(TEXT_FIELDS.iter().copied())
}

fn is_field(field: &str) -> bool {
    fields().any(|f| f == field)
}

fn author_of(id: &ObjId, owner_of: &dyn Fn(&ActorId) -> Option<String>) -> Option<Author> {
    match id {
        ObjId::Root => None,
        ObjId::Id(_, actor, _) => Some(match owner_of(actor) {
            Some(participant) => Author::Member { participant },
            None => Author::Unbound { actor: actor.to_hex_string() },
        }),
    }
}

fn push(runs: &mut Vec<AuthorRun>, text: &str, author: Author) {
    match runs.last_mut() {
        Some(last) if last.author == author => last.text.push_str(text),
        _ => runs.push(AuthorRun { text: text.to_owned(), author }),
    }
}

/// The runs of one field (`title`, `problem`, `recommendation`,
/// `rationale`); empty when the document does not have it.
pub fn field_runs(
    doc: &Automerge,
    field: &str,
    owner_of: &dyn Fn(&ActorId) -> Option<String>,
) -> Result<Vec<AuthorRun>, AuthorshipError> {
    if !is_field(field) {
        return Err(AuthorshipError::UnknownField(field.to_owned()));
    }
    let mut runs = Vec::new();
    match doc.get(ROOT, field)? {
        Some((Value::Object(ObjType::Text), text)) => {
            let mut started = false;
            for item in doc.list_range(&text, ..) {
                let piece = match &item.value {
                    ValueRef::Scalar(ScalarValueRef::Str(s)) => s.to_string(),
                    ValueRef::Scalar(_) => continue,
                    // A block marker: a line break, except before the first block.
                    ValueRef::Object(_) if !started => continue,
                    ValueRef::Object(_) => "\n".to_owned(),
                };
                started = true;
                if let Some(author) = author_of(&item.id(), owner_of) {
                    push(&mut runs, &piece, author);
                }
            }
        }
        // An older document's plain string: one run, by whoever set it.
        Some((Value::Scalar(s), id)) => {
            if let (Some(text), Some(author)) = (s.as_str(), author_of(&id, owner_of))
                && !text.is_empty()
            {
                push(&mut runs, text, author);
            }
        }
        _ => {}
    }
    Ok(runs)
}

/// The runs of every field, in reading order.
pub fn all_fields(
    doc: &Automerge,
    owner_of: &dyn Fn(&ActorId) -> Option<String>,
) -> Result<Vec<(&'static str, Vec<AuthorRun>)>, AuthorshipError> {
    fields().map(|f| Ok((f, field_runs(doc, f, owner_of)?))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{self, SchemaError};
    use automerge::transaction::Transactable;

    fn actor(n: u8) -> ActorId {
        ActorId::from([n; 16])
    }

    /// Actor 1 is Anna, 2 is Ben; 3 is not bound.
    fn owner(a: &ActorId) -> Option<String> {
        if *a == actor(1) {
            Some("anna".into())
        } else if *a == actor(2) {
            Some("ben".into())
        } else {
            None
        }
    }

    fn member(p: &str) -> Author {
        Author::Member { participant: p.into() }
    }

    fn splice(doc: &mut Automerge, field: &str, at: usize, delete: isize, text: &str) {
        doc.transact::<_, _, SchemaError>(|tx| {
            let obj = schema::text_object(tx, field)?;
            tx.splice_text(&obj, at, delete, text)?;
            Ok(())
        })
        .expect("splice");
    }

    fn summary(runs: &[AuthorRun]) -> Vec<(String, Author)> {
        runs.iter().map(|r| (r.text.clone(), r.author.clone())).collect()
    }

    fn start() -> Automerge {
        let mut doc = Automerge::new().with_actor(actor(1));
        doc.transact::<_, _, SchemaError>(|tx| schema::init_recommendation(tx, "automerge:x", "w", "Titel", &[]))
            .expect("init");
        doc
    }

    #[test]
    fn two_actors_interleaving_give_alternating_runs() {
        let mut doc = start();
        splice(&mut doc, "recommendation", 0, 0, "Keine Gebühren.");
        let mut ben = doc.fork().with_actor(actor(2));
        splice(&mut ben, "recommendation", 6, 0, "hohen ");
        doc.merge(&mut ben).expect("merge");
        splice(&mut doc, "recommendation", 21, 0, " Nie.");
        let runs = field_runs(&doc, "recommendation", &owner).expect("runs");
        assert_eq!(
            summary(&runs),
            vec![
                ("Keine ".into(), member("anna")),
                ("hohen ".into(), member("ben")),
                ("Gebühren. Nie.".into(), member("anna")),
            ]
        );
        let title = field_runs(&doc, "title", &owner).expect("title");
        assert_eq!(summary(&title), vec![("Titel".into(), member("anna"))]);
    }

    #[test]
    fn deleted_text_leaves_no_run_and_unbound_actors_are_named_by_id() {
        let mut doc = start();
        splice(&mut doc, "problem", 0, 0, "Alt und neu");
        let mut stranger = doc.fork().with_actor(actor(3));
        // Deletes "Alt " and writes its own word: the rest stays Anna's.
        splice(&mut stranger, "problem", 0, 4, "Ganz ");
        doc.merge(&mut stranger).expect("merge");
        let runs = field_runs(&doc, "problem", &owner).expect("runs");
        assert_eq!(
            summary(&runs),
            vec![("Ganz ".into(), Author::Unbound { actor: actor(3).to_hex_string() }), ("und neu".into(), member("anna"))]
        );
    }

    #[test]
    fn a_merged_fork_keeps_the_forks_actor() {
        let mut doc = start();
        splice(&mut doc, "rationale", 0, 0, "Weil es wirkt.");
        // Ben works on a fork (an amendment) that is merged back later,
        // while Anna goes on editing the original.
        let mut fork = doc.fork().with_actor(actor(2));
        splice(&mut fork, "rationale", 14, 0, " Belegt durch Studien.");
        splice(&mut doc, "rationale", 0, 0, "Kurz: ");
        doc.merge(&mut fork).expect("merge");
        let runs = field_runs(&doc, "rationale", &owner).expect("runs");
        assert_eq!(
            summary(&runs),
            vec![("Kurz: Weil es wirkt.".into(), member("anna")), (" Belegt durch Studien.".into(), member("ben"))]
        );
    }

    #[test]
    fn block_markers_read_as_line_breaks_and_unknown_fields_are_refused() {
        let mut doc = start();
        doc.transact::<_, _, SchemaError>(|tx| {
            schema::set_rich_text(tx, "recommendation", crate::richtext::to_spans("Erstens.\n\nZweitens."))
        })
        .expect("rich text");
        let runs = field_runs(&doc, "recommendation", &owner).expect("runs");
        assert_eq!(summary(&runs), vec![("Erstens.\nZweitens.".into(), member("anna"))]);
        assert!(matches!(field_runs(&doc, "status", &owner), Err(AuthorshipError::UnknownField(_))));
        assert_eq!(all_fields(&doc, &owner).expect("all").len(), 4);
    }
}
