//! Server settings, and every default in one place: the binary's flags
//! (`main.rs`) take their defaults from the constants here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default of [`ServerConfig::data_dir`].
pub const DEFAULT_DATA_DIR: &str = "./konsens-data";

/// Default of [`ServerConfig::listen`].
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Default of [`ServerConfig::idle_evict_after`], in seconds.
pub const DEFAULT_IDLE_EVICT_SECS: u64 = 60;

/// Default of [`ClusterConfig::lease`], in milliseconds. A dead owner's
/// documents move once its lease ran out: at once for nodes whose link to it
/// broke (a crash), within another third of it for a frozen owner (noticed
/// by the next look at the lease table); 3 s keeps both under 5 s.
pub const DEFAULT_LEASE_MS: u64 = 3000;

/// Default of [`ServerConfig::outbound_queue`].
pub const DEFAULT_OUTBOUND_QUEUE: usize = 4096;

/// Default of [`ServerConfig::document_queue`].
pub const DEFAULT_DOCUMENT_QUEUE: usize = 1024;

/// Default of [`ServerConfig::group_commit_max`]: the store's upper bound.
pub const DEFAULT_GROUP_COMMIT_MAX: usize = konsens_store::MAX_GROUP;

/// Default of the binary's `--worker-threads`: 0, one worker per core the
/// process may use (its CPU affinity), as tokio would choose.
pub const DEFAULT_WORKER_THREADS: usize = 0;

/// Default of [`Limits::max_document_bytes`].
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 64 * 1024 * 1024;

/// Default of [`Limits::messages_per_second`].
pub const DEFAULT_MESSAGES_PER_SECOND: u32 = 200;

/// Default of [`Limits::connections_per_token`].
pub const DEFAULT_CONNECTIONS_PER_TOKEN: usize = 16;

/// Default of [`Limits::documents_per_hour`].
pub const DEFAULT_DOCUMENTS_PER_HOUR: usize = 200;

/// Default of [`ServerConfig::coalesce_window`], in milliseconds.
pub const DEFAULT_COALESCE_MS: u64 = 50;

/// Documents with fewer connections never wait for a round: with one writer
/// and one reader there is nothing to fan out, and the writer is waiting
/// for its acknowledgement.
pub const COALESCE_MIN_PEERS: usize = 3;

/// Default of [`Limits::max_connections`]: open TCP connections in all. Well
/// below the descriptor limit the server raises itself to at start (sled and
/// the runtime need some), and clamped to it when that is lower.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;

/// Default of [`Limits::connections_per_address`]. Enough for a room of a
/// hundred participants behind one NAT (a browser holds its WebSocket and a
/// few short-lived requests); behind a reverse proxy every connection comes
/// from the proxy, so raise it there or set 0 (no limit) and cap at the proxy.
pub const DEFAULT_CONNECTIONS_PER_ADDRESS: usize = 512;

/// Default of [`ServerConfig::header_timeout`], in seconds.
pub const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 10;

/// Default of [`ServerConfig::handshake_timeout`], in seconds.
pub const DEFAULT_HANDSHAKE_TIMEOUT_SECS: u64 = 10;

/// Default of [`ServerConfig::request_timeout`], in seconds.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 30;

/// Default of [`Limits::unknown_documents_per_minute`].
pub const DEFAULT_UNKNOWN_DOCUMENTS_PER_MINUTE: u32 = 600;

/// Default of [`Limits::max_inflated_bytes`]: what the frame limit lets in
/// uncompressed, so only compression's amplification is refused.
pub const DEFAULT_MAX_INFLATED_BYTES: usize = konsens_sync::DEFAULT_MAX_FRAME_BYTES;

/// Default of [`Limits::max_operations`]. Applying a million operations takes
/// seconds of CPU; a whole editing history the size of the Automerge paper's
/// (260,000 operations) fits four times over.
pub const DEFAULT_MAX_OPERATIONS: usize = 1_000_000;

