//! The report as a standalone HTML page (one file, its style inline, no
//! script), for the browser and for printing.

use super::content::{AmendmentLine, Position, RecommendationSection, RoundSection};
use super::labels::join_list;
use super::{Report, ReportKind};
use crate::richtext::{self, escape_html};

fn esc(text: &str) -> String {
    let mut out = String::new();
    escape_html(text, &mut out);
    out
}

pub(super) fn render(report: &Report) -> String {
    let labels = report.labels;
    let mut out = String::new();
    out.push_str(&format!("<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n", report.language));
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str("<meta name=\"generator\" content=\"konsens\">\n");
    out.push_str(&format!("<title>{} – {}</title>\n", esc(&report.title), report.kind_label));
    out.push_str(STYLE);
    out.push_str("</head>\n<body>\n<header>\n");
    out.push_str(&format!("<p class=\"kind\">{}</p>\n", report.kind_label));
    out.push_str(&format!("<h1>{}</h1>\n", esc(&report.title)));
    out.push_str(&format!(
        "<p class=\"date\">{}: <time datetime=\"{}\">{}</time></p>\n",
        labels.as_of, report.date_iso, report.date
    ));
    for paragraph in &report.description {
        out.push_str(&format!("<p>{}</p>\n", esc(paragraph)));
    }
    out.push_str(&format!("<p class=\"lede\">{}</p>\n</header>\n<main>\n", esc(&report.lede)));
    for workshop in &report.workshops {
        out.push_str(&format!("<section class=\"workshop\" id=\"workshop-{}\">\n", workshop.number));
        out.push_str(&format!("<h2>{}. {}</h2>\n", workshop.number, esc(&workshop.title)));
        let mut meta = String::new();
        if !workshop.theme.is_empty() {
            meta.push_str(&format!("<dt>{}</dt><dd>{}</dd>\n", labels.theme, esc(&workshop.theme)));
        }
        if let Some(date) = &workshop.date {
            meta.push_str(&format!("<dt>{}</dt><dd>{}</dd>\n", labels.date, esc(date)));
        }
        if !workshop.sectors.is_empty() {
            meta.push_str(&format!("<dt>{}</dt><dd>{}</dd>\n", labels.sectors, esc(&workshop.sectors.join(", "))));
        }
        if !meta.is_empty() {
            out.push_str(&format!("<dl class=\"meta\">\n{meta}</dl>\n"));
        }
        if let Some(summary) = &workshop.status_summary {
            out.push_str(&format!("<p class=\"summary\">{}</p>\n", esc(summary)));
        }
        if let Some(empty) = workshop.empty {
            out.push_str(&format!("<p class=\"none\">{}</p>\n", esc(empty)));
        }
        for rec in &workshop.recommendations {
            recommendation(report, rec, &mut out);
        }
        out.push_str("</section>\n");
    }
    out.push_str("<section class=\"organisations\">\n");
    out.push_str(&format!("<h2>{}</h2>\n", labels.organisations));
    if report.organisations.is_empty() {
        out.push_str(&format!("<p class=\"none\">{}</p>\n", labels.no_organisations));
    } else {
        out.push_str("<ul>\n");
        for organisation in &report.organisations {
            out.push_str(&format!("<li>{}</li>\n", esc(organisation)));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n</main>\n</body>\n</html>\n");
    out
}

fn recommendation(report: &Report, rec: &RecommendationSection, out: &mut String) {
    let labels = report.labels;
    let interim = report.kind == ReportKind::Interim;
    out.push_str(&format!(
        "<article class=\"recommendation\" id=\"recommendation-{}\">\n",
        rec.number.replace('.', "-")
    ));
    out.push_str(&format!(
        "<h3><span class=\"number\">{} {}</span> {}</h3>\n",
        labels.recommendation,
        esc(&rec.number),
        esc(&rec.title)
    ));
    let mut meta = String::new();
    if interim {
        meta.push_str(&format!(
            "<dt>{}</dt><dd><span class=\"status status-{}\">{}</span></dd>\n",
            labels.status,
            rec.status.as_str(),
            rec.status_label
        ));
    }
    if !rec.addressees.is_empty() {
        meta.push_str(&format!("<dt>{}</dt><dd>{}</dd>\n", labels.addressees, esc(&rec.addressees.join("; "))));
    }
    if !rec.sectors.is_empty() {
        meta.push_str(&format!("<dt>{}</dt><dd>{}</dd>\n", labels.sectors, esc(&rec.sectors.join(", "))));
    }
    if let Some(date) = &rec.adopted_on {
        meta.push_str(&format!("<dt>{}</dt><dd>{}</dd>\n", labels.adopted_on, esc(date)));
    }
    if let Some(n) = rec.open_comments {
        meta.push_str(&format!("<dt>{}</dt><dd>{n}</dd>\n", labels.open_comments));
    }
    if !meta.is_empty() {
        out.push_str(&format!("<dl class=\"meta\">\n{meta}</dl>\n"));
    }
    for (class, heading, text) in rec.texts(labels) {
        if text.plain().trim().is_empty() {
            continue;
        }
        out.push_str(&format!("<div class=\"{class}\">\n<h4>{heading}</h4>\n"));
        out.push_str(&richtext::to_html(&text.0, 4));
        out.push_str("</div>\n");
    }
    if !rec.endorsed_by.is_empty() {
        let names: Vec<String> = rec.endorsed_by.iter().map(|o| esc(o)).collect();
        out.push_str(&format!(
            "<h4>{}</h4>\n<p class=\"endorsed\">{}.</p>\n",
            labels.endorsed_by,
            join_list(report.language, &names)
        ));
    }
    if !rec.dissent.is_empty() {
        out.push_str(&format!("<h4>{}</h4>\n", labels.dissent));
        positions(report, &rec.dissent, out);
    }
    if let Some(round) = &rec.round {
        consent_round(report, round, out);
    }
    if !rec.amendments.is_empty() {
        amendments(report, &rec.amendments, out);
    }
    if interim {
        out.push_str(&format!("<h4>{}</h4>\n", labels.positions));
        if rec.positions.is_empty() {
            out.push_str(&format!("<p class=\"none\">{}</p>\n", labels.no_positions));
        } else {
            positions(report, &rec.positions, out);
        }
    }
    out.push_str("</article>\n");
}

/// Each amendment: its title, its author's organisation, how it was
/// decided, the official answer.
fn amendments(report: &Report, lines: &[AmendmentLine], out: &mut String) {
    let labels = report.labels;
    out.push_str(&format!("<h4>{}</h4>\n<ul class=\"amendments\">\n", labels.amendments));
    for a in lines {
        out.push_str(&format!("<li><strong>{}</strong>", esc(&a.title)));
        if !a.organisation.is_empty() {
            out.push_str(&format!(" ({})", esc(&a.organisation)));
        }
        out.push_str(&format!(": {}.", a.state_label));
        if !a.answer.is_empty() {
            out.push_str(&format!(" <em>{}:</em> {}", labels.official_answer, esc(&a.answer)));
        }
        out.push_str("</li>\n");
    }
    out.push_str("</ul>\n");
}

/// The round's result (or state), its outcome, the dissent, who has not answered.
fn consent_round(report: &Report, round: &RoundSection, out: &mut String) {
    let labels = report.labels;
    let state = if round.open { "open" } else { "closed" };
    out.push_str(&format!("<div class=\"round round-{state}\">\n<h4>{}</h4>\n", labels.consent_round));
    out.push_str(&format!("<p class=\"summary\">{}</p>\n", esc(&round.summary)));
    if !round.outcome.is_empty() {
        out.push_str(&format!("<p class=\"outcome\"><strong>{}:</strong> {}</p>\n", labels.outcome, esc(&round.outcome)));
    }
    if !round.dissent.is_empty() {
        out.push_str("<ul class=\"round-dissent\">\n");
        for d in &round.dissent {
            let reason = if d.reason.is_empty() { ".".to_owned() } else { format!(": {}", esc(&d.reason)) };
            out.push_str(&format!(
                "<li class=\"answer-{}\"><strong>{}</strong> {}{reason}</li>\n",
                d.answer.as_str(),
                esc(&d.organisation),
                d.answer_label
            ));
        }
        out.push_str("</ul>\n");
    }
    if !round.not_answered.is_empty() {
        // Commas, not "A und B": organisation names often contain "und".
        let names: Vec<String> = round.not_answered.iter().map(|o| esc(o)).collect();
        out.push_str(&format!(
            "<p class=\"not-answered\"><strong>{}:</strong> {}.</p>\n",
            labels.not_answered,
            names.join(", ")
        ));
    }
    if let Some(note) = round.note {
        out.push_str(&format!("<p class=\"note\">{}</p>\n", esc(note)));
    }
    out.push_str("</div>\n");
}

fn positions(report: &Report, positions: &[Position], out: &mut String) {
    let labels = report.labels;
    out.push_str("<table class=\"positions\">\n");
    out.push_str(&format!(
        "<thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead>\n<tbody>\n",
        labels.organisation, labels.position, labels.note
    ));
    for p in positions {
        out.push_str(&format!(
            "<tr><td>{}</td><td class=\"stance-{}\">{}</td><td>{}</td></tr>\n",
            esc(&p.organisation),
            p.stance.as_str(),
            p.stance_label,
            esc(&p.note)
        ));
    }
    out.push_str("</tbody>\n</table>\n");
}

const STYLE: &str = "<style>
body { font-family: Georgia, 'Times New Roman', serif; line-height: 1.55; color: #1d1d1f; max-width: 46rem; margin: 2.5rem auto; padding: 0 1.25rem; overflow-wrap: anywhere; hyphens: auto; }
h1, h2, h3, h4, h5, h6, .kind, .date, .lede, .summary, dl.meta, table, .status { font-family: 'Helvetica Neue', Arial, sans-serif; }
.kind { text-transform: uppercase; letter-spacing: .08em; color: #1f4e79; font-weight: bold; margin-bottom: 0; }
h1 { font-size: 2.1rem; line-height: 1.2; border-bottom: 3px solid #1f4e79; padding-bottom: .5rem; margin-top: .3rem; }
.date { color: #555; }
h2 { color: #1f4e79; margin-top: 3.5rem; border-bottom: 1px solid #c9d6e3; padding-bottom: .3rem; }
h3 { margin-top: 0; }
.number { color: #1f4e79; margin-right: .3rem; }
h4 { margin: 1.4rem 0 .3rem; font-size: 1rem; text-transform: uppercase; letter-spacing: .04em; color: #444; }
.lede { font-size: 1.1rem; color: #1f4e79; }
.summary { background: #f3f6f9; padding: .6rem .9rem; border-radius: 4px; font-size: .95rem; }
.none { color: #555; font-style: italic; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; font-size: .92rem; color: #333; }
dl.meta dt { font-weight: bold; }
dl.meta dd { margin: 0; }
.status { display: inline-block; padding: 0 .5rem; border-radius: 3px; font-size: .85rem; background: #e8edf2; }
.status-adopted { background: #dcefe2; color: #1b6e35; }
.status-rejected { background: #f6dde1; color: #a3001b; }
.status-consensus { background: #e0eaf5; color: #1f4e79; }
article.recommendation { border-left: 4px solid #1f4e79; padding: .2rem 0 .2rem 1.1rem; margin: 2.5rem 0; }
table.positions { border-collapse: collapse; width: 100%; font-size: .92rem; }
table.positions th, table.positions td { text-align: left; vertical-align: top; padding: .35rem .5rem; border-bottom: 1px solid #ddd; }
.stance-support { color: #1b6e35; }
.stance-concerns { color: #9a5800; }
.stance-object { color: #a3001b; }
.round .outcome, .round .not-answered { font-size: .95rem; }
.round .note { color: #555; font-style: italic; }
.answer-block { color: #a3001b; }
blockquote { border-left: 3px solid #ccc; margin-left: 0; padding-left: 1rem; color: #444; }
@media print { body { margin: 0; max-width: none; } article.recommendation { break-inside: avoid; } }
</style>
";
