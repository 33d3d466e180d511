//! `konsens-server`: run the sync server.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use konsens_server::{Server, ServerConfig};
use tracing_subscriber::EnvFilter;

/// The konsens sync server: automerge-repo over WebSockets at /sync, documents
/// in sled (embedded) or PostgreSQL (`--database`).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    command: Option<Subcommand>,
    /// Directory of the embedded sled database.
    #[arg(long, env = "KONSENS_DATA", default_value = konsens_server::DEFAULT_DATA_DIR)]
    data: PathBuf,
    /// Keep everything in this PostgreSQL database (postgres://user:password@host:port/db)
    /// instead of sled in --data; its schema is brought up to date at start.
    #[arg(long, env = "KONSENS_DATABASE")]
    database: Option<String>,
    /// With --database, several nodes may share it: the address the other
    /// nodes reach this one at (ws://host:port) to relay what its clients
    /// send about documents this node owns.
    #[arg(long, env = "KONSENS_NODE_ADDRESS")]
    node_address: Option<String>,
    /// Shared by all nodes of a cluster; node-to-node links present it.
    #[arg(long, env = "KONSENS_CLUSTER_SECRET", hide_env_values = true)]
    cluster_secret: Option<String>,
    /// Milliseconds a document's lease lasts unless renewed: a dead owner's
    /// documents move to another node within this long.
    #[arg(long, env = "KONSENS_LEASE_MS", default_value_t = konsens_server::DEFAULT_LEASE_MS)]
    lease_ms: u64,
    /// Address to listen on.
    #[arg(long, env = "KONSENS_LISTEN", default_value = konsens_server::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Let anyone who reaches the port read and write every document.
    #[arg(long)]
    open: bool,
    /// Largest WebSocket message accepted, in bytes.
    #[arg(long, env = "KONSENS_MAX_FRAME_BYTES", default_value_t = konsens_sync::DEFAULT_MAX_FRAME_BYTES)]
    max_frame_bytes: usize,
    /// Seconds a document without peers stays in memory.
    #[arg(long, default_value_t = konsens_server::DEFAULT_IDLE_EVICT_SECS)]
    idle_evict_secs: u64,
    /// Largest document (stored bytes) that still accepts changes.
    #[arg(long, env = "KONSENS_MAX_DOCUMENT_BYTES", default_value_t = konsens_server::DEFAULT_MAX_DOCUMENT_BYTES)]
    max_document_bytes: usize,
    /// Sync messages per second per connection; faster senders are slowed down.
    #[arg(long, env = "KONSENS_MESSAGES_PER_SECOND", default_value_t = konsens_server::DEFAULT_MESSAGES_PER_SECOND)]
    messages_per_second: u32,
    /// Seconds a connection may stay slowed down by the rate limit without a
    /// break before it is closed.
    #[arg(long, env = "KONSENS_THROTTLE_CLOSE_SECS", default_value_t = konsens_server::DEFAULT_THROTTLE_CLOSE_SECS)]
    throttle_close_secs: u64,
    /// Open connections per token.
    #[arg(long, env = "KONSENS_CONNECTIONS_PER_TOKEN", default_value_t = konsens_server::DEFAULT_CONNECTIONS_PER_TOKEN)]
    connections_per_token: usize,
    /// New documents per member per hour.
    #[arg(long, env = "KONSENS_DOCUMENTS_PER_HOUR", default_value_t = konsens_server::DEFAULT_DOCUMENTS_PER_HOUR)]
    documents_per_hour: usize,
    /// Shortest time between two sync rounds of a document shared by three or
    /// more connections (coalesces keystrokes; 0 turns it off).
    #[arg(long, env = "KONSENS_COALESCE_MS", default_value_t = konsens_server::DEFAULT_COALESCE_MS)]
    coalesce_ms: u64,
    /// Open TCP connections in all; more are answered 503 (clamped to the
    /// process's descriptor limit).
    #[arg(long, env = "KONSENS_MAX_CONNECTIONS", default_value_t = konsens_server::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Open TCP connections from one address (IPv6: one /64); more are
    /// answered 503. Behind a reverse proxy, raise it or set 0 (no limit).
    #[arg(long, env = "KONSENS_CONNECTIONS_PER_ADDRESS", default_value_t = konsens_server::DEFAULT_CONNECTIONS_PER_ADDRESS)]
    connections_per_address: usize,
    /// Seconds a client may take to send a request's head; also how long an
    /// idle keep-alive connection stays open.
    #[arg(long, env = "KONSENS_HEADER_TIMEOUT_SECS", default_value_t = konsens_server::DEFAULT_HEADER_TIMEOUT_SECS)]
    header_timeout_secs: u64,
    /// Seconds a new WebSocket may take to send `join`.
    #[arg(long, env = "KONSENS_HANDSHAKE_TIMEOUT_SECS", default_value_t = konsens_server::DEFAULT_HANDSHAKE_TIMEOUT_SECS)]
    handshake_timeout_secs: u64,
    /// Seconds one HTTP request (not a WebSocket) may take, body included.
    #[arg(long, env = "KONSENS_REQUEST_TIMEOUT_SECS", default_value_t = konsens_server::DEFAULT_REQUEST_TIMEOUT_SECS)]
    request_timeout_secs: u64,
    /// Requests per token and minute for documents it cannot read or that do
    /// not exist; beyond, its connections are slowed down (0: no limit).
    #[arg(long, env = "KONSENS_UNKNOWN_DOCUMENTS_PER_MINUTE", default_value_t = konsens_server::DEFAULT_UNKNOWN_DOCUMENTS_PER_MINUTE)]
    unknown_documents_per_minute: u32,
    /// Bytes the changes of one sync message may inflate to.
    #[arg(long, env = "KONSENS_MAX_INFLATED_BYTES", default_value_t = konsens_server::DEFAULT_MAX_INFLATED_BYTES)]
    max_inflated_bytes: usize,
    /// Operations the changes of one sync message may hold.
    #[arg(long, env = "KONSENS_MAX_OPERATIONS", default_value_t = konsens_server::DEFAULT_MAX_OPERATIONS)]
    max_operations: usize,
    /// Most writes flushed together by the group commit; 1 turns it off
    /// (one flush per write), to measure what it buys. Clamped to 1..=4096.
    #[arg(long, env = "KONSENS_GROUP_COMMIT_MAX", default_value_t = konsens_server::DEFAULT_GROUP_COMMIT_MAX)]
    group_commit_max: usize,
    /// Threads running connections and documents; 0: one per core this
    /// process may use. With one, the server runs on a single-threaded runtime.
    #[arg(long, env = "KONSENS_WORKER_THREADS", default_value_t = konsens_server::DEFAULT_WORKER_THREADS)]
    worker_threads: usize,
    /// Seed an example process (once) before serving.
    #[arg(long)]
    demo: bool,
    /// Language of the example process's content (`--demo`).
    #[arg(long, value_enum, default_value_t = DemoLang::De)]
    demo_lang: DemoLang,
    /// The URL browsers reach the server at, e.g. https://konsens.example.org
    /// behind a TLS proxy: links start with it, only its origin may use the
    /// session cookie, and with https the cookie is Secure.
    #[arg(long, env = "KONSENS_PUBLIC_URL")]
    public_url: Option<konsens_server::PublicUrl>,
}

