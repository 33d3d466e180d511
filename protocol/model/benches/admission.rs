//! What the access rules cost per incoming message, on a recommendation whose
//! text holds 20,000 single-keystroke changes: a keystroke (the fast path),
//! a comment and a status move (both applied to a copy and compared), and a
//! refused adoption. Prints medians.
//! `cargo bench -p konsens-model --bench admission` (`-- --quick`: fewer rounds).

use std::time::{Duration, Instant};

use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, Change, ROOT, ReadDoc};
use konsens_sync::DocumentId;
use konsens_model::access::{AccessRole, Sender, admit};
use konsens_model::schema::{self, MemberRole, SchemaError, Status};

fn process_id() -> DocumentId {
    DocumentId::from_random([1; 16])
}

fn recommendation(keystrokes: usize) -> Automerge {
    let mut doc = Automerge::new().with_actor(ActorId::from(vec![1; 16]));
    doc.transact::<_, _, SchemaError>(|tx| {
        schema::init_recommendation(tx, &process_id().url(), "w", "Fees", &[])?;
        schema::change_status(tx, Status::Discussion, "f", 1, "")?;
        Ok(())
    })
    .expect("init");
    let text = doc.get(ROOT, "recommendation").expect("get").expect("text").1;
    for i in 0..keystrokes {
        let mut tx = doc.transaction();
        tx.splice_text(&text, i, 0, "x").expect("splice");
        tx.commit();
    }
    doc
}

fn one_change(base: &Automerge, edit: impl FnOnce(&mut automerge::transaction::Transaction<'_>) -> Result<(), SchemaError>) -> Vec<Change> {
    let mut doc = base.fork().with_actor(ActorId::from(vec![7; 16]));
    doc.transact(edit).expect("edit");
    doc.get_changes(&base.get_heads()).into_iter().collect()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 15 } else { 101 };
    let doc = recommendation(20_000);
    let participant = Sender {
        participant: "p".into(),
        name: "Pia".into(),
        organisation: "Union".into(),
        role: AccessRole::Member(MemberRole::Participant),
        process: Some(process_id()),
    };
    let cases: Vec<(&str, Vec<Change>)> = vec![
        (
            "keystroke",
            one_change(&doc, |tx| {
                let text = schema::text_object(tx, "recommendation")?;
                tx.splice_text(&text, 5, 0, "y")?;
                Ok(())
            }),
        ),
        ("comment", one_change(&doc, |tx| schema::add_comment(tx, "c1", "recommendation", "xxx", "Why?", "p", 1).map(|_| ()))),
        ("status move", one_change(&doc, |tx| schema::change_status(tx, Status::Consensus, "p", 2, "").map(|_| ()))),
        (
            "refused adoption",
            one_change(&doc, |tx| {
                tx.put(ROOT, "status", "adopted")?;
                Ok(())
            }),
        ),
    ];
    println!("admission of one message by a participant, recommendation with 20,000 keystrokes ({rounds} rounds, median)");
    for (name, changes) in &cases {
        let samples = (0..rounds)
            .map(|_| {
                let start = Instant::now();
                let _ = std::hint::black_box(admit(process_id(), &doc, changes, &participant, &|_| None));
                start.elapsed()
            })
            .collect();
        println!("  {name:<18} {:>10.3} ms", median(samples).as_secs_f64() * 1e3);
    }
}
