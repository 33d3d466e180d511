//! What a report request chooses (format, language, kind, date) and what it
//! can get wrong: the types every part of the report shares.


use thiserror::Error;

use crate::names::closed_names;
use crate::schema::Process;

/// Schema tag of the JSON report.
pub const REPORT_SCHEMA: &str = "konsens/report@2";

/// What a report request can get wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReportError {
    #[error("unknown report format {0:?}; formats are markdown, html, json, pdf, docx")]
    UnknownFormat(String),
    #[error("unknown report language {0:?}; languages are de, en")]
    UnknownLanguage(String),
    #[error("unknown report kind {0:?}; kinds are final, interim")]
    UnknownKind(String),
    #[error("{0} is not a text format; konsens-publish renders it")]
    NotText(ReportFormat),
}

closed_names!(
    /// The output format of a report.
    ReportFormat, ReportError::UnknownFormat, {
        Markdown => "markdown" | "md",
        Html => "html",
        Json => "json",
        Pdf => "pdf",
        Docx => "docx",
    }
);

closed_names!(
    /// The language a report is written in.
    Language, ReportError::UnknownLanguage, {
        De => "de",
        En => "en",
    }
);

closed_names!(
    /// Which report: the final one (adopted recommendations only) or an
    /// interim one (every recommendation with its status).
    ReportKind, ReportError::UnknownKind, {
        Final => "final",
        Interim => "interim",
    }
);

impl ReportFormat {
    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            ReportFormat::Markdown => "md",
            ReportFormat::Html => "html",
            ReportFormat::Json => "json",
            ReportFormat::Pdf => "pdf",
            ReportFormat::Docx => "docx",
        }
    }

    /// The media type for a `Content-Type` header.
    pub fn media_type(self) -> &'static str {
        match self {
            ReportFormat::Markdown => "text/markdown; charset=utf-8",
            ReportFormat::Html => "text/html; charset=utf-8",
            ReportFormat::Json => "application/json",
            ReportFormat::Pdf => "application/pdf",
            ReportFormat::Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        }
    }
}

impl Default for Language {
    /// Our processes are German-speaking.
    fn default() -> Self {
        Language::De
    }
}

impl Language {
    /// The language a process publishes in: its `language` field if it names
    /// one we write, German otherwise (older documents have none).
    pub fn of(process: &Process) -> Language {
        process.language.as_ref().and_then(|l| l.0.trim().to_ascii_lowercase().parse().ok()).unwrap_or_default()
    }
}

impl Default for ReportKind {
    fn default() -> Self {
        ReportKind::Final
    }
}

/// What to build: which report, in which language, dated when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportOptions {
    pub kind: ReportKind,
    pub language: Language,
    /// The report's date, milliseconds since the Unix epoch (the caller's
    /// "now"; this crate reads no clock).
    pub date: i64,
}
