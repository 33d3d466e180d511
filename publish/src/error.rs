//! The crate's one error type.

use konsens_model::report::{ReportError, ReportFormat};
use thiserror::Error;

/// What can go wrong publishing a report.
#[derive(Debug, Error)]
pub enum PublishError {
    /// A text format that the model refused (it renders all of them; kept
    /// for completeness of the model's error).
    #[error(transparent)]
    Report(#[from] ReportError),
    /// The template did not compile or lay out: a bug in `template.typ`,
    /// never the report's text (which is data to the template).
    #[error("typesetting the PDF failed: {0}")]
    Typeset(String),
    /// Writing the PDF or DOCX container failed.
    #[error("writing the {format} failed: {reason}")]
    Write { format: ReportFormat, reason: String },
}
