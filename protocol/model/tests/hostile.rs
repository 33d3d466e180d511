//! A hostile participant against the access rules: random sequences of
//! Automerge operations (scalars, text, lists, maps, counters, deletes,
//! schema flips, marks), spread over several changes and several messages,
//! aimed at what only facilitators may change. Whatever gets admitted must
//! never alter a decision, the membership or what kind of document it is, and
//! must never leave a document the model cannot read.
//!
//! Seeded and replayable: `KONSENS_HOSTILE_SEED=n` runs one case,
//! `KONSENS_HOSTILE_CASES=n` runs more (default 2,000).

use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, Change, ObjId, ObjType, ROOT, ReadDoc, ScalarValue};
use konsens_sync::DocumentId;
use konsens_model::access::{AccessRole, Sender, admit};
use konsens_model::schema::{self, Member, MemberRole, Process, Recommendation, SchemaError, Status};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DEFAULT_CASES: u64 = 2000;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn process_id() -> DocumentId {
    DocumentId::from_random([1; 16])
}

fn hostile() -> Sender {
    Sender {
        participant: "p-mallory".into(),
        name: "Mallory".into(),
        organisation: "Union".into(),
        role: AccessRole::Member(MemberRole::Participant),
        process: Some(process_id()),
    }
}

/// A recommendation adopted once and re-opened (a decision in its log), now in discussion.
fn recommendation() -> Automerge {
    let mut doc = Automerge::new().with_actor(ActorId::from(vec![1; 16]));
    doc.transact::<_, _, SchemaError>(|tx| {
        schema::init_recommendation(tx, &process_id().url(), "w", "Fees", &[])?;
        let text = schema::text_object(tx, "recommendation")?;
        tx.splice_text(&text, 0, 0, "Employers pay.")?;
        for to in [Status::Discussion, Status::Consensus, Status::Adopted, Status::Discussion] {
            schema::change_status(tx, to, "f", 1, "")?;
        }
        Ok(())
    })
    .expect("recommendation");
    doc
}

fn process() -> Automerge {
    let mut doc = Automerge::new().with_actor(ActorId::from(vec![2; 16]));
    doc.transact::<_, _, SchemaError>(|tx| {
        schema::init_process(tx, "P", "")?;
        schema::put_member(tx, "f", &Member { name: "F".into(), organisation: "O".into(), role: MemberRole::Facilitator })?;
        schema::put_member(tx, "p-mallory", &Member { name: "Mallory".into(), organisation: "Union".into(), role: MemberRole::Participant })
    })
    .expect("process");
    doc
}

/// What only facilitators may change, as the model reads it.
#[derive(Debug, PartialEq)]
enum Guarded {
    Recommendation { status: Status, decisions: Vec<String>, process: String },
    Process { members: Vec<(String, Member)> },
}

fn guarded(doc: &Automerge) -> Result<Guarded, SchemaError> {
    if let Ok(rec) = Recommendation::from_doc(doc) {
        let decisions = rec
            .status_log
            .iter()
            .filter(|e| e.from.is_decision() || e.to.is_decision())
            .map(|e| format!("{e:?}"))
            .collect();
        return Ok(Guarded::Recommendation { status: rec.status, decisions, process: rec.process });
    }
    let process = Process::from_doc(doc)?;
    Ok(Guarded::Process { members: process.members.into_iter().collect() })
}

const KEYS: &[&str] = &[
    "status", "statusLog", "schema", "process", "members", "title", "recommendation", "comments", "endorsements", "to", "from",
    "by", "role", "name", "heads", "x",
];
const WORDS: &[&str] = &[
    "adopted", "rejected", "draft", "discussion", "consensus", "facilitator", "observer", "konsens/process@1",
    "konsens/recommendation@1", "p-mallory", "f", "",
];

/// Every object of the document, to aim at.
fn objects(doc: &impl ReadDoc, obj: &ObjId, depth: usize, out: &mut Vec<(ObjId, ObjType)>) {
    let Ok(kind) = doc.object_type(obj) else { return };
    out.push((obj.clone(), kind));
    if depth > 4 {
        return;
    }
    let children: Vec<ObjId> = match kind {
        ObjType::Map | ObjType::Table => doc
            .keys(obj)
            .filter_map(|k| match doc.get(obj, k.as_str()) {
                Ok(Some((automerge::Value::Object(_), id))) => Some(id),
                _ => None,
            })
            .collect(),
        ObjType::List => (0..doc.length(obj))
            .filter_map(|i| match doc.get(obj, i) {
                Ok(Some((automerge::Value::Object(_), id))) => Some(id),
                _ => None,
            })
            .collect(),
        ObjType::Text => Vec::new(),
    };
    for child in children {
        objects(doc, &child, depth + 1, out);
    }
}

