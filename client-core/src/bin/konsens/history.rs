//! `konsens history`: every change of a document, with who made it — as
//! the server verified it once this store has joined one, else as the
//! document itself declares.

use std::io::{self, Write};

use anyhow::Result;
use clap::Args;
use konsens_client::DocRef;
use konsens_client::workspace::HistoryEntry;
use konsens_model::api::VerifiedChange;

use crate::Context;
use crate::output::Render;
use crate::values::doc_ref;

#[derive(Debug, Args)]
pub struct HistoryArgs {
    rec: String,
    /// Show the authors the document itself declares, without asking the server.
    #[arg(long)]
    local: bool,
}

pub async fn run(args: HistoryArgs, cx: &Context) -> Result<()> {
    let r = doc_ref(&args.rec)?;
    match (&r, args.local, cx.ws.session()) {
        (DocRef::Doc { id, .. }, false, Some(_)) => cx.out.show(&cx.ws.verified_history(*id).await?),
        _ => cx.out.show(&cx.ws.history(&r).await?),
    }
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
