//! # konsens-model
pub mod access;
pub mod dossier;
pub mod richtext;
pub mod recovery;
pub mod report;
pub mod schema;
