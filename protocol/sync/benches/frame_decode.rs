//! What reading one frame costs: an official client's acknowledgement (a
//! `sync` with heads and an empty bloom filter, 74 bytes of sync message)
//! and a presence `ephemeral`, through `Message::decode` (the in-place path
//! for the common frames) and through the general CBOR-value decoder it
//! falls back to. Prints the median time per frame.
//! `cargo bench -p konsens-sync --bench frame_decode` (`-- --quick`).

use std::hint::black_box;
use std::time::Instant;

use automerge::sync::{self, ChunkList, MessageVersion};
use automerge::ChangeHash;
use konsens_sync::{DocMessage, DocumentId, EphemeralMessage, Message, PeerId};

fn median_ns(frame: &[u8], decode: impl Fn(&[u8]) -> bool, rounds: usize) -> f64 {
    const BATCH: usize = 2_000;
    let mut samples: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..BATCH {
                assert!(decode(black_box(frame)));
            }
            start.elapsed().as_nanos() as f64 / BATCH as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 5 } else { 51 };
    let document_id = DocumentId::from_random([7; 16]);
    let ack = sync::Message {
        heads: vec![ChangeHash([3; 32])],
        need: Vec::new(),
        have: vec![sync::Have { last_sync: vec![ChangeHash([3; 32])], bloom: sync::BloomFilter::default() }],
        changes: ChunkList::empty(),
        flags: None,
        version: MessageVersion::V1,
    };
    let frames = [
        (
            "acknowledgement (sync)",
            Message::Sync(DocMessage {
                sender_id: PeerId::from("0a4b51e1-6f39-4b7e-9c55-3f1d7a2e8c10"),
                target_id: PeerId::from("konsens-server-1f0e"),
                document_id,
                data: ack.encode(),
            })
            .encode(),
        ),
        (
            "presence (ephemeral)",
            Message::Ephemeral(EphemeralMessage {
                sender_id: PeerId::from("0a4b51e1-6f39-4b7e-9c55-3f1d7a2e8c10"),
                target_id: PeerId::from("konsens-server-1f0e"),
                document_id,
                session_id: "5f0c1d2e-8a4b-4c3d-9e8f-7a6b5c4d3e2f".into(),
                count: 412,
                data: vec![0xa1, 0x66, 0x63, 0x75, 0x72, 0x73, 0x6f, 0x72, 0x18, 0x2a],
            })
            .encode(),
        ),
    ];
    println!("| frame | bytes | Message::decode | general decoder | ratio |");
    println!("|---|---:|---:|---:|---:|");
    for (name, frame) in &frames {
        let in_place = median_ns(frame, |f| Message::decode(f, usize::MAX).is_ok(), rounds);
        let general = median_ns(frame, |f| konsens_sync::fuzzing::decode_general(f).is_ok(), rounds);
        println!("| {name} | {} | {in_place:.0} ns | {general:.0} ns | {:.1}× |", frame.len(), general / in_place);
    }
}
