//! The report's content, computed once for every format: which
//! recommendations, in which order and numbering, and every sentence already
//! in the report's language.

use serde::Serialize;

use super::labels::{self, Labels};
use super::options::{Language, REPORT_SCHEMA, ReportFormat, ReportKind, ReportOptions};
use crate::richtext::{OutlineBlock, to_outline};
use crate::amendment::AmendmentState;
use crate::consent;
use crate::schema::{Answer, MemberRole, Process, Recommendation, RichText, Round, Stance, Status, Workshop};

/// One report, language and kind resolved. Its serialisation is the JSON
/// format and what the PDF template lays out.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub language: Language,
    pub kind: ReportKind,
    /// "Abschlussbericht", "Interim report".
    pub kind_label: &'static str,
    /// The process's title.
    pub title: String,
    /// The process's description, plain text (paragraphs split by blank lines).
    pub description: Vec<String>,
    /// The report date, as people read it ("20. Januar 2027") and as ISO.
    pub date: String,
    pub date_iso: String,
    /// The sentence under the title.
    pub lede: String,
    pub workshops: Vec<WorkshopSection>,
    /// The organisations of the process's members (not observers),
    /// alphabetical, each once.
    pub organisations: Vec<String>,
    /// The words around the content, for renderers outside this crate.
    pub labels: &'static Labels,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkshopSection {
    pub number: usize,
    pub title: String,
    pub theme: String,
    /// As people read it; a date that is not ISO stays as written.
    pub date: Option<String>,
    pub sectors: Vec<String>,
    /// How many of the workshop's recommendations (all of them, whatever
    /// the report shows) are in which status.
    pub summary: StatusCounts,
    /// Interim reports: that as a sentence.
    pub status_summary: Option<String>,
    /// The one sentence of a workshop with nothing to show.
    pub empty: Option<&'static str>,
    pub recommendations: Vec<RecommendationSection>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    pub total: usize,
    pub draft: usize,
    pub discussion: usize,
    pub consensus: usize,
    pub adopted: usize,
    pub rejected: usize,
}

impl StatusCounts {
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

    /// In the order a summary names them: decided first.
    pub(super) fn by_status(&self) -> [(Status, usize); 5] {
        [
            (Status::Adopted, self.adopted),
            (Status::Rejected, self.rejected),
            (Status::Consensus, self.consensus),
            (Status::Discussion, self.discussion),
            (Status::Draft, self.draft),
        ]
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RecommendationSection {
    /// "2.3": workshop number, then position in it.
    pub number: String,
    pub title: String,
    pub status: Status,
    pub status_label: &'static str,
    pub adopted_on: Option<String>,
    pub addressees: Vec<String>,
    pub sectors: Vec<String>,
    /// Interim reports: unresolved comments.
    pub open_comments: Option<usize>,
    pub problem: Vec<OutlineBlock>,
    pub recommendation: Vec<OutlineBlock>,
    pub rationale: Vec<OutlineBlock>,
    /// Every organisation's position, by organisation name.
    pub positions: Vec<Position>,
    /// Final reports: the organisations that support it.
    pub endorsed_by: Vec<String>,
    /// Final reports: the positions that are not support.
    pub dissent: Vec<Position>,
    /// Final reports: the consent round that decided (the latest closed
    /// one); interim reports: the open round.
    pub round: Option<RoundSection>,
    /// The amendments: in a final report the decided ones, in an interim
    /// report every one not withdrawn; oldest first.
    pub amendments: Vec<AmendmentLine>,
    /// The rich text itself, for the Markdown and HTML renderers.
    #[serde(skip)]
    pub(super) text: [RichText; 3],
}

#[derive(Debug, Clone, Serialize)]
pub struct Position {
    pub organisation: String,
    pub stance: Stance,
    /// "unterstützt", "has concerns".
    pub stance_label: &'static str,
    pub note: String,
}

/// A consent round as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RoundSection {
    /// Whether the round is still open (interim reports).
    pub open: bool,
    /// Closed: "Konsensrunde vom 20. Januar 2027: 5 Zustimmungen, …";
    /// open: its deadline and the answers so far.
    pub summary: String,
    /// Closed: the outcome statement the facilitator recorded (may be empty).
    pub outcome: String,
    /// The disagreements and blocks, by organisation, with their reasons.
    pub dissent: Vec<RoundDissent>,
    /// Open: the organisations expected to answer that have not (those
    /// with a participant among the members), alphabetical.
    pub not_answered: Vec<String>,
    /// Final: the note that the adopted wording differs from the wording the
    /// round was held on.
    pub note: Option<&'static str>,
}

/// An amendment as the report shows it: what it wanted, whose it was, how it
/// was decided and the facilitators' official answer.
#[derive(Debug, Clone, Serialize)]
pub struct AmendmentLine {
    pub title: String,
    /// The author's organisation as the process's members record it (empty
    /// when the author is not a member any more).
    pub organisation: String,
    pub state: AmendmentState,
    /// "abgelehnt", "changes requested".
    pub state_label: &'static str,
    /// The official answer (may be empty).
    pub answer: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoundDissent {
    pub organisation: String,
    pub answer: Answer,
    /// "lehnt ab", "blocks".
    pub answer_label: &'static str,
    pub reason: String,
}

impl Report {
    /// The name a download of this report goes by: `bericht.pdf`,
    /// `zwischenbericht.docx`, `report.md`, `interim-report.html`.
    pub fn file_name(&self, format: ReportFormat) -> String {
        let stem = match (self.language, self.kind) {
            (Language::De, ReportKind::Final) => "bericht",
            (Language::De, ReportKind::Interim) => "zwischenbericht",
            (Language::En, ReportKind::Final) => "report",
            (Language::En, ReportKind::Interim) => "interim-report",
        };
        format!("{stem}.{}", format.extension())
    }