/// The language of the `--demo` process's content (`--demo-lang`). German
/// by default: the processes konsens serves are German-speaking.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DemoLanguage {
    #[default]
    German,
    English,
}

/// Everything the server needs to know to run.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where sled keeps the documents (unless [`ServerConfig::database`] is set).
    pub data_dir: PathBuf,
    /// A PostgreSQL database (`postgres://…`) to keep documents, sync
    /// states, tokens, actor bindings and provenance in, instead of sled.
    pub database: Option<DatabaseUrl>,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Let anyone who reaches the port read and write every document.
    pub open: bool,
    /// Largest WebSocket message accepted, in bytes.
    pub max_frame_bytes: usize,
    /// A loaded document with no connected peer is evicted after this long.
    pub idle_evict_after: Duration,
    /// Frames queued for one connection before it counts as too slow and is closed.
    pub outbound_queue: usize,
    /// Commands queued for one document before senders wait (backpressure).
    pub document_queue: usize,
    /// Most writes the group-commit writer takes into one flush (at most
    /// [`konsens_store::MAX_GROUP`]); 1 turns group commit off, to measure what it buys.
    pub group_commit_max: usize,
    /// Shortest time between two sync rounds of one document that is shared
    /// by [`COALESCE_MIN_PEERS`] or more connections. Keystrokes that arrive
    /// within it are applied, flushed and fanned out together: one load and
    /// one message per peer instead of one per keystroke. Zero turns it off.
    pub coalesce_window: Duration,
    /// How long a new WebSocket may take to send `join` after its upgrade.
    pub handshake_timeout: Duration,
    /// How long a client may take to send a request's head (line and
    /// headers), and how long an idle keep-alive connection stays open.
    pub header_timeout: Duration,
    /// How long one HTTP request (other than the WebSocket it upgrades to)
    /// may take, reading its body included.
    pub request_timeout: Duration,
    /// Abuse limits; each breach is logged and answered with a clear error.
    pub limits: Limits,
    /// The address browsers reach the server at (`--public-url`), when it is
    /// not what the listener sees: behind a TLS-terminating proxy, say.
    /// Invitation links and the administrator link start with it, only its
    /// origin passes the same-origin checks, and with `https` the session
    /// cookie is `Secure`. `None`: links are built from the request's `Host`
    /// (always `http://`).
    pub public_url: Option<PublicUrl>,
    /// Several nodes on one PostgreSQL (see `cluster/`).
    pub cluster: ClusterConfig,
}

/// How this node takes part in a cluster. Only with `--database`: every node
/// on one PostgreSQL claims a lease per document it loads, whether or not
/// the others can reach it.
#[derive(Clone, Default)]
pub struct ClusterConfig {
    /// `ws://host:port` the other nodes dial to relay to this one
    /// (`--node-address`). `None`: this node relays to others but nobody
    /// relays to it, so it must not own documents others use: set it.
    pub node_address: Option<String>,
    /// Shared by all nodes; a node-to-node link presents it (`--cluster-secret`).
    pub secret: Option<String>,
    /// How long a lease lasts unless renewed (renewed every third of it): an
    /// owner that died is replaced after at most this long.
    pub lease: Duration,
}

impl ClusterConfig {
    /// A node of a cluster needs both an address the others can dial and the
    /// secret they present: with only one, documents it owns would stall the
    /// other nodes' clients (nobody can relay to it), so it does not start.
    pub fn check(&self, shared_database: bool) -> Result<(), String> {
        match (shared_database, &self.node_address, &self.secret) {
            (true, Some(_), None) => Err("--node-address without --cluster-secret: other nodes could not relay to this one; set both (or neither, for a single node)".into()),
            (true, None, Some(_)) => Err("--cluster-secret without --node-address: other nodes could not reach this one to relay to the documents it owns; set --node-address ws://HOST:PORT".into()),
            (false, Some(_), _) | (false, _, Some(_)) => Err("--node-address and --cluster-secret need --database: nodes of a cluster share one PostgreSQL database".into()),
            _ => Ok(()),
        }
    }
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("node_address", &self.node_address)
            .field("secret", &self.secret.as_ref().map(|_| "…"))
            .field("lease", &self.lease)
            .finish()
    }
}

