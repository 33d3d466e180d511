//! DOCX with `docx-rs`: the same content as the other formats, as Word
//! headings, paragraphs and tables that an editor can restyle.

use docx_rs::{
    AlignmentType, Docx, Hyperlink, HyperlinkType, Paragraph, Run, RunFonts, SpecialIndentType, Style, StyleType, Table,
    TableCell, TableRow,
};
use konsens_model::report::{Position, RecommendationSection, Report, ReportFormat, ReportKind, RoundSection};
use konsens_model::richtext::{OutlineBlock, OutlineKind};

use crate::error::PublishError;

const ACCENT: &str = "1F4E79";
/// Twentieths of a point per list level.
const INDENT: i32 = 360;

fn styles(docx: Docx) -> Docx {
    let heading = |id: &str, name: &str, half_points: usize, level: usize| {
        Style::new(id, StyleType::Paragraph)
            .name(name)
            .based_on("Normal")
            .next("Normal")
            .size(half_points)
            .bold()
            .color(ACCENT)
            .outline_lvl(level)
    };
    docx.default_fonts(RunFonts::new().ascii("Georgia").hi_ansi("Georgia").cs("Georgia"))
        .default_size(22)
        .add_style(Style::new("Title", StyleType::Paragraph).name("Title").based_on("Normal").size(44).bold())
        .add_style(heading("Heading1", "Heading 1", 32, 0))
        .add_style(heading("Heading2", "Heading 2", 26, 1))
        .add_style(heading("Heading3", "Heading 3", 22, 2))
}

fn text(text: &str) -> Paragraph {
    Paragraph::new().add_run(Run::new().add_text(text))
}

fn styled(style: &str, content: &str) -> Paragraph {
    text(content).style(style).keep_next(true)
}

/// "Label: value" with the label bold.
fn meta(label: &str, value: &str) -> Paragraph {
    Paragraph::new().add_run(Run::new().add_text(format!("{label}: ")).bold()).add_run(Run::new().add_text(value))
}

fn rich(blocks: &[OutlineBlock], mut docx: Docx) -> Docx {
    for block in blocks {
        let mut p = Paragraph::new();
        let depth = i32::try_from(block.depth).unwrap_or(0);
        match block.kind {
            OutlineKind::Bullet | OutlineKind::Numbered => {
                let marker = match block.number {
                    Some(n) => format!("{n}.\t"),
                    None => "•\t".to_owned(),
                };
                p = p
                    .indent(Some((depth + 1) * INDENT), Some(SpecialIndentType::Hanging(INDENT)), None, None)
                    .add_run(Run::new().add_text(marker));
            }
            _ if depth > 0 || block.quote => {
                p = p.indent(Some((depth + i32::from(block.quote)) * INDENT), None, None, None);
            }
            _ => {}
        }
        for run in &block.runs {
            let mut r = Run::new().add_text(&run.text);
            if run.strong || block.kind == OutlineKind::Heading {
                r = r.bold();
            }
            if run.em || block.quote {
                r = r.italic();
            }
            if block.kind == OutlineKind::Code {
                r = r.fonts(RunFonts::new().ascii("Courier New").hi_ansi("Courier New"));
            }
            p = match &run.link {
                Some(href) => p.add_hyperlink(
                    Hyperlink::new(href, HyperlinkType::External).add_run(r.color(ACCENT).underline("single")),
                ),
                None => p.add_run(r),
            };
        }
        if block.kind == OutlineKind::Heading {
            p = p.keep_next(true);
        }
        docx = docx.add_paragraph(p);
    }
    docx
}

fn positions(report: &Report, positions: &[Position]) -> Table {
    let labels = report.labels;
    let cell = |content: &str, bold: bool| {
        let run = Run::new().add_text(content);
        TableCell::new().add_paragraph(Paragraph::new().add_run(if bold { run.bold() } else { run }))
    };
    let mut rows = vec![TableRow::new(vec![
        cell(labels.organisation, true),
        cell(labels.position, true),
        cell(labels.note, true),
    ])];
    for p in positions {
        rows.push(TableRow::new(vec![cell(&p.organisation, false), cell(p.stance_label, false), cell(&p.note, false)]));
    }
    Table::new(rows).set_grid(vec![3000, 2000, 4000])
}

/// A consent round: result (or state so far), outcome, dissent, who has not
/// answered, the note that the wording changed after it.
fn consent_round(report: &Report, round: &RoundSection, mut docx: Docx) -> Docx {
    let labels = report.labels;
    docx = docx.add_paragraph(styled("Heading3", labels.consent_round)).add_paragraph(text(&round.summary));
    if !round.outcome.is_empty() {
        docx = docx.add_paragraph(meta(labels.outcome, &round.outcome));
    }
    for d in &round.dissent {
        let mut p = Paragraph::new()
            .indent(Some(INDENT), Some(SpecialIndentType::Hanging(INDENT)), None, None)
            .add_run(Run::new().add_text("•\t"))
            .add_run(Run::new().add_text(&d.organisation).bold())
            .add_run(Run::new().add_text(format!(" {}", d.answer_label)));
        p = p.add_run(Run::new().add_text(if d.reason.is_empty() { ".".to_owned() } else { format!(": {}", d.reason) }));
        docx = docx.add_paragraph(p);
    }
    if !round.not_answered.is_empty() {
        docx = docx.add_paragraph(meta(labels.not_answered, &format!("{}.", round.not_answered.join(", "))));
    }
    if let Some(note) = round.note {
        docx = docx.add_paragraph(Paragraph::new().add_run(Run::new().add_text(note).italic()));
    }
    docx
}

