//! Amendments from the CLI: a local draft published as an amendment
//! (`konsens draft propose`), and the facilitator's list, show, accept,
//! reject and ask-for-changes (`konsens amendment …`). Deciding is
//! client-side, as in the web app: one local change to the recommendation,
//! then sync; the server's access rules judge it like any other.
//!
//! Actors: the server binds an actor to one member, and accepting merges a
//! branch into its recommendation, so a store must never use one actor in
//! both with the same sequence numbers. A draft gets its own actor when it
//! is forked, and writes to a branch use an actor derived from the store's
//! and the branch's id (see `workspace::branch_writer`).

use std::collections::BTreeMap;

use automerge::ActorId;
use konsens_model::amendment::{self, AmendmentState, Decision};
use konsens_model::api::{AmendmentView, Person};
use konsens_model::schema::{Process, Recommendation};
use konsens_sync::DocumentId;

use crate::error::ClientError;
use crate::workspace::{Action, DocRef, Identity, Workspace, now_millis, write};

impl Workspace {
    /// Publish the local draft `name` as an amendment of its recommendation:
    /// the draft's document (already a fork with the whole history) becomes
    /// a new document with the branch mark, and the recommendation gets the
    /// entry. The draft is gone afterwards; edit the branch by its URL.
    pub async fn propose_draft(&self, name: &str, title: &str) -> Result<(DocumentId, DocumentId), ClientError> {
        self.allow(Action::Write)?;
        let identity = self.identity()?.clone();
        let draft = self.load_draft_for_amendment(name)?;
        let (upstream, base) = (draft.upstream, draft.base.clone());
        let branch = self.repo().create().await?;
        // The mark is made with the draft's own actor: it is new to the server
        // and bound to us when the branch arrives.
        let marker = Identity { actor: draft.actor.clone().unwrap_or_else(|| identity.actor.clone()), ..identity.clone() };
        let mut doc = draft.doc;
        let mark_base = base.clone();
        self.repo()
            .change(branch, move |target| -> Result<(), ClientError> {
                target.merge(&mut doc)?;
                write(target, &marker, "open amendment".into(), |tx, _| {
                    amendment::mark_branch(tx, upstream, &mark_base).map_err(amendment_schema)
                })?;
                Ok(())
            })
            .await??;
        let title = title.to_owned();
        self.repo()
            .change(upstream, move |rec| {
                write(rec, &identity, format!("amendment {title:?}"), |tx, identity| {
                    amendment::add(tx, branch, &title, &identity.participant, now_millis(), &base).map_err(amendment_schema)
                })
            })
            .await??;
        self.remove_draft(name)?;
        Ok((upstream, branch))
    }

    /// The amendments of a recommendation, with what accepting each open one
    /// would change now. Names are the server's verified members' once this
    /// store has joined one (else the process document's members).
    pub async fn amendments(&self, rec: DocumentId) -> Result<Vec<AmendmentView>, ClientError> {
        let (doc, current) = self.recommendation(&DocRef::Doc { id: rec, heads: None }).await?;
        let process = current.process.parse::<konsens_sync::AutomergeUrl>().ok().map(|u| u.document_id);
        let mut names: BTreeMap<String, (String, String)> = BTreeMap::new();
        if let Some(process) = process {
            if self.session().is_some() {
                // Offline, the list still shows; only the names are missing.
                for m in self.members(process).await.unwrap_or_default() {
                    names.insert(m.participant, (m.name, m.organisation));
                }
            } else if let Ok(p) = self.repo().find(process).await
                && let Ok(p) = Process::from_doc(&p)
            {
                names.extend(p.members.into_iter().map(|(id, m)| (id, (m.name, m.organisation))));
            }
        }
        let person = |participant: &str| match names.get(participant) {
            Some((name, organisation)) => Person { participant: participant.to_owned(), name: Some(name.clone()), organisation: Some(organisation.clone()) },
            None => Person { participant: participant.to_owned(), name: None, organisation: None },
        };
        let mut out = Vec::new();
        for (key, entry) in &current.amendments {
            let hunks = match key.parse::<DocumentId>() {
                Ok(branch) if entry.state.is_editable() => {
                    let branch_doc = self.repo().find(branch).await?;
                    amendment::hunks(&doc, &branch_doc).map_err(amendment_error)?
                }
                _ => Vec::new(),
            };
            out.push(konsens_model::api::amendment_view(key, entry, hunks, &person));
        }
        Ok(out)
    }

    /// Accept an amendment: all of it, or the hunks named (`<field>:<n>`).
    pub async fn accept_amendment(&self, rec: DocumentId, branch: DocumentId, hunks: Option<Vec<String>>, answer: &str) -> Result<Decision, ClientError> {
        self.allow(Action::DecideAmendment)?;
        let identity = self.identity()?.clone();
        self.entry(rec, branch).await?;
        let branch_doc = self.repo().find(branch).await?;
        let answer = answer.to_owned();
        self.repo()
            .change(rec, move |doc| {
                if let Ok(actor) = identity.actor.parse::<ActorId>() {
                    doc.set_actor(actor);
                }
                amendment::accept(doc, branch, &branch_doc, hunks.as_deref(), &answer, &identity.participant, now_millis())
            })
            .await?
            .map_err(amendment_error)
    }

    /// Reject an amendment, or ask its authors for changes, with an official answer.
    pub async fn answer_amendment(&self, rec: DocumentId, branch: DocumentId, state: AmendmentState, answer: &str) -> Result<Decision, ClientError> {
        self.allow(Action::DecideAmendment)?;
        let identity = self.identity()?.clone();
        self.entry(rec, branch).await?;
        let answer = answer.to_owned();
        self.repo()
            .change(rec, move |doc| {
                if let Ok(actor) = identity.actor.parse::<ActorId>() {
                    doc.set_actor(actor);
                }
                amendment::answer(doc, branch, state, &answer, &identity.participant, now_millis())
            })
            .await?
            .map_err(amendment_error)
    }

    /// Who may co-edit the branch besides its author (the author's or a facilitator's choice).
    pub async fn set_amendment_coauthors(&self, rec: DocumentId, branch: DocumentId, coauthors: Vec<String>) -> Result<(), ClientError> {
        self.entry(rec, branch).await?;
        self.modify_with(&DocRef::Doc { id: rec, heads: None }, "amendment coauthors".into(), move |tx, _| {
            amendment::set_coauthors(tx, branch, &coauthors).map_err(amendment_schema)
        })
        .await
    }

    async fn entry(&self, rec: DocumentId, branch: DocumentId) -> Result<amendment::Amendment, ClientError> {
        let (_, current): (_, Recommendation) = self.recommendation(&DocRef::Doc { id: rec, heads: None }).await?;
        current.amendments.get(&branch.to_string()).cloned().ok_or_else(|| amendment_error(amendment::AmendmentError::Unknown(branch.to_string())))
    }
}

/// Amendment errors inside a schema-typed operation.
fn amendment_schema(error: amendment::AmendmentError) -> konsens_model::schema::SchemaError {
    match error {
        amendment::AmendmentError::Schema(e) => *e,
        other => konsens_model::schema::SchemaError::Malformed { kind: "amendment", reason: other.to_string() },
    }
}

fn amendment_error(error: amendment::AmendmentError) -> ClientError {
    ClientError::Amendment(Box::new(error))
}
