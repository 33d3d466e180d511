//! The owner of one loaded document and its parts, one job a module:
//!
//! - `owner`: the task's loop: loads the document, takes everything queued
//!   for it as one batch, hands it to the [`konsens_sync::DocEngine`], leaves
//!   when idle;
//! - `admission`: may a message's changes reach the engine (access rules,
//!   limits, refusals remembered), and who delivered them (provenance);
//! - `open_index`: with `--open`, which process a new document belongs to;
//! - `coalesce`: which inputs wait for the next round of a shared document;
//! - `effects`: carrying out what the engine asks for;
//! - `peers`: the connections the document talks to;
//! - `context`: what an owner is given (store, writer, auth, settings), so it
//!   needs no back-reference to the hub;
//! - `creation_limit`: how many documents a member may create an hour.

mod admission;
mod coalesce;
mod command;
mod context;
mod creation_limit;
mod effects;
mod open_index;
mod owner;
mod peers;

pub(crate) use command::DocCommand;
pub(crate) use context::DocumentContext;
pub(crate) use creation_limit::CreationLimit;
pub(crate) use owner::{DocumentOwner, Exit};
