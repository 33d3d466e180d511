//! The report as Markdown.

use super::{Report, ReportKind};
use super::content::{AmendmentLine, Position, RecommendationSection, RoundSection};
use super::labels::{Labels, join_list};
use crate::richtext::{self, escape_markdown_inline as esc};
use crate::schema::RichText;

fn is_empty(text: &RichText) -> bool {
    text.plain().trim().is_empty()
}

pub(super) fn render(report: &Report) -> String {
    let labels = report.labels;
    let mut out = String::new();
    out.push_str(&format!("# {}\n\n", esc(&report.title)));
    out.push_str(&format!("**{}** · {}: {}\n\n", report.kind_label, labels.as_of, report.date));
    for paragraph in &report.description {
        out.push_str(&format!("{}\n\n", esc(paragraph)));
    }
    out.push_str(&format!("*{}*\n", report.lede));
    for workshop in &report.workshops {
        out.push_str(&format!("\n## {}. {}\n\n", workshop.number, esc(&workshop.title)));
        let mut meta = Vec::new();
        if !workshop.theme.is_empty() {
            meta.push(format!("- **{}:** {}", labels.theme, esc(&workshop.theme)));
        }
        if let Some(date) = &workshop.date {
            meta.push(format!("- **{}:** {}", labels.date, esc(date)));
        }
        if !workshop.sectors.is_empty() {
            meta.push(format!("- **{}:** {}", labels.sectors, esc(&workshop.sectors.join(", "))));
        }
        if !meta.is_empty() {
            out.push_str(&meta.join("\n"));
            out.push('\n');
        }
        for sentence in workshop.status_summary.as_deref().into_iter().chain(workshop.empty) {
            if !meta.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!("{sentence}\n"));
        }
        for rec in &workshop.recommendations {
            recommendation(report, rec, &mut out);
        }
    }
    out.push_str(&format!("\n## {}\n\n", labels.organisations));
    if report.organisations.is_empty() {
        out.push_str(&format!("{}\n", labels.no_organisations));
    }
    for organisation in &report.organisations {
        out.push_str(&format!("- {}\n", esc(organisation)));
    }
    out
}

fn recommendation(report: &Report, rec: &RecommendationSection, out: &mut String) {
    let labels: &Labels = report.labels;
    out.push_str(&format!("\n### {} {}: {}\n\n", labels.recommendation, rec.number, esc(&rec.title)));
    let mut meta = Vec::new();
    let interim = report.kind == ReportKind::Interim;
    if interim {
        meta.push(format!("- **{}:** {}", labels.status, rec.status_label));
    }
    if !rec.addressees.is_empty() {
        meta.push(format!("- **{}:** {}", labels.addressees, esc(&rec.addressees.join("; "))));
    }
    if !rec.sectors.is_empty() {
        meta.push(format!("- **{}:** {}", labels.sectors, esc(&rec.sectors.join(", "))));
    }
    if let Some(date) = &rec.adopted_on {
        meta.push(format!("- **{}:** {date}", labels.adopted_on));
    }
    if let Some(n) = rec.open_comments {
        meta.push(format!("- **{}:** {n}", labels.open_comments));
    }
    if !meta.is_empty() {
        out.push_str(&meta.join("\n"));
        out.push('\n');
    }
    for (_, heading, text) in rec.texts(labels) {
        if is_empty(text) {
            continue;
        }
        // Headings inside the text go below the report's own (#### here).
        out.push_str(&format!("\n#### {heading}\n\n{}", richtext::from_spans_shifted(&text.0, 4)));
    }
    if !rec.endorsed_by.is_empty() {
        let names: Vec<String> = rec.endorsed_by.iter().map(|o| esc(o)).collect();
        out.push_str(&format!("\n#### {}\n\n{}.\n", labels.endorsed_by, join_list(report.language, &names)));
    }
    if !rec.dissent.is_empty() {
        out.push_str(&format!("\n#### {}\n\n", labels.dissent));
        positions(&rec.dissent, out);
    }
    if let Some(round) = &rec.round {
        consent_round(report, round, out);
    }
    if !rec.amendments.is_empty() {
        amendments(report, &rec.amendments, out);
    }
    if interim {
        out.push_str(&format!("\n#### {}\n\n", labels.positions));
        if rec.positions.is_empty() {
            out.push_str(&format!("{}\n", labels.no_positions));
        }
        positions(&rec.positions, out);
    }
}

/// "- **Organisation** hat Bedenken: note"
fn positions(positions: &[Position], out: &mut String) {
    for p in positions {
        out.push_str(&format!("- **{}** {}", esc(&p.organisation), p.stance_label));
        if p.note.is_empty() {
            out.push_str(".\n");
        } else {
            out.push_str(&format!(": {}\n", esc(&p.note)));
        }
    }
}

/// "- **Frist kürzen** (Caritas): abgelehnt. Antwort der Moderation: …"
fn amendments(report: &Report, lines: &[AmendmentLine], out: &mut String) {
    let labels = report.labels;
    out.push_str(&format!("\n#### {}\n\n", labels.amendments));
    for a in lines {
        out.push_str(&format!("- **{}**", esc(&a.title)));
        if !a.organisation.is_empty() {
            out.push_str(&format!(" ({})", esc(&a.organisation)));
        }
        out.push_str(&format!(": {}.", a.state_label));
        if !a.answer.is_empty() {
            out.push_str(&format!(" {}: {}", labels.official_answer, esc(&a.answer)));
        }
        out.push('\n');
    }
}

/// The round's result (or state), its outcome, the dissent, who has not answered.
fn consent_round(report: &Report, round: &RoundSection, out: &mut String) {
    let labels = report.labels;
    out.push_str(&format!("\n#### {}\n\n{}\n", labels.consent_round, round.summary));
    if !round.outcome.is_empty() {
        out.push_str(&format!("\n**{}:** {}\n", labels.outcome, esc(&round.outcome)));
    }
    if !round.dissent.is_empty() {
        out.push('\n');
        for d in &round.dissent {
            out.push_str(&format!("- **{}** {}", esc(&d.organisation), d.answer_label));
            if d.reason.is_empty() {
                out.push_str(".\n");
            } else {
                out.push_str(&format!(": {}\n", esc(&d.reason)));
            }
        }
    }
    if !round.not_answered.is_empty() {
        // Commas, not "A und B": organisation names often contain "und".
        let names: Vec<String> = round.not_answered.iter().map(|o| esc(o)).collect();
        out.push_str(&format!("\n**{}:** {}.\n", labels.not_answered, names.join(", ")));
    }
    if let Some(note) = round.note {
        out.push_str(&format!("\n*{note}*\n"));
    }
}
