//! `konsens-server --demo`: an example process shaped like a real one, so a
//! first look at the web app shows workshops, recommendations in different
//! states, comments and endorsements. Written straight into the store before
//! the server starts serving, with the same schema operations the CLI uses.
//!
//! The content is German by default (`--demo-lang de`), as the processes
//! konsens serves are, and English with `--demo-lang en`. Each language is
//! seeded once, under its own marker.

use automerge::transaction::{CommitOptions, Transactable, Transaction};
use automerge::{ActorId, Automerge, ObjType, ROOT, ReadDoc, Value};
use konsens_model::schema::{self, Endorsement, Member, MemberRole, SchemaError, Stance, Status, Workshop};
use konsens_model::richtext;
use konsens_sync::{DocumentId, StorageWrite};
use konsens_store::ChunkStore;

use crate::config::DemoLanguage;
use crate::error::ServerError;

/// Meta key holding the demo process's id once seeded, per language (the
/// English one keeps the key of the time it was the only one).
fn marker(language: DemoLanguage) -> &'static str {
    match language {
        DemoLanguage::German => "demo/process/de",
        DemoLanguage::English => "demo/process",
    }
}

/// One language's demo: the process, its workshops and recommendations.
struct Demo {
    title: &'static str,
    description: &'static str,
    workshops: &'static [WorkshopSeed],
    recs: &'static [Rec],
}

/// A workshop: id, title, theme, sectors.
type WorkshopSeed = (&'static str, &'static str, &'static str, &'static [&'static str]);

fn content(language: DemoLanguage) -> &'static Demo {
    match language {
        DemoLanguage::German => &DE,
        DemoLanguage::English => &EN,
    }
}

/// A demo participant: participant id, name, organisation, actor bytes.
struct Person {
    participant: &'static str,
    name: &'static str,
    organisation: &'static str,
    actor: ActorId,
}

fn people() -> Vec<Person> {
    let person = |n: u8, participant, name, organisation| Person {
        participant,
        name,
        organisation,
        actor: ActorId::from([0xde, 0x70, n, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, n].as_slice()),
    };
    vec![
        person(1, "p-demo-facilitator", "Miriam Vogel", "Institut für Arbeitsmarktpolitik"),
        person(2, "p-demo-employers", "Jonas Berger", "Arbeitgeberverband Pflege"),
        person(3, "p-demo-union", "Aylin Demir", "Gewerkschaft Bau"),
        person(4, "p-demo-ministry", "Katrin Schulz", "Bundesministerium für Arbeit"),
        person(5, "p-demo-ngo", "Samuel Okafor", "Netzwerk Faire Migration"),
    ]
}

struct Rec {
    workshop: &'static str,
    title: &'static str,
    problem: &'static str,
    recommendation: &'static str,
    rationale: &'static str,
    addressees: &'static [&'static str],
    /// Status moves from draft, in order.
    moves: &'static [(Status, &'static str)],
    /// (quote in the recommendation text, comment, who: 1-based into `people()`)
    comment: Option<(&'static str, &'static str, usize)>,
    /// (who: 1-based into `people()`, stance, note)
    endorsements: &'static [(usize, Stance, &'static str)],
}

static EN: Demo = Demo {
    title: "Skilled immigration: from recruitment to retention (demo)",
    description: "An example process: six workshops with employers, unions, ministries and NGOs draft recommendations for the final report.",
    workshops: &[
        ("financing-models", "Financing models", "Who pays for recruitment, language and recognition?", &["care", "construction"]),
        ("language-and-integration", "Language and integration", "Learning German on the job; arriving in the community", &["care"]),
        ("recognition-of-qualifications", "Recognition of qualifications", "Faster, simpler recognition procedures", &["care", "construction"]),
        ("fair-recruitment", "Fair recruitment", "Ethical recruitment and the employer-pays principle", &["care"]),
        ("digital-innovation", "Digital innovation", "Digital procedures from visa to first day at work", &["care", "construction", "green skills"]),
        ("green-skills", "Green skills", "Skills for the energy transition", &["construction", "green skills"]),
    ],
    recs: EN_RECS,
};

