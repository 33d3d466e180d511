//! What one remote keystroke costs the server engine, by the size of the
//! text it lands in: a typist sends keystrokes one at a time, and 40
//! watchers, up to date, acknowledge every reply (a pure acknowledgement,
//! what an official automerge-repo client sends when it keeps up). The
//! engine runs with changes applied at once (`deferred_changes(0)`) and
//! deferred (the default batch, which grows with the text). Prints the median CPU time per keystroke.
//! `cargo bench -p konsens-sync --bench keystroke_size` (`-- --quick`).

use std::sync::Arc;
use std::time::Instant;

use automerge::sync::{self, ChunkList, MessageVersion};
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ChangeHash, ObjType, ROOT, ReadDoc};
use konsens_sync::{ConnectionId, DocEffect, DocEngine, DocInput, DocumentId, EngineConfig, Message, PeerId, Role};

const WATCHERS: u64 = 40;

/// A text of `n` single-character changes, as typing makes it: eight
/// authors taking turns, each typing a sentence at its own place, so the
/// saved document is as large as a real one (one author appending "a"s
/// compresses to almost nothing, and then compaction dominates).
fn typed_text(n: usize) -> (Automerge, automerge::ObjId) {
    const SENTENCE: &str = "Anerkennung ausländischer Berufsqualifikationen braucht klare Fristen und Beratung. ";
    let mut doc = Automerge::new().with_actor(ActorId::from(vec![9u8; 16]));
    let mut tx = doc.transaction();
    let text = tx.put_object(ROOT, "text", ObjType::Text).expect("text");
    tx.commit();
    let letters: Vec<char> = SENTENCE.chars().collect();
    for i in 0..n {
        let author = (i / 40) % 8;
        doc.set_actor(ActorId::from(vec![10 + author as u8; 16]));
        let mut tx = doc.transaction();
        let len = tx.length(&text);
        let at = (len * author / 8 + i % 40).min(len);
        tx.splice_text(&text, at, 0, &letters[i % letters.len()].to_string()).expect("splice");
        tx.commit();
    }
    (doc, text)
}

/// A message as automerge-repo's clients send it: heads, and a `have` of
/// what they added since the heads they share with us.
fn sync_message(heads: Vec<ChangeHash>, last_sync: Vec<ChangeHash>, added: &[ChangeHash], changes: Vec<Vec<u8>>) -> sync::Message {
    let have = sync::Have { last_sync, bloom: sync::BloomFilter::from_hashes(added.iter().copied()) };
    sync::Message { heads, need: vec![], have: vec![have], changes: ChunkList::from(changes), flags: None, version: MessageVersion::V1 }
}

/// Every watcher's message once it holds `heads` (a hello, or an
/// acknowledgement).
fn watchers_at(heads: &[ChangeHash]) -> Vec<DocInput> {
    (0..WATCHERS)
        .map(|w| DocInput::Sync {
            conn: ConnectionId(w + 1),
            sender: PeerId(format!("watcher-{w}")),
            message: sync_message(heads.to_vec(), heads.to_vec(), &[], vec![]),
            request: false,
        })
        .collect()
}

/// Carry out the engine's effects: flushes complete at once; returns how
/// many messages it sent.
fn settle(engine: &mut DocEngine, mut effects: Vec<DocEffect>) -> usize {
    let mut sent = 0;
    loop {
        let mut durable = None;
        for effect in &effects {
            match effect {
                DocEffect::Send { message: Message::Sync(_), .. } => sent += 1,
                DocEffect::Persist { seq, .. } => durable = Some(*seq),
                _ => {}
            }
        }
        match durable {
            Some(seq) => effects = engine.handle([DocInput::Durable { seq }]),
            None => return sent,
        }
    }
}

/// `deferred`: `None` for the default batch (which grows with the text),
/// `Some(0)` to apply every keystroke at once.
fn run(base: &[u8], text: &automerge::ObjId, typist: &Automerge, keystrokes: usize, deferred: Option<usize>) -> Vec<f64> {
    let mut config = EngineConfig::default();
    if let Some(deferred) = deferred {
        config.deferred_changes(deferred);
    }
    let document_id = DocumentId::from_random([3; 16]);
    let mut engine =
        DocEngine::load_with_config(document_id, PeerId::from("server"), Role::Server, Arc::new(config), [(true, base)])
            .expect("loads");
    let mut typist = typist.fork().with_actor(ActorId::from(vec![1u8; 16]));
    // Every watcher says hello with our heads, and is answered.
    let heads = engine.heads();
    let effects = engine.handle(watchers_at(&heads));
    settle(&mut engine, effects);
    let mut samples = Vec::with_capacity(keystrokes);
    // The heads the typist shares with us: its last keystroke, once acknowledged.
    let mut shared = heads;
    for i in 0..keystrokes {
        let mut tx = typist.transaction();
        let len = tx.length(text);
        tx.splice_text(text, len - (i % 40).min(len), 0, "x").expect("splice");
        tx.commit();
        let change = typist.get_last_local_change().expect("a change").raw_bytes().to_vec();
        let hash = typist.get_heads();
        let message = sync_message(hash.clone(), shared.clone(), &hash, vec![change]);
        let start = Instant::now();
        let effects = engine.handle([DocInput::Sync { conn: ConnectionId(0), sender: PeerId::from("typist"), message, request: false }]);
        settle(&mut engine, effects);
        // Each watcher acknowledges the relayed keystroke.
        let heads = engine.heads();
        let effects = engine.handle(watchers_at(&heads));
        settle(&mut engine, effects);
        samples.push(start.elapsed().as_secs_f64() * 1e3);
        shared = heads;
    }
    if std::env::var_os("KEYSTROKE_SIZE_DEBUG").is_some() {
        eprintln!("{:?} deferred now {}", engine.fast_path_counts(), engine.deferred_count());
    }
    samples
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn mean(samples: &[f64]) -> f64 {
    samples.iter().sum::<f64>() / samples.len() as f64
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes: &[usize] = if quick { &[5_000, 50_000] } else { &[20_000, 200_000] };
    // Applied at once, every keystroke costs alike; deferred, the mean must
    // span several batches (up to 4,096 keystrokes each) to carry their applies.
    let (at_once_keystrokes, deferred_keystrokes) = if quick { (50, 1_000) } else { (200, 12_500) };
    println!(
        "{WATCHERS} watchers acknowledging; time per keystroke (typist's message, flush, relay, acknowledgements); \
         {at_once_keystrokes} keystrokes applied at once, {deferred_keystrokes} deferred (the default batch: a sixteenth of the text's changes, 1,024 to 4,096)"
    );
    println!("| changes in the text | applied at once: median | mean | deferred: median | mean |");
    println!("|---:|---:|---:|---:|---:|");
    let mut means = Vec::new();
    for &n in sizes {
        let (doc, text) = typed_text(n);
        let saved = doc.save();
        eprintln!("{n} changes: saved {} KiB", saved.len() / 1024);
        let at_once = run(&saved, &text, &doc, at_once_keystrokes, Some(0));
        let deferred = run(&saved, &text, &doc, deferred_keystrokes, None);
        means.push(mean(&deferred));
        println!(
            "| {n} | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms |",
            median(at_once.clone()),
            mean(&at_once),
            median(deferred.clone()),
            mean(&deferred)
        );
    }
    if let [small, large] = means[..] {
        println!("deferred, mean per keystroke, largest / smallest text: {:.2}×", large / small);
    }
}
