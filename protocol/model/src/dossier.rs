//! Import an existing dossier: a Markdown document with one recommendation
//! per `##` section.
//!
//! ```markdown
//! # Dossier title (ignored, returned by parse_with_preamble)
//!
//! Introductory text (ignored, returned by parse_with_preamble).
//!
//! ## Recognise foreign qualifications within three months
//!
//! ### Problem
//! …
//! ### Recommendation
//! …
//! ### Rationale
//! …
//! ```
//!
//! Inside a section, `###` subsections named Problem / Recommendation /
//! Rationale (German: Problem / Empfehlung / Begründung; any case, a trailing
//! colon allowed) fill those fields. Text before the first `###`, and a
//! section without any, is recommendation text. A `###` with another name
//! stays, heading included, in the field it appears in; so do `####` and
//! deeper headings. Field contents are returned as the Markdown source they
//! were written in (trimmed), not re-rendered.
//!
//! Headings are found by a CommonMark parser, so a `## ` line inside a code
//! block or a list is not a section; setext headings (`Title` over `---`)
//! count as `##`.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use thiserror::Error;

/// One recommendation of a dossier; the texts are Markdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DossierEntry {
    pub title: String,
    pub problem: Option<String>,
    pub recommendation: String,
    pub rationale: Option<String>,
}

/// A whole dossier: what precedes the first `##` as well as the entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dossier {
    /// The text of the first `#` heading, if any.
    pub title: Option<String>,
    /// Markdown between the start (without `#` headings) and the first `##`, trimmed.
    pub preamble: String,
    pub entries: Vec<DossierEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DossierError {
    #[error(
        "the dossier contains no recommendations: start each one with a level-2 heading (`## Title`)"
    )]
    NoRecommendations,
    #[error("the level-2 heading on line {line} has no text; it must hold the recommendation's title")]
    EmptyTitle { line: usize },
    #[error(
        "recommendation {title:?} (line {line}) has no recommendation text: write it under the heading or under `### Recommendation`"
    )]
    MissingRecommendation { title: String, line: usize },
}

/// Parse a dossier into its recommendations.
pub fn parse(markdown: &str) -> Result<Vec<DossierEntry>, DossierError> {
    parse_with_preamble(markdown).map(|d| d.entries)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Problem,
    Recommendation,
    Rationale,
}

fn field_named(heading: &str) -> Option<Field> {
    let name = heading.trim().trim_end_matches(':').trim().to_lowercase();
    match name.as_str() {
        "problem" => Some(Field::Problem),
        "recommendation" | "empfehlung" => Some(Field::Recommendation),
        "rationale" | "begründung" | "begruendung" => Some(Field::Rationale),
        _ => None,
    }
}

/// A heading that structures the dossier, with its byte range in the source.
#[derive(Debug)]
struct Heading {
    level: HeadingLevel,
    text: String,
    start: usize,
    end: usize,
}

/// The `#`, `##` and `###` headings outside of any container (quote, list).
fn structural_headings(markdown: &str) -> Vec<Heading> {
    let mut headings = Vec::new();
    let mut depth = 0usize;
    let mut current: Option<Heading> = None;
    for (event, range) in Parser::new_ext(markdown, Options::empty()).into_offset_iter() {
        match event {
            Event::Start(Tag::BlockQuote(_) | Tag::List(_) | Tag::Item | Tag::FootnoteDefinition(_)) => depth += 1,
            Event::End(TagEnd::BlockQuote(_) | TagEnd::List(_) | TagEnd::Item | TagEnd::FootnoteDefinition) => {
                depth = depth.saturating_sub(1)
            }
            Event::Start(Tag::Heading { level, .. })
                if depth == 0 && matches!(level, HeadingLevel::H1 | HeadingLevel::H2 | HeadingLevel::H3) =>
            {
                current = Some(Heading { level, text: String::new(), start: range.start, end: range.end });
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some(mut heading) = current.take() {
                    heading.end = heading.end.max(range.end);
                    heading.text = heading.text.split_whitespace().collect::<Vec<_>>().join(" ");
                    headings.push(heading);
                }
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some(heading) = current.as_mut() {
                    heading.text.push_str(&t);
                }
            }
            Event::SoftBreak | Event::HardBreak => {
                if let Some(heading) = current.as_mut() {
                    heading.text.push(' ');
                }
            }
            _ => {}
        }
    }
    headings
}

