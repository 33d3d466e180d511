//! `konsens draft`: local drafts, forked from a recommendation, edited
//! offline, reviewed, and merged or proposed as an amendment.

use std::io::{self, Write};
use std::time::Duration;

use anyhow::Result;
use clap::Subcommand;
use konsens_client::ClientError;
use konsens_client::workspace::{ConflictView, DraftDiff, DraftInfo, FieldDiff};
use serde::Serialize;

use crate::Context;
use crate::output::{Line, Render};
use crate::values::doc_ref;

#[derive(Debug, Subcommand)]
pub enum DraftCommand {
    /// Fork a recommendation into a local draft.
    Fork {
        /// The recommendation to fork: its URL (`automerge:…`) or bare id.
        rec: String,
        /// A name for the draft (used as `draft:NAME` by the other commands).
        #[arg(long)]
        name: String,
    },
    /// List drafts.
    List,
    /// What the draft changes against the current upstream.
    Diff {
        /// The draft's name (from `draft list`).
        name: String,
    },
    /// Merge the draft into its upstream (and sync when a server is set).
    Merge {
        /// The draft's name (from `draft list`).
        name: String,
    },
    /// Publish the draft as an amendment of its recommendation, for the
    /// facilitators to decide on (and sync when a server is set). The draft
    /// becomes the amendment's branch, edited by its URL.
    Propose {
        /// The draft's name (from `draft list`).
        name: String,
        /// A short description of what the amendment wants.
        #[arg(long)]
        title: String,
    },
}

/// How long a merge waits for the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const ACK_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn run(command: DraftCommand, cx: &Context) -> Result<()> {
    let ws = &cx.ws;
    match command {
        DraftCommand::Fork { rec, name } => {
            ws.fork_draft(&doc_ref(&rec)?, &name).await?;
            let text = format!("draft:{name}");
            cx.out.show(&Line::new(Forked { draft: name }, text))
        }
        DraftCommand::List => cx.out.show(&ws.drafts().await?),
        DraftCommand::Diff { name } => cx.out.show(&ws.diff_draft(&name).await?),
        DraftCommand::Merge { name } => {
            if let Some(url) = &cx.server {
                ws.connect(url);
            }
            let (upstream, conflicts) = ws.merge_draft(&name).await?;
            let synced = if cx.server.is_some() {
                ws.wait_online(CONNECT_TIMEOUT).await?;
                tokio::time::timeout(ACK_TIMEOUT, ws.repo().wait_synced(upstream)).await.map_err(|_| {
                    ClientError::TimedOut(format!("the server did not acknowledge the merge within {} s", ACK_TIMEOUT.as_secs()))
                })??;
                true
            } else {
                false
            };
            cx.out.show(&Merged { merged_into: upstream.url(), synced, conflicts, name })
        }
        DraftCommand::Propose { name, title } => {
            if let Some(url) = &cx.server {
                ws.connect(url);
            }
            let (rec, branch) = ws.propose_draft(&name, &title).await?;
            let synced = if cx.server.is_some() {
                ws.wait_online(CONNECT_TIMEOUT).await?;
                // The branch first: the server judges it against the recommendation.
                for id in [branch, rec] {
                    tokio::time::timeout(ACK_TIMEOUT, ws.repo().wait_synced(id)).await.map_err(|_| {
                        ClientError::TimedOut(format!("the server did not acknowledge the amendment within {} s", ACK_TIMEOUT.as_secs()))
                    })??;
                }
                true
            } else {
                false
            };
            let text = format!("amendment {} of {}{}", branch.url(), rec.url(), if synced { "" } else { " (locally; run `konsens sync`)" });
            cx.out.show(&Line::new(Proposed { amendment: branch.url(), recommendation: rec.url(), synced }, text))
        }
    }
}

#[derive(Debug, Serialize)]
struct Proposed {
    amendment: String,
    recommendation: String,
    synced: bool,
}

#[derive(Debug, Serialize)]
struct Forked {
    draft: String,
}

impl Render for DraftInfo {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "draft:{:<20} {}  (of {})", self.name, self.title, self.upstream)
    }
}

impl Render for DraftDiff {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        if self.draft.is_empty() {
            writeln!(out, "the draft changes nothing")?;
        }
        for FieldDiff { field, before, after, words } in &self.draft {
            match words {
                Some(words) => writeln!(out, "{field}:\n  {}", words.replace('\n', "\n  "))?,
                None => writeln!(out, "{field}: {before} → {after}")?,
            }
        }
        if self.upstream_changes > 0 {
            writeln!(out, "\nupstream has {} change(s) since the fork; merging keeps them", self.upstream_changes)?;
        }
        for c in &self.conflicts {
            writeln!(out, "conflict in {}: {}", c.field, c.values.join(" | "))?;
        }
        Ok(())
    }
}

#[derive(Debug, Serialize)]
struct Merged {
    merged_into: String,
    synced: bool,
    conflicts: Vec<ConflictView>,
    #[serde(skip)]
    name: String,
}

impl Render for Merged {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        let how = if self.synced { " and synced" } else { " (locally; run `konsens sync`)" };
        writeln!(out, "merged draft:{} into {}{how}", self.name, self.merged_into)?;
        for c in &self.conflicts {
            writeln!(
                out,
                "conflict in {}: {}  — resolve with `konsens rec set {} --field {} --value …`",
                c.field,
                c.values.join(" | "),
                self.merged_into,
                c.field
            )?;
        }
        Ok(())
    }
}
