//! Server settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default of [`ServerConfig::coalesce_window`], in milliseconds.
pub const DEFAULT_COALESCE_MS: u64 = 50;

/// Documents with fewer connections never wait for a round: with one writer
/// and one reader there is nothing to fan out, and the writer is waiting
/// for its acknowledgement.
pub const COALESCE_MIN_PEERS: usize = 3;

/// Everything the server needs to know to run.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where sled keeps the documents.
    pub data_dir: PathBuf,
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
    /// Shortest time between two sync rounds of one document that is shared
    /// by [`COALESCE_MIN_PEERS`] or more connections. Keystrokes that arrive
    /// within it are applied, flushed and fanned out together: one load and
    /// one message per peer instead of one per keystroke. Zero turns it off.
    pub coalesce_window: Duration,
    /// How long a new connection may take to send `join`.
    pub handshake_timeout: Duration,
    /// Abuse limits; each breach is logged and answered with a clear error.
    pub limits: Limits,
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
}

/// Default of [`Limits::throttle_close_after`], in seconds.
pub const DEFAULT_THROTTLE_CLOSE_SECS: u64 = 30;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_document_bytes: 64 * 1024 * 1024,
            messages_per_second: 200,
            connections_per_token: 16,
            documents_per_hour: 200,
            throttle_close_after: Duration::from_secs(DEFAULT_THROTTLE_CLOSE_SECS),
        }
    }
}

impl ServerConfig {
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Self {
        Self {
            data_dir,
            listen,
            open: false,
            max_frame_bytes: konsens_protocol::DEFAULT_MAX_FRAME_BYTES,
            idle_evict_after: Duration::from_secs(60),
            outbound_queue: 4096,
            document_queue: 1024,
            coalesce_window: Duration::from_millis(DEFAULT_COALESCE_MS),
            handshake_timeout: Duration::from_secs(30),
            limits: Limits::default(),
        }
    }
}
