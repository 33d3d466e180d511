//! `konsens export` and `konsens import`: the report out, a dossier in.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Args;
use konsens_model::report::ReportFormat;
use serde::Serialize;

use crate::Context;
use crate::output::{Render, Said, warn};
use crate::values::{FormatArg, KindArg, LanguageArg, doc_id};

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The process: its URL (`automerge:…`, as `process create` printed it) or its bare id.
    process: String,
    /// The report's format; pdf and docx are binary: write them with --out (or redirect stdout).
    #[arg(long, value_enum, default_value = "markdown")]
    format: FormatArg,
    /// The report's language; the process's own (German by default) if not given.
    #[arg(long, value_enum)]
    lang: Option<LanguageArg>,
    /// The final report (adopted recommendations) or an interim one (all, with status).
    #[arg(long, value_enum, default_value = "final")]
    kind: KindArg,
    /// Write the report here instead of to stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The process: its URL (`automerge:…`, as `process create` printed it) or its bare id.
    process: String,
    /// A Markdown dossier: one `##` section per recommendation.
    file: PathBuf,
    /// The workshop the recommendations belong to.
    #[arg(long)]
    workshop: String,
}

pub async fn export(args: ExportArgs, cx: &Context) -> Result<()> {
    let format: ReportFormat = args.format.into();
    let (report, missing) = cx
        .ws
        .report(doc_id(&args.process)?, args.kind.into(), args.lang.map(Into::into), konsens_client::now_millis())
        .await?;
    if !missing.is_empty() {
        warn(format_args!(
            "warning: {} recommendation(s) are not in the local store and are left out; run `konsens sync`",
            missing.len()
        ));
    }
    let bytes = konsens_publish::render(&report, format).with_context(|| format!("rendering the {format} report"))?;
    match args.out {
        Some(path) => {
            std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
            cx.out.show(&Said(format!("wrote {}", path.display())))
        }
        None => cx.out.raw(&bytes),
    }
}

pub async fn import(args: ImportArgs, cx: &Context) -> Result<()> {
    let id = doc_id(&args.process)?;
    let text = std::fs::read_to_string(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let created = cx
        .ws
        .import_dossier(id, &args.workshop, &text)
        .await
        .with_context(|| format!("importing {}", args.file.display()))?;
    let created = created.into_iter().map(|(id, title)| Imported { url: id.url(), title }).collect();
    cx.out.show(&Import { created })
}

#[derive(Debug, Serialize)]
struct Import {
    created: Vec<Imported>,
}

#[derive(Debug, Serialize)]
struct Imported {
    url: String,
    title: String,
}

impl Render for Import {
    fn text(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        for c in &self.created {
            writeln!(out, "{}  {}", c.url, c.title)?;
        }
        Ok(())
    }
}
