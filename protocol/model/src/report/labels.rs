//! Every word the report says around its content, in German and English:
//! labels, sentences with their plurals, status and stance names, dates.
//!
//! German is written as a ministry would print it, not translated word for
//! word: "Handlungsempfehlung", "Adressaten", "20. Januar 2027".

use serde::Serialize;

use super::{Language, ReportKind};
use crate::schema::{Answer, Stance, Status};

/// The fixed labels of one language. Serialised for the PDF template,
/// which lays the report out and must not invent words of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Labels {
    pub final_report: &'static str,
    pub interim_report: &'static str,
    pub as_of: &'static str,
    pub theme: &'static str,
    pub date: &'static str,
    pub sectors: &'static str,
    pub recommendation: &'static str,
    pub status: &'static str,
    pub addressees: &'static str,
    pub adopted_on: &'static str,
    pub open_comments: &'static str,
    pub problem: &'static str,
    pub recommendation_text: &'static str,
    pub rationale: &'static str,
    pub endorsed_by: &'static str,
    pub dissent: &'static str,
    pub positions: &'static str,
    pub no_positions: &'static str,
    pub organisation: &'static str,
    pub position: &'static str,
    pub note: &'static str,
    pub organisations: &'static str,
    pub no_organisations: &'static str,
    pub other_recommendations: &'static str,
    pub page: &'static str,
    pub contents: &'static str,
    pub consent_round: &'static str,
    pub outcome: &'static str,
    pub not_answered: &'static str,
    pub amendments: &'static str,
    pub official_answer: &'static str,
}

const DE: Labels = Labels {
    final_report: "Abschlussbericht",
    interim_report: "Zwischenbericht",
    as_of: "Stand",
    theme: "Thema",
    date: "Datum",
    sectors: "Sektoren",
    recommendation: "Handlungsempfehlung",
    status: "Status",
    addressees: "Adressaten",
    adopted_on: "Angenommen am",
    open_comments: "Offene Kommentare",
    problem: "Problem",
    recommendation_text: "Empfehlung",
    rationale: "Begründung",
    endorsed_by: "Unterstützt von",
    dissent: "Abweichende Positionen",
    positions: "Positionen der Organisationen",
    no_positions: "Bisher hat keine Organisation Stellung genommen.",
    organisation: "Organisation",
    position: "Position",
    note: "Anmerkung",
    organisations: "Beteiligte Organisationen",
    no_organisations: "Es sind keine Organisationen verzeichnet.",
    other_recommendations: "Weitere Handlungsempfehlungen",
    page: "Seite",
    contents: "Inhalt",
    consent_round: "Konsensrunde",
    outcome: "Ergebnis",
    not_answered: "Noch nicht geantwortet haben",
    amendments: "Änderungsanträge",
    official_answer: "Antwort der Moderation",
};

const EN: Labels = Labels {
    final_report: "Final report",
    interim_report: "Interim report",
    as_of: "As of",
    theme: "Theme",
    date: "Date",
    sectors: "Sectors",
    recommendation: "Recommendation",
    status: "Status",
    addressees: "Addressed to",
    adopted_on: "Adopted on",
    open_comments: "Open comments",
    problem: "Problem",
    recommendation_text: "Recommendation",
    rationale: "Rationale",
    endorsed_by: "Endorsed by",
    dissent: "Dissenting positions",
    positions: "Positions of the organisations",
    no_positions: "No organisation has taken a position yet.",
    organisation: "Organisation",
    position: "Position",
    note: "Note",
    organisations: "Participating organisations",
    no_organisations: "No organisations are listed.",
    other_recommendations: "Other recommendations",
    page: "Page",
    contents: "Contents",
    consent_round: "Consent round",
    outcome: "Outcome",
    not_answered: "Not yet answered",
    amendments: "Amendments",
    official_answer: "Facilitators' answer",
};

impl Labels {
    pub fn of(language: Language) -> &'static Labels {
        match language {
            Language::De => &DE,
            Language::En => &EN,
        }
    }

    pub fn kind(&self, kind: ReportKind) -> &'static str {
        match kind {
            ReportKind::Final => self.final_report,
            ReportKind::Interim => self.interim_report,
        }
    }
}

