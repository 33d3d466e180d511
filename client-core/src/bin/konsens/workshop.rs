//! `konsens workshop`: the workshops of a process.

use anyhow::Result;
use clap::Subcommand;
use serde::Serialize;

use crate::Context;
use crate::output::Line;
use crate::values::doc_id;

#[derive(Debug, Subcommand)]
pub enum WorkshopCommand {
    /// Add a workshop; prints its id.
    Add {
        /// The process: its URL (`automerge:…`, as `process create` printed it) or its bare id.
        process: String,
        /// The workshop's title.
        #[arg(long)]
        title: String,
        /// Its theme, in a line.
        #[arg(long, default_value = "")]
        theme: String,
        /// A sector it concerns, e.g. care; repeat for several.
        #[arg(long = "sector")]
        sectors: Vec<String>,
        /// The day it takes place, as YYYY-MM-DD.
        #[arg(long)]
        date: Option<String>,
    },
}

#[derive(Debug, Serialize)]
struct Added {
    workshop: String,
}

pub async fn run(command: WorkshopCommand, cx: &Context) -> Result<()> {
    match command {
        WorkshopCommand::Add { process, title, theme, sectors, date } => {
            let id = cx.ws.add_workshop(doc_id(&process)?, &title, &theme, sectors, date).await?;
            cx.out.show(&Line::new(Added { workshop: id.clone() }, id))
        }
    }
}