fn scalar(rng: &mut StdRng) -> ScalarValue {
    match rng.random_range(0..5) {
        0 => ScalarValue::Int(rng.random_range(-3..4)),
        1 => ScalarValue::Counter(rng.random_range(0..3).into()),
        2 => ScalarValue::Boolean(rng.random()),
        3 => ScalarValue::Null,
        _ => ScalarValue::Str(WORDS[rng.random_range(0..WORDS.len())].into()),
    }
}

/// One change of random operations by `actor` on a copy of `doc`.
fn hostile_change(doc: &Automerge, actor: &ActorId, rng: &mut StdRng) -> Option<Change> {
    let mut copy = doc.fork().with_actor(actor.clone());
    let mut tx = copy.transaction();
    for _ in 0..rng.random_range(1..6) {
        let mut targets = Vec::new();
        objects(&tx, &ROOT, 0, &mut targets);
        let (obj, kind) = targets[rng.random_range(0..targets.len())].clone();
        let key = KEYS[rng.random_range(0..KEYS.len())];
        let _ = match (kind, rng.random_range(0..6)) {
            (ObjType::Map | ObjType::Table, 0) => tx.delete(&obj, key),
            (ObjType::Map | ObjType::Table, 1) => tx.put_object(&obj, key, ObjType::Text).and_then(|t| {
                tx.splice_text(&t, 0, 0, WORDS[rng.random_range(0..WORDS.len())])
            }),
            (ObjType::Map | ObjType::Table, 2) => tx.put_object(&obj, key, [ObjType::Map, ObjType::List][rng.random_range(0..2)]).map(|_| ()),
            (ObjType::Map | ObjType::Table, 3) => tx.increment(&obj, key, 1),
            (ObjType::Map | ObjType::Table, _) => tx.put(&obj, key, scalar(rng)),
            (ObjType::List, 0) if tx.length(&obj) > 0 => tx.delete(&obj, rng.random_range(0..tx.length(&obj))),
            (ObjType::List, 1) => tx.insert_object(&obj, rng.random_range(0..=tx.length(&obj)), ObjType::Map).map(|_| ()),
            (ObjType::List, _) => tx.insert(&obj, rng.random_range(0..=tx.length(&obj)), scalar(rng)),
            (ObjType::Text, 0) if tx.length(&obj) > 0 => {
                let at = rng.random_range(0..tx.length(&obj));
                tx.splice_text(&obj, at, 1, "")
            }
            (ObjType::Text, _) => {
                let at = rng.random_range(0..=tx.length(&obj));
                tx.splice_text(&obj, at, 0, WORDS[rng.random_range(0..WORDS.len())])
            }
        };
    }
    let (hash, _) = tx.commit();
    hash.and_then(|h| copy.get_change_by_hash(&h))
}

fn run_case(seed: u64) -> (usize, usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut doc = if rng.random_bool(0.7) { recommendation() } else { process() };
    let start = guarded(&doc).expect("the start reads");
    let actor = ActorId::from(seed.to_be_bytes().to_vec());
    let (mut admitted, mut refused) = (0, 0);
    for _ in 0..rng.random_range(1..4) {
        // Several changes in one message, built on each other.
        let mut branch = doc.clone();
        let mut changes = Vec::new();
        for _ in 0..rng.random_range(1..4) {
            if let Some(change) = hostile_change(&branch, &actor, &mut rng) {
                branch.apply_changes([change.clone()]).expect("own change applies");
                changes.push(change);
            }
        }
        match admit(process_id(), &doc, &changes, &hostile(), &|_| None) {
            Ok(_) => {
                doc.apply_changes(changes).expect("admitted changes apply");
                admitted += 1;
                let now = guarded(&doc).unwrap_or_else(|e| panic!("seed {seed}: admitted changes left a document the model cannot read: {e}"));
                assert_eq!(now, start, "seed {seed}: admitted changes altered what only facilitators may change");
            }
            Err(_) => refused += 1,
        }
    }
    (admitted, refused)
}

#[test]
fn a_hostile_participant_never_alters_guarded_state_nor_breaks_the_model() {
    let seeds: Vec<u64> = match env_u64("KONSENS_HOSTILE_SEED") {
        Some(seed) => vec![seed],
        None => (0..env_u64("KONSENS_HOSTILE_CASES").unwrap_or(DEFAULT_CASES)).collect(),
    };
    let (mut admitted, mut refused) = (0, 0);
    for seed in seeds {
        let (a, r) = run_case(seed);
        admitted += a;
        refused += r;
    }
    eprintln!("hostile messages: {admitted} admitted, {refused} refused");
    // Both sides of the rule are exercised.
    assert!(admitted > 100 && refused > 100, "{admitted} admitted, {refused} refused");
}
