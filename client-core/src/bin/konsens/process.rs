//! `konsens process`: create and show processes.

use std::io::{self, Write};

use anyhow::Result;
use clap::Subcommand;
use konsens_model::schema::{MemberRole, Process, Recommendation, Status};
use konsens_sync::DocumentId;
use serde::Serialize;

use crate::Context;
use crate::output::{Line, Render};
use crate::values::{LanguageArg, doc_id};

#[derive(Debug, Subcommand)]
pub enum ProcessCommand {
    /// Create a process; prints its URL.
    Create {
        /// The process's title.
        #[arg(long)]
        title: String,
        /// What the process is about (one paragraph).
        #[arg(long, default_value = "")]
        description: String,
        /// The language the process works and publishes in: its reports' default.
        #[arg(long, value_enum, default_value = "de")]
        lang: LanguageArg,
    },
    /// Show a process: workshops, members, recommendations.
    Show {
        /// The process: its URL (`automerge:…`, as `process create` printed it) or its bare id.
        process: String,
    },
}

/// `{"url": …}`, printed as the URL: what `create` commands answer.
#[derive(Debug, Serialize)]
pub struct Created {
    pub url: String,
}

impl Created {
    pub fn line(id: DocumentId) -> Line<Created> {
        Line::new(Created { url: id.url() }, id.url())
    }
}

pub async fn run(command: ProcessCommand, cx: &Context) -> Result<()> {
    match command {
        ProcessCommand::Create { title, description, lang } => {
            let id = cx.ws.create_process(&title, &description).await?;
            cx.ws.set_process_language(id, konsens_model::report::Language::from(lang).as_str()).await?;
            cx.out.show(&Created::line(id))
        }
        ProcessCommand::Show { process } => {
            let id = doc_id(&process)?;
            let (_, model) = cx.ws.process(id).await?;
            let (recs, missing) = cx.ws.recommendations(id, None).await?;
            cx.out.show(&ProcessShown::new(&model, &recs, missing))
        }
    }
}

/// `process show`.
#[derive(Debug, Serialize)]
struct ProcessShown {
    title: String,
    description: String,
    workshops: Vec<WorkshopShown>,
    members: Vec<MemberShown>,
    /// Recommendations not in the local store.
    not_local: Vec<String>,
}

#[derive(Debug, Serialize)]
struct WorkshopShown {
    id: String,
    title: String,
    theme: String,
    sectors: Vec<String>,
    date: Option<String>,
    recommendations: Vec<RecLine>,
}

#[derive(Debug, Serialize)]
struct RecLine {
    url: String,
    title: String,
    status: Status,
}

#[derive(Debug, Serialize)]
struct MemberShown {
    id: String,
    name: String,
    organisation: String,
    role: MemberRole,
}

impl ProcessShown {
    fn new(model: &Process, recs: &[(DocumentId, Recommendation)], not_local: Vec<String>) -> Self {
        let workshops = model
            .workshops
            .iter()
            .map(|w| WorkshopShown {
                id: w.id.clone(),
                title: w.title.clone(),
                theme: w.theme.clone(),
                sectors: w.sectors.clone(),
                date: w.date.clone(),
                recommendations: recs
                    .iter()
                    .filter(|(_, r)| r.workshop == w.id)
                    .map(|(id, r)| RecLine { url: id.url(), title: r.title.0.clone(), status: r.status })
                    .collect(),
            })
            .collect();
        let members = model
            .members
            .iter()
            .map(|(id, m)| MemberShown { id: id.clone(), name: m.name.clone(), organisation: m.organisation.clone(), role: m.role })
            .collect();
        Self { title: model.title.0.clone(), description: model.description.0.clone(), workshops, members, not_local }
    }
}

impl Render for ProcessShown {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "{}", self.title)?;
        if !self.description.is_empty() {
            writeln!(out, "{}", self.description)?;
        }
        for w in &self.workshops {
            writeln!(out, "\n[{}] {}  {}  {}", w.id, w.title, w.sectors.join(", "), w.date.clone().unwrap_or_default())?;
            for r in &w.recommendations {
                writeln!(out, "  {:<11} {}  {}", r.status.as_str(), r.title, r.url)?;
            }
        }
        if !self.not_local.is_empty() {
            writeln!(out, "\n{} recommendation(s) not in the local store; run `konsens sync`", self.not_local.len())?;
        }
        Ok(())
    }
}