/// An amendment's state as the report's list says it.
pub(super) fn amendment_state_name(language: Language, state: crate::amendment::AmendmentState) -> &'static str {
    use crate::amendment::AmendmentState as A;
    match (language, state) {
        (Language::De, A::Open) => "offen",
        (Language::De, A::ChangesRequested) => "Überarbeitung erbeten",
        (Language::De, A::Accepted) => "angenommen",
        (Language::De, A::Rejected) => "abgelehnt",
        (Language::De, A::Withdrawn) => "zurückgezogen",
        (Language::En, A::Open) => "open",
        (Language::En, A::ChangesRequested) => "changes requested",
        (Language::En, A::Accepted) => "accepted",
        (Language::En, A::Rejected) => "rejected",
        (Language::En, A::Withdrawn) => "withdrawn",
    }
}

/// A status as a badge or table cell says it.
pub(super) fn status_name(language: Language, status: Status) -> &'static str {
    match (language, status) {
        (Language::De, Status::Draft) => "Entwurf",
        (Language::De, Status::Discussion) => "In Diskussion",
        (Language::De, Status::Consensus) => "Konsens erzielt",
        (Language::De, Status::Adopted) => "Angenommen",
        (Language::De, Status::Rejected) => "Abgelehnt",
        (Language::En, Status::Draft) => "Draft",
        (Language::En, Status::Discussion) => "In discussion",
        (Language::En, Status::Consensus) => "Consensus reached",
        (Language::En, Status::Adopted) => "Adopted",
        (Language::En, Status::Rejected) => "Rejected",
    }
}

/// An organisation's stance, as the predicate of "Organisation …".
pub(super) fn stance_name(language: Language, stance: Stance) -> &'static str {
    match (language, stance) {
        (Language::De, Stance::Support) => "unterstützt",
        (Language::De, Stance::Concerns) => "hat Bedenken",
        (Language::De, Stance::Object) => "lehnt ab",
        (Language::En, Stance::Support) => "supports",
        (Language::En, Stance::Concerns) => "has concerns",
        (Language::En, Stance::Object) => "objects",
    }
}

/// An organisation's answer in a consent round, as the predicate of
/// "Organisation …" (the report lists disagreements and blocks this way).
pub(super) fn answer_name(language: Language, answer: Answer) -> &'static str {
    match (language, answer) {
        (Language::De, Answer::Agree) => "stimmt zu",
        (Language::De, Answer::Abstain) => "enthält sich",
        (Language::De, Answer::Disagree) => "lehnt ab",
        (Language::De, Answer::Block) => "legt ein Veto ein",
        (Language::En, Answer::Agree) => "agrees",
        (Language::En, Answer::Abstain) => "abstains",
        (Language::En, Answer::Disagree) => "disagrees",
        (Language::En, Answer::Block) => "blocks",
    }
}

/// "5 Zustimmungen, 1 Enthaltung und 1 Ablehnung"; answers nobody gave are
/// left out; `None` when there are no answers at all.
fn answer_counts(language: Language, counts: &[(Answer, usize)]) -> Option<String> {
    let parts: Vec<String> = counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(answer, n)| {
            let one = *n == 1;
            let word = match (language, answer) {
                (Language::De, Answer::Agree) => if one { "Zustimmung" } else { "Zustimmungen" },
                (Language::De, Answer::Abstain) => if one { "Enthaltung" } else { "Enthaltungen" },
                (Language::De, Answer::Disagree) => if one { "Ablehnung" } else { "Ablehnungen" },
                (Language::De, Answer::Block) => if one { "Veto" } else { "Vetos" },
                (Language::En, Answer::Agree) => "in favour",
                (Language::En, Answer::Abstain) => if one { "abstention" } else { "abstentions" },
                (Language::En, Answer::Disagree) => "against",
                (Language::En, Answer::Block) => if one { "block" } else { "blocks" },
            };
            format!("{n} {word}")
        })
        .collect();
    (!parts.is_empty()).then(|| join_list(language, &parts))
}

