//! # konsens-client
//!
//! A Rust peer of the automerge-repo protocol: documents live in a local sled
//! store (so everything works offline), a background dialer keeps a WebSocket
//! connection to a sync server with reconnect and backoff, and the [`Repo`]
//! offers create / find / change / subscribe.
//!
//! ```no_run
//! # async fn demo() -> Result<(), konsens_client::ClientError> {
//! use automerge::transaction::Transactable;
//! let repo = konsens_client::Repo::open(
//!     konsens_client::RepoConfig::new("./store").server("ws://127.0.0.1:8080/sync"),
//! )?;
//! let id = repo.create().await?;
//! repo.change(id, |doc| {
//!     doc.transact::<_, _, automerge::AutomergeError>(|tx| {
//!         tx.put(automerge::ROOT, "title", "Fair recruitment")?;
//!         Ok(())
//!     })
//!     .map(|_| ())
//!     .map_err(|f| f.error)
//! })
//! .await??;
//! repo.wait_synced(id).await?; // the server has it on disk
//! # Ok(()) }
//! ```

pub mod api;
mod dialer;
mod error;
mod repo;
pub mod workspace;

pub use error::ClientError;
pub use repo::{ConnectionStatus, RefusalReport, Repo, RepoConfig};
pub use workspace::{DocRef, Identity, Workspace};
