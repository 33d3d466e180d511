//! # konsens-model
pub mod access;
pub mod api;
pub mod dossier;
pub mod markdown;
pub mod recovery;
pub mod report;
pub mod schema;