/// A closed round's result: "Konsensrunde vom 20. Januar 2027:
/// 5 Zustimmungen, 1 Enthaltung und 1 Ablehnung."
pub(super) fn round_result(language: Language, closed_at: i64, counts: &[(Answer, usize)]) -> String {
    let date = format_date(language, closed_at);
    match (language, answer_counts(language, counts)) {
        (Language::De, Some(counts)) => format!("Konsensrunde vom {date}: {counts}."),
        (Language::De, None) => format!("Konsensrunde vom {date}: Keine Organisation hat geantwortet."),
        (Language::En, Some(counts)) => format!("Consent round of {date}: {counts}."),
        (Language::En, None) => format!("Consent round of {date}: no organisation answered."),
    }
}

/// An open round's state: "Die Konsensrunde läuft bis zum 3. Februar 2027.
/// Bisher: 2 Zustimmungen und 1 Enthaltung." Past its deadline (as of the
/// report date `today`) it says that the deadline has passed.
pub(super) fn round_open(language: Language, deadline: i64, today: i64, counts: &[(Answer, usize)]) -> String {
    let date = format_date(language, deadline);
    let over = deadline < today;
    let state = match (language, over) {
        (Language::De, false) => format!("Die Konsensrunde läuft bis zum {date}."),
        (Language::De, true) => format!("Die Frist der Konsensrunde endete am {date}; die Runde ist noch nicht abgeschlossen."),
        (Language::En, false) => format!("The consent round is open until {date}."),
        (Language::En, true) => format!("The consent round's deadline was {date}; the round has not been closed yet."),
    };
    match (language, answer_counts(language, counts)) {
        (Language::De, Some(counts)) => format!("{state} Bisher: {counts}."),
        (Language::De, None) => format!("{state} Bisher liegen keine Antworten vor."),
        (Language::En, Some(counts)) => format!("{state} So far: {counts}."),
        (Language::En, None) => format!("{state} No answers so far."),
    }
}

/// The note under a round whose wording was edited before the adoption.
pub(super) fn changed_after_round(language: Language) -> &'static str {
    match language {
        Language::De => "Der Wortlaut wurde nach der Konsensrunde noch geändert; angenommen wurde die geänderte Fassung.",
        Language::En => "The wording was changed after the consent round; the changed wording was adopted.",
    }
}

/// "1 Handlungsempfehlung", "4 Handlungsempfehlungen"; with an adjective
/// before the noun where one is given ("4 angenommene …").
fn recommendations(language: Language, n: usize, adjective: Option<(&str, &str)>) -> String {
    let noun = match (language, n) {
        (Language::De, 1) => "Handlungsempfehlung",
        (Language::De, _) => "Handlungsempfehlungen",
        (Language::En, 1) => "recommendation",
        (Language::En, _) => "recommendations",
    };
    match adjective {
        // After a numeral, German's adjective ends in -e in the singular
        // and the plural alike ("1 angenommene", "4 angenommene").
        Some((de, en)) => format!("{n} {} {noun}", if language == Language::De { de } else { en }),
        None => format!("{n} {noun}"),
    }
}

fn workshops(language: Language, n: usize) -> String {
    match (language, n) {
        (Language::De, 1) => "einem Workshop".to_owned(),
        (Language::En, 1) => "one workshop".to_owned(),
        (Language::De, _) => format!("{n} Workshops"),
        (Language::En, _) => format!("{n} workshops"),
    }
}

/// The sentence under the title.
pub(super) fn lede(language: Language, kind: ReportKind, shown: usize, workshop_count: usize) -> String {
    let from = workshops(language, workshop_count);
    match (kind, language, shown) {
        (ReportKind::Final, Language::De, 0) => "Bisher wurde keine Handlungsempfehlung angenommen.".to_owned(),
        (ReportKind::Final, Language::En, 0) => "No recommendation has been adopted so far.".to_owned(),
        (ReportKind::Final, Language::De, n) => format!(
            "Dieser Bericht enthält {} aus {from}.",
            recommendations(language, n, Some(("angenommene", "adopted")))
        ),
        (ReportKind::Final, Language::En, n) => format!(
            "This report presents {} from {from}.",
            recommendations(language, n, Some(("angenommene", "adopted")))
        ),
        (ReportKind::Interim, Language::De, 0) => "Bisher liegen keine Handlungsempfehlungen vor.".to_owned(),
        (ReportKind::Interim, Language::En, 0) => "No recommendations have been drafted so far.".to_owned(),
        (ReportKind::Interim, Language::De, n) => format!(
            "Dieser Zwischenbericht gibt den Stand der Beratungen wieder: {} aus {from}.",
            recommendations(language, n, None)
        ),
        (ReportKind::Interim, Language::En, n) => format!(
            "This interim report shows where the deliberations stand: {} from {from}.",
            recommendations(language, n, None)
        ),
    }
}

