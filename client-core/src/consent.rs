//! Consent rounds from the command line's side: open, answer, close, show,
//! and the process setting that makes adoption wait for consent. The rules
//! and the reading are `konsens_model::consent`'s; this module checks the
//! member's role first (the server decides anyway) and supplies ids, times
//! and the verified member list.

use std::collections::{BTreeMap, BTreeSet};

use konsens_model::consent::{self, ConsentMissing};
use konsens_model::schema::{Answer, Recommendation, Round};
use konsens_sync::{AutomergeUrl, DocumentId};

use crate::error::ClientError;
use crate::workspace::{Action, DocRef, Workspace, now_millis};

/// A round as `round show` presents it.
#[derive(Debug, Clone)]
pub struct RoundView {
    pub round: Round,
    pub tally: BTreeMap<Answer, usize>,
    /// Organisations with participants that have not answered; `None`
    /// without a server to ask for the verified members.
    pub not_answered: Option<Vec<String>>,
    /// Whether the title or a text changed since the round opened.
    pub wording_changed: bool,
}

/// The rounds of a recommendation and whether it may be adopted now.
#[derive(Debug, Clone)]
pub struct Rounds {
    pub rounds: Vec<RoundView>,
    pub requires_consent: bool,
    pub may_adopt: Result<(), ConsentMissing>,
}

impl Workspace {
    /// Open a round on the recommendation's current wording.
    pub async fn open_round(&self, r: &DocRef, question: &str, deadline: i64) -> Result<String, ClientError> {
        self.allow(Action::Decide)?;
        let id = format!("r-{:x}-{:08x}", now_millis(), rand::random::<u32>());
        let (question, round_id) = (question.to_owned(), id.clone());
        self.modify_with(r, "open consent round".into(), move |tx, identity| {
            consent::open(tx, &round_id, &question, deadline, &identity.participant, now_millis())
        })
        .await?;
        Ok(id)
    }

    /// Give or change the answer of the identity's organisation in the open round.
    pub async fn answer_round(&self, r: &DocRef, answer: Answer, reason: &str) -> Result<String, ClientError> {
        let reason = reason.to_owned();
        let organisation = self.identity()?.organisation.clone();
        let org = organisation.clone();
        self.modify_with(r, format!("consent: {answer}"), move |tx, identity| {
            consent::answer(tx, &org, answer, &reason, &identity.participant, now_millis())
        })
        .await?;
        Ok(organisation)
    }

    /// Close the open round with an outcome statement.
    pub async fn close_round(&self, r: &DocRef, outcome: &str) -> Result<(), ClientError> {
        self.allow(Action::Decide)?;
        let outcome = outcome.to_owned();
        self.modify_with(r, "close consent round".into(), move |tx, identity| {
            consent::close(tx, &outcome, &identity.participant, now_millis())
        })
        .await
    }

    /// Whether adopting in `process` needs a closed round without a block.
    pub async fn set_adoption_requires_consent(&self, process: DocumentId, on: bool) -> Result<(), ClientError> {
        self.allow(Action::Decide)?;
        self.modify_process(process, format!("adoption requires consent: {on}"), move |tx, _| {
            consent::set_adoption_requires_consent(tx, on)
        })
        .await
    }

    /// The rounds of a recommendation with their tallies; the organisations
    /// not yet answered come from the server's verified members when this
    /// store has joined one (else they are unknown).
    pub async fn rounds(&self, r: &DocRef) -> Result<Rounds, ClientError> {
        let (doc, rec): (_, Recommendation) = self.recommendation(r).await?;
        let process: Option<DocumentId> = rec.process.parse::<AutomergeUrl>().ok().map(|u| u.document_id);
        let organisations: Option<BTreeSet<String>> = match (process, self.session()) {
            (Some(process), Some(_)) => {
                let members = self.members(process).await?;
                Some(consent::answering_organisations(members.iter().map(|m| (m.role, m.organisation.as_str()))))
            }
            _ => None,
        };
        let requires_consent = match process {
            Some(p) => self.process(p).await.map(|(_, p)| p.adoption_requires_consent).unwrap_or(false),
            None => false,
        };
        let mut rounds = Vec::new();
        for round in &rec.rounds {
            rounds.push(RoundView {
                tally: consent::tally(round),
                not_answered: organisations.as_ref().map(|o| consent::not_answered(round, o)),
                wording_changed: consent::wording_changed_since(&doc, round)?,
                round: round.clone(),
            });
        }
        Ok(Rounds { rounds, requires_consent, may_adopt: consent::may_adopt(&rec.rounds) })
    }
}