fn line_of(markdown: &str, byte: usize) -> usize {
    markdown.get(..byte).map_or(0, |s| s.matches('\n').count()) + 1
}

fn slice(markdown: &str, start: usize, end: usize) -> &str {
    markdown.get(start..end).unwrap_or("").trim()
}

fn append(target: &mut String, text: &str) {
    if text.is_empty() {
        return;
    }
    if !target.is_empty() {
        target.push_str("\n\n");
    }
    target.push_str(text);
}

struct Section {
    title: String,
    line: usize,
    problem: String,
    recommendation: String,
    rationale: String,
}

impl Section {
    fn field(&mut self, field: Field) -> &mut String {
        match field {
            Field::Problem => &mut self.problem,
            Field::Recommendation => &mut self.recommendation,
            Field::Rationale => &mut self.rationale,
        }
    }

    fn finish(self) -> Result<DossierEntry, DossierError> {
        if self.recommendation.is_empty() {
            return Err(DossierError::MissingRecommendation { title: self.title, line: self.line });
        }
        let some = |s: String| (!s.is_empty()).then_some(s);
        Ok(DossierEntry {
            title: self.title,
            problem: some(self.problem),
            recommendation: self.recommendation,
            rationale: some(self.rationale),
        })
    }
}

/// Parse a dossier, keeping its title and preamble too.
pub fn parse_with_preamble(markdown: &str) -> Result<Dossier, DossierError> {
    let headings = structural_headings(markdown);
    let mut title = None;
    let mut preamble = String::new();
    let mut entries = Vec::new();
    let mut section: Option<Section> = None;
    // Where the text not yet assigned starts, and which field it goes to.
    let mut cursor = 0usize;
    let mut field = Field::Recommendation;
    // A `###` with an unknown name stays in the text: cut before the next
    // structural heading only.
    for heading in headings.iter() {
        let is_field = heading.level == HeadingLevel::H3 && field_named(&heading.text).is_some();
        let structural = heading.level != HeadingLevel::H3 || (section.is_some() && is_field);
        if !structural {
            continue;
        }
        let text = slice(markdown, cursor, heading.start);
        match section.as_mut() {
            Some(s) => append(s.field(field), text),
            None => append(&mut preamble, text),
        }
        cursor = heading.end;
        match heading.level {
            HeadingLevel::H1 => {
                // Dossier titles are not content.
                if title.is_none() && section.is_none() {
                    title = Some(heading.text.clone());
                }
            }
            HeadingLevel::H2 => {
                if let Some(done) = section.take() {
                    entries.push(done.finish()?);
                }
                let line = line_of(markdown, heading.start);
                if heading.text.is_empty() {
                    return Err(DossierError::EmptyTitle { line });
                }
                section = Some(Section {
                    title: heading.text.clone(),
                    line,
                    problem: String::new(),
                    recommendation: String::new(),
                    rationale: String::new(),
                });
                field = Field::Recommendation;
            }
            _ => {
                if let Some(f) = field_named(&heading.text) {
                    field = f;
                }
            }
        }
    }
    let rest = slice(markdown, cursor, markdown.len());
    match section {
        Some(mut s) => {
            append(s.field(field), rest);
            entries.push(s.finish()?);
        }
        None => append(&mut preamble, rest),
    }
    if entries.is_empty() {
        return Err(DossierError::NoRecommendations);
    }
    Ok(Dossier { title, preamble, entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_and_subsections_fill_the_fields() {
        let md = "# Dossier\n\nIntro *text*.\n\n## First\n\nLead text.\n\n### Problem\n\nP1.\n\n### Recommendation:\n\nR1.\n\n### rationale\n\nWhy 1.\n\n## Second\n\nOnly recommendation text.\n";
        let dossier = parse_with_preamble(md).expect("parses");
        assert_eq!(dossier.title.as_deref(), Some("Dossier"));
        assert_eq!(dossier.preamble, "Intro *text*.");
        assert_eq!(
            dossier.entries,
            vec![
                DossierEntry {
                    title: "First".into(),
                    problem: Some("P1.".into()),
                    recommendation: "Lead text.\n\nR1.".into(),
                    rationale: Some("Why 1.".into()),
                },
                DossierEntry {
                    title: "Second".into(),
                    problem: None,
                    recommendation: "Only recommendation text.".into(),
                    rationale: None,
                },
            ]
        );
    }

    #[test]
    fn german_names_and_unknown_subsections() {
        let md = "## Anerkennung *beschleunigen*\n\n### PROBLEM\n\nDauert zu lange.\n\n### Empfehlung\n\n- Frist: drei Monate\n- Digital\n\n### Kosten\n\nGering.\n\n### Begründung\n\nFachkräfte fehlen.\n";
        let entries = parse(md).expect("parses");
        assert_eq!(entries.len(), 1);
        let e = &entries[0];
        assert_eq!(e.title, "Anerkennung beschleunigen");
        assert_eq!(e.problem.as_deref(), Some("Dauert zu lange."));
        assert_eq!(e.recommendation, "- Frist: drei Monate\n- Digital\n\n### Kosten\n\nGering.");
        assert_eq!(e.rationale.as_deref(), Some("Fachkräfte fehlen."));
    }

    #[test]
    fn headings_in_code_and_lists_are_not_sections() {
        let md = "## Real\n\n```\n## not a section\n```\n\n- ## not one either\n";
        let entries = parse(md).expect("parses");
        assert_eq!(entries.len(), 1);
        assert!(entries[0].recommendation.contains("## not a section"));
    }

    #[test]
    fn errors_are_clear() {
        assert_eq!(parse(""), Err(DossierError::NoRecommendations));
        assert_eq!(parse("# Title\n\nJust text.\n### Problem\n"), Err(DossierError::NoRecommendations));
        assert!(parse("anything").expect_err("no sections").to_string().contains("## Title"));
        assert_eq!(parse("## A\n\ntext\n\n##\n\nmore\n"), Err(DossierError::EmptyTitle { line: 5 }));
        assert_eq!(
            parse("## A\n\n### Problem\n\nOnly a problem.\n"),
            Err(DossierError::MissingRecommendation { title: "A".into(), line: 1 })
        );
    }

    #[test]
    fn setext_and_crlf() {
        let md = "Title\r\n-----\r\n\r\nText.\r\n";
        let entries = parse(md).expect("parses");
        assert_eq!(entries[0].title, "Title");
        assert_eq!(entries[0].recommendation, "Text.");
    }

    #[test]
    fn sample_dossier_parses() {
        let md = include_str!("../tests/fixtures/dossier.md");
        let dossier = parse_with_preamble(md).expect("sample dossier parses");
        assert_eq!(dossier.entries.len(), 4);
        for e in &dossier.entries {
            assert!(e.problem.is_some() && e.rationale.is_some(), "{} has all fields", e.title);
            // Every field is valid input for the rich-text fields.
            assert!(!crate::richtext::to_spans(&e.recommendation).is_empty());
        }
    }

    #[test]
    fn nothing_panics() {
        for md in ["##", "###", "## a\n###", "#\n##\n###\n", "## é\n\n### Begründung", "\u{0}## x", "## x\n\n> ## y"] {
            let _ = parse_with_preamble(md);
        }
    }
}
