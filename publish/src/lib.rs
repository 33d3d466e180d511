//! # konsens-publish
//!
//! The report as people publish it: PDF and DOCX, besides the text formats
//! that `konsens-model` renders. Both take the model's structured
//! [`Report`], so every format says the same words.
//!
//! - PDF: typeset in this process by the Typst engine, a library here (no
//!   browser, no external program or service). The template
//!   (`template.typ`) reads the report as JSON from a virtual file and lays
//!   it out; no text of the report is ever spliced into Typst markup, so a
//!   title like `#panic()` stays a title. Fonts are Typst's embedded ones.
//! - DOCX: written with `docx-rs`, headings and paragraphs.
//!
//! **Architecture invariant:** no IO. Bytes in memory in, bytes out; the
//! server and the CLI write them where they go.

mod docx;
mod error;
mod pdf;

pub use error::PublishError;
use konsens_model::report::{self, Report, ReportFormat};

/// Render `report` in any format: Markdown, HTML and JSON by the model, PDF
/// and DOCX here.
pub fn render(report: &Report, format: ReportFormat) -> Result<Vec<u8>, PublishError> {
    match format {
        ReportFormat::Pdf => pdf::render(report),
        ReportFormat::Docx => docx::render(report),
        text => Ok(report::render_text(report, text)?.into_bytes()),
    }
}
