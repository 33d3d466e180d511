//! Golden tests of the report: final and interim, German and English,
//! Markdown, HTML and JSON, from the fixture in `support/report_fixture.rs`,
//! compared byte for byte with `tests/golden/report-{kind}-{lang}.{ext}`.
//!
//! After an intended change of the report, regenerate the golden files with
//!
//! ```sh
//! UPDATE_GOLDEN=1 cargo test -p konsens-model --test report_golden
//! ```
//!
//! and review the diff before committing it.

#[path = "support/report_fixture.rs"]
mod fixture;

use std::path::PathBuf;

use konsens_model::report::{self, Language, Report, ReportFormat, ReportKind, ReportOptions};

fn report(kind: ReportKind, language: Language) -> Report {
    let (process, docs) = fixture::documents();
    let recommendations = match kind {
        ReportKind::Final => fixture::as_adopted(&docs),
        ReportKind::Interim => fixture::as_they_are(&docs),
    };
    report::build(&process, &recommendations, &ReportOptions { kind, language, date: fixture::REPORT_DATE })
}

fn text(report: &Report, format: ReportFormat) -> String {
    report::render_text(report, format).expect("a text format")
}

fn check_golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("golden dir")).expect("create golden dir");
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
fn reports_match_golden_files() {
    for kind in ReportKind::ALL {
        for language in Language::ALL {
            let report = report(*kind, *language);
            for format in [ReportFormat::Markdown, ReportFormat::Html, ReportFormat::Json] {
                check_golden(&format!("report-{kind}-{language}.{}", format.extension()), &text(&report, format));
            }
        }
    }
}

#[test]
fn report_is_deterministic_and_independent_of_input_order() {
    let (process, docs) = fixture::documents();
    let mut recommendations = fixture::as_they_are(&docs);
    let options = ReportOptions { kind: ReportKind::Interim, language: Language::De, date: fixture::REPORT_DATE };
    let first = text(&report::build(&process, &recommendations, &options), ReportFormat::Markdown);
    recommendations.reverse();
    assert_eq!(first, text(&report::build(&process, &recommendations, &options), ReportFormat::Markdown));
}

#[test]
fn final_report_shows_adopted_wording_endorsements_and_dissent() {
    let md = text(&report(ReportKind::Final, Language::De), ReportFormat::Markdown);
    assert!(md.starts_with("# Fachkräfteeinwanderung & faire Arbeit\n\n**Abschlussbericht** · Stand: 20. Januar 2027"));
    // Adopted ones in the linked order, unlinked ones last; nothing else.
    let order: Vec<usize> = ["Anerkennung ausländischer", "Vermittlungsgebühren tragen", "Berufsbezogene Sprachkurse", "Grüne Kompetenzen in"]
        .iter()
        .map(|t| md.find(t).unwrap_or_else(|| panic!("{t} is in the report")))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "order {order:?}");
    for absent in ["Agenturen in der Pflege", "Liste der Agenturen", "Steuergutschrift", "später geänderter"] {
        assert!(!md.contains(absent), "{absent} is not in the final report");
    }
    assert!(md.contains("#### Unterstützt von\n\nVereinte Dienstleistungsgewerkschaft und Bundesverband der Pflegeanbieter.")
        || md.contains("#### Unterstützt von\n\nBundesverband der Pflegeanbieter und Vereinte Dienstleistungsgewerkschaft."));
    assert!(md.contains("#### Abweichende Positionen\n\n- **Beratungsnetz Migration und Arbeit** hat Bedenken: Die Durchsetzung"));
    assert!(md.contains("- **Bündnis Energiewende** lehnt ab: Ohne Finanzierung"));
    assert!(md.contains("Aus diesem Workshop wurde keine Handlungsempfehlung angenommen."));
    assert!(md.contains("Dieser Bericht enthält 4 angenommene Handlungsempfehlungen aus 3 Workshops."));
    assert!(md.contains("- **Datum:** 14. März 2025"));
}

