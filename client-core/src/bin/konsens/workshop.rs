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
        process: String,
        #[arg(long)]
        title: String,
        #[arg(long, default_value = "")]
        theme: String,
        #[arg(long = "sector")]
        sectors: Vec<String>,
        /// YYYY-MM-DD
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