/// The one sentence of a workshop without recommendations to show.
pub(super) fn empty_workshop(language: Language, kind: ReportKind) -> &'static str {
    match (kind, language) {
        (ReportKind::Final, Language::De) => "Aus diesem Workshop wurde keine Handlungsempfehlung angenommen.",
        (ReportKind::Final, Language::En) => "No recommendation from this workshop was adopted.",
        (ReportKind::Interim, Language::De) => "In diesem Workshop liegen noch keine Handlungsempfehlungen vor.",
        (ReportKind::Interim, Language::En) => "This workshop has no recommendations yet.",
    }
}

/// An interim report's summary of a workshop: "3 Handlungsempfehlungen:
/// 1 angenommen und 2 in Diskussion."
pub(super) fn status_summary(language: Language, counts: &[(Status, usize)]) -> String {
    let total: usize = counts.iter().map(|(_, n)| n).sum();
    let parts: Vec<String> = counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(status, n)| {
            let word = match (language, status) {
                (Language::De, Status::Adopted) => "angenommen",
                (Language::De, Status::Rejected) => "abgelehnt",
                (Language::De, Status::Consensus) => "mit Konsens",
                (Language::De, Status::Discussion) => "in Diskussion",
                (Language::De, Status::Draft) => "im Entwurf",
                (Language::En, Status::Adopted) => "adopted",
                (Language::En, Status::Rejected) => "rejected",
                (Language::En, Status::Consensus) => "at consensus",
                (Language::En, Status::Discussion) => "in discussion",
                (Language::En, Status::Draft) => "in draft",
            };
            format!("{n} {word}")
        })
        .collect();
    let head = recommendations(language, total, None);
    if parts.is_empty() {
        return format!("{head}.");
    }
    format!("{head}: {}.", join_list(language, &parts))
}

/// "A, B und C" / "A, B and C".
pub(super) fn join_list(language: Language, items: &[String]) -> String {
    let and = if language == Language::De { " und " } else { " and " };
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{}{and}{last}", rest.join(", ")),
    }
}

/// `YYYY-MM-DD` (UTC) of a Unix time in milliseconds, without a date library
/// (Howard Hinnant's days-to-civil algorithm).
pub fn iso_date(millis: i64) -> String {
    let (year, month, day) = civil(millis);
    format!("{year:04}-{month:02}-{day:02}")
}

fn civil(millis: i64) -> (i64, i64, i64) {
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
    (year, month, day)
}

const MONTHS_DE: [&str; 12] =
    ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober", "November", "Dezember"];
const MONTHS_EN: [&str; 12] = [
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December",
];

fn long_date(language: Language, year: i64, month: i64, day: i64) -> Option<String> {
    let index = usize::try_from(month - 1).ok().filter(|m| *m < 12)?;
    Some(match language {
        Language::De => format!("{day}. {} {year}", MONTHS_DE[index]),
        Language::En => format!("{day} {} {year}", MONTHS_EN[index]),
    })
}

/// A Unix time in milliseconds as a date people read: "20. Januar 2027",
/// "20 January 2027" (UTC).
pub fn format_date(language: Language, millis: i64) -> String {
    let (year, month, day) = civil(millis);
    long_date(language, year, month, day).unwrap_or_else(|| iso_date(millis))
}

