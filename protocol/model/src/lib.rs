//! # konsens-model
pub mod access;
pub mod dossier;
pub mod markdown;
pub mod recovery;
pub mod report;
pub mod schema;
