//! Server settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
    /// How long a new connection may take to send `join`.
    pub handshake_timeout: Duration,
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
            handshake_timeout: Duration::from_secs(30),
        }
    }
}
