//! What per-document batching buys: k peers each send one keystroke into a
//! large text; the engine applies them one round per message, or all in one
//! round. Prints medians. `cargo bench -p konsens-sync --bench engine_batching`
//! (`-- --quick` for a short run).

use std::time::{Duration, Instant};

use automerge::sync::{ChunkList, Message as SyncMessage, MessageVersion};
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ObjType, ROOT};
use konsens_sync::{ConnectionId, DocEffect, DocEngine, DocInput, DocMessage, DocumentId, PeerId, Role};

fn base_document(ops: usize) -> (Automerge, automerge::ObjId) {
    let mut doc = Automerge::new();
    let mut tx = doc.transaction();
    let text = tx.put_object(ROOT, "recommendation", ObjType::Text).expect("put text");
    // Many small changes, as typing produces, rather than one big splice.
    tx.commit();
    let chunk = "Recognition of foreign qualifications needs clear rules. ";
    let mut written = 0;
    while written < ops {
        let mut tx = doc.transaction();
        let len = automerge::ReadDoc::length(&tx, &text);
        tx.splice_text(&text, len, 0, chunk).expect("splice");
        tx.commit();
        written += chunk.chars().count();
    }
    (doc, text)
}

/// One keystroke by each of `k` peers, as the sync message each would send.
fn keystrokes(base: &Automerge, text: &automerge::ObjId, k: usize, document_id: DocumentId) -> Vec<DocMessage> {
    (0..k)
        .map(|p| {
            let mut peer = base.fork().with_actor(ActorId::from(vec![p as u8 + 1; 16]));
            let mut tx = peer.transaction();
            tx.splice_text(text, 10 * p, 0, "x").expect("splice");
            tx.commit();
            let change = peer.get_last_local_change().expect("a change").raw_bytes().to_vec();
            let message = SyncMessage {
                heads: peer.get_heads(),
                need: vec![],
                have: vec![],
                changes: ChunkList::from(vec![change]),
                flags: None,
                version: MessageVersion::V1,
            };
            DocMessage {
                sender_id: PeerId(format!("peer-{p}")),
                target_id: PeerId::from("server"),
                document_id,
                data: message.encode(),
            }
        })
        .collect()
}

/// Run rounds until the engine has nothing in flight; returns sends produced.
fn settle(engine: &mut DocEngine, mut effects: Vec<DocEffect>) -> usize {
    let mut sends = 0;
    loop {
        let mut durable = None;
        for effect in &effects {
            match effect {
                DocEffect::Send { .. } => sends += 1,
                DocEffect::Persist { seq, .. } => durable = Some(*seq),
                _ => {}
            }
        }
        match durable {
            Some(seq) => effects = engine.handle([DocInput::Durable { seq }]),
            None => return sends,
        }
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes: &[usize] = if quick { &[10_000] } else { &[20_000, 50_000] };
    let peer_counts: &[usize] = if quick { &[8] } else { &[2, 8, 32] };
    let runs = if quick { 3 } else { 9 };
    let document_id = DocumentId::from_random([1; 16]);
    println!("| text ops | peers typing | one round per message (median) | one batched round (median) | ratio |");
    println!("|---:|---:|---:|---:|---:|");
    for &ops in sizes {
        let (base, text) = base_document(ops);
        let saved = base.save();
        for &k in peer_counts {
            let messages = keystrokes(&base, &text, k, document_id);
            let mut one_by_one = Vec::new();
            let mut batched = Vec::new();
            for _ in 0..runs {
                let fresh = || {
                    DocEngine::load(document_id, PeerId::from("server"), Role::Server, [(true, saved.as_slice())])
                        .expect("loads")
                };
                let mut engine = fresh();
                let start = Instant::now();
                for (i, m) in messages.iter().enumerate() {
                    let effects = engine.handle([DocInput::decode_sync(ConnectionId(i as u64), m, false).expect("decodes")]);
                    settle(&mut engine, effects);
                }
                one_by_one.push(start.elapsed());

                let mut engine = fresh();
                let start = Instant::now();
                let effects = engine.handle(messages.iter().enumerate().map(|(i, m)| {
                    DocInput::decode_sync(ConnectionId(i as u64), m, false).expect("decodes")
                }));
                settle(&mut engine, effects);
                batched.push(start.elapsed());
            }
            let (a, b) = (median(one_by_one), median(batched));
            println!(
                "| {ops} | {k} | {:.1} ms | {:.1} ms | {:.1}× |",
                a.as_secs_f64() * 1e3,
                b.as_secs_f64() * 1e3,
                a.as_secs_f64() / b.as_secs_f64()
            );
        }
    }
}
