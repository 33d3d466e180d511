//! `konsens`: the facilitators' command line. Works offline on a local store;
//! `sync` and `draft merge` (with a server) talk to the sync server, `join`,
//! `invite`, `members`, `revoke` and `history` (once joined) to its JSON API.
//!
//! This file parses the arguments, opens the store, dispatches to one module
//! per command group and turns errors into exit codes. The work itself is in
//! the `konsens-client` library; what is printed, in `output.rs`.

mod amendment;
mod authorship;
mod draft;
mod export;
mod history;
mod identity;
mod member;
mod output;
mod process;
mod recommendation;
mod round;
mod sync;
mod values;
mod workshop;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use konsens_client::{ClientError, Workspace};

use crate::output::Output;

/// Draft policy recommendations together, offline first.
///
/// Exit codes: 0 success; 1 bad input, or a change refused before it was
/// made; 2 usage; 3 server unreachable; 4 `sync` finished but the server
/// refused some changes (set aside; see `konsens refused`).
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
    Identity(identity::IdentityArgs),
    /// Processes.
    #[command(subcommand)]
    Process(process::ProcessCommand),
    /// Workshops of a process.
    #[command(subcommand)]
    Workshop(workshop::WorkshopCommand),
    /// Recommendations.
    #[command(subcommand)]
    Rec(recommendation::RecCommand),
    /// Comment on the first text field that contains QUOTE.
    Comment(recommendation::CommentArgs),
    /// Endorse a recommendation on behalf of your organisation.
    Endorse(recommendation::EndorseArgs),
    /// Consent rounds: each organisation agrees, abstains, disagrees or blocks.
    #[command(subcommand)]
    Round(round::RoundCommand),
    /// Push and pull everything; returns once the server acknowledged it all.
    Sync(sync::SyncArgs),
    /// Changes the server refused, set aside by `sync`, with their wording
    /// to read or copy (newest last).
    Refused,
    /// Local drafts: fork, edit offline, review, merge, or propose as an amendment.
    #[command(subcommand)]
    Draft(draft::DraftCommand),
    /// Amendments of a recommendation: list, show, and the facilitators'
    /// accept, reject and ask-changes.
    #[command(subcommand)]
    Amendment(amendment::AmendmentCommand),
    /// The history in sessions (one person, one field, edits minutes apart)
    /// with time, author and what changed; `--all` for every single change.
    /// Authors as the server verified them, once this store has joined a server.
    History(history::HistoryArgs),
    /// Who wrote what: each field's runs of text with the member who wrote
    /// them, as the server verified them.
    Authorship(authorship::AuthorshipArgs),
    /// Join a server with a personal invitation link; the token is kept in the store.
    Join(member::JoinArgs),
    /// Invite a member, or everyone of a CSV file, into a process
    /// (facilitators); prints the personal links.
    Invite(member::InviteArgs),
    /// A new invitation link for a member whose link was lost; the old one stops working.
    Reissue(member::ReissueArgs),
    /// List a process's members (facilitators also see token ids).
    Members(member::MembersArgs),
    /// Revoke a member's token; their open connections close at once.
    Revoke(member::RevokeArgs),
    /// The report: adopted recommendations per workshop.
    Export(export::ExportArgs),
    /// Start recommendations from a Markdown dossier (one per `##` section).
    Import(export::ImportArgs),
}

/// What every command works with.
#[derive(Debug)]
pub struct Context {
    pub ws: Workspace,
    /// `--server` / `KONSENS_SERVER`, else the server this store joined.
    pub server: Option<String>,
    pub out: Output,
}

/// `sync` finished, but the server refused changes: they were set aside.
#[derive(Debug, thiserror::Error)]
#[error("the server refused {0} change(s); they were set aside (see `konsens refused`)")]
pub struct SetAside(pub usize);

/// The server at `url` could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {error}")]
pub struct Unreachable {
    pub url: String,
    pub error: ClientError,
}

const EXIT_ERROR: u8 = 1;
const EXIT_NETWORK: u8 = 3;
const EXIT_REFUSED: u8 = 4;

/// The exit code for an error (2, usage, is clap's own).
fn exit_code(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if cause.is::<SetAside>() {
            return EXIT_REFUSED;
        }
        if cause.is::<Unreachable>() || cause.downcast_ref::<ClientError>().is_some_and(ClientError::is_network) {
            return EXIT_NETWORK;
        }
    }
    EXIT_ERROR
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("KONSENS_LOG").unwrap_or_else(|_| "error".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            output::warn(format_args!("konsens: cannot start: {e}"));
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            output::warn(format_args!("konsens: error: {e:#}"));
            ExitCode::from(exit_code(&e))
        }
    }
}

fn store_dir(store: Option<PathBuf>) -> Result<PathBuf> {
    match store {
        Some(dir) => Ok(dir),
        None => dirs::data_dir()
            .map(|d| d.join("konsens"))
            .context("no --store given and no user data directory known; pass --store DIR"),
    }
}

async fn run(cli: Cli) -> Result<()> {
    let dir = store_dir(cli.store)?;
    let ws = Workspace::open(&dir, None).with_context(|| format!("opening the store {}", dir.display()))?;
    let server = cli.server.or_else(|| ws.session().map(|s| s.sync_url.clone()));
    let mut cx = Context { ws, server, out: Output::new(cli.json) };
    match cli.command {
        Command::Identity(args) => identity::run(args, &mut cx).await,
        Command::Process(command) => process::run(command, &cx).await,
        Command::Workshop(command) => workshop::run(command, &cx).await,
        Command::Rec(command) => recommendation::run(command, &cx).await,
        Command::Comment(args) => recommendation::comment(args, &cx).await,
        Command::Endorse(args) => recommendation::endorse(args, &cx).await,
        Command::Round(command) => round::run(command, &cx).await,
        Command::Sync(args) => sync::run(args, &cx).await,
        Command::Refused => sync::refused(&cx),
        Command::Draft(command) => draft::run(command, &cx).await,
        Command::Amendment(command) => amendment::run(command, &cx).await,
        Command::History(args) => history::run(args, &cx).await,
        Command::Authorship(args) => authorship::run(args, &cx).await,
        Command::Join(args) => member::join(args, &mut cx).await,
        Command::Invite(args) => member::invite(args, &cx).await,
        Command::Members(args) => member::members(args, &cx).await,
        Command::Revoke(args) => member::revoke(args, &cx).await,
        Command::Reissue(args) => member::reissue(args, &cx).await,
        Command::Export(args) => export::export(args, &cx).await,
        Command::Import(args) => export::import(args, &cx).await,
    }
}
