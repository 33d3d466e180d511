//! Replays the committed fuzz corpus (seeds and every crasher found so far)
//! through the same check the fuzz target runs, on every `cargo test`.

use std::path::Path;

#[test]
fn committed_corpus_decodes_without_panics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode_message");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory exists") {
        let path = entry.expect("readable entry").path();
        let data = std::fs::read(&path).expect("readable corpus file");
        konsens_sync::fuzzing::check_decode(&data);
        count += 1;
    }
    assert!(count >= 20, "corpus has only {count} inputs");
}

/// Seeded mutations of the frames the in-place decoder reads (a `sync`, an
/// `ephemeral`): flipped, dropped and inserted bytes, so both decoders see
/// near-valid frames of every shape and must agree on each.
#[test]
fn mutated_common_frames_decode_alike() {
    use konsens_sync::{DocMessage, DocumentId, EphemeralMessage, Message, PeerId};
    use rand::{Rng, SeedableRng};

    let document_id = DocumentId::from_random([5; 16]);
    let sync = Message::Sync(DocMessage {
        sender_id: PeerId::from("official-3"),
        target_id: PeerId::from("konsens-server"),
        document_id,
        data: vec![0x42, 0, 1, 2, 3, 4, 5],
    });
    let ephemeral = Message::Ephemeral(EphemeralMessage {
        sender_id: PeerId::from("official-3"),
        target_id: PeerId::from("konsens-server"),
        document_id,
        session_id: "session".into(),
        count: 300,
        data: vec![0xa1, 0x61, 0x78, 0x01],
    });
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    let mut decoded_in_place = 0;
    for original in [sync.encode(), ephemeral.encode()] {
        for _ in 0..20_000 {
            let mut frame = original.clone();
            for _ in 0..rng.random_range(1..=3) {
                let at = rng.random_range(0..frame.len());
                match rng.random_range(0..3) {
                    0 => frame[at] = rng.random(),
                    1 => {
                        frame.remove(at);
                    }
                    _ => frame.insert(at, rng.random()),
                }
                if frame.is_empty() {
                    break;
                }
            }
            konsens_sync::fuzzing::check_decode(&frame);
            decoded_in_place += usize::from(Message::decode(&frame, 1 << 20).is_ok());
        }
    }
    // Some mutations keep a valid frame (a changed payload byte, say), so
    // the agreement was checked on messages, not only on errors.
    assert!(decoded_in_place > 1_000, "only {decoded_in_place} mutated frames decoded");
}
