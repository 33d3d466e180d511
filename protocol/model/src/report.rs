//! The final report of a process: its adopted recommendations, workshop by
//! workshop, as Markdown, a standalone HTML page or JSON.
//!
//! Rendering is a pure function of its inputs: no clock, no locale, no hash
//! map iteration, so the same documents always give byte-identical output
//! (the report can be committed, diffed and signed).
//!
//! Order: workshops in the process's order; within a workshop the adopted
//! recommendations in the order `process.recommendations[workshop id]` lists
//! their URLs, then any not listed there by title (and URL). A recommendation
//! belongs to the workshop whose id (or title) its `workshop` field names;
//! adopted ones whose workshop is not in the process come last under "Other
//! recommendations". The summary line of a workshop counts all of its
//! recommendations passed in, whatever their status.

use std::fmt;
use std::str::FromStr;

use automerge::iter::Span;
use serde::Serialize;
use thiserror::Error;

use crate::richtext::{self, escape_html, escape_markdown_inline};
use crate::schema::{Process, Recommendation, Stance, Status};

/// Schema tag of the JSON report.
pub const REPORT_SCHEMA: &str = "konsens/report@1";

/// The output format of [`render`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportFormat {
    Markdown,
    Html,
    Json,
}

impl ReportFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportFormat::Markdown => "markdown",
            ReportFormat::Html => "html",
            ReportFormat::Json => "json",
        }
    }

    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            ReportFormat::Markdown => "md",
            ReportFormat::Html => "html",
            ReportFormat::Json => "json",
        }
    }
}

impl fmt::Display for ReportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown report format {0:?}; formats are markdown, html, json")]
pub struct UnknownReportFormat(pub String);

impl FromStr for ReportFormat {
    type Err = UnknownReportFormat;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "markdown" | "md" => Ok(ReportFormat::Markdown),
            "html" => Ok(ReportFormat::Html),
            "json" => Ok(ReportFormat::Json),
            other => Err(UnknownReportFormat(other.to_owned())),
        }
    }
}

/// Render the final report of `process` (found at `process_url`) from its
/// `recommendations`, given as `(automerge URL, recommendation)` pairs.
pub fn render(
    process: &Process,
    process_url: &str,
    recommendations: &[(String, Recommendation)],
    format: ReportFormat,
) -> String {
    let report = Report::build(process, process_url, recommendations);
    match format {
        ReportFormat::Markdown => report.markdown(),
        ReportFormat::Html => report.html(),
        ReportFormat::Json => report.json(),
    }
}

// ---------------------------------------------------------------------------
// The content, computed once for all formats.

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
struct Summary {
    total: usize,
    draft: usize,
    discussion: usize,
    consensus: usize,
    adopted: usize,
    rejected: usize,
}

impl Summary {
    fn count(&mut self, status: Status) {
        self.total += 1;
        match status {
            Status::Draft => self.draft += 1,
            Status::Discussion => self.discussion += 1,
            Status::Consensus => self.consensus += 1,
            Status::Adopted => self.adopted += 1,
            Status::Rejected => self.rejected += 1,
        }
    }

    /// "4 recommendations: 2 adopted, 1 at consensus, 1 in discussion."
    fn sentence(&self) -> String {
        if self.total == 0 {
            return "No recommendations were drafted in this workshop.".to_owned();
        }
        let parts: Vec<String> = [
            (self.adopted, "adopted"),
            (self.rejected, "rejected"),
            (self.consensus, "at consensus"),
            (self.discussion, "in discussion"),
            (self.draft, "in draft"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, label)| format!("{n} {label}"))
        .collect();
        let noun = if self.total == 1 { "recommendation" } else { "recommendations" };
        format!("{} {noun}: {}.", self.total, parts.join(", "))
    }
}

struct Entry<'a> {
    /// "2.3": workshop number, then position among its adopted recommendations.
    number: String,
    url: &'a str,
    rec: &'a Recommendation,
    adopted_at: Option<i64>,
}

