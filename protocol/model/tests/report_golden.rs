//! Golden test of the final report.
//!
//! Builds a process with two workshops and recommendations in every status
//! through the operations of `konsens_model::schema`, with fixed actor ids
//! and timestamps, renders the report in all three formats and compares it
//! byte for byte with `tests/fixtures/report.{md,html,json}`.
//!
//! After an intended change of the report, regenerate the golden files with
//!
//! ```sh
//! UPDATE_GOLDEN=1 cargo test -p konsens-model --test report_golden
//! ```
//!
//! and review the diff before committing it.

use std::path::PathBuf;

use automerge::transaction::{CommitOptions, Transaction};
use automerge::{ActorId, Automerge};
use konsens_sync::DocumentId;
use konsens_model::richtext::to_spans;
use konsens_model::report::{ReportFormat, render};
use konsens_model::schema::{
    self, Endorsement, Member, MemberRole, Process, Recommendation, SchemaError, Stance, Status, Workshop,
};

/// 2025-01-20T09:00Z: the process starts.
const T0: i64 = 1_737_363_600_000;
/// 2025-03-14T16:00Z and 2025-05-22T17:00Z: the end of each workshop.
const FAIR_WORKSHOP: i64 = 1_741_968_000_000;
const GREEN_WORKSHOP: i64 = 1_747_933_200_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// Every change at a fixed time by a fixed actor, so the documents (and
/// anything derived from them) are the same on every run.
fn change(doc: &mut Automerge, time: i64, f: impl FnOnce(&mut Transaction<'_>) -> Result<(), SchemaError>) {
    doc.transact_with(|_| CommitOptions::default().with_time(time / 1000), f).expect("change applies");
}

fn url(n: u8) -> String {
    DocumentId::from_bytes([n; 16]).url()
}

fn process_doc() -> Automerge {
    let mut doc = Automerge::new().with_actor(ActorId::from([0xA0; 16]));
    change(&mut doc, T0, |tx| {
        schema::init_process(
            tx,
            "Skilled Immigration & Fair Work",
            "Recommendations of the Institute for Labour Policy's 2025 drafting process, \
             developed with employers, trade unions and migrant organisations in two workshops.\n\n\
             Each recommendation below was adopted by consensus of the participating organisations.",
        )?;
        for workshop in [
            Workshop {
                id: "w-fair".into(),
                title: "Fair recruitment".into(),
                theme: "Recruiting care and construction workers abroad without debt or deception".into(),
                sectors: vec!["care".into(), "construction".into()],
                date: Some("2025-03-14".into()),
            },
            Workshop {
                id: "w-green".into(),
                title: "Green skills".into(),
                theme: "Qualifications for the building transition".into(),
                sectors: vec!["construction".into(), "green skills".into()],
                date: Some("2025-05-22".into()),
            },
        ] {
            schema::add_workshop(tx, &workshop)?;
        }
        for (id, name, organisation, role) in [
            ("p-anna", "Anna Keller", "Institute for Labour Policy", MemberRole::Facilitator),
            ("p-jonas", "Jonas Weber", "German Care Providers' Association", MemberRole::Participant),
            ("p-mira", "Mira Okafor", "United Services Union", MemberRole::Participant),
            ("p-luis", "Luis Romero", "Migrant Workers' Advice Network", MemberRole::Participant),
            ("p-ines", "Ines Brandt", "Construction Industry Federation", MemberRole::Participant),
        ] {
            let member = Member { name: name.into(), organisation: organisation.into(), role };
            schema::put_member(tx, id, &member)?;
        }
        // Linked in the order the facilitator wants them in the report;
        // url(5) is deliberately not linked.
        for (workshop, n) in [("w-fair", 2), ("w-fair", 1), ("w-fair", 3), ("w-fair", 4), ("w-green", 6), ("w-green", 7)]
        {
            schema::link_recommendation(tx, workshop, &url(n))?;
        }
        Ok(())
    });
    doc
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
    let path: &[(Status, &str)] = match d.status {
        Status::Draft => &[],
        Status::Discussion => &[(Status::Discussion, "first reading")],
        Status::Consensus => &[(Status::Discussion, "first reading"), (Status::Consensus, "no objections")],
        Status::Adopted => &[
            (Status::Discussion, "first reading"),
            (Status::Consensus, "no objections"),
            (Status::Adopted, "adopted in plenary"),
        ],
        Status::Rejected => &[
            (Status::Discussion, "first reading"),
            (Status::Consensus, "put to the plenary"),
            (Status::Rejected, "no majority of organisations"),
        ],
    };
    for (step, (to, note)) in path.iter().enumerate() {
        let at = start + (step as i64 + 1) * 7 * DAY;
        change(&mut doc, at, |tx| schema::change_status(tx, *to, "p-anna", at, note).map(|_| ()));
    }
    for (i, (organisation, stance, note, by)) in d.endorsements.iter().enumerate() {
        let at = start + 22 * DAY + i as i64 * HOUR;
        let endorsement = Endorsement { stance: *stance, note: (*note).into(), by: (*by).into(), at };
        change(&mut doc, at, |tx| schema::endorse(tx, organisation, &endorsement));
    }
    doc
}

const DRAFTS: &[Draft] = &[
    Draft {
        n: 1,
        workshop: "w-fair",
        title: "Make recruitment fees the employer's responsibility",
        sectors: &["care", "construction"],
        addressees: &["Federal Ministry of Labour and Social Affairs", "Bundestag"],
        problem: "Some private agencies charge workers recruited abroad fees of **several thousand euros**, \
                  which are then deducted from their wages. This creates debt bondage and undercuts \
                  employers who recruit fairly.",
        recommendation: "Prohibit charging recruitment fees and related costs to workers, in line with the \
                         ILO [*General principles and operational guidelines for fair recruitment*]\
                         (https://www.ilo.org/fair-recruitment \"ILO fair recruitment initiative\").\n\n\
                         The prohibition should cover:\n\n\
                         - placement and service fees;\n\
                         - travel and visa costs;\n\
                         - costs of language courses required for the job.",
        rationale: "The *employer-pays principle* is the international standard. Clear rules protect \
                    workers and give fair employers a level playing field.",
        status: Status::Adopted,
        endorsements: &[
            ("United Services Union", Stance::Support, "Long overdue & enforceable.", "p-mira"),
            ("German Care Providers' Association", Stance::Support, "", "p-jonas"),
            (
                "Migrant Workers' Advice Network",
                Stance::Concerns,
                "Supports the ban, but enforcement needs a complaints office that workers can reach from abroad.",
                "p-luis",
            ),
        ],
    },
    Draft {
        n: 2,
        workshop: "w-fair",
        title: "Decide on the recognition of foreign qualifications within three months",
        sectors: &["care"],
        addressees: &["Federal Government", "State governments", "Competent recognition bodies"],
        problem: "Nurses and care workers trained abroad wait on average **eight months** for a decision \
                  on the equivalence of their qualification. Responsibilities are split between more than \
                  1,500 competent bodies.",
        recommendation: "The federal and state governments should:\n\n\
                         1. introduce a binding deadline of *three months* from the complete application;\n\
                         2. create one digital entry point that routes every application to the competent body;\n\
                         3. grant partial recognition with a list of missing modules instead of a rejection.",
        rationale: "Deadlines exist in the EU Professional Qualifications Directive but are rarely enforced. \
                    A single entry point has shortened procedures in \
                    [Denmark](https://www.workindenmark.dk) and Canada.",
        status: Status::Adopted,
        endorsements: &[
            ("German Care Providers' Association", Stance::Support, "Our members lose applicants every month.", "p-jonas"),
            ("United Services Union", Stance::Support, "", "p-mira"),
        ],
    },
    Draft {
        n: 3,
        workshop: "w-fair",
        title: "Certify recruitment agencies placing workers in care",
        sectors: &["care"],
        addressees: &["Federal Employment Agency"],
        problem: "Anyone can open a recruitment agency.",
        recommendation: "Introduce a mandatory certificate for agencies recruiting care workers abroad.",
        rationale: "",
        status: Status::Consensus,
        endorsements: &[],
    },
    Draft {
        n: 4,
        workshop: "w-fair",
        title: "Publish a list of agencies that broke the rules",
        sectors: &["care", "construction"],
        addressees: &[],
        problem: "",
        recommendation: "Publish the names of agencies fined for violations.",
        rationale: "",
        status: Status::Draft,
        endorsements: &[],
    },
    Draft {
        n: 5,
        workshop: "w-fair",
        title: "Fund job-related language training \"from day one\"",
        sectors: &["care", "construction"],
        addressees: &["Federal Office for Migration and Refugees"],
        problem: "Language courses start only after the residence permit is issued and teach general language.",
        recommendation: "Fund job-related language courses (B1 to B2) from the day of arrival, offered \
                         part-time and in the workplace where possible.",
        rationale: "Learning while working keeps people in employment; small firms cannot release staff for \
                    full-time courses.",
        status: Status::Adopted,
        endorsements: &[("Construction Industry Federation", Stance::Support, "", "p-ines")],
    },
    Draft {
        n: 6,
        workshop: "w-green",
        title: "Build green skills into vocational training for construction",
        sectors: &["construction", "green skills"],
        addressees: &["Federal Institute for Vocational Education and Training", "Chambers of crafts"],
        problem: "Heat pumps, insulation and photovoltaics require skills that many training regulations \
                  do not yet cover. Immigrant workers with relevant experience cannot have it certified.",
        recommendation: "Add modules on energy-efficient building technology to the training regulations of \
                         the construction trades, and open short **certified** courses to experienced \
                         workers regardless of where they trained.",
        rationale: "## Demand\n\nThe building transition needs an estimated 60,000 additional skilled workers \
                    a year.\n\n## Portability\n\nCertified modules make experience visible and portable \
                    between employers.",
        status: Status::Adopted,
        endorsements: &[
            ("Construction Industry Federation", Stance::Support, "Modules must stay short.", "p-ines"),
            ("United Services Union", Stance::Support, "", "p-mira"),
            ("Energy Transition Alliance", Stance::Object, "Does not go far enough <without> funding.", "p-unknown"),
        ],
    },
    Draft {
        n: 7,
        workshop: "w-green",
        title: "Tax credit for firms training heat pump installers",
        sectors: &["construction", "green skills"],
        addressees: &["Federal Ministry of Finance"],
        problem: "",
        recommendation: "Grant a tax credit per apprentice trained in heat pump installation.",
        rationale: "",
        status: Status::Rejected,
        endorsements: &[],
    },
];

fn inputs() -> (Process, String, Vec<(String, Recommendation)>) {
    let process_url = DocumentId::from_bytes([0xA0; 16]).url();
    let process = Process::from_doc(&process_doc()).expect("process reads");
    let recommendations = DRAFTS
        .iter()
        .map(|d| {
            let rec = Recommendation::from_doc(&recommendation_doc(&process_url, d)).expect("recommendation reads");
            (url(d.n), rec)
        })
        .collect();
    (process, process_url, recommendations)
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn check_golden(name: &str, actual: &str) {
    let path = fixture(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}; run with UPDATE_GOLDEN=1 to create it", path.display()));
    assert!(
        expected == actual,
        "{name} differs from the golden file; if the change is intended, rerun with UPDATE_GOLDEN=1 \
         and review the diff.\n--- actual ---\n{actual}"
    );
}

#[test]
fn report_matches_golden_files() {
    let (process, process_url, recommendations) = inputs();
    for (format, name) in
        [(ReportFormat::Markdown, "report.md"), (ReportFormat::Html, "report.html"), (ReportFormat::Json, "report.json")]
    {
        check_golden(name, &render(&process, &process_url, &recommendations, format));
    }
}

#[test]
fn report_is_deterministic_and_independent_of_input_order() {
    let (process, process_url, mut recommendations) = inputs();
    for format in [ReportFormat::Markdown, ReportFormat::Html, ReportFormat::Json] {
        let first = render(&process, &process_url, &recommendations, format);
        assert_eq!(first, render(&process, &process_url, &recommendations, format));
        recommendations.reverse();
        assert_eq!(first, render(&process, &process_url, &recommendations, format), "{format} order");
    }
}

#[test]
fn report_content_is_complete_and_escaped() {
    let (process, process_url, recommendations) = inputs();
    let md = render(&process, &process_url, &recommendations, ReportFormat::Markdown);
    // Only adopted recommendations, in the linked order, unlinked ones last.
    let order: Vec<usize> = ["Decide on the recognition", "Make recruitment fees", "Fund job-related", "Build green"]
        .iter()
        .map(|t| md.find(t).expect("adopted recommendation is in the report"))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "order {order:?}");
    for absent in ["Certify recruitment agencies", "Publish a list", "Tax credit"] {
        assert!(!md.contains(absent), "{absent} is not adopted");
    }
    assert!(md.contains("5 recommendations: 3 adopted, 1 at consensus, 1 in draft."));

    let html = render(&process, &process_url, &recommendations, ReportFormat::Html);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("Skilled Immigration &amp; Fair Work"));
    assert!(html.contains("&lt;without&gt;"));
    assert!(!html.contains("<without>"));

    let json = render(&process, &process_url, &recommendations, ReportFormat::Json);
    let value: serde_json::Value = serde_json::from_str(&json).expect("the JSON report is JSON");
    assert_eq!(value["adopted"], 4);
    assert_eq!(value["workshops"][0]["recommendations"][0]["endorsements"][0]["byName"], "Jonas Weber");
}
