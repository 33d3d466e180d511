//! `konsens authorship`: who wrote what in a recommendation, run by run, with
//! the members the server verified (from the op ids of the text and the
//! server's actor bindings, never from names the document declares).

use std::io::{self, Write};

use anyhow::{Result, bail};
use clap::Args;
use konsens_client::DocRef;
use konsens_model::api::FieldAuthorship;

use crate::Context;
use crate::output::Render;
use crate::values::doc_ref;

#[derive(Debug, Args)]
pub struct AuthorshipArgs {
    /// The recommendation: its id or `automerge:` URL.
    #[arg(value_name = "REC")]
    rec: String,
    /// Only this field: title, problem, recommendation or rationale.
    #[arg(long)]
    field: Option<String>,
}

pub async fn run(args: AuthorshipArgs, cx: &Context) -> Result<()> {
    let DocRef::Doc { id, .. } = doc_ref(&args.rec)? else {
        bail!("authorship is the server's: name a recommendation on it, not a draft");
    };
    if let Some(field) = &args.field
        && !konsens_model::authorship::fields().any(|f| f == field)
    {
        bail!("no such field: {field} (title, problem, recommendation or rationale)");
    }
    let api = cx.ws.api()?;
    let mut fields = tokio::task::spawn_blocking(move || api.authorship(&id.to_string())).await??;
    if let Some(field) = &args.field {
        fields.retain(|f| &f.field == field);
    }
    cx.out.show(&fields)
}

impl Render for FieldAuthorship {
    /// ```text
    /// recommendation
    ///   Anna Keller (Gewerkschaft): "Arbeitgeber tragen die Kosten"
    ///   unverified (actor 1a2b…): " der Anwerbung."
    /// ```
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "{}", self.field)?;
        if self.runs.is_empty() {
            writeln!(out, "  (empty)")?;
        }
        for run in &self.runs {
            let who = match (&run.author, run.verified) {
                (Some(author), true) => author.to_string(),
                _ => format!("unverified (actor {})", run.actor.as_deref().unwrap_or("?")),
            };
            writeln!(out, "  {who}: {:?}", run.text)?;
        }
        Ok(())
    }
}
