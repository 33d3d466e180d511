//! `konsens rec …`, `comment` and `endorse`: recommendations and what
//! members say about them.

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::{Context as _, Result, anyhow, bail};
use automerge::{Automerge, ChangeHash};
use clap::{Args, Subcommand};
use konsens_client::DocRef;
use konsens_client::workspace::{self, ConflictView};
use konsens_model::richtext::from_spans;
use konsens_model::schema::{self, Recommendation, Stance, Status};
use serde::Serialize;

use crate::Context;
use crate::output::{Line, Render, Said};
use crate::process::Created;
use crate::values::{StanceArg, StatusArg, doc_id, doc_ref};

#[derive(Debug, Subcommand)]
pub enum RecCommand {
    /// Create a recommendation; prints its URL.
    New {
        /// The process: its URL (`automerge:…`, as `process create` printed it) or its bare id.
        process: String,
        /// The workshop it comes from: its id, as `workshop add` printed it.
        #[arg(long)]
        workshop: String,
        /// The recommendation's title.
        #[arg(long)]
        title: String,
    },
    /// List a process's recommendations.
    List {
        /// The process: its URL (`automerge:…`, as `process create` printed it) or its bare id.
        process: String,
        /// Only recommendations with this status.
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
    },
    /// Show a recommendation (optionally as of earlier heads).
    Show {
        /// The recommendation: its URL (`automerge:…`, as `rec new` printed it), its bare id, or `draft:NAME`.
        rec: String,
        /// Comma-separated change hashes (from `konsens history`).
        #[arg(long)]
        at: Option<String>,
    },
    /// Set a field by a minimal diff.
    Set(SetArgs),
    /// Edit a text field as Markdown in $EDITOR.
    Edit {
        /// The recommendation: its URL (`automerge:…`, as `rec new` printed it), its bare id, or `draft:NAME`.
        rec: String,
        /// The text field: problem, recommendation or rationale.
        #[arg(long)]
        field: String,
    },
    /// Move to another status.
    Status {
        /// The recommendation: its URL (`automerge:…`, as `rec new` printed it), its bare id, or `draft:NAME`.
        rec: String,
        /// The new status (adopting, rejecting and re-opening a decided one are the facilitators').
        #[arg(value_enum)]
        status: StatusArg,
        /// Why, for the status history.
        #[arg(long, default_value = "")]
        note: String,
    },
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// The recommendation: its URL (`automerge:…`, as `rec new` printed it), its bare id, or `draft:NAME`.
    rec: String,
    /// The field: title, problem, recommendation, rationale, addressees or sectors (both comma-separated), or workshop (its id).
    #[arg(long)]
    field: String,
    /// The new value (Markdown for the text fields).
    #[arg(long, conflicts_with = "from_file", required_unless_present = "from_file")]
    value: Option<String>,
    /// Read the new value from this file instead (Markdown for the text fields).
    #[arg(long)]
    from_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CommentArgs {
    /// The recommendation: its URL (`automerge:…`, as `rec new` printed it), its bare id, or `draft:NAME`.
    rec: String,
    /// The passage the comment is about: text that occurs in problem, recommendation or rationale.
    #[arg(long)]
    quote: String,
    /// The comment.
    #[arg(long)]
    body: String,
}

#[derive(Debug, Args)]
pub struct EndorseArgs {
    /// The recommendation: its URL (`automerge:…`, as `rec new` printed it), its bare id, or `draft:NAME`.
    rec: String,
    /// Your organisation's position.
    #[arg(long, value_enum)]
    stance: StanceArg,
    /// A note on the position, e.g. the concerns.
    #[arg(long, default_value = "")]
    note: String,
}

pub async fn run(command: RecCommand, cx: &Context) -> Result<()> {
    let ws = &cx.ws;
    match command {
        RecCommand::New { process, workshop, title } => {
            let id = ws.new_recommendation(doc_id(&process)?, &workshop, &title).await?;
            cx.out.show(&Created::line(id))
        }
        RecCommand::List { process, status } => {
            let (recs, missing) = ws.recommendations(doc_id(&process)?, status.map(Status::from)).await?;
            let recommendations = recs
                .iter()
                .map(|(id, r)| Listed {
                    url: id.url(),
                    title: r.title.0.clone(),
                    status: r.status,
                    workshop: r.workshop.clone(),
                    sectors: r.sectors.clone(),
                    endorsements: r.endorsements.len(),
                })
                .collect();
            if !missing.is_empty() {
                cx.out.note(format_args!("{} recommendation(s) not in the local store; run `konsens sync`", missing.len()));
            }
            cx.out.show(&List { recommendations, not_local: missing })
        }
        RecCommand::Show { rec, at } => {
            let mut r = doc_ref(&rec)?;
            if let Some(at) = at {
                let heads = at
                    .split([',', '|'])
                    .filter(|h| !h.is_empty())
                    .map(|h| h.trim().parse::<ChangeHash>().map_err(|_| anyhow!("{h:?} is not a change hash")))
                    .collect::<Result<Vec<_>>>()?;
                match &mut r {
                    DocRef::Doc { heads: h, .. } => *h = Some(heads),
                    DocRef::Draft(_) => bail!("--at works on documents, not drafts"),
                }
            }
            let (doc, model) = ws.recommendation(&r).await?;
            cx.out.show(&Shown::new(&doc, &model)?)
        }
        RecCommand::Set(args) => {
            let value = match (args.value, &args.from_file) {
                (Some(v), _) => v,
                (None, Some(path)) => std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
                (None, None) => bail!("give --value or --from-file"),
            };
            ws.set_field(&doc_ref(&args.rec)?, &args.field, &value).await?;
            cx.out.show(&FieldSet::line(args.field))
        }
        RecCommand::Edit { rec, field } => edit(cx, &doc_ref(&rec)?, field).await,
        RecCommand::Status { rec, status, note } => {
            let change = ws.set_status(&doc_ref(&rec)?, status.into(), &note).await?;
            let text = format!("{} → {}", change.from, change.to);
            cx.out.show(&Line::new(Moved { from: change.from, to: change.to }, text))
        }
    }
}

pub async fn comment(args: CommentArgs, cx: &Context) -> Result<()> {
    let (id, comment) = cx.ws.comment(&doc_ref(&args.rec)?, &args.quote, &args.body).await?;
    let text = format!("{id} on {}", comment.field);
    cx.out.show(&Line::new(Commented { comment: id, field: comment.field }, text))
}

pub async fn endorse(args: EndorseArgs, cx: &Context) -> Result<()> {
    let stance = Stance::from(args.stance);
    cx.ws.endorse(&doc_ref(&args.rec)?, stance, &args.note).await?;
    let organisation = cx.ws.identity()?.organisation.clone();
    let text = format!("{organisation}: {stance}");
    cx.out.show(&Line::new(Endorsed { organisation, stance }, text))
}

/// Edit a field's Markdown in `$VISUAL`/`$EDITOR`; set it if it changed.
async fn edit(cx: &Context, r: &DocRef, field: String) -> Result<()> {
    let current = cx.ws.field_text(r, &field).await?;
    let path = std::env::temp_dir().join(format!("konsens-{}-{:08x}.md", field, rand::random::<u32>()));
    std::fs::write(&path, &current)?;
    let editor = std::env::var("VISUAL").or_else(|_| std::env::var("EDITOR")).unwrap_or_else(|_| "vi".into());
    // Through the shell, so EDITOR may carry arguments ("code --wait").
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("konsens-edit")
        .arg(&path)
        .status()
        .with_context(|| format!("starting the editor {editor:?}"));
    let edited = std::fs::read_to_string(&path);
    let _ = std::fs::remove_file(&path);
    let status = status?;
    if !status.success() {
        bail!("the editor exited with {status}; nothing changed");
    }
    let edited = edited?;
    if edited == current {
        return cx.out.show(&Said("no changes".into()));
    }
    cx.ws.set_field(r, &field, &edited).await?;
    cx.out.show(&FieldSet::line(field))
}

#[derive(Debug, Serialize)]
struct FieldSet {
    set: String,
}

impl FieldSet {
    fn line(field: String) -> Line<FieldSet> {
        let text = format!("set {field}");
        Line::new(FieldSet { set: field }, text)
    }
}

#[derive(Debug, Serialize)]
struct Moved {
    from: Status,
    to: Status,
}

#[derive(Debug, Serialize)]
struct Commented {
    comment: String,
    field: String,
}

#[derive(Debug, Serialize)]
struct Endorsed {
    organisation: String,
    stance: Stance,
}

/// `rec list`.
#[derive(Debug, Serialize)]
struct List {
    recommendations: Vec<Listed>,
    not_local: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Listed {
    url: String,
    title: String,
    status: Status,
    workshop: String,
    sectors: Vec<String>,
    /// How many organisations endorsed it.
    endorsements: usize,
}

impl Render for List {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        for r in &self.recommendations {
            writeln!(out, "{:<11} {:<24} {}  {}", r.status.as_str(), r.workshop, r.title, r.url)?;
        }
        Ok(())
    }
}

/// `rec show`: the recommendation, with the authors' names for the text.
#[derive(Debug, Serialize)]
struct Shown {
    title: String,
    process: String,
    workshop: String,
    status: Status,
    sectors: Vec<String>,
    addressees: Vec<String>,
    problem: String,
    recommendation: String,
    rationale: String,
    comments: Vec<CommentShown>,
    endorsements: Vec<EndorsementShown>,
    status_log: Vec<StatusLogged>,
    conflicts: Vec<ConflictView>,
    heads: Vec<String>,
}

#[derive(Debug, Serialize)]
struct CommentShown {
    id: String,
    author: String,
    at: i64,
    body: String,
    resolved: bool,
    field: String,
    quote: String,
    /// The text the comment's range covers now.
    anchored_text: String,
    #[serde(skip)]
    author_label: String,
}

#[derive(Debug, Serialize)]
struct EndorsementShown {
    organisation: String,
    stance: Stance,
    note: String,
    by: String,
    at: i64,
    #[serde(skip)]
    by_label: String,
}

#[derive(Debug, Serialize)]
struct StatusLogged {
    by: String,
    at: i64,
    from: Status,
    to: Status,
    note: String,
}

impl Shown {
    fn new(doc: &Automerge, rec: &Recommendation) -> Result<Self> {
        let markdown = |text: &schema::RichText| from_spans(&text.0).trim_end().to_owned();
        Ok(Self {
            title: rec.title.0.clone(),
            process: rec.process.clone(),
            workshop: rec.workshop.clone(),
            status: rec.status,
            sectors: rec.sectors.clone(),
            addressees: rec.addressees.clone(),
            problem: markdown(&rec.problem),
            recommendation: markdown(&rec.recommendation),
            rationale: markdown(&rec.rationale),
            comments: rec
                .comments
                .iter()
                .map(|(id, c)| CommentShown {
                    id: id.clone(),
                    author: c.author.clone(),
                    at: c.at,
                    body: c.body.clone(),
                    resolved: c.resolved,
                    field: c.field.clone(),
                    quote: c.quote.clone(),
                    anchored_text: schema::comment_range(doc, c).map(|(_, _, text)| text).unwrap_or_default(),
                    author_label: workspace::participant_label(doc, &c.author),
                })
                .collect(),
            endorsements: rec
                .endorsements
                .iter()
                .map(|(org, e)| EndorsementShown {
                    organisation: org.clone(),
                    stance: e.stance,
                    note: e.note.clone(),
                    by: e.by.clone(),
                    at: e.at,
                    by_label: workspace::participant_label(doc, &e.by),
                })
                .collect(),
            status_log: rec
                .status_log
                .iter()
                .map(|s| StatusLogged { by: s.by.clone(), at: s.at, from: s.from, to: s.to, note: s.note.clone() })
                .collect(),
            conflicts: schema::conflicts(doc)?.into_iter().map(ConflictView::from).collect(),
            heads: doc.get_heads().iter().map(|h| h.to_string()).collect(),
        })
    }
}

impl Render for Shown {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "{}", self.title)?;
        writeln!(out, "status: {}   workshop: {}   sectors: {}", self.status, self.workshop, self.sectors.join(", "))?;
        if !self.addressees.is_empty() {
            writeln!(out, "addressees: {}", self.addressees.join(", "))?;
        }
        for (label, text) in [("Problem", &self.problem), ("Recommendation", &self.recommendation), ("Rationale", &self.rationale)] {
            writeln!(out, "\n## {label}\n{text}")?;
        }
        if !self.comments.is_empty() {
            writeln!(out, "\nComments:")?;
            for c in &self.comments {
                let resolved = if c.resolved { " (resolved)" } else { "" };
                writeln!(out, "  [{}] {} on {} \"{}\": {}{resolved}", c.id, c.author_label, c.field, c.anchored_text, c.body)?;
            }
        }
        if !self.endorsements.is_empty() {
            writeln!(out, "\nEndorsements:")?;
            for e in &self.endorsements {
                let note = if e.note.is_empty() { String::new() } else { format!(" — {}", e.note) };
                writeln!(out, "  {}: {}{note} (by {})", e.organisation, e.stance, e.by_label)?;
            }
        }
        if !self.conflicts.is_empty() {
            writeln!(out, "\nConflicts (concurrent values; set the field to resolve):")?;
            for c in &self.conflicts {
                writeln!(out, "  {}: {}", c.field, c.values.join(" | "))?;
            }
        }
        writeln!(out, "\nheads: {}", self.heads.join(","))
    }
}