static DE: Demo = Demo {
    title: "Fachkräfteeinwanderung: von der Anwerbung bis zum Verbleib (Demo)",
    description: "Ein Beispielprozess: In sechs Workshops erarbeiten Arbeitgeber, Gewerkschaften, Ministerien und Nichtregierungsorganisationen Empfehlungen für den Abschlussbericht.",
    workshops: &[
        ("finanzierungsmodelle", "Finanzierungsmodelle", "Wer trägt die Kosten für Anwerbung, Sprachkurse und Anerkennung?", &["Pflege", "Bau"]),
        ("sprache-und-integration", "Sprache und Integration", "Deutsch lernen im Beruf, ankommen vor Ort", &["Pflege"]),
        (
            "anerkennung-auslaendischer-berufsqualifikationen",
            "Anerkennung ausländischer Berufsqualifikationen",
            "Schnellere und einfachere Anerkennungsverfahren",
            &["Pflege", "Bau"],
        ),
        ("faire-anwerbung", "Faire Anwerbung", "Ethische Anwerbung und das Arbeitgeber-zahlt-Prinzip", &["Pflege"]),
        ("digitale-innovation", "Digitale Innovation", "Digitale Verfahren vom Visum bis zum ersten Arbeitstag", &["Pflege", "Bau", "Green Skills"]),
        ("green-skills", "Green Skills", "Kompetenzen für die Energiewende", &["Bau", "Green Skills"]),
    ],
    recs: DE_RECS,
};

const DE_RECS: &[Rec] = &[
    Rec {
        workshop: "finanzierungsmodelle",
        title: "Kosten der internationalen Anwerbung gemeinsam tragen",
        problem: "Kleine Pflegeeinrichtungen können Anwerbung, Sprachkurse und Anerkennung nicht vorfinanzieren; je Pflegefachkraft kommen **mehr als 10.000 €** zusammen.",
        recommendation: "Arbeitgeber und Staat richten gemeinsam einen *Anwerbefonds* ein, der die Kosten vorfinanziert und über drei Jahre zurückgezahlt wird.",
        rationale: "Verteilen sich die Kosten, können auch kleine Arbeitgeber fair anwerben, nicht nur große Klinikverbünde.",
        addressees: &["Bundesministerium für Arbeit und Soziales", "Arbeitgeberverbände"],
        moves: &[(Status::Discussion, "erste Lesung im Workshop")],
        comment: Some(("über drei Jahre zurückgezahlt", "Wer trägt das Risiko, wenn die Fachkraft den Arbeitgeber vorzeitig verlässt?", 2)),
        endorsements: &[(2, Stance::Concerns, "Rückzahlungsfrist zu kurz")],
    },
    Rec {
        workshop: "sprache-und-integration",
        title: "Berufsbezogene Deutschkurse während der Arbeitszeit",
        problem: "Abendkurse nach der Schicht werden häufig abgebrochen.",
        recommendation: "Arbeitgeber stellen für berufsbezogene Deutschkurse bezahlte Arbeitszeit bereit, im ersten Jahr mindestens vier Stunden pro Woche.",
        rationale: "Sprache ist der Schlüssel zur Patientensicherheit und zum Verbleib im Beruf.\n\n- weniger Abbrüche\n- schnellere Anerkennung",
        addressees: &["Arbeitgeber", "Bundesamt für Migration und Flüchtlinge"],
        moves: &[(Status::Discussion, ""), (Status::Consensus, "in der zweiten Sitzung vereinbart")],
        comment: None,
        endorsements: &[
            (1, Stance::Support, ""),
            (3, Stance::Support, "auch auf Baustellen nötig"),
            (4, Stance::Concerns, "Finanzierung für kleine Arbeitgeber offen"),
        ],
    },
    Rec {
        workshop: "anerkennung-auslaendischer-berufsqualifikationen",
        title: "Anerkennung aus einer Hand innerhalb von drei Monaten",
        problem: "Anerkennungsverfahren dauern ein Jahr oder länger, und mehrere Behörden sind beteiligt.",
        recommendation: "Jedes Land richtet eine zentrale Anlaufstelle ein, die das Anerkennungsverfahren vollständig führt und **innerhalb von drei Monaten** entscheidet.",
        rationale: "Lange Wartezeiten drängen Fachkräfte in Helfertätigkeiten oder in andere Länder.",
        addressees: &["Länder", "Kammern"],
        moves: &[(Status::Discussion, ""), (Status::Consensus, ""), (Status::Adopted, "von der Steuerungsgruppe angenommen")],
        comment: None,
        endorsements: &[(1, Stance::Support, ""), (2, Stance::Support, ""), (3, Stance::Support, ""), (5, Stance::Support, "")],
    },
    Rec {
        workshop: "faire-anwerbung",
        title: "Keine Vermittlungsgebühren für Beschäftigte",
        problem: "Im Ausland angeworbene Beschäftigte zahlen Agenturen oft Gebühren, für die sie sich verschulden.",
        recommendation: "Öffentlich geförderte Vermittlung nur über Agenturen, die von Beschäftigten keine Gebühren verlangen und alle Gebühren offenlegen, die sie Arbeitgebern berechnen.",
        rationale: "Das Arbeitgeber-zahlt-Prinzip ist internationaler Standard (ILO).",
        addressees: &["Bundesagentur für Arbeit", "Personalvermittlungsagenturen"],
        moves: &[(Status::Discussion, "")],
        comment: Some(("alle Gebühren offenlegen", "Offenlegen wo – in einem öffentlichen Register?", 4)),
        endorsements: &[(4, Stance::Support, "")],
    },
    Rec {
        workshop: "digitale-innovation",
        title: "Visum und Anerkennung durchgängig digital",
        problem: "Antragstellende schicken Papierunterlagen an mehrere Stellen.",
        recommendation: "Ein digitaler Antrag für Visum und Anerkennung, dessen Bearbeitungsstand Antragstellende und Arbeitgeber jederzeit einsehen können.",
        rationale: "",
        addressees: &["Auswärtiges Amt"],
        moves: &[],
        comment: None,
        endorsements: &[],
    },
    Rec {
        workshop: "green-skills",
        title: "Green-Skills-Module in der Bauausbildung",
        problem: "Wärmepumpen, Dämmung und Solarmontage fehlen in vielen Ausbildungsplänen.",
        recommendation: "Die Bauausbildung erhält modulare Green-Skills-Einheiten, die auch anerkannten ausländischen Fachkräften offenstehen.",
        rationale: "Die Energiewende braucht diese Kompetenzen jetzt.",
        addressees: &["Handwerkskammern", "Berufsschulen"],
        moves: &[(Status::Discussion, ""), (Status::Consensus, ""), (Status::Rejected, "durch die laufende Ausbildungsreform abgedeckt")],
        comment: None,
        endorsements: &[(3, Stance::Object, "")],
    },
];