    pub(super) fn to_json(&self) -> String {
        // Plain structs and vectors: field order is declaration order and no
        // map is involved, so the output does not depend on serde_json's
        // `preserve_order` feature. Serialising them cannot fail.
        match serde_json::to_string_pretty(self) {
            Ok(mut json) => {
                json.push('\n');
                json
            }
            Err(e) => format!("{{\"error\": {:?}}}\n", e.to_string()),
        }
    }

    /// How many recommendations the report shows.
    pub fn shown(&self) -> usize {
        self.workshops.iter().map(|w| w.recommendations.len()).sum()
    }
}

impl RecommendationSection {
    /// The three text fields: CSS class, heading, text.
    pub(super) fn texts(&self, labels: &Labels) -> [(&'static str, &'static str, &RichText); 3] {
        [
            ("problem", labels.problem, &self.text[0]),
            ("text", labels.recommendation_text, &self.text[1]),
            ("rationale", labels.rationale, &self.text[2]),
        ]
    }
}

/// When a recommendation was last adopted, from its status log.
fn adopted_at(rec: &Recommendation) -> Option<i64> {
    rec.status_log.iter().rev().find(|c| c.to == Status::Adopted).map(|c| c.at)
}

/// A sort key that puts "Ärztekammer" among the A's and ignores case.
fn collation_key(name: &str) -> String {
    let mut key = String::with_capacity(name.len());
    for c in name.trim().chars().flat_map(char::to_lowercase) {
        match c {
            'ä' | 'à' | 'á' | 'â' => key.push('a'),
            'ö' | 'ó' | 'ò' | 'ô' => key.push('o'),
            'ü' | 'ú' | 'ù' | 'û' => key.push('u'),
            'é' | 'è' | 'ê' => key.push('e'),
            'ß' => key.push_str("ss"),
            c => key.push(c),
        }
    }
    key
}

fn participating_organisations(process: &Process) -> Vec<String> {
    let mut names: Vec<String> = process
        .members
        .values()
        .filter(|m| m.role != MemberRole::Observer)
        .map(|m| m.organisation.trim().to_owned())
        .filter(|o| !o.is_empty())
        .collect();
    names.sort_by(|a, b| (collation_key(a), a).cmp(&(collation_key(b), b)));
    names.dedup();
    names
}

/// Build the report of `process` from its `recommendations`, given as
/// `(automerge URL, recommendation)` pairs; the URL only orders them. For a
/// final report pass the recommendations as adopted
/// (`Recommendation::from_doc_as_adopted`), for an interim one as they are.
pub fn build(process: &Process, recommendations: &[(String, Recommendation)], options: &ReportOptions) -> Report {
    let language = options.language;
    let kind = options.kind;
    let labels = Labels::of(language);
    let shows = |rec: &Recommendation| kind == ReportKind::Interim || rec.status == Status::Adopted;

    // Archived workshops and recommendations are out of the report (the
    // facilitator took them off the table; they are kept, not deleted).
    let archived_workshop = |w: &Workshop| process.archived_workshops.get(&w.id).copied().unwrap_or(false);
    let visible: Vec<&Workshop> = process.workshops.iter().filter(|w| !archived_workshop(w)).collect();
    let names = |w: &Workshop, rec: &Recommendation| w.id == rec.workshop || w.title == rec.workshop;
    let archived = |url: &str, rec: &Recommendation| {
        process.archived_recommendations.get(url).copied().unwrap_or(false)
            || process.workshops.iter().any(|w| archived_workshop(w) && names(w, rec))
    };
    let workshop_of = |rec: &Recommendation| {
        visible
            .iter()
            .position(|w| w.id == rec.workshop)
            .or_else(|| visible.iter().position(|w| w.title == rec.workshop))
    };
    // Per workshop (and one more for the unknown ones): the entries shown.
    let mut groups: Vec<Vec<(&str, &Recommendation)>> = vec![Vec::new(); visible.len() + 1];
    let mut counts = vec![StatusCounts::default(); visible.len() + 1];
    for (url, rec) in recommendations {
        if archived(url, rec) {
            continue;
        }
        let index = workshop_of(rec).unwrap_or(visible.len());
        counts[index].count(rec.status);
        if shows(rec) {
            groups[index].push((url.as_str(), rec));
        }
    }

    let answering =
        consent::answering_organisations(process.members.values().map(|m| (m.role, m.organisation.trim())));
    let mut workshops = Vec::new();
    for ((index, mut entries), summary) in groups.into_iter().enumerate().zip(counts) {
        let workshop: Option<&Workshop> = visible.get(index).copied();
        if workshop.is_none() && entries.is_empty() {
            continue;
        }
        let listed: &[String] =
            workshop.and_then(|w| process.recommendations.get(&w.id)).map_or(&[], |v| v.as_slice());
        let position = |url: &str| listed.iter().position(|u| u == url).unwrap_or(usize::MAX);
        // Stable: exact ties (the same URL twice) keep the caller's order.
        entries.sort_by(|(a_url, a), (b_url, b)| {
            (position(*a_url), a.title.0.as_str(), *a_url).cmp(&(position(*b_url), b.title.0.as_str(), *b_url))
        });
        let number = index + 1;
        let status_summary = (kind == ReportKind::Interim && !entries.is_empty())
            .then(|| labels::status_summary(language, &summary.by_status()));
        let sections = entries
            .iter()
            .enumerate()
            .map(|(i, (_, rec))| section(language, kind, options.date, format!("{number}.{}", i + 1), rec, &answering, process))
            .collect::<Vec<_>>();
        workshops.push(WorkshopSection {
            number,
            title: workshop.map_or(labels.other_recommendations, |w| w.title.trim()).to_owned(),
            theme: workshop.map_or("", |w| w.theme.trim()).to_owned(),
            date: workshop
                .and_then(|w| w.date.as_deref())
                .filter(|d| !d.trim().is_empty())
                .map(|d| labels::format_iso_date(language, d)),
            sectors: workshop.map_or_else(Vec::new, |w| w.sectors.clone()),
            summary,
            status_summary,
            empty: sections.is_empty().then(|| labels::empty_workshop(language, kind)),
            recommendations: sections,
        });
    }

    let shown: usize = workshops.iter().map(|w| w.recommendations.len()).sum();
    let description = process
        .description
        .0
        .replace("\r\n", "\n")
        .split("\n\n")
        .map(|p| p.trim().replace('\n', " "))
        .filter(|p| !p.is_empty())
        .collect();
    Report {
        schema: REPORT_SCHEMA,
        language,
        kind,
        kind_label: labels.kind(kind),
        title: process.title.0.trim().to_owned(),
        description,
        date: labels::format_date(language, options.date),
        date_iso: labels::iso_date(options.date),
        lede: labels::lede(language, kind, shown, visible.len()),
        workshops,
        organisations: participating_organisations(process),
        labels,
    }
}

/// The round a report shows beside a recommendation: in a final report the
/// deciding one, in an interim report the open one.
fn round_section(
    language: Language,
    kind: ReportKind,
    today: i64,
    rec: &Recommendation,
    answering: &std::collections::BTreeSet<String>,
) -> Option<RoundSection> {
    let round: &Round = match kind {
        ReportKind::Final => consent::deciding_round(&rec.rounds)?,
        ReportKind::Interim => consent::open_round(&rec.rounds)?,
    };
    let counts: Vec<(Answer, usize)> = consent::tally(round).into_iter().collect();
    let dissent = consent::dissent(round)
        .into_iter()
        .map(|(organisation, a)| RoundDissent {
            organisation: organisation.trim().to_owned(),
            answer: a.answer,
            answer_label: labels::answer_name(language, a.answer),
            reason: a.reason.0.trim().to_owned(),
        })
        .collect();
    Some(match &round.closed {
        Some(closed) => RoundSection {
            open: false,
            summary: labels::round_result(language, closed.at, &counts),
            outcome: closed.outcome.0.trim().to_owned(),
            dissent,
            not_answered: Vec::new(),
            note: (kind == ReportKind::Final && rec.changed_after_round).then(|| labels::changed_after_round(language)),
        },
        None => {
            let mut not_answered = consent::not_answered(round, answering);
            not_answered.sort_by(|a, b| (collation_key(a), a).cmp(&(collation_key(b), b)));
            RoundSection {
                open: true,
                summary: labels::round_open(language, round.deadline, today, &counts),
                outcome: String::new(),
                dissent,
                not_answered,
                note: None,
            }
        }
    })
}

/// The amendments a report lists beside a recommendation.
fn amendment_lines(language: Language, kind: ReportKind, rec: &Recommendation, process: &Process) -> Vec<AmendmentLine> {
    let listed = |state: AmendmentState| match kind {
        ReportKind::Final => matches!(state, AmendmentState::Accepted | AmendmentState::Rejected),
        ReportKind::Interim => state != AmendmentState::Withdrawn,
    };
    let mut entries: Vec<_> = rec.amendments.values().filter(|a| listed(a.state)).collect();
    entries.sort_by(|a, b| (a.opened, a.title.0.as_str()).cmp(&(b.opened, b.title.0.as_str())));
    entries
        .into_iter()
        .map(|a| AmendmentLine {
            title: a.title.0.trim().to_owned(),
            organisation: process.members.get(&a.by.0).map(|m| m.organisation.trim().to_owned()).unwrap_or_default(),
            state: a.state,
            state_label: labels::amendment_state_name(language, a.state),
            answer: a.decision.as_ref().map(|d| d.answer.0.trim().to_owned()).unwrap_or_default(),
        })
        .collect()
}

fn section(
    language: Language,
    kind: ReportKind,
    today: i64,
    number: String,
    rec: &Recommendation,
    answering: &std::collections::BTreeSet<String>,
    process: &Process,
) -> RecommendationSection {
    let positions: Vec<Position> = rec
        .endorsements
        .iter()
        .map(|(organisation, e)| Position {
            organisation: organisation.trim().to_owned(),
            stance: e.stance,
            stance_label: labels::stance_name(language, e.stance),
            note: e.note.trim().to_owned(),
        })
        .collect();
    let (endorsed_by, dissent) = if kind == ReportKind::Final {
        (
            positions.iter().filter(|p| p.stance == Stance::Support).map(|p| p.organisation.clone()).collect(),
            positions.iter().filter(|p| p.stance != Stance::Support).cloned().collect(),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    RecommendationSection {
        number,
        title: rec.title.0.trim().to_owned(),
        status: rec.status,
        status_label: labels::status_name(language, rec.status),
        adopted_on: (rec.status == Status::Adopted)
            .then(|| adopted_at(rec))
            .flatten()
            .map(|at| labels::format_date(language, at)),
        addressees: rec.addressees.iter().map(|a| a.trim().to_owned()).filter(|a| !a.is_empty()).collect(),
        sectors: rec.sectors.iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect(),
        open_comments: (kind == ReportKind::Interim).then(|| rec.comments.values().filter(|c| !c.resolved).count()),
        problem: to_outline(&rec.problem.0),
        recommendation: to_outline(&rec.recommendation.0),
        rationale: to_outline(&rec.rationale.0),
        positions: if kind == ReportKind::Interim { positions } else { Vec::new() },
        endorsed_by,
        dissent,
        round: round_section(language, kind, today, rec, answering),
        amendments: amendment_lines(language, kind, rec, process),
        text: [rec.problem.clone(), rec.recommendation.clone(), rec.rationale.clone()],
    }
}