/// `--database`: a PostgreSQL URL. It may hold a password, so `Debug`
/// does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(pub String);

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseUrl(..)")
    }
}

/// The server's public base URL: `http` or `https`, a host and an optional
/// port, nothing else. No path, because the web app and the links use
/// absolute paths (`/api`, `/sync`, `/join`) and would miss a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    https: bool,
    /// `host` or `host:port`, lower-case, as browsers serialise it in `Origin`.
    authority: String,
}

/// Why a `--public-url` was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublicUrlError {
    /// Not `http://…` or `https://…`.
    #[error("the public URL must start with http:// or https://")]
    Scheme,
    /// No host, user information, or characters a host cannot have.
    #[error("the public URL needs a host (and optional port), without user information")]
    Host,
    /// A path, query or fragment after the host.
    #[error("the public URL must be the server's root: no path, query or fragment")]
    Path,
}

impl PublicUrl {
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// `https://host:port`, as a browser sends it in `Origin`.
    pub fn origin(&self) -> String {
        format!("{}://{}", if self.https { "https" } else { "http" }, self.authority)
    }

    /// `host:port`, as in a `Host` header.
    pub fn authority(&self) -> &str {
        &self.authority
    }
}

impl std::fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.origin())
    }
}

impl std::str::FromStr for PublicUrl {
    type Err = PublicUrlError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (https, rest) = if let Some(rest) = strip_prefix_ignore_case(text, "https://") {
            (true, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(text, "http://") {
            (false, rest)
        } else {
            return Err(PublicUrlError::Scheme);
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(PublicUrlError::Path);
        }
        // The authority ends up in headers (CSP, Location) and links: allow
        // only what a host name, an IPv4 or bracketed IPv6 address and a port
        // are made of.
        let host_chars = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']');
        if rest.is_empty() || rest.starts_with(':') || !rest.chars().all(host_chars) {
            return Err(PublicUrlError::Host);
        }
        Ok(Self { https, authority: rest.to_ascii_lowercase() })
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}

/// Limits that keep one client from slowing everybody else.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest document, in stored bytes, that accepts more changes.
    pub max_document_bytes: usize,
    /// Sync and ephemeral messages one connection may send per second (burst: twice that).
    pub messages_per_second: u32,
    /// Open connections per token.
    pub connections_per_token: usize,
    /// New documents one member may create per hour.
    pub documents_per_hour: usize,
    /// A connection over its message rate is slowed down (its socket is not
    /// read until the rate allows); it is closed only after being slowed
    /// down without a break for this long.
    pub throttle_close_after: Duration,
    /// Open TCP connections in all; more are answered 503 and closed.
    pub max_connections: usize,
    /// Open TCP connections from one address (IPv6: one /64); more are
    /// answered 503 and closed. 0: no limit.
    pub connections_per_address: usize,
    /// `sync`s and `request`s a token may send per minute for documents it
    /// cannot read or that do not exist (a minute's worth at once); beyond,
    /// its connections are slowed down. 0: no limit.
    pub unknown_documents_per_minute: u32,
    /// Bytes the changes of one sync message may inflate to.
    pub max_inflated_bytes: usize,
    /// Operations the changes of one sync message may hold.
    pub max_operations: usize,
}

impl Limits {
    /// What one sync message may expand to.
    pub fn read_limits(&self) -> konsens_sync::limits::ReadLimits {
        konsens_sync::limits::ReadLimits { max_inflated_bytes: self.max_inflated_bytes, max_operations: self.max_operations }
    }
}

