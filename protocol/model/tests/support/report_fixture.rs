//! The report fixture: a German process with three workshops (one without
//! recommendations), members of five organisations and an observer,
//! recommendations in every status, endorsements with a dissent, and an open
//! and a resolved comment. Built through the operations of
//! `konsens_model::schema` with fixed actors and times, so every run gives
//! the same documents. Shared by the model's golden tests and
//! konsens-publish's PDF and DOCX tests (`#[path]`-included there).

#![allow(dead_code)]

use automerge::transaction::{CommitOptions, Transaction};
use automerge::{ActorId, Automerge};
use konsens_model::richtext::to_spans;
use konsens_model::amendment::{self, AmendmentState};
use konsens_model::consent::{self, ConsentError};
use konsens_model::schema::{
    self, Answer, Endorsement, Member, MemberRole, Process, Recommendation, SchemaError, Stance, Status, Workshop,
};
use konsens_sync::DocumentId;

/// 2025-01-20T09:00Z: the process starts.
const T0: i64 = 1_737_363_600_000;
/// 2025-03-14T16:00Z and 2025-05-22T17:00Z: the end of each workshop.
const FAIR_WORKSHOP: i64 = 1_741_968_000_000;
const GREEN_WORKSHOP: i64 = 1_747_933_200_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// 2027-01-20T10:00Z: the report date of the golden files.
pub const REPORT_DATE: i64 = 1_800_439_200_000;

/// Every change at a fixed time by a fixed actor.
fn change(doc: &mut Automerge, time: i64, f: impl FnOnce(&mut Transaction<'_>) -> Result<(), SchemaError>) {
    doc.transact_with(|_| CommitOptions::default().with_time(time / 1000), f).expect("change applies");
}

pub fn url(n: u8) -> String {
    DocumentId::from_bytes([n; 16]).url()
}

fn process_doc() -> Automerge {
    let mut doc = Automerge::new().with_actor(ActorId::from([0xA0; 16]));
    change(&mut doc, T0, |tx| {
        schema::init_process(
            tx,
            "Fachkräfteeinwanderung & faire Arbeit",
            "Handlungsempfehlungen des Instituts für Arbeitsmarktpolitik, in drei Workshops mit \
             Arbeitgebern, Gewerkschaften und Migrantenorganisationen erarbeitet.\n\n\
             Jede Empfehlung wurde im Konsens der beteiligten Organisationen beschlossen.",
        )?;
        for workshop in [
            Workshop {
                id: "w-fair".into(),
                title: "Faire Anwerbung".into(),
                theme: "Pflege- und Baufachkräfte im Ausland anwerben, ohne Schulden und Täuschung".into(),
                sectors: vec!["Pflege".into(), "Bau".into()],
                date: Some("2025-03-14".into()),
            },
            Workshop {
                id: "w-green".into(),
                title: "Grüne Kompetenzen".into(),
                theme: "Qualifikationen für die Bauwende".into(),
                sectors: vec!["Bau".into(), "Energie".into()],
                date: Some("2025-05-22".into()),
            },
            Workshop {
                id: "w-rural".into(),
                title: "Ländliche Räume".into(),
                theme: "Fachkräfte für Kommunen außerhalb der Ballungszentren".into(),
                sectors: vec![],
                date: None,
            },
        ] {
            schema::add_workshop(tx, &workshop)?;
        }
        for (id, name, organisation, role) in [
            ("p-anna", "Anna Keller", "Institut für Arbeitsmarktpolitik", MemberRole::Facilitator),
            ("p-jonas", "Jonas Weber", "Bundesverband der Pflegeanbieter", MemberRole::Participant),
            ("p-mira", "Mira Okafor", "Vereinte Dienstleistungsgewerkschaft", MemberRole::Participant),
            ("p-luis", "Luis Romero", "Beratungsnetz Migration und Arbeit", MemberRole::Participant),
            ("p-ines", "Ines Brandt", "Ärztekammer Nord", MemberRole::Participant),
            ("p-ole", "Ole Berg", "Vereinte Dienstleistungsgewerkschaft", MemberRole::Participant),
            ("p-tim", "Tim Vogt", "Bundesministerium für Arbeit", MemberRole::Observer),
        ] {
            let member = Member { name: name.into(), organisation: organisation.into(), role };
            schema::put_member(tx, id, &member)?;
        }
        // Linked in the order the facilitator wants them; url(5) is not linked.
        for (workshop, n) in [("w-fair", 2), ("w-fair", 1), ("w-fair", 3), ("w-fair", 4), ("w-green", 6), ("w-green", 7)]
        {
            schema::link_recommendation(tx, workshop, &url(n))?;
        }
        Ok(())
    });
    doc
}

/// A consent round, opened a day after the recommendation reached consensus.
struct RoundPlan {
    /// (organisation, answer, reason, participant)
    answers: &'static [(&'static str, Answer, &'static str, &'static str)],
    /// Closed with this outcome two days later, or left open.
    outcome: Option<&'static str>,
    /// A change of wording after the round and before the adoption.
    edited_after: Option<&'static str>,
}

