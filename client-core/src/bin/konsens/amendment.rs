//! `konsens amendment …`: a recommendation's amendments (list, show) and the
//! facilitator's decisions (accept all or chosen hunks, reject, ask for
//! changes), each with an official answer. Deciding changes the local
//! store; `konsens sync` sends it, and fetches branches this store lacks.

use std::io::{self, Write};
use std::time::Duration;

use anyhow::{Result, anyhow};
use clap::{Args, Subcommand};
use konsens_model::amendment::{AmendmentState, Decision};
use konsens_model::api::{AmendmentView, Person};
use konsens_sync::DocumentId;
use serde::Serialize;

use crate::Context;
use crate::output::{Line, Render};
use crate::values::doc_id;

#[derive(Debug, Subcommand)]
pub enum AmendmentCommand {
    /// A recommendation's amendments: state, author, endorsements, answer.
    List(RecArgs),
    /// One amendment with its hunks (`<field>:<n>`): the text now and as accepting would leave it.
    Show(OneArgs),
    /// Set who may co-edit the amendment besides its author (its author, or facilitators).
    Coauthors(CoauthorsArgs),
    /// Accept an amendment, all of it or the hunks given (facilitators).
    Accept(AcceptArgs),
    /// Reject an amendment with an official answer (facilitators).
    Reject(AnswerArgs),
    /// Ask the amendment's authors for changes, with an official answer (facilitators).
    AskChanges(AnswerArgs),
}

#[derive(Debug, Args)]
pub struct RecArgs {
    /// The recommendation (`automerge:…` or its bare id).
    rec: String,
}

#[derive(Debug, Args)]
pub struct OneArgs {
    rec: String,
    /// The amendment: its branch's URL or id (from `amendment list`).
    id: String,
}

#[derive(Debug, Args)]
pub struct CoauthorsArgs {
    rec: String,
    id: String,
    /// Participant ids, comma-separated (empty: nobody).
    #[arg(value_delimiter = ',')]
    participants: Vec<String>,
}

#[derive(Debug, Args)]
pub struct AcceptArgs {
    rec: String,
    id: String,
    /// Only these hunks, comma-separated (`recommendation:0,title:1`); the others stay as they are.
    #[arg(long, value_delimiter = ',')]
    hunks: Option<Vec<String>>,
    /// The official answer, shown to everyone and in the report.
    #[arg(long, default_value = "")]
    answer: String,
}

#[derive(Debug, Args)]
pub struct AnswerArgs {
    rec: String,
    id: String,
    /// The official answer, shown to everyone and in the report.
    #[arg(long)]
    answer: String,
}

/// How long to wait for the server before working on the local copies.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(command: AmendmentCommand, cx: &Context) -> Result<()> {
    let ws = &cx.ws;
    // Branches this store has not seen come from the server.
    if let Some(url) = &cx.server {
        ws.connect(url);
        if let Err(error) = ws.wait_online(CONNECT_TIMEOUT).await {
            cx.out.note(format_args!("working offline: {error}"));
        }
    }
    match command {
        AmendmentCommand::List(args) => cx.out.show(&ws.amendments(doc_id(&args.rec)?).await?),
        AmendmentCommand::Show(args) => {
            let id = doc_id(&args.id)?;
            let all = ws.amendments(doc_id(&args.rec)?).await?;
            let one = all.into_iter().find(|a| a.id == id.to_string()).ok_or_else(|| anyhow!("no amendment {id} on this recommendation"))?;
            cx.out.show(&Shown(one))
        }
        AmendmentCommand::Coauthors(args) => {
            let (rec, id) = (doc_id(&args.rec)?, doc_id(&args.id)?);
            let participants: Vec<String> = args.participants.into_iter().filter(|p| !p.is_empty()).collect();
            ws.set_amendment_coauthors(rec, id, participants.clone()).await?;
            let text = format!("coauthors: {}", if participants.is_empty() { "none".to_owned() } else { participants.join(", ") });
            cx.out.show(&Line::new(Coauthors { amendment: id.url(), coauthors: participants }, text))
        }
        AmendmentCommand::Accept(args) => {
            let (rec, id) = (doc_id(&args.rec)?, doc_id(&args.id)?);
            let decision = ws.accept_amendment(rec, id, args.hunks, &args.answer).await?;
            cx.out.show(&Decided::new(id, decision))
        }
        AmendmentCommand::Reject(args) => decide(cx, &args, AmendmentState::Rejected).await,
        AmendmentCommand::AskChanges(args) => decide(cx, &args, AmendmentState::ChangesRequested).await,
    }
}

async fn decide(cx: &Context, args: &AnswerArgs, state: AmendmentState) -> Result<()> {
    let (rec, id) = (doc_id(&args.rec)?, doc_id(&args.id)?);
    let decision = cx.ws.answer_amendment(rec, id, state, &args.answer).await?;
    cx.out.show(&Decided::new(id, decision))
}

fn who(p: &Person) -> String {
    p.to_string()
}

impl Render for AmendmentView {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        let c = &self.counts;
        writeln!(out, "{}  {:<18} {}  by {}", self.url, self.state, self.title, who(&self.author))?;
        if !self.coauthors.is_empty() {
            writeln!(out, "  with {}", self.coauthors.iter().map(who).collect::<Vec<_>>().join(", "))?;
        }
        writeln!(out, "  endorsements: {} support, {} concerns, {} object; {} hunk(s)", c.support, c.concerns, c.object, self.hunks.len())?;
        if let Some(d) = &self.decision {
            writeln!(out, "  {} by {}: {}", d.state, who(&d.by), if d.answer.is_empty() { "(no answer)" } else { &d.answer })?;
        }
        Ok(())
    }
}

/// One amendment with its hunks.
#[derive(Debug, Serialize)]
#[serde(transparent)]
struct Shown(AmendmentView);

impl Render for Shown {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        self.0.text(out)?;
        for h in &self.0.hunks {
            writeln!(out, "{}:\n  - {}\n  + {}", h.id, h.before.replace('\n', "¶"), h.after.replace('\n', "¶"))?;
        }
        Ok(())
    }
}

#[derive(Debug, Serialize)]
struct Coauthors {
    amendment: String,
    coauthors: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Decided {
    amendment: String,
    state: AmendmentState,
    answer: String,
    accepted: Vec<String>,
    rejected: Vec<String>,
}

impl Decided {
    fn new(id: DocumentId, d: Decision) -> Self {
        Decided {
            amendment: id.url(),
            state: d.state,
            answer: d.answer.0,
            accepted: d.accepted.into_iter().map(|h| h.0).collect(),
            rejected: d.rejected.into_iter().map(|h| h.0).collect(),
        }
    }
}

impl Render for Decided {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "{}: {} (run `konsens sync` to send it)", self.amendment, self.state)?;
        if !self.rejected.is_empty() {
            writeln!(out, "accepted {}; left out {}", self.accepted.join(", "), self.rejected.join(", "))?;
        }
        Ok(())
    }
}
