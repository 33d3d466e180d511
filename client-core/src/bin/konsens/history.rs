//! `konsens history`: what people did to a document, in sessions (one
//! person, one field, one sitting: `konsens_model::history`, the grouping
//! the server and the web app use), with who did it — as the server
//! verified it once this store has joined one, else as the document itself
//! declares. `--all` lists every single change instead.

use std::io::{self, Write};

use anyhow::Result;
use clap::Args;
use konsens_client::DocRef;
use konsens_client::workspace::HistoryEntry;
use konsens_model::api::{HistorySession, VerifiedChange};

use crate::Context;
use crate::output::Render;
use crate::values::doc_ref;

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The recommendation or process: its id, `automerge:` URL, or `draft:NAME`.
    #[arg(value_name = "REC")]
    rec: String,
    /// Show the authors the document itself declares, without asking the server.
    #[arg(long)]
    local: bool,
    /// Every single change (one per keystroke when typed in the app) instead of sessions.
    #[arg(long, visible_alias = "raw")]
    all: bool,
}

pub async fn run(args: HistoryArgs, cx: &Context) -> Result<()> {
    let r = doc_ref(&args.rec)?;
    match (&r, args.local, cx.ws.session(), args.all) {
        (DocRef::Doc { id, .. }, false, Some(_), true) => cx.out.show(&cx.ws.verified_history(*id).await?),
        (DocRef::Doc { id, .. }, false, Some(_), false) => cx.out.show(&cx.ws.verified_sessions(*id).await?),
        (_, _, _, true) => cx.out.show(&cx.ws.history(&r).await?),
        (_, _, _, false) => cx.out.show(&cx.ws.local_sessions(&r).await?),
    }
}

impl Render for HistorySession {
    /// `2027-01-20 14:02–14:09  Anna Schmidt (Caritas) edited recommendation, +120 / -8 characters`
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        let who = match &self.author {
            Some(author) if self.verified => author.to_string(),
            Some(author) => format!("{author} (not verified)"),
            None => "unknown".to_owned(),
        };
        let what = match (self.field.as_str(), &self.value) {
            ("created", _) => "created the document".to_owned(),
            ("status", Some(status)) => format!("moved it to {status}"),
            ("endorsements", Some(stance)) => format!("endorsed: {stance}"),
            ("workshop", Some(workshop)) => format!("moved it to workshop {workshop}"),
            (field, _) => format!("edited {field}"),
        };
        let span = if self.end / 60_000 > self.start / 60_000 {
            format!("{}–{}", when(self.start / 1000), clock(self.end / 1000))
        } else {
            when(self.start / 1000)
        };
        let characters =
            if self.inserted + self.deleted > 0 { format!(", +{} / -{} characters", self.inserted, self.deleted) } else { String::new() };
        writeln!(out, "{span}  {who} {what}{characters}")
    }
}

/// `HH:MM` (UTC) of seconds since the epoch.
fn clock(seconds: i64) -> String {
    let rest = seconds.rem_euclid(86_400);
    format!("{:02}:{:02}", rest / 3600, (rest % 3600) / 60)
}

impl Render for VerifiedChange {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        let who = match &self.author {
            _ if !self.verified => "not verified (before access control)".to_owned(),
            Some(author) => author.to_string(),
            None => "unknown".to_owned(),
        };
        let merged = self.merged_by.as_ref().map(|p| format!(", merged by {p}")).unwrap_or_default();
        let message = self.message.as_deref().unwrap_or("(no message)");
        writeln!(out, "{}  {}  {who}{merged}: {message}", short(&self.hash), when(self.time))
    }
}

impl Render for HistoryEntry {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        let who = match (&self.name, &self.organisation) {
            (Some(n), Some(o)) => format!("{n} ({o})"),
            _ => format!("actor {}", short(&self.actor)),
        };
        writeln!(out, "{}  {}  {who}: {}", short(&self.hash), when(self.time), self.summary)
    }
}

/// The first 12 characters of a hash or actor id.
fn short(hex: &str) -> &str {
    hex.get(..12).unwrap_or(hex)
}

/// UTC `YYYY-MM-DD HH:MM` (the date as the report prints it), for seconds
/// since the epoch; 0 means the writer recorded no time.
fn when(seconds: i64) -> String {
    if seconds <= 0 {
        return "unknown time".into();
    }
    let rest = seconds.rem_euclid(86_400);
    format!("{} {:02}:{:02}", konsens_model::report::iso_date(seconds * 1000), rest / 3600, (rest % 3600) / 60)
}