/// `--demo-lang`: the languages the example process is written in.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum DemoLang {
    /// German (the default).
    De,
    /// English.
    En,
}

impl From<DemoLang> for konsens_server::DemoLanguage {
    fn from(lang: DemoLang) -> Self {
        match lang {
            DemoLang::De => Self::German,
            DemoLang::En => Self::English,
        }
    }
}

impl Args {
    /// The flags as the server's settings (their defaults are `config.rs`'s).
    fn into_config(self) -> ServerConfig {
        let secs = std::time::Duration::from_secs;
        ServerConfig {
            open: self.open,
            max_frame_bytes: self.max_frame_bytes,
            idle_evict_after: secs(self.idle_evict_secs),
            coalesce_window: std::time::Duration::from_millis(self.coalesce_ms),
            handshake_timeout: secs(self.handshake_timeout_secs),
            header_timeout: secs(self.header_timeout_secs),
            request_timeout: secs(self.request_timeout_secs),
            group_commit_max: self.group_commit_max,
            public_url: self.public_url,
            limits: konsens_server::Limits {
                max_document_bytes: self.max_document_bytes,
                messages_per_second: self.messages_per_second,
                connections_per_token: self.connections_per_token,
                documents_per_hour: self.documents_per_hour,
                throttle_close_after: secs(self.throttle_close_secs),
                max_connections: self.max_connections,
                connections_per_address: self.connections_per_address,
                unknown_documents_per_minute: self.unknown_documents_per_minute,
                max_inflated_bytes: self.max_inflated_bytes,
                max_operations: self.max_operations,
            },
            database: self.database.map(konsens_server::DatabaseUrl),
            cluster: konsens_server::ClusterConfig {
                node_address: self.node_address,
                secret: self.cluster_secret,
                lease: std::time::Duration::from_millis(self.lease_ms.max(100)),
            },
            ..ServerConfig::new(self.data, self.listen)
        }
    }
}

