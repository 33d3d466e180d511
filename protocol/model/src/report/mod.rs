//! The report of a process, as people publish it: a final report (the
//! adopted recommendations at their adopted wording) or an interim report
//! (every recommendation as it stands), in German or English.
//!
//! [`build`] computes one structured, language-resolved [`Report`] from the
//! documents; every format renders that one structure: Markdown and HTML
//! here ([`render_text`]), JSON as its serialisation, PDF and DOCX in
//! `konsens-publish`. Nothing in it names an internal id (no `automerge:`
//! URL, no participant id): what people read are titles, organisations and
//! dates.
//!
//! Rendering is a pure function of its inputs: the report date is passed in,
//! there is no locale and no hash map iteration, so the same documents and
//! date always give byte-identical output.
//!
//! Order: workshops in the process's order; within a workshop the
//! recommendations in the order `process.recommendations[workshop id]` lists
//! their URLs, then any not listed there by title (and URL). A recommendation
//! belongs to the workshop whose id (or title) its `workshop` field names;
//! those whose workshop is not in the process come last under "Other
//! recommendations".

mod content;
mod html;
mod labels;
mod markdown;
mod options;

pub use content::{AmendmentLine, Position, RecommendationSection, Report, RoundDissent, RoundSection, StatusCounts, WorkshopSection, build};
pub use labels::{Labels, format_date, iso_date};
pub use options::{Language, REPORT_SCHEMA, ReportError, ReportFormat, ReportKind, ReportOptions};

/// Render a report as Markdown, HTML or JSON. PDF and DOCX are
/// `konsens-publish`'s; asking for them here is [`ReportError::NotText`].
pub fn render_text(report: &Report, format: ReportFormat) -> Result<String, ReportError> {
    match format {
        ReportFormat::Markdown => Ok(markdown::render(report)),
        ReportFormat::Html => Ok(html::render(report)),
        ReportFormat::Json => Ok(report.to_json()),
        ReportFormat::Pdf | ReportFormat::Docx => Err(ReportError::NotText(format)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print() {
        for format in ReportFormat::ALL {
            assert_eq!(format.as_str().parse::<ReportFormat>(), Ok(*format));
        }
        assert_eq!("md".parse::<ReportFormat>(), Ok(ReportFormat::Markdown));
        assert_eq!("odt".parse::<ReportFormat>(), Err(ReportError::UnknownFormat("odt".into())));
        assert_eq!("fr".parse::<Language>(), Err(ReportError::UnknownLanguage("fr".into())));
        assert_eq!("draft".parse::<ReportKind>(), Err(ReportError::UnknownKind("draft".into())));
        assert_eq!(Language::default(), Language::De);
        assert_eq!(ReportKind::default(), ReportKind::Final);
    }
}