fn round_change(doc: &mut Automerge, time: i64, f: impl FnOnce(&mut Transaction<'_>) -> Result<(), ConsentError>) {
    doc.transact_with(|_| CommitOptions::default().with_time(time / 1000), f).expect("round change applies");
}

fn hold_round(doc: &mut Automerge, consensus_at: i64, plan: &RoundPlan) {
    let opened = consensus_at + DAY;
    round_change(doc, opened, |tx| consent::open(tx, "r1", "Stimmen Sie dem Wortlaut zu?", opened + 10 * DAY, "p-anna", opened));
    for (i, (organisation, answer, reason, by)) in plan.answers.iter().enumerate() {
        let at = opened + (i as i64 + 1) * HOUR;
        round_change(doc, at, |tx| consent::answer(tx, organisation, *answer, reason, by, at));
    }
    if let Some(outcome) = plan.outcome {
        let at = opened + 2 * DAY;
        round_change(doc, at, |tx| consent::close(tx, outcome, "p-anna", at));
    }
    if let Some(text) = plan.edited_after {
        change(doc, opened + 3 * DAY, |tx| schema::set_rich_text(tx, "rationale", to_spans(text)));
    }
}

struct Draft {
    n: u8,
    workshop: &'static str,
    title: &'static str,
    sectors: &'static [&'static str],
    addressees: &'static [&'static str],
    problem: &'static str,
    recommendation: &'static str,
    rationale: &'static str,
    status: Status,
    endorsements: &'static [(&'static str, Stance, &'static str, &'static str)],
    /// (quoted text in `recommendation`, comment, resolved)
    comments: &'static [(&'static str, &'static str, bool)],
    /// A change of wording after the adoption: not in the final report.
    edited_after: Option<&'static str>,
    round: Option<RoundPlan>,
}