#[derive(Debug, clap::Subcommand)]
enum Subcommand {
    /// Print a fresh administrator link for a data directory (server stopped).
    AdminToken {
        #[arg(long, env = "KONSENS_DATA", default_value = konsens_server::DEFAULT_DATA_DIR)]
        data: PathBuf,
        /// The PostgreSQL database instead of --data (the server may be running).
        #[arg(long, env = "KONSENS_DATABASE")]
        database: Option<String>,
        /// Base URL the link should start with.
        #[arg(long, env = "KONSENS_PUBLIC_URL", default_value = "http://127.0.0.1:8080")]
        base: String,
    },
    /// Move a single-node deployment into PostgreSQL: copy every document,
    /// sync state, the storage id, tokens, document processes, actor
    /// bindings and provenance, then load every document from both and
    /// compare heads (server stopped). Fails on any difference.
    Migrate {
        /// The store to copy: `sled DIR`.
        #[arg(long, num_args = 2, value_names = ["KIND", "DIR"], required = true)]
        from: Vec<String>,
        /// The PostgreSQL database to copy into (postgres://…); must hold no documents yet.
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let args = Args::parse();
    // Maintenance commands run on this thread, without the server's runtime.
    match &args.command {
        Some(Subcommand::AdminToken { data, database, base }) => {
            let config = ServerConfig { database: database.clone().map(konsens_server::DatabaseUrl), ..ServerConfig::new(data.clone(), args.listen) };
            let store = config.open_store().context("opening the store")?;
            let token = konsens_server::new_admin_token(&store).context("creating an administrator token")?;
            println!("open {}/join/{token}", base.trim_end_matches('/'));
            return Ok(());
        }
        Some(Subcommand::Migrate { from, to }) => return migrate(from, to),
        None => {}
    }
    let runtime = build_runtime(args.worker_threads).context("starting the async runtime")?;
    runtime.block_on(run(args))
}

/// The async runtime, with `threads` workers (0: one per core we may use).
/// One worker gains nothing from the work-stealing scheduler but pays for
/// it on every wake-up (atomics, the shared queues, parking through the
/// driver), so one worker means the single-threaded runtime: 140 -> 125 us
/// of server CPU per durable acknowledgement (konsens-bench `--scenarios
/// durable`, which pins the server to one core).
fn build_runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        n => n,
    };
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    builder.enable_all().build()
}

async fn run(args: Args) -> anyhow::Result<()> {
    raise_descriptor_limit();
    let demo = args.demo.then_some(args.demo_lang);
    let server = Server::bind(args.into_config()).await.context("starting konsens-server")?;
    if let Some(language) = demo {
        let id = server.seed_demo(language.into()).context("seeding the demo process")?;
        tracing::info!(url = %format!("/p/{id}"), "demo process ready");
    }
    server.run(shutdown_signal()).await.context("running konsens-server")?;
    Ok(())
}

/// `konsens-server migrate --from sled DIR --to postgres://…`.
fn migrate(from: &[String], to: &str) -> anyhow::Result<()> {
    let [kind, dir] = from else {
        anyhow::bail!("--from takes a kind and a directory: --from sled DIR");
    };
    anyhow::ensure!(kind == "sled", "--from {kind}: only `sled` can be migrated from");
    let dir = PathBuf::from(dir);
    anyhow::ensure!(dir.is_dir(), "--from sled {}: no such directory", dir.display());
    let source = konsens_store::ChunkStore::open(&dir).with_context(|| format!("opening {}", dir.display()))?;
    let target = konsens_store::ChunkStore::connect(to).context("connecting to the target database")?;
    println!("copying {} into {}", source.describe(), target.describe());
    let report = konsens_store::migrate::copy(&source, &target).context("copying")?;
    println!("copied {report}");
    let agree = konsens_store::migrate::verify(&source, &target).context("verifying the copy")?;
    println!("verified: all {agree} documents have the same heads in both stores; tokens, processes, bindings and provenance agree");
    Ok(())
}

/// Raise the soft limit on open descriptors to the hard limit: every
/// connection holds one, and a server that runs out cannot even accept the
/// connection that would be refused politely. The connection cap is clamped
/// to what is left (see `Server::bind`).
fn raise_descriptor_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_some() && limit.current != limit.maximum {
        let raised = rustix::process::Rlimit { current: limit.maximum, maximum: limit.maximum };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => tracing::debug!(from = ?limit.current, to = ?limit.maximum, "raised the open-file limit"),
            Err(e) => tracing::warn!(error = %e, current = ?limit.current, "cannot raise the open-file limit"),
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use super::build_runtime;
    use tokio::runtime::RuntimeFlavor;

    #[test]
    fn one_worker_is_the_single_threaded_runtime_more_are_the_multi_threaded() {
        let flavor = |threads| build_runtime(threads).expect("runtime").handle().runtime_flavor();
        assert_eq!(flavor(1), RuntimeFlavor::CurrentThread);
        assert_eq!(flavor(2), RuntimeFlavor::MultiThread);
        let expected = match std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get) {
            1 => RuntimeFlavor::CurrentThread,
            _ => RuntimeFlavor::MultiThread,
        };
        assert_eq!(flavor(0), expected, "0: one worker per core we may use");
    }
}