/// Default of [`Limits::throttle_close_after`], in seconds.
pub const DEFAULT_THROTTLE_CLOSE_SECS: u64 = 30;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_document_bytes: DEFAULT_MAX_DOCUMENT_BYTES,
            messages_per_second: DEFAULT_MESSAGES_PER_SECOND,
            connections_per_token: DEFAULT_CONNECTIONS_PER_TOKEN,
            documents_per_hour: DEFAULT_DOCUMENTS_PER_HOUR,
            throttle_close_after: Duration::from_secs(DEFAULT_THROTTLE_CLOSE_SECS),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            connections_per_address: DEFAULT_CONNECTIONS_PER_ADDRESS,
            unknown_documents_per_minute: DEFAULT_UNKNOWN_DOCUMENTS_PER_MINUTE,
            max_inflated_bytes: DEFAULT_MAX_INFLATED_BYTES,
            max_operations: DEFAULT_MAX_OPERATIONS,
        }
    }
}

impl ServerConfig {
    /// Open the configured store: PostgreSQL when [`ServerConfig::database`]
    /// is set, else sled in [`ServerConfig::data_dir`] (created if missing).
    /// Blocking.
    pub fn open_store(&self) -> Result<konsens_store::ChunkStore, crate::error::ServerError> {
        match &self.database {
            Some(url) => Ok(konsens_store::ChunkStore::connect(&url.0)?),
            None => {
                std::fs::create_dir_all(&self.data_dir)?;
                Ok(konsens_store::ChunkStore::open(&self.data_dir)?)
            }
        }
    }

    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Self {
        Self {
            data_dir,
            database: None,
            listen,
            open: false,
            max_frame_bytes: konsens_sync::DEFAULT_MAX_FRAME_BYTES,
            idle_evict_after: Duration::from_secs(DEFAULT_IDLE_EVICT_SECS),
            outbound_queue: DEFAULT_OUTBOUND_QUEUE,
            document_queue: DEFAULT_DOCUMENT_QUEUE,
            group_commit_max: DEFAULT_GROUP_COMMIT_MAX,
            coalesce_window: Duration::from_millis(DEFAULT_COALESCE_MS),
            handshake_timeout: Duration::from_secs(DEFAULT_HANDSHAKE_TIMEOUT_SECS),
            header_timeout: Duration::from_secs(DEFAULT_HEADER_TIMEOUT_SECS),
            request_timeout: Duration::from_secs(DEFAULT_REQUEST_TIMEOUT_SECS),
            limits: Limits::default(),
            public_url: None,
            cluster: ClusterConfig { node_address: None, secret: None, lease: Duration::from_millis(DEFAULT_LEASE_MS) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls() {
        let url: PublicUrl = "HTTPS://Konsens.Example.org/".parse().expect("valid");
        assert!(url.is_https());
        assert_eq!(url.origin(), "https://konsens.example.org");
        let url: PublicUrl = "http://[::1]:8080".parse().expect("valid");
        assert_eq!((url.is_https(), url.authority()), (false, "[::1]:8080"));
        assert_eq!("ftp://x".parse::<PublicUrl>(), Err(PublicUrlError::Scheme));
        assert_eq!("konsens.example".parse::<PublicUrl>(), Err(PublicUrlError::Scheme));
        assert_eq!("https://x.example/konsens".parse::<PublicUrl>(), Err(PublicUrlError::Path));
        assert_eq!("https://x.example?a=b".parse::<PublicUrl>(), Err(PublicUrlError::Path));
        assert_eq!("https://".parse::<PublicUrl>(), Err(PublicUrlError::Host));
        assert_eq!("https://user@x.example".parse::<PublicUrl>(), Err(PublicUrlError::Host));
        assert_eq!("https://x.example;script-src *".parse::<PublicUrl>(), Err(PublicUrlError::Host));
    }
}