fn recommendation(report: &Report, rec: &RecommendationSection, mut docx: Docx) -> Docx {
    let labels = report.labels;
    let interim = report.kind == ReportKind::Interim;
    docx = docx.add_paragraph(styled("Heading2", &format!("{} {}: {}", labels.recommendation, rec.number, rec.title)));
    if interim {
        docx = docx.add_paragraph(meta(labels.status, rec.status_label));
    }
    if !rec.addressees.is_empty() {
        docx = docx.add_paragraph(meta(labels.addressees, &rec.addressees.join("; ")));
    }
    if !rec.sectors.is_empty() {
        docx = docx.add_paragraph(meta(labels.sectors, &rec.sectors.join(", ")));
    }
    if let Some(date) = &rec.adopted_on {
        docx = docx.add_paragraph(meta(labels.adopted_on, date));
    }
    if let Some(n) = rec.open_comments {
        docx = docx.add_paragraph(meta(labels.open_comments, &n.to_string()));
    }
    for (heading, blocks) in
        [(labels.problem, &rec.problem), (labels.recommendation_text, &rec.recommendation), (labels.rationale, &rec.rationale)]
    {
        if !blocks.is_empty() {
            docx = rich(blocks, docx.add_paragraph(styled("Heading3", heading)));
        }
    }
    if !rec.endorsed_by.is_empty() {
        let and = match report.language {
            konsens_model::report::Language::De => " und ",
            konsens_model::report::Language::En => " and ",
        };
        let names = match rec.endorsed_by.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{}{and}{last}", rest.join(", ")),
            _ => rec.endorsed_by.join(""),
        };
        docx = docx.add_paragraph(styled("Heading3", labels.endorsed_by)).add_paragraph(text(&format!("{names}.")));
    }
    if !rec.dissent.is_empty() {
        docx = docx.add_paragraph(styled("Heading3", labels.dissent)).add_table(positions(report, &rec.dissent));
    }
    if let Some(round) = &rec.round {
        docx = consent_round(report, round, docx);
    }
    if !rec.amendments.is_empty() {
        docx = docx.add_paragraph(styled("Heading3", report.labels.amendments));
        for a in &rec.amendments {
            let mut p = Paragraph::new()
                .indent(Some(INDENT), Some(SpecialIndentType::Hanging(INDENT)), None, None)
                .add_run(Run::new().add_text("•\t"))
                .add_run(Run::new().add_text(&a.title).bold());
            if !a.organisation.is_empty() {
                p = p.add_run(Run::new().add_text(format!(" ({})", a.organisation)));
            }
            p = p.add_run(Run::new().add_text(format!(": {}.", a.state_label)));
            if !a.answer.is_empty() {
                p = p.add_run(Run::new().add_text(format!(" {}: ", report.labels.official_answer)).italic()).add_run(Run::new().add_text(&a.answer));
            }
            docx = docx.add_paragraph(p);
        }
    }
    if interim {
        docx = docx.add_paragraph(styled("Heading3", labels.positions));
        docx = if rec.positions.is_empty() {
            docx.add_paragraph(Paragraph::new().add_run(Run::new().add_text(labels.no_positions).italic()))
        } else {
            docx.add_table(positions(report, &rec.positions))
        };
    }
    docx
}

pub(crate) fn render(report: &Report) -> Result<Vec<u8>, PublishError> {
    let labels = report.labels;
    let mut docx = styles(Docx::new());
    docx = docx
        .add_paragraph(
            Paragraph::new().add_run(Run::new().add_text(report.kind_label.to_uppercase()).bold().color(ACCENT)),
        )
        .add_paragraph(text(&report.title).style("Title"))
        .add_paragraph(meta(labels.as_of, &report.date));
    for paragraph in &report.description {
        docx = docx.add_paragraph(text(paragraph).align(AlignmentType::Both));
    }
    docx = docx.add_paragraph(Paragraph::new().add_run(Run::new().add_text(&report.lede).italic().color(ACCENT)));
    for workshop in &report.workshops {
        docx = docx.add_paragraph(styled("Heading1", &format!("{}. {}", workshop.number, workshop.title)));
        if !workshop.theme.is_empty() {
            docx = docx.add_paragraph(meta(labels.theme, &workshop.theme));
        }
        if let Some(date) = &workshop.date {
            docx = docx.add_paragraph(meta(labels.date, date));
        }
        if !workshop.sectors.is_empty() {
            docx = docx.add_paragraph(meta(labels.sectors, &workshop.sectors.join(", ")));
        }
        if let Some(summary) = &workshop.status_summary {
            docx = docx.add_paragraph(text(summary));
        }
        if let Some(empty) = workshop.empty {
            docx = docx.add_paragraph(Paragraph::new().add_run(Run::new().add_text(empty).italic()));
        }
        for rec in &workshop.recommendations {
            docx = recommendation(report, rec, docx);
        }
    }
    docx = docx.add_paragraph(styled("Heading1", labels.organisations));
    if report.organisations.is_empty() {
        docx = docx.add_paragraph(text(labels.no_organisations));
    }
    for organisation in &report.organisations {
        docx = docx.add_paragraph(
            Paragraph::new()
                .indent(Some(INDENT), Some(SpecialIndentType::Hanging(INDENT)), None, None)
                .add_run(Run::new().add_text(format!("•\t{organisation}"))),
        );
    }
    let mut bytes = std::io::Cursor::new(Vec::new());
    docx.build()
        .pack(&mut bytes)
        .map_err(|e| PublishError::Write { format: ReportFormat::Docx, reason: e.to_string() })?;
    Ok(bytes.into_inner())
}
