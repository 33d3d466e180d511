//! # konsens-client
//!
//! A Rust peer of the automerge-repo protocol: documents live in a local sled
//! store (so everything works offline), a background dialer keeps a WebSocket
//! connection to a sync server with reconnect and backoff, and the [`Repo`]
//! offers create / find / change / subscribe. On top, the [`Workspace`] is
//! what the `konsens` CLI does: processes, recommendations, drafts, the
//! sync-everything walk, and the server's JSON API ([`api`]).
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
//!
//! Modules, leaves first: `clock` and `status` (shared by all), `error`,
//! `dialer` (one WebSocket; reports events on a channel it owns),
//! `repo` (owns the documents; drives the dialer), `api` (blocking HTTP
//! client of the JSON API), `workspace`, and two more `impl Workspace` blocks:
//! `sync_all` and `membership`.

mod amendments;
pub mod api;
mod clock;
pub mod consent;
mod dialer;
mod error;
mod membership;
mod repo;
mod status;
pub mod sync_all;
pub mod workspace;

pub use clock::now_millis;
pub use error::ClientError;
pub use repo::{RefusalReport, Repo, RepoConfig};
pub use status::ConnectionStatus;
pub use sync_all::{SyncProgress, SyncSummary};
pub use workspace::{DocRef, Identity, Workspace};