const EN_RECS: &[Rec] = &[
    Rec {
        workshop: "financing-models",
        title: "Share the cost of international recruitment",
        problem: "Small care providers cannot pre-finance recruitment, language courses and recognition, which can cost **more than 10,000 €** per nurse.",
        recommendation: "Set up a *recruitment fund* financed jointly by employers and the state that pre-finances costs and is repaid over three years.",
        rationale: "Spreading the cost makes fair recruitment possible for small employers, not only for large hospital groups.",
        addressees: &["Federal Ministry of Labour", "Employers' associations"],
        moves: &[(Status::Discussion, "first reading in the workshop")],
        comment: Some(("repaid over three years", "Who carries the risk if the person leaves the employer early?", 2)),
        endorsements: &[(2, Stance::Concerns, "repayment period too short")],
    },
    Rec {
        workshop: "language-and-integration",
        title: "Job-related German courses during working hours",
        problem: "Courses in the evening after shift work have high drop-out rates.",
        recommendation: "Employers grant paid time for job-related German courses during working hours, at least four hours a week in the first year.",
        rationale: "Language is the key to patient safety and to staying in the job.\n\n- fewer drop-outs\n- faster recognition",
        addressees: &["Employers", "Federal Office for Migration and Refugees"],
        moves: &[(Status::Discussion, ""), (Status::Consensus, "agreed in the second session")],
        comment: None,
        endorsements: &[(1, Stance::Support, ""), (3, Stance::Support, "also needed on construction sites"), (4, Stance::Concerns, "funding for small employers open")],
    },
    Rec {
        workshop: "recognition-of-qualifications",
        title: "One-stop recognition within three months",
        problem: "Recognition procedures take a year or longer and involve several authorities.",
        recommendation: "Create one contact point per federal state that handles recognition end to end and decides **within three months**.",
        rationale: "Long waits push skilled workers into unskilled jobs or into other countries.",
        addressees: &["Federal states", "Chambers"],
        moves: &[(Status::Discussion, ""), (Status::Consensus, ""), (Status::Adopted, "adopted by the steering group")],
        comment: None,
        endorsements: &[(1, Stance::Support, ""), (2, Stance::Support, ""), (3, Stance::Support, ""), (5, Stance::Support, "")],
    },
    Rec {
        workshop: "fair-recruitment",
        title: "No recruitment fees for workers",
        problem: "Workers recruited abroad often pay agencies fees that put them into debt.",
        recommendation: "Publicly funded placement only through agencies that charge workers no fees and publish all fees they charge employers.",
        rationale: "The employer-pays principle is international standard (ILO).",
        addressees: &["Federal Employment Agency", "Recruitment agencies"],
        moves: &[(Status::Discussion, "")],
        comment: Some(("publish all fees", "Publish where – on a public register?", 4)),
        endorsements: &[(4, Stance::Support, "")],
    },
    Rec {
        workshop: "digital-innovation",
        title: "Digital visa and recognition process end to end",
        problem: "Applicants send paper documents to several offices.",
        recommendation: "One digital application for visa and recognition, with status tracking for applicants and employers.",
        rationale: "",
        addressees: &["Foreign Office"],
        moves: &[],
        comment: None,
        endorsements: &[],
    },
    Rec {
        workshop: "green-skills",
        title: "Green skills modules in construction apprenticeships",
        problem: "Heat pumps, insulation and solar installation are missing from many training plans.",
        recommendation: "Add modular green-skills units to construction apprenticeships, open to recognised foreign skilled workers as well.",
        rationale: "The energy transition needs these skills now.",
        addressees: &["Chambers of crafts", "Vocational schools"],
        moves: &[(Status::Discussion, ""), (Status::Consensus, ""), (Status::Rejected, "covered by the existing training reform")],
        comment: None,
        endorsements: &[(3, Stance::Object, "")],
    },
];

