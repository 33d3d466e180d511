//! `konsens`: the facilitators' command line. Works offline on a local store;
//! only `sync` (and `draft merge` with a server configured) talk to a server.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use konsens_client::workspace::{self, DraftDiff, FieldDiff, HistoryEntry};
use konsens_client::{ClientError, ConnectionStatus, DocRef, Workspace};
use konsens_model::schema::{self, Process, Recommendation, Stance, Status};
use konsens_sync::{AutomergeUrl, DocumentId};
use serde::Serialize;
use serde_json::json;

/// Draft policy recommendations together, offline first.
#[derive(Debug, Parser)]
#[command(name = "konsens", version)]
struct Cli {
    /// Local store directory.
    #[arg(long, global = true, env = "KONSENS_STORE")]
    store: Option<PathBuf>,
    /// Sync server, e.g. ws://127.0.0.1:8080/sync.
    #[arg(long, global = true, env = "KONSENS_SERVER")]
    server: Option<String>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show or set who the changes from this store belong to.
    Identity {
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        org: Option<String>,
    },
    /// Processes.
    #[command(subcommand)]
    Process(ProcessCommand),
    /// Workshops of a process.
    #[command(subcommand)]
    Workshop(WorkshopCommand),
    /// Recommendations.
    #[command(subcommand)]
    Rec(RecCommand),
    /// Comment on the first text field that contains QUOTE.
    Comment {
        rec: String,
        #[arg(long)]
        quote: String,
        #[arg(long)]
        body: String,
    },
    /// Endorse a recommendation on behalf of your organisation.
    Endorse {
        rec: String,
        #[arg(long)]
        stance: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Push and pull everything; returns once the server acknowledged it all.
    Sync {
        /// Servers to sync with (default: --server).
        urls: Vec<String>,
        /// Also fetch this document (and, for a process, its recommendations).
        #[arg(long = "doc")]
        docs: Vec<String>,
        /// Seconds to wait for a connection.
        #[arg(long, default_value_t = 10)]
        connect_timeout: u64,
    },
    /// Changes the server refused, set aside by `sync`, with their wording
    /// to read or copy (newest last).
    Refused,
    /// Local drafts: fork, edit offline, review, merge.
    #[command(subcommand)]
    Draft(DraftCommand),
    /// Every change with time, author and what it touched (authors as the
    /// server verified them, once this store has joined a server).
    History {
        rec: String,
        /// Show the authors the document itself declares, without asking the server.
        #[arg(long)]
        local: bool,
    },
    /// Join a server with a personal invitation link; the token is kept in the store.
    Join { link: String },
    /// Invite a member into a process (facilitators); prints their personal link.
    Invite {
        process: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        org: String,
    },
    /// List a process's members (facilitators also see token ids).
    Members { process: String },
    /// Revoke a member's token; their open connections close at once.
    Revoke { token_id: String },
    /// The report: adopted recommendations per workshop.
    Export {
        process: String,
        #[arg(long, default_value = "markdown")]
        format: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Start recommendations from a Markdown dossier (one per `##` section).
    Import {
        process: String,
        file: PathBuf,
        #[arg(long)]
        workshop: String,
    },
}

#[derive(Debug, Subcommand)]
enum ProcessCommand {
    /// Create a process; prints its URL.
    Create {
        #[arg(long)]
        title: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Show a process: workshops, members, recommendations.
    Show { process: String },
}

#[derive(Debug, Subcommand)]
enum WorkshopCommand {
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

#[derive(Debug, Subcommand)]
enum RecCommand {
    /// Create a recommendation; prints its URL.
    New {
        process: String,
        #[arg(long)]
        workshop: String,
        #[arg(long)]
        title: String,
    },
    /// List a process's recommendations.
    List {
        process: String,
        #[arg(long)]
        status: Option<String>,
    },
    /// Show a recommendation (optionally as of earlier heads).
    Show {
        rec: String,
        /// Comma-separated change hashes (from `konsens history`).
        #[arg(long)]
        at: Option<String>,
    },
    /// Set a field by a minimal diff.
    Set(SetArgs),
    /// Edit a text field as Markdown in $EDITOR.
    Edit {
        rec: String,
        #[arg(long)]
        field: String,
    },
    /// Move to another status.
    Status {
        rec: String,
        status: String,
        #[arg(long, default_value = "")]
        note: String,
    },
}

#[derive(Debug, Args)]
struct SetArgs {
    rec: String,
    #[arg(long)]
    field: String,
    #[arg(long, conflicts_with = "from_file", required_unless_present = "from_file")]
    value: Option<String>,
    #[arg(long)]
    from_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum DraftCommand {
    /// Fork a recommendation into a local draft.
    Fork {
        rec: String,
        #[arg(long)]
        name: String,
    },
    /// List drafts.
    List,
    /// What the draft changes against the current upstream.
    Diff { name: String },
    /// Merge the draft into its upstream (and sync when a server is set).
    Merge { name: String },
}

/// Exit codes: 1 bad input or a change refused before it was made, 2 usage
/// (clap), 3 server unreachable, 4 `sync` finished but the server refused
/// some changes (they were set aside, later edits were sent again; see
/// `konsens refused`).
const EXIT_ERROR: u8 = 1;
const EXIT_NETWORK: u8 = 3;
const EXIT_REFUSED: u8 = 4;

/// `sync` completed, but set refused changes aside.
#[derive(Debug)]
struct SetAside(usize);
impl std::fmt::Display for SetAside {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the server refused {} change(s); they were set aside (see `konsens refused`)", self.0)
    }
}
impl std::error::Error for SetAside {}

#[derive(Debug)]
struct NetworkError(String);
impl std::fmt::Display for NetworkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for NetworkError {}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("KONSENS_LOG").unwrap_or_else(|_| "error".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("konsens: cannot start: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("konsens: error: {e:#}");
            if e.downcast_ref::<NetworkError>().is_some() {
                ExitCode::from(EXIT_NETWORK)
            } else if e.downcast_ref::<SetAside>().is_some() {
                ExitCode::from(EXIT_REFUSED)
            } else {
                ExitCode::from(EXIT_ERROR)
            }
        }
    }
}

fn store_dir(cli: &Cli) -> Result<PathBuf> {
    match &cli.store {
        Some(dir) => Ok(dir.clone()),
        None => dirs::data_dir()
            .map(|d| d.join("konsens"))
            .context("no --store given and no user data directory known; pass --store DIR"),
    }
}

fn doc_ref(text: &str) -> Result<DocRef> {
    text.parse::<DocRef>().map_err(|e| anyhow!(e))
}

fn doc_id(text: &str) -> Result<DocumentId> {
    match doc_ref(text)? {
        DocRef::Doc { id, heads: None } => Ok(id),
        _ => bail!("{text:?} must name a document (automerge:<id>), not a draft or a past version"),
    }
}

fn print_json(value: &impl Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

async fn run(cli: Cli) -> Result<()> {
    let dir = store_dir(&cli)?;
    let mut ws = Workspace::open(&dir, None).with_context(|| format!("opening the store {}", dir.display()))?;
    // The server: --server / KONSENS_SERVER, else the one this store joined.
    let server = cli.server.clone().or_else(|| ws.session().map(|s| s.sync_url.clone()));
    match cli.command {
        Command::Sync { urls, docs, connect_timeout } => {
            let extra = docs.iter().map(|d| doc_id(d)).collect::<Result<Vec<_>>>()?;
            let mut targets = urls.clone();
            if targets.is_empty() {
                targets.extend(server);
            }
            if targets.is_empty() {
                bail!("no server to sync with: pass a URL, --server, KONSENS_SERVER, or `konsens join` one");
            }
            let mut set_aside = 0;
            for url in targets {
                if !(url.starts_with("ws://") || url.starts_with("wss://")) {
                    bail!("{url:?} is not a WebSocket URL (ws://host:port/sync)");
                }
                ws.connect(&url);
                let summary = sync(&ws, &url, &extra, Duration::from_secs(connect_timeout), !cli.json).await;
                ws.disconnect();
                let (summary, refusals) = summary?;
                set_aside += refusals.iter().map(|r| r.dropped).sum::<usize>();
                if cli.json {
                    print_json(&summary)?;
                } else {
                    println!("synced {} document(s) with {url}", summary["documents"]);
                    for r in &refusals {
                        print_refusal(r);
                    }
                }
            }
            if set_aside > 0 {
                return Err(SetAside(set_aside).into());
            }
        }
        Command::Refused => {
            let kept = ws.refusals()?;
            if cli.json {
                print_json(&kept)?;
            } else if kept.is_empty() {
                println!("no refused changes");
            } else {
                for r in &kept {
                    println!("{}  {}", konsens_model::report::iso_date(r.at), r.document);
                    print_refusal(r);
                    for (field, text) in &r.wording {
                        println!("  your {field}:\n    {}", text.replace('\n', "\n    "));
                    }
                }
            }
        }
        Command::Join { link } => {
            let (base, sync_url, token) = konsens_client::api::parse_join_link(&link)
                .ok_or_else(|| anyhow!("{link:?} is not an invitation link (http://host:port/join/<token>)"))?;
            let api = konsens_client::api::ApiClient::new(base.clone(), token.clone());
            let me = tokio::task::spawn_blocking(move || api.me()).await??;
            let text = |key: &str| me[key].as_str().unwrap_or_default().to_owned();
            ws.set_session(workspace::Session {
                base,
                sync_url: sync_url.clone(),
                token,
                participant: text("participant"),
                role: text("role"),
                process: me["process"].as_str().map(str::to_owned),
            })?;
            // Changes from this store carry the member the server verified.
            if !text("participant").is_empty() {
                ws.adopt_server_identity(&text("participant"), &text("name"), &text("organisation"))?;
            }
            if cli.json {
                print_json(&me)?;
            } else {
                println!("joined {sync_url} as {} ({}), {}", text("name"), text("organisation"), text("role"));
                if let Some(process) = me["process"].as_str() {
                    println!("process: {process}  (run `konsens sync --doc {process}`)");
                }
            }
        }
        Command::Invite { process, role, name, org } => {
            ws.allow(workspace::Action::ManageMembers)?;
            let id = doc_id(&process)?;
            let api = ws.api()?;
            let answer = tokio::task::spawn_blocking(move || api.invite(&id.to_string(), &role, &name, &org)).await??;
            if cli.json {
                print_json(&answer)?;
            } else {
                println!("{}", answer["link"].as_str().unwrap_or_default());
                eprintln!("token id {} (for `konsens revoke`)", answer["token_id"].as_str().unwrap_or_default());
            }
        }
        Command::Members { process } => {
            let id = doc_id(&process)?;
            let api = ws.api()?;
            let members = tokio::task::spawn_blocking(move || api.members(&id.to_string())).await??;
            if cli.json {
                print_json(&members)?;
            } else {
                for m in members.as_array().into_iter().flatten() {
                    println!(
                        "{:<12} {} ({}){}",
                        m["role"].as_str().unwrap_or_default(),
                        m["name"].as_str().unwrap_or_default(),
                        m["organisation"].as_str().unwrap_or_default(),
                        m["token_id"].as_str().map(|t| format!("  token {t}")).unwrap_or_default()
                    );
                }
            }
        }
        Command::Revoke { token_id } => {
            ws.allow(workspace::Action::ManageMembers)?;
            let api = ws.api()?;
            let answer = tokio::task::spawn_blocking(move || api.revoke(&token_id)).await??;
            if cli.json {
                print_json(&answer)?;
            } else {
                println!("revoked {}; closed {} connection(s)", answer["revoked"].as_str().unwrap_or_default(), answer["closed_connections"]);
            }
        }
        Command::Identity { name, org } => {
            let identity = match (name, org) {
                (Some(name), Some(org)) => ws.set_identity(&name, &org)?,
                (None, None) => ws.identity()?.clone(),
                _ => bail!("give both --name and --org"),
            };
            if cli.json {
                print_json(&identity)?;
            } else {
                println!("{} ({}), participant {}", identity.name, identity.organisation, identity.participant);
            }
        }
        Command::Process(ProcessCommand::Create { title, description }) => {
            let id = ws.create_process(&title, &description).await?;
            if cli.json {
                print_json(&json!({"url": id.url()}))?;
            } else {
                println!("{}", id.url());
            }
        }
        Command::Process(ProcessCommand::Show { process }) => {
            let id = doc_id(&process)?;
            let (_, model) = ws.process(id).await?;
            let (recs, missing) = ws.recommendations(id, None).await?;
            show_process(&model, &recs, &missing, cli.json)?;
        }
        Command::Workshop(WorkshopCommand::Add { process, title, theme, sectors, date }) => {
            let id = ws.add_workshop(doc_id(&process)?, &title, &theme, sectors, date).await?;
            if cli.json {
                print_json(&json!({"workshop": id}))?;
            } else {
                println!("{id}");
            }
        }
        Command::Rec(RecCommand::New { process, workshop, title }) => {
            let id = ws.new_recommendation(doc_id(&process)?, &workshop, &title).await?;
            if cli.json {
                print_json(&json!({"url": id.url()}))?;
            } else {
                println!("{}", id.url());
            }
        }
        Command::Rec(RecCommand::List { process, status }) => {
            let status = status.map(|s| s.parse::<Status>()).transpose()?;
            let (recs, missing) = ws.recommendations(doc_id(&process)?, status).await?;
            if cli.json {
                let list: Vec<_> = recs
                    .iter()
                    .map(|(id, r)| json!({"url": id.url(), "title": r.title.0, "status": r.status.as_str(), "workshop": r.workshop, "sectors": r.sectors, "endorsements": r.endorsements.len()}))
                    .collect();
                print_json(&json!({"recommendations": list, "not_local": missing}))?;
            } else {
                for (id, r) in &recs {
                    println!("{:<11} {:<24} {}  {}", r.status.as_str(), r.workshop, r.title.0, id.url());
                }
                if !missing.is_empty() {
                    eprintln!("{} recommendation(s) not in the local store; run `konsens sync`", missing.len());
                }
            }
        }
        Command::Rec(RecCommand::Show { rec, at }) => {
            let mut r = doc_ref(&rec)?;
            if let Some(at) = at {
                let heads = at
                    .split([',', '|'])
                    .filter(|h| !h.is_empty())
                    .map(|h| h.trim().parse::<automerge::ChangeHash>().map_err(|_| anyhow!("{h:?} is not a change hash")))
                    .collect::<Result<Vec<_>>>()?;
                match &mut r {
                    DocRef::Doc { heads: h, .. } => *h = Some(heads),
                    DocRef::Draft(_) => bail!("--at works on documents, not drafts"),
                }
            }
            let (doc, model) = ws.recommendation(&r).await?;
            show_recommendation(&doc, &model, cli.json)?;
        }
        Command::Rec(RecCommand::Set(args)) => {
            let value = match (&args.value, &args.from_file) {
                (Some(v), _) => v.clone(),
                (None, Some(path)) => std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
                (None, None) => bail!("give --value or --from-file"),
            };
            ws.set_field(&doc_ref(&args.rec)?, &args.field, &value).await?;
            if !cli.json {
                println!("set {}", args.field);
            } else {
                print_json(&json!({"set": args.field}))?;
            }
        }
        Command::Rec(RecCommand::Edit { rec, field }) => edit(&ws, &doc_ref(&rec)?, &field, cli.json).await?,
        Command::Rec(RecCommand::Status { rec, status, note }) => {
            let change = ws.set_status(&doc_ref(&rec)?, status.parse()?, &note).await?;
            if cli.json {
                print_json(&json!({"from": change.from.as_str(), "to": change.to.as_str()}))?;
            } else {
                println!("{} → {}", change.from, change.to);
            }
        }
        Command::Comment { rec, quote, body } => {
            let (id, comment) = ws.comment(&doc_ref(&rec)?, &quote, &body).await?;
            if cli.json {
                print_json(&json!({"comment": id, "field": comment.field}))?;
            } else {
                println!("{id} on {}", comment.field);
            }
        }
        Command::Endorse { rec, stance, note } => {
            let stance: Stance = stance.parse()?;
            ws.endorse(&doc_ref(&rec)?, stance, &note).await?;
            let org = ws.identity()?.organisation.clone();
            if cli.json {
                print_json(&json!({"organisation": org, "stance": stance.as_str()}))?;
            } else {
                println!("{org}: {stance}");
            }
        }
        Command::Draft(DraftCommand::Fork { rec, name }) => {
            ws.fork_draft(&doc_ref(&rec)?, &name).await?;
            if cli.json {
                print_json(&json!({"draft": name}))?;
            } else {
                println!("draft:{name}");
            }
        }
        Command::Draft(DraftCommand::List) => {
            let drafts = ws.drafts().await?;
            if cli.json {
                print_json(&drafts)?;
            } else {
                for d in drafts {
                    println!("draft:{:<20} {}  (of {})", d.name, d.title, d.upstream);
                }
            }
        }
        Command::Draft(DraftCommand::Diff { name }) => {
            let diff = ws.diff_draft(&name).await?;
            if cli.json {
                print_json(&diff)?;
            } else {
                print_diff(&diff);
            }
        }
        Command::Draft(DraftCommand::Merge { name }) => {
            if let Some(url) = &server {
                ws.connect(url);
            }
            let (upstream, conflicts) = ws.merge_draft(&name).await?;
            let synced = if server.is_some() {
                wait_online(&ws, Duration::from_secs(10)).await?;
                tokio::time::timeout(Duration::from_secs(60), ws.repo().wait_synced(upstream))
                    .await
                    .map_err(|_| NetworkError("the server did not acknowledge the merge within 60 s".into()))??;
                true
            } else {
                false
            };
            if cli.json {
                print_json(&json!({"merged_into": upstream.url(), "synced": synced, "conflicts": conflicts}))?;
            } else {
                println!("merged draft:{name} into {}{}", upstream.url(), if synced { " and synced" } else { " (locally; run `konsens sync`)" });
                for c in &conflicts {
                    println!("conflict in {}: {}  — resolve with `konsens rec set {} --field {} --value …`", c.field, c.values.join(" | "), upstream.url(), c.field);
                }
            }
        }
        Command::History { rec, local } => {
            let r = doc_ref(&rec)?;
            let verified = match (&r, local, ws.session()) {
                (DocRef::Doc { id, .. }, false, Some(_)) => {
                    let api = ws.api()?;
                    let id = id.to_string();
                    Some(tokio::task::spawn_blocking(move || api.history(&id)).await??)
                }
                _ => None,
            };
            match verified {
                Some(history) if cli.json => print_json(&history)?,
                Some(history) => {
                    for entry in history.as_array().into_iter().flatten() {
                        print_verified(entry);
                    }
                }
                None => {
                    let history = ws.history(&r).await?;
                    if cli.json {
                        print_json(&history)?;
                    } else {
                        for entry in history {
                            print_history(&entry);
                        }
                    }
                }
            }
        }
        Command::Export { process, format, out } => {
            let id = doc_id(&process)?;
            let format: konsens_model::report::ReportFormat = format.parse().map_err(|e| anyhow!("{e}"))?;
            let (_, model) = ws.process(id).await?;
            let (recs, missing) = ws.recommendations(id, None).await?;
            if !missing.is_empty() {
                eprintln!("warning: {} recommendation(s) are not in the local store and are left out; run `konsens sync`", missing.len());
            }
            let recs: Vec<(String, Recommendation)> = recs.into_iter().map(|(id, r)| (id.url(), r)).collect();
            let report = konsens_model::report::render(&model, &id.url(), &recs, format);
            match out {
                Some(path) => {
                    std::fs::write(&path, report).with_context(|| format!("writing {}", path.display()))?;
                    if !cli.json {
                        println!("wrote {}", path.display());
                    }
                }
                None => {
                    std::io::stdout().write_all(report.as_bytes())?;
                }
            }
        }
        Command::Import { process, file, workshop } => {
            let id = doc_id(&process)?;
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let entries = konsens_model::dossier::parse(&text).map_err(|e| anyhow!("{}: {e}", file.display()))?;
            // Check the workshop before creating anything.
            let (_, model) = ws.process(id).await?;
            if model.workshop(&workshop).is_none() {
                return Err(schema::SchemaError::UnknownWorkshop(workshop).into());
            }
            let mut created = Vec::new();
            for entry in entries {
                let rec = ws.new_recommendation(id, &workshop, &entry.title).await?;
                let r = DocRef::Doc { id: rec, heads: None };
                if let Some(problem) = &entry.problem {
                    ws.set_field(&r, "problem", problem).await?;
                }
                ws.set_field(&r, "recommendation", &entry.recommendation).await?;
                if let Some(rationale) = &entry.rationale {
                    ws.set_field(&r, "rationale", rationale).await?;
                }
                created.push(json!({"url": rec.url(), "title": entry.title}));
            }
            if cli.json {
                print_json(&json!({"created": created}))?;
            } else {
                for c in created {
                    println!("{}  {}", c["url"].as_str().unwrap_or_default(), c["title"].as_str().unwrap_or_default());
                }
            }
        }
    }
    Ok(())
}

async fn wait_online(ws: &Workspace, timeout: Duration) -> Result<()> {
    let mut status = ws.repo().status();
    let reached = tokio::time::timeout(
        timeout,
        status.wait_for(|s| matches!(s, ConnectionStatus::Online { .. } | ConnectionStatus::Refused(_))),
    )
    .await
    .map_err(|_| NetworkError(format!("cannot reach the server within {} s", timeout.as_secs())))?
    .map_err(|_| anyhow!("the repo stopped"))?
    .clone();
    match reached {
        ConnectionStatus::Refused(reason) => Err(anyhow!("{reason}; join with a valid invitation link (`konsens join <link>`)")),
        _ => Ok(()),
    }
}

fn print_refusal(r: &konsens_client::RefusalReport) {
    println!("refused by the server ({}): {}", r.code, r.message);
    println!("  set aside {} change(s) of yours to automerge:{}", r.dropped, r.document);
    if !r.reapplied.is_empty() {
        println!("  made your later edits again and sent them: {}", r.reapplied.join(", "));
    }
    if !r.skipped.is_empty() {
        println!("  not sent again: {}", r.skipped.join(", "));
    }
    if !r.wording.is_empty() {
        println!("  your wording is kept: `konsens refused`");
    }
}

/// Push every local document, pull the recommendations of local processes,
/// and wait until the server acknowledged each. Refusals met on the way were
/// recovered from (see `Repo::take_refusals`) and are returned.
async fn sync(
    ws: &Workspace,
    url: &str,
    extra: &[DocumentId],
    connect_timeout: Duration,
    progress: bool,
) -> Result<(serde_json::Value, Vec<konsens_client::RefusalReport>)> {
    wait_online(ws, connect_timeout).await.map_err(|e| NetworkError(format!("{url}: {e}")))?;
    let repo = ws.repo();
    let mut done = std::collections::BTreeSet::new();
    let mut pending: Vec<DocumentId> = repo.local_documents()?;
    pending.extend_from_slice(extra);
    let bar = if progress && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::new(pending.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut pulled = 0;
    while let Some(id) = pending.pop() {
        if !done.insert(id) {
            continue;
        }
        match tokio::time::timeout(Duration::from_secs(60), repo.find(id)).await {
            Ok(Ok(_)) => {}
            Ok(Err(ClientError::Unavailable(_))) => {
                eprintln!("warning: the server does not have {}", id.url());
                bar.inc(1);
                continue;
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(NetworkError(format!("timed out fetching {}", id.url())).into()),
        };
        tokio::time::timeout(Duration::from_secs(120), repo.wait_synced(id))
            .await
            .map_err(|_| NetworkError(format!("the server did not acknowledge {} within 120 s", id.url())))??;
        // Read again: only now is everything the server had in our copy.
        let doc = repo.find(id).await?;
        // A process lists recommendations others may have created: pull those too.
        if let Ok(process) = Process::from_doc(&doc) {
            for url in process.recommendations.values().flatten() {
                if let Ok(parsed) = url.parse::<AutomergeUrl>()
                    && !done.contains(&parsed.document_id)
                {
                    if !repo.local_documents()?.contains(&parsed.document_id) {
                        pulled += 1;
                    }
                    pending.push(parsed.document_id);
                    bar.inc_length(1);
                }
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let refusals = repo.take_refusals().await?;
    Ok((json!({"server": url, "documents": done.len(), "pulled": pulled, "refused": refusals}), refusals))
}

async fn edit(ws: &Workspace, r: &DocRef, field: &str, json: bool) -> Result<()> {
    let (_, rec) = ws.recommendation(r).await?;
    let current = match field {
        "title" => rec.title.0.clone(),
        f => konsens_model::richtext::from_spans(&rec.text(f).ok_or_else(|| schema::SchemaError::UnknownField(f.to_owned()))?.0),
    };
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
        .with_context(|| format!("starting the editor {editor:?}"))?;
    let edited = std::fs::read_to_string(&path);
    let _ = std::fs::remove_file(&path);
    if !status.success() {
        bail!("the editor exited with {status}; nothing changed");
    }
    let edited = edited?;
    if edited == current {
        if !json {
            println!("no changes");
        }
        return Ok(());
    }
    ws.set_field(r, field, &edited).await?;
    if json {
        print_json(&json!({"set": field}))?;
    } else {
        println!("set {field}");
    }
    Ok(())
}

fn show_process(model: &Process, recs: &[(DocumentId, Recommendation)], missing: &[String], json: bool) -> Result<()> {
    if json {
        let workshops: Vec<_> = model
            .workshops
            .iter()
            .map(|w| json!({"id": w.id, "title": w.title, "theme": w.theme, "sectors": w.sectors, "date": w.date,
                "recommendations": recs.iter().filter(|(_, r)| r.workshop == w.id).map(|(id, r)| json!({"url": id.url(), "title": r.title.0, "status": r.status.as_str()})).collect::<Vec<_>>()}))
            .collect();
        let members: Vec<_> = model.members.iter().map(|(id, m)| json!({"id": id, "name": m.name, "organisation": m.organisation, "role": m.role.as_str()})).collect();
        return print_json(&json!({"title": model.title.0, "description": model.description.0, "workshops": workshops, "members": members, "not_local": missing}));
    }
    println!("{}", model.title);
    if !model.description.0.is_empty() {
        println!("{}", model.description);
    }
    for w in &model.workshops {
        println!("\n[{}] {}  {}  {}", w.id, w.title, w.sectors.join(", "), w.date.clone().unwrap_or_default());
        for (id, r) in recs.iter().filter(|(_, r)| r.workshop == w.id) {
            println!("  {:<11} {}  {}", r.status.as_str(), r.title.0, id.url());
        }
    }
    if !missing.is_empty() {
        println!("\n{} recommendation(s) not in the local store; run `konsens sync`", missing.len());
    }
    Ok(())
}

fn show_recommendation(doc: &automerge::Automerge, rec: &Recommendation, json: bool) -> Result<()> {
    let conflicts = schema::conflicts(doc)?;
    let comments: Vec<_> = rec
        .comments
        .iter()
        .map(|(id, c)| {
            let now = schema::comment_range(doc, c).map(|(_, _, text)| text).unwrap_or_default();
            (id, c, now)
        })
        .collect();
    let heads: Vec<String> = doc.get_heads().iter().map(|h| h.to_string()).collect();
    if json {
        return print_json(&json!({
            "title": rec.title.0,
            "process": rec.process,
            "workshop": rec.workshop,
            "status": rec.status.as_str(),
            "sectors": rec.sectors,
            "addressees": rec.addressees,
            "problem": konsens_model::richtext::from_spans(&rec.problem.0).trim_end(),
            "recommendation": konsens_model::richtext::from_spans(&rec.recommendation.0).trim_end(),
            "rationale": konsens_model::richtext::from_spans(&rec.rationale.0).trim_end(),
            "comments": comments.iter().map(|(id, c, now)| json!({"id": id, "author": c.author, "at": c.at, "body": c.body, "resolved": c.resolved, "field": c.field, "quote": c.quote, "anchored_text": now})).collect::<Vec<_>>(),
            "endorsements": rec.endorsements.iter().map(|(org, e)| json!({"organisation": org, "stance": e.stance.as_str(), "note": e.note, "by": e.by, "at": e.at})).collect::<Vec<_>>(),
            "status_log": rec.status_log.iter().map(|s| json!({"by": s.by, "at": s.at, "from": s.from.as_str(), "to": s.to.as_str(), "note": s.note})).collect::<Vec<_>>(),
            "conflicts": conflicts.iter().map(|c| json!({"field": c.field, "values": c.values})).collect::<Vec<_>>(),
            "heads": heads,
        }));
    }
    println!("{}", rec.title);
    println!("status: {}   workshop: {}   sectors: {}", rec.status, rec.workshop, rec.sectors.join(", "));
    if !rec.addressees.is_empty() {
        println!("addressees: {}", rec.addressees.join(", "));
    }
    for (label, text) in [("Problem", &rec.problem), ("Recommendation", &rec.recommendation), ("Rationale", &rec.rationale)] {
        println!("\n## {label}\n{}", konsens_model::richtext::from_spans(&text.0).trim_end());
    }
    if !comments.is_empty() {
        println!("\nComments:");
        for (id, c, now) in &comments {
            let who = workspace::participant_label(doc, &c.author);
            println!("  [{id}] {who} on {} \"{}\": {}{}", c.field, now, c.body, if c.resolved { " (resolved)" } else { "" });
        }
    }
    if !rec.endorsements.is_empty() {
        println!("\nEndorsements:");
        for (org, e) in &rec.endorsements {
            let who = workspace::participant_label(doc, &e.by);
            println!("  {org}: {}{} (by {who})", e.stance, if e.note.is_empty() { String::new() } else { format!(" — {}", e.note) });
        }
    }
    if !conflicts.is_empty() {
        println!("\nConflicts (concurrent values; set the field to resolve):");
        for c in &conflicts {
            println!("  {}: {}", c.field, c.values.join(" | "));
        }
    }
    println!("\nheads: {}", heads.join(","));
    Ok(())
}

fn print_diff(diff: &DraftDiff) {
    if diff.draft.is_empty() {
        println!("the draft changes nothing");
    }
    for FieldDiff { field, before, after, words } in &diff.draft {
        match words {
            Some(words) => println!("{field}:\n  {}", words.replace('\n', "\n  ")),
            None => println!("{field}: {before} → {after}"),
        }
    }
    if diff.upstream_changes > 0 {
        println!("\nupstream has {} change(s) since the fork; merging keeps them", diff.upstream_changes);
    }
    for c in &diff.conflicts {
        println!("conflict in {}: {}", c.field, c.values.join(" | "));
    }
}

fn print_verified(entry: &serde_json::Value) {
    let person = |v: &serde_json::Value| match (v["name"].as_str(), v["organisation"].as_str()) {
        (Some(n), Some(o)) => format!("{n} ({o})"),
        _ => v["participant"].as_str().unwrap_or("unknown").to_owned(),
    };
    let who = if entry["verified"] == true { person(&entry["author"]) } else { "not verified (before access control)".into() };
    let merged = if entry["merged_by"].is_null() { String::new() } else { format!(", merged by {}", person(&entry["merged_by"])) };
    let time = entry["time"].as_i64().filter(|t| *t > 0).map(format_time).unwrap_or_else(|| "unknown time".into());
    let hash = entry["hash"].as_str().unwrap_or_default();
    println!("{}  {time}  {who}{merged}: {}", &hash[..12.min(hash.len())], entry["message"].as_str().unwrap_or("(no message)"));
}

fn print_history(entry: &HistoryEntry) {
    let who = match (&entry.name, &entry.organisation) {
        (Some(n), Some(o)) => format!("{n} ({o})"),
        _ => format!("actor {}", &entry.actor[..entry.actor.len().min(12)]),
    };
    let when = if entry.time > 0 { format_time(entry.time) } else { "unknown time".into() };
    println!("{}  {when}  {who}: {}", &entry.hash[..12.min(entry.hash.len())], entry.summary);
}

/// UTC `YYYY-MM-DD HH:MM` (the date as the report prints it).
fn format_time(seconds: i64) -> String {
    let rest = seconds.rem_euclid(86_400);
    format!("{} {:02}:{:02}", konsens_model::report::iso_date(seconds * 1000), rest / 3600, (rest % 3600) / 60)
}
