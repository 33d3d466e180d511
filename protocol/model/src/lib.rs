//! # konsens-model
//!
//! What konsens documents mean, without IO: the schema of processes and
//! recommendations ([`schema`]), the access rules that decide which changes a
//! member may make ([`access`]), rich text as `@automerge/prosemirror` spans
//! read and written as Markdown or HTML ([`richtext`]), reports ([`report`]),
//! dossier import ([`dossier`]), setting refused changes aside ([`recovery`]),
//! consent rounds before adoption ([`consent`]), and the types of the
//! server's JSON API.
//!
//! **Architecture invariant:** no IO, and nothing about transport. This crate
//! depends on `konsens-sync` only for ids and the wire form of a refusal; the
//! sync engine never depends on it, and `store` does not build it.
//! Access decisions are made on what changes *mean* (the state they produce),
//! never on the operation shapes a well-behaved client would send.
//!
//! A participant may write the text but not adopt the recommendation:
//!
//! ```
//! use automerge::{transaction::Transactable, ActorId, Automerge, ROOT};
//! use konsens_model::access::{admit, AccessRole, Sender};
//! use konsens_model::schema::{self, MemberRole, Recommendation, SchemaError, Status};
//! use konsens_sync::DocumentId;
//!
//! let process = DocumentId::from_random([1; 16]);
//! let mut doc = Automerge::new();
//! doc.transact::<_, _, SchemaError>(|tx| {
//!     schema::init_recommendation(tx, &process.url(), "Faire Anwerbung", "Gebühren", &[])?;
//!     schema::change_status(tx, Status::Discussion, "facilitator", 1, "")
//! }).unwrap();
//! let pia = Sender {
//!     participant: "pia".into(),
//!     name: "Pia Schulz".into(),
//!     organisation: "Gewerkschaft".into(),
//!     role: AccessRole::Member(MemberRole::Participant),
//!     process: Some(process),
//! };
//! let edit = |f: &dyn Fn(&mut automerge::transaction::Transaction<'_>)| {
//!     let mut fork = doc.fork().with_actor(ActorId::from(vec![9; 16]));
//!     let mut tx = fork.transaction();
//!     f(&mut tx);
//!     tx.commit();
//!     fork.get_changes(&doc.get_heads())
//! };
//! let typing = edit(&|tx| {
//!     let text = schema::text_object(tx, "recommendation").unwrap();
//!     tx.splice_text(&text, 0, 0, "Keine Vermittlungsgebühren.").unwrap();
//! });
//! assert!(admit(process, &doc, &typing, &pia, &|_| None).is_ok());
//! let adopting = edit(&|tx| { tx.put(ROOT, "status", "adopted").unwrap(); });
//! assert!(admit(process, &doc, &adopting, &pia, &|_| None).is_err());
//! assert_eq!(Recommendation::from_doc(&doc).unwrap().status, Status::Discussion);
//! ```

pub mod access;
pub mod amendment;
pub mod api;
pub mod authorship;
pub mod consent;
pub mod diff;
pub mod dossier;
pub mod history;
mod names;
pub mod notifications;
pub mod richtext;
pub mod recovery;
pub mod report;
pub mod roster;
pub mod schema;