/// A workshop's ISO date (`YYYY-MM-DD`) as [`format_date`] writes it; any
/// other text as it was written.
pub(super) fn format_iso_date(language: Language, text: &str) -> String {
    let text = text.trim();
    let mut parts = text.splitn(3, '-');
    let parsed = (|| {
        let year: i64 = parts.next()?.parse().ok()?;
        let month: i64 = parts.next()?.parse().ok()?;
        let day: i64 = parts.next()?.parse().ok()?;
        (1..=31).contains(&day).then_some(())?;
        long_date(language, year, month, day)
    })();
    parsed.unwrap_or_else(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(iso_date(0), "1970-01-01");
        assert_eq!(iso_date(951_782_400_000), "2000-02-29");
        assert_eq!(iso_date(1_741_910_400_000), "2025-03-14");
        assert_eq!(iso_date(-86_400_000), "1969-12-31");
        let _ = iso_date(i64::MIN);
        let _ = iso_date(i64::MAX);
        // 2027-01-20T10:00Z
        assert_eq!(format_date(Language::De, 1_800_439_200_000), "20. Januar 2027");
        assert_eq!(format_date(Language::En, 1_800_439_200_000), "20 January 2027");
        assert_eq!(format_iso_date(Language::De, "2025-03-14"), "14. März 2025");
        assert_eq!(format_iso_date(Language::En, " 2025-05-02 "), "2 May 2025");
        assert_eq!(format_iso_date(Language::De, "Frühjahr 2025"), "Frühjahr 2025");
        assert_eq!(format_iso_date(Language::De, "2025-13-01"), "2025-13-01");
    }

    #[test]
    fn sentences_have_proper_plurals() {
        assert_eq!(
            lede(Language::De, ReportKind::Final, 1, 1),
            "Dieser Bericht enthält 1 angenommene Handlungsempfehlung aus einem Workshop."
        );
        assert_eq!(
            lede(Language::De, ReportKind::Final, 4, 3),
            "Dieser Bericht enthält 4 angenommene Handlungsempfehlungen aus 3 Workshops."
        );
        assert_eq!(lede(Language::En, ReportKind::Final, 1, 2), "This report presents 1 adopted recommendation from 2 workshops.");
        assert_eq!(
            status_summary(Language::De, &[(Status::Adopted, 1), (Status::Discussion, 2), (Status::Draft, 0)]),
            "3 Handlungsempfehlungen: 1 angenommen und 2 in Diskussion."
        );
        assert_eq!(status_summary(Language::De, &[(Status::Adopted, 1)]), "1 Handlungsempfehlung: 1 angenommen.");
        assert_eq!(
            status_summary(Language::En, &[(Status::Adopted, 2), (Status::Draft, 1)]),
            "3 recommendations: 2 adopted and 1 in draft."
        );
        assert_eq!(join_list(Language::De, &["A".into(), "B".into(), "C".into()]), "A, B und C");
        let counts = [(Answer::Agree, 5), (Answer::Abstain, 1), (Answer::Disagree, 1), (Answer::Block, 0)];
        assert_eq!(
            round_result(Language::De, 1_800_439_200_000, &counts),
            "Konsensrunde vom 20. Januar 2027: 5 Zustimmungen, 1 Enthaltung und 1 Ablehnung."
        );
        assert_eq!(
            round_result(Language::En, 1_800_439_200_000, &counts),
            "Consent round of 20 January 2027: 5 in favour, 1 abstention and 1 against."
        );
        assert_eq!(
            round_open(Language::De, 1_800_439_200_000, 0, &[(Answer::Agree, 1), (Answer::Block, 2)]),
            "Die Konsensrunde läuft bis zum 20. Januar 2027. Bisher: 1 Zustimmung und 2 Vetos."
        );
        assert_eq!(
            round_open(Language::En, 1_800_439_200_000, 0, &[(Answer::Agree, 0)]),
            "The consent round is open until 20 January 2027. No answers so far."
        );
        assert_eq!(
            round_open(Language::De, 1_800_439_200_000, 1_800_439_200_001, &[(Answer::Agree, 1)]),
            "Die Frist der Konsensrunde endete am 20. Januar 2027; die Runde ist noch nicht abgeschlossen. Bisher: 1 Zustimmung."
        );
    }
}