/// Write the demo process and its recommendations in `language` unless they
/// exist already; returns the process's id either way.
/// Store a new document. In a cluster the store takes writes only from the
/// holder of a document's lease: hold it for the write (a fresh id is never
/// held elsewhere), then let it go for whichever node loads it first.
fn write_new(store: &ChunkStore, leases: Option<&konsens_store::Leases>, id: &DocumentId, bytes: Vec<u8>) -> Result<(), ServerError> {
    if let Some(leases) = leases
        && let konsens_store::Claim::HeldBy(holder) = leases.claim(id)?
    {
        return Err(ServerError::Config(format!("demo document {id} is held by node {}", holder.address)));
    }
    store.write(id, &StorageWrite::Snapshot(bytes))?;
    if let Some(leases) = leases {
        leases.release(id)?;
    }
    Ok(())
}

pub(crate) fn seed(store: &ChunkStore, language: DemoLanguage, leases: Option<&konsens_store::Leases>) -> Result<DocumentId, ServerError> {
    let demo = content(language);
    if let Some(bytes) = store.get_meta(marker(language))?
        && let Ok(id) = String::from_utf8_lossy(&bytes).parse::<DocumentId>()
        && store.contains(&id)?
    {
        return Ok(id);
    }
    let people = people();
    let now = crate::util::now_millis();
    // Back-date the story a little so the history reads like one.
    let mut clock = now - 14 * 24 * 3600 * 1000;
    let mut tick = || {
        clock += 3 * 3600 * 1000;
        clock
    };

    let process_id = new_id();
    let mut process = Automerge::new();
    let facilitator = person(&people, 1)?;
    write(&mut process, facilitator, tick(), &format!("create process {:?}", demo.title), |tx| {
        schema::init_process(tx, demo.title, demo.description)?;
        for p in &people {
            let role = if p.participant == facilitator.participant { MemberRole::Facilitator } else { MemberRole::Participant };
            schema::put_member(tx, p.participant, &Member { name: p.name.into(), organisation: p.organisation.into(), role })?;
        }
        Ok(())
    })?;
    let workshops = demo.workshops;
    for (i, (id, title, theme, sectors)) in workshops.iter().enumerate() {
        let workshop = Workshop {
            id: (*id).into(),
            title: (*title).into(),
            theme: (*theme).into(),
            sectors: sectors.iter().map(|s| (*s).to_owned()).collect(),
            date: Some(format!("2025-0{}-1{}", 3 + i / 3, i)),
        };
        write(&mut process, facilitator, tick(), &format!("add workshop {title:?}"), |tx| schema::add_workshop(tx, &workshop))?;
    }

    for rec in demo.recs {
        let id = new_id();
        let sectors = workshops
            .iter()
            .find(|w| w.0 == rec.workshop)
            .map(|w| w.3.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
            .unwrap_or_default();
        let mut doc = Automerge::new();
        let author = person(&people, 1)?;
        write(&mut doc, author, tick(), &format!("create recommendation {:?}", rec.title), |tx| {
            schema::init_recommendation(tx, &process_id.url(), rec.workshop, rec.title, &sectors)
        })?;
        for (field, text) in [("problem", rec.problem), ("recommendation", rec.recommendation), ("rationale", rec.rationale)] {
            if !text.is_empty() {
                write(&mut doc, person(&people, 2)?, tick(), &format!("set {field}"), |tx| schema::set_rich_text(tx, field, richtext::to_spans(text)))?;
            }
        }
        let addressees: Vec<String> = rec.addressees.iter().map(|s| (*s).to_owned()).collect();
        write(&mut doc, author, tick(), "set addressees", |tx| schema::set_list(tx, "addressees", &addressees))?;
        if let Some((quote, body, who)) = rec.comment {
            let p = person(&people, who)?;
            let at = tick();
            write(&mut doc, p, at, "comment on recommendation", |tx| {
                schema::add_comment(tx, &format!("c-demo{:06x}", at & 0xff_ffff), "recommendation", quote, body, p.participant, at).map(|_| ())
            })?;
        }
        for (to, note) in rec.moves {
            let at = tick();
            write(&mut doc, author, at, &format!("status → {to}"), |tx| schema::change_status(tx, *to, author.participant, at, note).map(|_| ()))?;
        }
        for (who, stance, note) in rec.endorsements {
            let p = person(&people, *who)?;
            let at = tick();
            let endorsement = Endorsement { stance: *stance, note: (*note).into(), by: p.participant.into(), at };
            write(&mut doc, p, at, &format!("endorse: {stance}"), |tx| schema::endorse(tx, p.organisation, &endorsement))?;
        }
        write_new(store, leases, &id, doc.save())?;
        // Under access control the recommendation belongs to the demo process.
        store.auth()?.set_document_process(&id, &process_id)?;
        let url = id.url();
        write(&mut process, author, tick(), "add recommendation", |tx| schema::link_recommendation(tx, rec.workshop, &url))?;
    }
    write_new(store, leases, &process_id, process.save())?;
    store.auth()?.set_document_process(&process_id, &process_id)?;
    store.put_meta(marker(language), process_id.to_string().as_bytes())?;
    store.flush()?;
    tracing::info!(process = %process_id.url(), "demo process seeded");
    Ok(process_id)
}

fn person(people: &[Person], one_based: usize) -> Result<&Person, ServerError> {
    one_based
        .checked_sub(1)
        .and_then(|i| people.get(i))
        .ok_or_else(|| ServerError::Config(format!("demo data names person {one_based}, who does not exist")))
}

fn new_id() -> DocumentId {
    DocumentId::from_random(*uuid::Uuid::new_v4().as_bytes())
}

/// One change as `person`, with a message and a time, recording the author
/// like the CLI does (`authors[actor] = {participant, name, organisation}`).
fn write(
    doc: &mut Automerge,
    person: &Person,
    at_millis: i64,
    message: &str,
    op: impl FnOnce(&mut Transaction<'_>) -> Result<(), SchemaError>,
) -> Result<(), ServerError> {
    doc.set_actor(person.actor.clone());
    doc.transact_with(
        |_| CommitOptions::default().with_message(message.to_owned()).with_time(at_millis / 1000),
        |tx| {
            op(tx)?;
            let authors = match tx.get(ROOT, "authors")? {
                Some((Value::Object(ObjType::Map), id)) => id,
                _ => tx.put_object(ROOT, "authors", ObjType::Map)?,
            };
            let actor = person.actor.to_hex_string();
            if tx.get(&authors, actor.as_str())?.is_none() {
                let entry = tx.put_object(&authors, actor.as_str(), ObjType::Map)?;
                tx.put(&entry, "participant", person.participant)?;
                tx.put(&entry, "name", person.name)?;
                tx.put(&entry, "organisation", person.organisation)?;
            }
            Ok::<_, SchemaError>(())
        },
    )
    .map(|_| ())
    .map_err(|failure| ServerError::Config(format!("cannot build the demo data: {}", failure.error)))
}

#[cfg(test)]
mod tests {
    use konsens_model::schema::{Process, Recommendation};

    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn load(store: &ChunkStore, id: &DocumentId) -> Result<Automerge, Box<dyn std::error::Error>> {
        let mut doc = Automerge::new();
        for chunk in store.load(id)? {
            doc.load_incremental(&chunk.bytes)?;
        }
        Ok(doc)
    }

    /// The process and its recommendations, read back as the model reads them.
    fn read(store: &ChunkStore, id: &DocumentId) -> Result<(Process, Vec<Recommendation>), Box<dyn std::error::Error>> {
        let process = Process::from_doc(&load(store, id)?)?;
        let mut recs = Vec::new();
        for url in process.recommendations.values().flatten() {
            let rec_id: DocumentId = url.trim_start_matches("automerge:").parse()?;
            recs.push(Recommendation::from_doc(&load(store, &rec_id)?)?);
        }
        Ok((process, recs))
    }

    fn temp_store() -> Result<(std::path::PathBuf, ChunkStore), Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!("konsens-demo-test-{}", uuid::Uuid::new_v4()));
        let store = ChunkStore::open(&dir)?;
        Ok((dir, store))
    }

    #[test]
    fn seeds_once_and_documents_read_back() -> TestResult {
        let (dir, store) = temp_store()?;
        for language in [DemoLanguage::German, DemoLanguage::English] {
            let id = seed(&store, language, None)?;
            assert_eq!(seed(&store, language, None)?, id, "a second seed reuses the first");
            let (process, recs) = read(&store, &id)?;
            assert_eq!(process.workshops.len(), 6);
            assert_eq!(recs.len(), 6);
            let statuses: std::collections::BTreeSet<_> = recs.iter().map(|r| r.status).collect();
            assert!(statuses.len() >= 4, "recommendations in different states: {statuses:?}");
            assert!(recs.iter().any(|r| !r.comments.is_empty()), "a comment, anchored in its quote");
        }
        assert_ne!(seed(&store, DemoLanguage::German, None)?, seed(&store, DemoLanguage::English, None)?, "one process per language");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    #[test]
    fn german_by_default_with_german_content() -> TestResult {
        assert_eq!(DemoLanguage::default(), DemoLanguage::German);
        let (dir, store) = temp_store()?;
        let (process, recs) = read(&store, &seed(&store, DemoLanguage::default(), None)?)?;
        assert!(process.title.0.starts_with("Fachkräfteeinwanderung"), "{}", process.title.0);
        let titles: Vec<&str> = process.workshops.iter().map(|w| w.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "Finanzierungsmodelle",
                "Sprache und Integration",
                "Anerkennung ausländischer Berufsqualifikationen",
                "Faire Anwerbung",
                "Digitale Innovation",
                "Green Skills"
            ]
        );
        let sectors: std::collections::BTreeSet<&str> = process.workshops.iter().flat_map(|w| w.sectors.iter().map(String::as_str)).collect();
        assert_eq!(sectors, ["Bau", "Green Skills", "Pflege"].into_iter().collect());
        assert!(recs.iter().any(|r| r.title.0 == "Anerkennung aus einer Hand innerhalb von drei Monaten"));
        // Nothing of the English demo leaked into the German one.
        for rec in &recs {
            for english in ["recruitment", "Recognition", "workers", "care"] {
                assert!(!rec.title.0.contains(english), "{english} in {}", rec.title.0);
            }
        }
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    #[test]
    fn english_on_request_keeps_the_english_content() -> TestResult {
        let (dir, store) = temp_store()?;
        let (process, recs) = read(&store, &seed(&store, DemoLanguage::English, None)?)?;
        assert_eq!(process.title.0, "Skilled immigration: from recruitment to retention (demo)");
        assert_eq!(process.workshops[0].title, "Financing models");
        assert!(recs.iter().any(|r| r.title.0 == "One-stop recognition within three months"));
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