fn recommendation_doc(process_url: &str, d: &Draft) -> Automerge {
    let mut doc = Automerge::new().with_actor(ActorId::from([d.n; 16]));
    let workshop_end = if d.workshop == "w-green" { GREEN_WORKSHOP } else { FAIR_WORKSHOP };
    let start = workshop_end + i64::from(d.n) * HOUR;
    change(&mut doc, start, |tx| {
        let sectors: Vec<String> = d.sectors.iter().map(|s| (*s).to_owned()).collect();
        schema::init_recommendation(tx, process_url, d.workshop, d.title, &sectors)?;
        let addressees: Vec<String> = d.addressees.iter().map(|s| (*s).to_owned()).collect();
        schema::set_list(tx, "addressees", &addressees)?;
        schema::set_rich_text(tx, "problem", to_spans(d.problem))?;
        schema::set_rich_text(tx, "recommendation", to_spans(d.recommendation))?;
        schema::set_rich_text(tx, "rationale", to_spans(d.rationale))?;
        Ok(())
    });
    for (i, (quote, body, resolved)) in d.comments.iter().enumerate() {
        let at = start + 2 * DAY + i as i64 * HOUR;
        change(&mut doc, at, |tx| {
            let id = format!("c{i}");
            schema::add_comment(tx, &id, "recommendation", quote, body, "p-luis", at)?;
            if *resolved {
                schema::resolve_comment(tx, &id, true)?;
            }
            Ok(())
        });
    }
    // Recommendation 1 had amendments before its adoption: one rejected with
    // an official answer, one still open, one withdrawn (never listed).
    if d.n == 1 {
        let at = start + 3 * DAY;
        let branch = |k: u8| DocumentId::from_bytes([0xB0 + k; 16]);
        let plan = [
            (1, "Frist auf zwei Wochen verkürzen", "p-mira"),
            (2, "Auch Praktika einbeziehen", "p-jonas"),
            (3, "Nur für Großbetriebe", "p-ines"),
        ];
        for (k, title, by) in plan {
            change(&mut doc, at + i64::from(k) * HOUR, |tx| {
                amendment::add(tx, branch(k), title, by, at + i64::from(k) * HOUR, &[]).map_err(|e| SchemaError::Malformed { kind: "amendment", reason: e.to_string() })
            });
        }
        amendment::answer(&mut doc, branch(1), AmendmentState::Rejected, "Zwei Wochen reichen für die Prüfung der Unterlagen nicht aus.", "p-anna", at + DAY)
            .expect("answer");
        change(&mut doc, at + 2 * DAY, |tx| {
            amendment::withdraw(tx, branch(3)).map_err(|e| SchemaError::Malformed { kind: "amendment", reason: e.to_string() })
        });
    }
    let path: &[(Status, &str)] = match d.status {
        Status::Draft => &[],
        Status::Discussion => &[(Status::Discussion, "erste Lesung")],
        Status::Consensus => &[(Status::Discussion, "erste Lesung"), (Status::Consensus, "keine Einwände")],
        Status::Adopted => &[
            (Status::Discussion, "erste Lesung"),
            (Status::Consensus, "keine Einwände"),
            (Status::Adopted, "im Plenum angenommen"),
        ],
        Status::Rejected => &[
            (Status::Discussion, "erste Lesung"),
            (Status::Consensus, "dem Plenum vorgelegt"),
            (Status::Rejected, "keine Mehrheit der Organisationen"),
        ],
    };
    for (step, (to, note)) in path.iter().enumerate() {
        let at = start + (step as i64 + 1) * 7 * DAY;
        change(&mut doc, at, |tx| schema::change_status(tx, *to, "p-anna", at, note).map(|_| ()));
        if let (Status::Consensus, Some(plan)) = (to, &d.round) {
            hold_round(&mut doc, at, plan);
        }
    }
    for (i, (organisation, stance, note, by)) in d.endorsements.iter().enumerate() {
        let at = start + 22 * DAY + i as i64 * HOUR;
        let endorsement = Endorsement { stance: *stance, note: (*note).into(), by: (*by).into(), at };
        change(&mut doc, at, |tx| schema::endorse(tx, organisation, &endorsement));
    }
    if let Some(text) = d.edited_after {
        change(&mut doc, start + 30 * DAY, |tx| schema::set_rich_text(tx, "recommendation", to_spans(text)));
    }
    doc
}