#[test]
fn interim_report_shows_every_recommendation_with_status_comments_and_positions() {
    let md = text(&report(ReportKind::Interim, Language::En), ReportFormat::Markdown);
    for present in ["Agenturen in der Pflege", "Liste der Agenturen", "Steuergutschrift", "später geänderter"] {
        assert!(md.contains(present), "{present} is in the interim report");
    }
    assert!(md.contains("**Interim report** · As of: 20 January 2027"));
    assert!(md.contains("5 recommendations: 3 adopted, 1 at consensus and 1 in draft."));
    assert!(md.contains("- **Status:** Consensus reached\n"));
    // One open comment on recommendation 3; the resolved one on 1 does not count.
    assert!(md.contains("- **Open comments:** 1\n"));
    assert!(md.contains("- **Bündnis Energiewende** objects: Ohne Finanzierung"));
    assert!(md.contains("No organisation has taken a position yet."));
    assert!(md.contains("This workshop has no recommendations yet."));
}

#[test]
fn organisations_are_listed_once_alphabetically_without_observers() {
    let report = report(ReportKind::Final, Language::De);
    assert_eq!(
        report.organisations,
        [
            "Ärztekammer Nord",
            "Beratungsnetz Migration und Arbeit",
            "Bundesverband der Pflegeanbieter",
            "Institut für Arbeitsmarktpolitik",
            "Vereinte Dienstleistungsgewerkschaft",
        ]
    );
}

#[test]
fn no_internal_ids_and_everything_escaped() {
    for kind in ReportKind::ALL {
        for language in Language::ALL {
            let report = report(*kind, *language);
            for format in [ReportFormat::Markdown, ReportFormat::Html, ReportFormat::Json] {
                let out = text(&report, format);
                for id in ["automerge:", "p-anna", "p-luis", "p-unknown", "w-fair", "Anna Keller"] {
                    assert!(!out.contains(id), "{kind} {language} {format} names {id}");
                }
            }
            let html = text(&report, ReportFormat::Html);
            assert!(html.contains(&format!("<html lang=\"{language}\">")));
            assert!(html.contains("Fachkräfteeinwanderung &amp; faire Arbeit"));
            assert!(html.contains("&lt;unzureichend&gt;"));
            assert!(!html.contains("<unzureichend>"));
        }
    }
    let json = text(&report(ReportKind::Final, Language::De), ReportFormat::Json);
    let value: serde_json::Value = serde_json::from_str(&json).expect("the JSON report is JSON");
    assert_eq!(value["schema"], "konsens/report@2");
    assert_eq!(value["workshops"][0]["recommendations"][0]["endorsed_by"][0], "Bundesverband der Pflegeanbieter");
}

#[test]
fn pdf_and_docx_are_not_text_formats() {
    let report = report(ReportKind::Final, Language::De);
    assert!(report::render_text(&report, ReportFormat::Pdf).is_err());
    assert_eq!(report.file_name(ReportFormat::Pdf), "bericht.pdf");
}

/// What a facilitator archived is out of the report: an archived
/// recommendation, and an archived workshop with everything in it; the
/// workshops left are numbered without a gap.
#[test]
fn archived_workshops_and_recommendations_are_left_out() {
    let (mut process, docs) = fixture::documents();
    let recommendations = fixture::as_they_are(&docs);
    let options = ReportOptions { kind: ReportKind::Interim, language: Language::De, date: fixture::REPORT_DATE };
    let full = report::build(&process, &recommendations, &options);
    let first = &full.workshops[0];
    assert!(!first.recommendations.is_empty(), "the fixture's first workshop has recommendations");
    let first_titles: Vec<String> = first.recommendations.iter().map(|r| r.title.clone()).collect();
    let (url, _) = recommendations.iter().find(|(_, r)| r.title.0.trim() == first_titles[0]).expect("its document");
    process.archived_recommendations.insert(url.clone(), true);
    let without_one = report::build(&process, &recommendations, &options);
    assert_eq!(without_one.shown(), full.shown() - 1);
    assert!(!text(&without_one, ReportFormat::Markdown).contains(&first_titles[0]));

    process.archived_workshops.insert(process.workshops[0].id.clone(), true);
    let without_workshop = report::build(&process, &recommendations, &options);
    let markdown = text(&without_workshop, ReportFormat::Markdown);
    assert!(!markdown.contains(&first.title), "{markdown}");
    assert!(first_titles.iter().all(|t| !markdown.contains(t.as_str())), "{markdown}");
    assert_eq!(without_workshop.workshops[0].number, 1, "numbered without a gap");
}