struct Group<'a> {
    number: usize,
    /// `None` for the group of recommendations whose workshop is unknown.
    workshop: Option<&'a crate::schema::Workshop>,
    summary: Summary,
    entries: Vec<Entry<'a>>,
}

impl Group<'_> {
    fn title(&self) -> &str {
        self.workshop.map_or("Other recommendations", |w| w.title.as_str())
    }
}

struct Report<'a> {
    process: &'a Process,
    process_url: &'a str,
    groups: Vec<Group<'a>>,
}

fn stance_text(stance: Stance) -> &'static str {
    match stance {
        Stance::Support => "supports",
        Stance::Concerns => "has concerns",
        Stance::Object => "objects",
    }
}

/// When a recommendation was last adopted, from its status log.
fn adopted_at(rec: &Recommendation) -> Option<i64> {
    rec.status_log.iter().rev().find(|c| c.to == Status::Adopted).map(|c| c.at)
}

/// `YYYY-MM-DD` (UTC) of a Unix time in milliseconds, without a date library
/// (Howard Hinnant's days-to-civil algorithm).
pub fn iso_date(millis: i64) -> String {
    let days = millis.div_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn is_empty(text: &[Span]) -> bool {
    text.iter().all(|s| match s {
        Span::Text { text, .. } => text.trim().is_empty(),
        Span::Block(_) => true,
    })
}

impl<'a> Report<'a> {
    fn build(process: &'a Process, process_url: &'a str, recommendations: &'a [(String, Recommendation)]) -> Self {
        let workshop_of = |rec: &Recommendation| {
            process.workshops.iter().position(|w| w.id == rec.workshop).or_else(|| {
                process.workshops.iter().position(|w| w.title == rec.workshop)
            })
        };
        let mut groups: Vec<Group<'a>> = process
            .workshops
            .iter()
            .enumerate()
            .map(|(i, w)| Group { number: i + 1, workshop: Some(w), summary: Summary::default(), entries: Vec::new() })
            .collect();
        let mut other = Group {
            number: process.workshops.len() + 1,
            workshop: None,
            summary: Summary::default(),
            entries: Vec::new(),
        };
        for (url, rec) in recommendations {
            let group = match workshop_of(rec).and_then(|i| groups.get_mut(i)) {
                Some(group) => group,
                None => &mut other,
            };
            group.summary.count(rec.status);
            if rec.status == Status::Adopted {
                group.entries.push(Entry { number: String::new(), url, rec, adopted_at: adopted_at(rec) });
            }
        }
        if !other.entries.is_empty() {
            groups.push(other);
        }
        for group in &mut groups {
            let listed: &[String] = group
                .workshop
                .and_then(|w| process.recommendations.get(&w.id))
                .map_or(&[], |v| v.as_slice());
            let position = |url: &str| listed.iter().position(|u| u == url).unwrap_or(usize::MAX);
            // Stable: exact ties (the same URL twice) keep the caller's order.
            group.entries.sort_by(|a, b| {
                (position(a.url), a.rec.title.0.as_str(), a.url).cmp(&(position(b.url), b.rec.title.0.as_str(), b.url))
            });
            for (i, entry) in group.entries.iter_mut().enumerate() {
                entry.number = format!("{}.{}", group.number, i + 1);
            }
        }
        Report { process, process_url, groups }
    }

    fn adopted_total(&self) -> usize {
        self.groups.iter().map(|g| g.entries.len()).sum()
    }

    fn workshop_total(&self) -> usize {
        self.process.workshops.len()
    }

    fn lede(&self) -> String {
        let n = self.adopted_total();
        let m = self.workshop_total();
        format!(
            "Final report: {n} adopted recommendation{} from {m} workshop{}.",
            if n == 1 { "" } else { "s" },
            if m == 1 { "" } else { "s" }
        )
    }

    fn member_name(&self, id: &str) -> Option<&'a str> {
        self.process.members.get(id).map(|m| m.name.as_str())
    }

    // -----------------------------------------------------------------------
    // Markdown

    fn markdown(&self) -> String {
        let mut out = String::new();
        let title = escape_markdown_inline(&self.process.title.0);
        out.push_str(&format!("# {title}\n\n"));
        let description = richtext::from_spans(&richtext::plain_text_spans(&self.process.description.0));
        if !description.is_empty() {
            out.push_str(&description);
            out.push('\n');
        }
        out.push_str(&format!("*{}*\n", self.lede()));
        for group in &self.groups {
            out.push_str(&format!("\n## {}. {}\n\n", group.number, escape_markdown_inline(group.title())));
            if let Some(w) = group.workshop {
                let mut meta = Vec::new();
                if !w.theme.trim().is_empty() {
                    meta.push(format!("- **Theme:** {}", escape_markdown_inline(&w.theme)));
                }
                if !w.sectors.is_empty() {
                    meta.push(format!("- **Sectors:** {}", escape_markdown_inline(&w.sectors.join(", "))));
                }
                if let Some(date) = w.date.as_deref().filter(|d| !d.trim().is_empty()) {
                    meta.push(format!("- **Date:** {}", escape_markdown_inline(date)));
                }
                if !meta.is_empty() {
                    out.push_str(&meta.join("\n"));
                    out.push_str("\n\n");
                }
            }
            out.push_str(&format!("{}\n", group.summary.sentence()));
            if group.entries.is_empty() {
                out.push_str("\nNo recommendation of this workshop has been adopted.\n");
            }
            for entry in &group.entries {
                self.markdown_entry(entry, &mut out);
            }
        }
        out.push_str(&format!("\n---\n\nSource: `{}`\n", self.process_url.replace('`', "")));
        out
    }

    fn markdown_entry(&self, entry: &Entry<'_>, out: &mut String) {
        let rec = entry.rec;
        out.push_str(&format!(
            "\n### Recommendation {}: {}\n\n",
            entry.number,
            escape_markdown_inline(rec.title.0.trim())
        ));
        let mut meta = Vec::new();
        if !rec.addressees.is_empty() {
            meta.push(format!("- **Addressed to:** {}", escape_markdown_inline(&rec.addressees.join("; "))));
        }
        if !rec.sectors.is_empty() {
            meta.push(format!("- **Sectors:** {}", escape_markdown_inline(&rec.sectors.join(", "))));
        }
        if let Some(at) = entry.adopted_at {
            meta.push(format!("- **Adopted:** {}", iso_date(at)));
        }
        if !meta.is_empty() {
            out.push_str(&meta.join("\n"));
            out.push('\n');
        }
        for (heading, text) in
            [("Problem", &rec.problem), ("Recommendation", &rec.recommendation), ("Rationale", &rec.rationale)]
        {
            if is_empty(&text.0) {
                continue;
            }
            // Headings inside the text go below the report's own (#### here).
            out.push_str(&format!("\n#### {heading}\n\n{}", richtext::from_spans_shifted(&text.0, 4)));
        }
        if !rec.endorsements.is_empty() {
            out.push_str("\n#### Endorsements\n\n");
            for (organisation, e) in &rec.endorsements {
                // "- **Organisation** (Name): *supports*. Note"
                let mut line = format!("- **{}**", escape_markdown_inline(organisation));
                if let Some(name) = self.member_name(&e.by) {
                    line.push_str(&format!(" ({})", escape_markdown_inline(name)));
                }
                line.push_str(&format!(": *{}*", stance_text(e.stance)));
                if !e.note.trim().is_empty() {
                    line.push_str(&format!(" — {}", escape_markdown_inline(e.note.trim())));
                }
                out.push_str(&line);
                out.push('\n');
            }
        }
    }

    // -----------------------------------------------------------------------
    // HTML

    fn html(&self) -> String {
        let esc = |s: &str| {
            let mut out = String::new();
            escape_html(s, &mut out);
            out
        };
        let mut out = String::new();
        out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        out.push_str("<meta name=\"generator\" content=\"konsens\">\n");
        out.push_str(&format!("<title>{}</title>\n", esc(&self.process.title.0)));
        out.push_str(STYLE);
        out.push_str("</head>\n<body>\n<header>\n");
        out.push_str(&format!("<h1>{}</h1>\n", esc(&self.process.title.0)));
        out.push_str(&richtext::to_html(&richtext::plain_text_spans(&self.process.description.0), 0));
        out.push_str(&format!("<p class=\"lede\">{}</p>\n</header>\n<main>\n", esc(&self.lede())));
        for group in &self.groups {
            out.push_str(&format!("<section class=\"workshop\" id=\"workshop-{}\">\n", group.number));
            out.push_str(&format!("<h2>{}. {}</h2>\n", group.number, esc(group.title())));
            if let Some(w) = group.workshop {
                let mut meta = String::new();
                if !w.theme.trim().is_empty() {
                    meta.push_str(&format!("<dt>Theme</dt><dd>{}</dd>\n", esc(&w.theme)));
                }
                if !w.sectors.is_empty() {
                    meta.push_str(&format!("<dt>Sectors</dt><dd>{}</dd>\n", esc(&w.sectors.join(", "))));
                }
                if let Some(date) = w.date.as_deref().filter(|d| !d.trim().is_empty()) {
                    meta.push_str(&format!("<dt>Date</dt><dd>{}</dd>\n", esc(date)));
                }
                if !meta.is_empty() {
                    out.push_str(&format!("<dl class=\"meta\">\n{meta}</dl>\n"));
                }
            }
            out.push_str(&format!("<p class=\"summary\">{}</p>\n", esc(&group.summary.sentence())));
            if group.entries.is_empty() {
                out.push_str("<p class=\"none\">No recommendation of this workshop has been adopted.</p>\n");
            }
            for entry in &group.entries {
                self.html_entry(entry, &mut out);
            }
            out.push_str("</section>\n");
        }
        out.push_str("</main>\n<footer>\n");
        out.push_str(&format!("<p>Source: <code>{}</code></p>\n", esc(self.process_url)));
        out.push_str("</footer>\n</body>\n</html>\n");
        out
    }

    fn html_entry(&self, entry: &Entry<'_>, out: &mut String) {
        let esc = |s: &str| {
            let mut out = String::new();
            escape_html(s, &mut out);
            out
        };
        let rec = entry.rec;
        out.push_str(&format!(
            "<article class=\"recommendation\" id=\"recommendation-{}\">\n",
            entry.number.replace('.', "-")
        ));
        out.push_str(&format!(
            "<h3><span class=\"number\">{}</span> {}</h3>\n",
            esc(&entry.number),
            esc(rec.title.0.trim())
        ));
        let mut meta = String::new();
        if !rec.addressees.is_empty() {
            meta.push_str(&format!("<dt>Addressed to</dt><dd>{}</dd>\n", esc(&rec.addressees.join("; "))));
        }
        if !rec.sectors.is_empty() {
            meta.push_str(&format!("<dt>Sectors</dt><dd>{}</dd>\n", esc(&rec.sectors.join(", "))));
        }
        if let Some(at) = entry.adopted_at {
            meta.push_str(&format!("<dt>Adopted</dt><dd><time datetime=\"{0}\">{0}</time></dd>\n", iso_date(at)));
        }
        if !meta.is_empty() {
            out.push_str(&format!("<dl class=\"meta\">\n{meta}</dl>\n"));
        }
        for (heading, class, text) in [
            ("Problem", "problem", &rec.problem),
            ("Recommendation", "text", &rec.recommendation),
            ("Rationale", "rationale", &rec.rationale),
        ] {
            if is_empty(&text.0) {
                continue;
            }
            out.push_str(&format!("<div class=\"{class}\">\n<h4>{heading}</h4>\n"));
            out.push_str(&richtext::to_html(&text.0, 4));
            out.push_str("</div>\n");
        }
        if !rec.endorsements.is_empty() {
            out.push_str("<h4>Endorsements</h4>\n<table class=\"endorsements\">\n");
            out.push_str("<thead><tr><th>Organisation</th><th>Position</th><th>Note</th></tr></thead>\n<tbody>\n");
            for (organisation, e) in &rec.endorsements {
                let by = self.member_name(&e.by).map(|n| format!("<br><span class=\"by\">{}</span>", esc(n)));
                out.push_str(&format!(
                    "<tr><td>{}{}</td><td class=\"stance-{}\">{}</td><td>{}</td></tr>\n",
                    esc(organisation),
                    by.unwrap_or_default(),
                    e.stance.as_str(),
                    stance_text(e.stance),
                    esc(e.note.trim())
                ));
            }
            out.push_str("</tbody>\n</table>\n");
        }
        out.push_str("</article>\n");
    }

    // -----------------------------------------------------------------------
    // JSON

    fn json(&self) -> String {
        let doc = JsonReport {
            schema: REPORT_SCHEMA,
            process: JsonProcess {
                url: self.process_url,
                title: &self.process.title.0,
                description: &self.process.description.0,
            },
            adopted: self.adopted_total(),
            workshops: self
                .groups
                .iter()
                .map(|g| JsonWorkshop {
                    number: g.number,
                    id: g.workshop.map(|w| w.id.as_str()),
                    title: g.title(),
                    theme: g.workshop.map_or("", |w| w.theme.as_str()),
                    sectors: g.workshop.map_or(&[], |w| w.sectors.as_slice()),
                    date: g.workshop.and_then(|w| w.date.as_deref()),
                    summary: g.summary,
                    recommendations: g
                        .entries
                        .iter()
                        .map(|e| JsonRecommendation {
                            number: &e.number,
                            url: e.url,
                            title: &e.rec.title.0,
                            adopted_at: e.adopted_at,
                            adopted_on: e.adopted_at.map(iso_date),
                            addressees: &e.rec.addressees,
                            sectors: &e.rec.sectors,
                            problem: richtext::from_spans(&e.rec.problem.0),
                            recommendation: richtext::from_spans(&e.rec.recommendation.0),
                            rationale: richtext::from_spans(&e.rec.rationale.0),
                            endorsements: e
                                .rec
                                .endorsements
                                .iter()
                                .map(|(organisation, en)| JsonEndorsement {
                                    organisation,
                                    stance: en.stance.as_str(),
                                    note: &en.note,
                                    by: &en.by,
                                    by_name: self.member_name(&en.by),
                                    at: en.at,
                                })
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
        };
        // Plain structs and vectors: field order is declaration order and no
        // map is involved, so the output does not depend on serde_json's
        // `preserve_order` feature. Serialising them cannot fail.
        match serde_json::to_string_pretty(&doc) {
            Ok(mut json) => {
                json.push('\n');
                json
            }
            Err(e) => format!("{{\"error\": {:?}}}\n", e.to_string()),
        }
    }
}

#[derive(Serialize)]
struct JsonReport<'a> {
    schema: &'static str,
    process: JsonProcess<'a>,
    adopted: usize,
    workshops: Vec<JsonWorkshop<'a>>,
}

#[derive(Serialize)]
struct JsonProcess<'a> {
    url: &'a str,
    title: &'a str,
    description: &'a str,
}

#[derive(Serialize)]
struct JsonWorkshop<'a> {
    number: usize,
    id: Option<&'a str>,
    title: &'a str,
    theme: &'a str,
    sectors: &'a [String],
    date: Option<&'a str>,
    summary: Summary,
    recommendations: Vec<JsonRecommendation<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonRecommendation<'a> {
    number: &'a str,
    url: &'a str,
    title: &'a str,
    /// Milliseconds since the Unix epoch.
    adopted_at: Option<i64>,
    adopted_on: Option<String>,
    addressees: &'a [String],
    sectors: &'a [String],
    /// Rich text as normalised Markdown.
    problem: String,
    recommendation: String,
    rationale: String,
    endorsements: Vec<JsonEndorsement<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonEndorsement<'a> {
    organisation: &'a str,
    stance: &'static str,
    note: &'a str,
    by: &'a str,
    by_name: Option<&'a str>,
    at: i64,
}

const STYLE: &str = "<style>
body { font-family: Georgia, 'Times New Roman', serif; line-height: 1.55; color: #1d1d1f; max-width: 46rem; margin: 2.5rem auto; padding: 0 1.25rem; }
h1, h2, h3, h4, h5, h6, .lede, .summary, dl.meta, table { font-family: 'Helvetica Neue', Arial, sans-serif; }
h1 { font-size: 2.1rem; line-height: 1.2; border-bottom: 3px solid #1f4e79; padding-bottom: .5rem; }
h2 { color: #1f4e79; margin-top: 3.5rem; border-bottom: 1px solid #c9d6e3; padding-bottom: .3rem; }
h3 { margin-top: 0; }
h4 { margin: 1.4rem 0 .3rem; font-size: 1rem; text-transform: uppercase; letter-spacing: .04em; color: #444; }
.lede { font-size: 1.1rem; color: #1f4e79; }
.summary { background: #f3f6f9; padding: .6rem .9rem; border-radius: 4px; font-size: .95rem; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; font-size: .92rem; color: #333; }
dl.meta dt { font-weight: bold; }
dl.meta dd { margin: 0; }
article.recommendation { border-left: 4px solid #1f4e79; padding: .2rem 0 .2rem 1.1rem; margin: 2.5rem 0; }
.number { color: #1f4e79; margin-right: .3rem; }
table.endorsements { border-collapse: collapse; width: 100%; font-size: .92rem; }
table.endorsements th, table.endorsements td { text-align: left; vertical-align: top; padding: .35rem .5rem; border-bottom: 1px solid #ddd; }
.by { color: #666; font-size: .85rem; }
.stance-support { color: #1b6e35; }
.stance-concerns { color: #9a5800; }
.stance-object { color: #a3001b; }
blockquote { border-left: 3px solid #ccc; margin-left: 0; padding-left: 1rem; color: #444; }
footer { margin-top: 4rem; border-top: 1px solid #ddd; padding-top: .75rem; font-size: .85rem; color: #666; }
@media print { body { margin: 0; max-width: none; } article.recommendation { break-inside: avoid; } }
</style>
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_print() {
        for format in [ReportFormat::Markdown, ReportFormat::Html, ReportFormat::Json] {
            assert_eq!(format.as_str().parse::<ReportFormat>(), Ok(format));
        }
        assert_eq!("md".parse::<ReportFormat>(), Ok(ReportFormat::Markdown));
        let err = "pdf".parse::<ReportFormat>().expect_err("pdf is not a format");
        assert!(err.to_string().contains("markdown, html, json"));
    }

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(iso_date(0), "1970-01-01");
        assert_eq!(iso_date(951_782_400_000), "2000-02-29");
        assert_eq!(iso_date(1_741_910_400_000), "2025-03-14");
        assert_eq!(iso_date(-86_400_000), "1969-12-31");
        let _ = iso_date(i64::MIN);
        let _ = iso_date(i64::MAX);
    }

    #[test]
    fn summary_sentences_read_well() {
        let mut s = Summary::default();
        assert_eq!(s.sentence(), "No recommendations were drafted in this workshop.");
        s.count(Status::Adopted);
        assert_eq!(s.sentence(), "1 recommendation: 1 adopted.");
        s.count(Status::Draft);
        s.count(Status::Consensus);
        assert_eq!(s.sentence(), "3 recommendations: 1 adopted, 1 at consensus, 1 in draft.");
    }
}