const DRAFTS: &[Draft] = &[
    Draft {
        n: 1,
        workshop: "w-fair",
        title: "Vermittlungsgebühren tragen die Arbeitgeber",
        sectors: &["Pflege", "Bau"],
        addressees: &["Bundesministerium für Arbeit und Soziales", "Deutscher Bundestag"],
        problem: "Manche private Agenturen verlangen von im Ausland angeworbenen Beschäftigten Gebühren von \
                  **mehreren tausend Euro**, die später vom Lohn abgezogen werden.",
        recommendation: "Gebühren und Kosten der Anwerbung dürfen Beschäftigten nicht auferlegt werden, im \
                         Einklang mit den [*Leitlinien der ILO für faire Anwerbung*](https://www.ilo.org/fair-recruitment).\n\n\
                         Das Verbot umfasst:\n\n\
                         - Vermittlungs- und Servicegebühren;\n\
                         - Reise- und Visakosten;\n\
                         - Kosten für berufsbezogene Sprachkurse.",
        rationale: "Das *Arbeitgeberprinzip* ist internationaler Standard.",
        status: Status::Adopted,
        endorsements: &[
            ("Vereinte Dienstleistungsgewerkschaft", Stance::Support, "Überfällig & durchsetzbar.", "p-mira"),
            ("Bundesverband der Pflegeanbieter", Stance::Support, "", "p-jonas"),
            (
                "Beratungsnetz Migration und Arbeit",
                Stance::Concerns,
                "Die Durchsetzung braucht eine Beschwerdestelle, die aus dem Ausland erreichbar ist.",
                "p-luis",
            ),
        ],
        comments: &[("Reise- und Visakosten", "Auch die Rückreise?", true)],
        edited_after: Some("Ein später geänderter Wortlaut, der nicht angenommen wurde."),
        round: Some(RoundPlan {
            answers: &[
                ("Vereinte Dienstleistungsgewerkschaft", Answer::Agree, "", "p-mira"),
                ("Bundesverband der Pflegeanbieter", Answer::Agree, "", "p-jonas"),
                ("Ärztekammer Nord", Answer::Abstain, "", "p-ines"),
                (
                    "Beratungsnetz Migration und Arbeit",
                    Answer::Disagree,
                    "Ohne eine aus dem Ausland erreichbare Beschwerdestelle bleibt das Verbot wirkungslos.",
                    "p-luis",
                ),
            ],
            outcome: Some("Konsens ohne Veto; die Bedenken des Beratungsnetzes werden im Bericht festgehalten."),
            edited_after: None,
        }),
    },
    Draft {
        n: 2,
        workshop: "w-fair",
        title: "Anerkennung ausländischer Abschlüsse binnen drei Monaten",
        sectors: &["Pflege"],
        addressees: &["Bundesregierung", "Landesregierungen"],
        problem: "Pflegekräfte warten im Schnitt **acht Monate** auf die Anerkennung ihres Abschlusses.",
        recommendation: "Bund und Länder sollen:\n\n\
                         1. eine verbindliche Frist von *drei Monaten* einführen;\n\
                         2. eine digitale Anlaufstelle schaffen;\n\
                         3. Teilanerkennungen statt Ablehnungen aussprechen.",
        rationale: "## Erfahrungen\n\nEine zentrale Anlaufstelle hat die Verfahren in Dänemark verkürzt.",
        status: Status::Adopted,
        endorsements: &[
            ("Bundesverband der Pflegeanbieter", Stance::Support, "", "p-jonas"),
            ("Vereinte Dienstleistungsgewerkschaft", Stance::Support, "", "p-mira"),
        ],
        comments: &[],
        edited_after: None,
        round: Some(RoundPlan {
            answers: &[
                ("Bundesverband der Pflegeanbieter", Answer::Agree, "", "p-jonas"),
                ("Vereinte Dienstleistungsgewerkschaft", Answer::Agree, "", "p-mira"),
                ("Ärztekammer Nord", Answer::Agree, "", "p-ines"),
            ],
            outcome: Some("Einvernehmlich angenommen."),
            edited_after: Some("## Erfahrungen\n\nEine zentrale Anlaufstelle hat die Verfahren in Dänemark und Schweden verkürzt."),
        }),
    },
    Draft {
        n: 3,
        workshop: "w-fair",
        title: "Agenturen in der Pflege zertifizieren",
        sectors: &["Pflege"],
        addressees: &["Bundesagentur für Arbeit"],
        problem: "Jede und jeder kann eine Vermittlungsagentur eröffnen.",
        recommendation: "Ein verpflichtendes Zertifikat für Agenturen, die Pflegekräfte im Ausland anwerben.",
        rationale: "",
        status: Status::Consensus,
        endorsements: &[("Ärztekammer Nord", Stance::Support, "", "p-ines")],
        comments: &[("verpflichtendes Zertifikat", "Wer stellt es aus?", false)],
        edited_after: None,
        round: Some(RoundPlan {
            answers: &[
                ("Ärztekammer Nord", Answer::Agree, "", "p-ines"),
                ("Bundesverband der Pflegeanbieter", Answer::Block, "Die Kosten der Zertifizierung sind nicht geklärt.", "p-jonas"),
            ],
            outcome: None,
            edited_after: None,
        }),
    },
    Draft {
        n: 4,
        workshop: "w-fair",
        title: "Liste der Agenturen mit Verstößen veröffentlichen",
        sectors: &[],
        addressees: &[],
        problem: "",
        recommendation: "Die Namen von Agenturen, gegen die Bußgelder verhängt wurden, werden veröffentlicht.",
        rationale: "",
        status: Status::Draft,
        endorsements: &[],
        comments: &[],
        edited_after: None,
        round: None,
    },
    Draft {
        n: 5,
        workshop: "w-fair",
        title: "Berufsbezogene Sprachkurse \"ab dem ersten Tag\"",
        sectors: &["Pflege", "Bau"],
        addressees: &["Bundesamt für Migration und Flüchtlinge"],
        problem: "Sprachkurse beginnen erst nach Erteilung des Aufenthaltstitels.",
        recommendation: "Berufsbezogene Sprachkurse (B1 bis B2) ab dem Tag der Einreise fördern.",
        rationale: "",
        status: Status::Adopted,
        endorsements: &[("Ärztekammer Nord", Stance::Support, "", "p-ines")],
        comments: &[],
        edited_after: None,
        round: None,
    },
    Draft {
        n: 6,
        workshop: "w-green",
        title: "Grüne Kompetenzen in die Berufsausbildung am Bau",
        sectors: &["Bau", "Energie"],
        addressees: &["Bundesinstitut für Berufsbildung", "Handwerkskammern"],
        problem: "Wärmepumpen und Dämmung verlangen Kenntnisse, die viele Ausbildungsordnungen nicht abdecken.",
        recommendation: "Module zu energieeffizienter Gebäudetechnik in die Ausbildungsordnungen aufnehmen \
                         und **zertifizierte** Kurzkurse für erfahrene Beschäftigte öffnen.",
        rationale: "Die Bauwende braucht jährlich rund 60.000 zusätzliche Fachkräfte.",
        status: Status::Adopted,
        endorsements: &[
            ("Vereinte Dienstleistungsgewerkschaft", Stance::Support, "", "p-mira"),
            ("Bündnis Energiewende", Stance::Object, "Ohne Finanzierung <unzureichend>.", "p-unknown"),
        ],
        comments: &[],
        edited_after: None,
        round: None,
    },
    Draft {
        n: 7,
        workshop: "w-green",
        title: "Steuergutschrift für Ausbildungsbetriebe",
        sectors: &["Bau"],
        addressees: &["Bundesministerium der Finanzen"],
        problem: "",
        recommendation: "Eine Steuergutschrift je Auszubildendem in der Wärmepumpeninstallation.",
        rationale: "",
        status: Status::Rejected,
        endorsements: &[],
        comments: &[],
        edited_after: None,
        round: None,
    },
];

/// The process and its recommendation documents, as `(URL, document)`.
pub fn documents() -> (Process, Vec<(String, Automerge)>) {
    let process_url = DocumentId::from_bytes([0xA0; 16]).url();
    let process = Process::from_doc(&process_doc()).expect("process reads");
    let docs = DRAFTS.iter().map(|d| (url(d.n), recommendation_doc(&process_url, d))).collect();
    (process, docs)
}

/// The recommendations as a final report reads them (adopted wording).
pub fn as_adopted(docs: &[(String, Automerge)]) -> Vec<(String, Recommendation)> {
    docs.iter()
        .map(|(url, doc)| (url.clone(), Recommendation::from_doc_as_adopted(doc).expect("recommendation reads")))
        .collect()
}

/// The recommendations as an interim report reads them (current wording).
pub fn as_they_are(docs: &[(String, Automerge)]) -> Vec<(String, Recommendation)> {
    docs.iter().map(|(url, doc)| (url.clone(), Recommendation::from_doc(doc).expect("recommendation reads"))).collect()
}
