//! Writes seed inputs for the codec fuzz target: one valid frame of every
//! message type plus typical malformed frames.
//! `cargo run -p konsens-sync --example write_fuzz_seeds -- protocol/sync/fuzz/corpus/decode_message`

use std::collections::BTreeMap;

use konsens_sync::message::RemoteHeads;
use konsens_sync::{DocMessage, DocumentId, EphemeralMessage, Message, PeerId, PeerMetadata, StorageId};

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "protocol/sync/fuzz/corpus/decode_message".into());
    std::fs::create_dir_all(&dir)?;
    let (a, b) = (PeerId::from("peer-a"), PeerId::from("peer-b"));
    let doc = DocumentId::from_random([0x5a; 16]);
    let dm = DocMessage { sender_id: a.clone(), target_id: b.clone(), document_id: doc, data: vec![0x42, 0, 0, 0, 0] };
    let mut heads = BTreeMap::new();
    heads.insert(StorageId("storage".into()), RemoteHeads { heads: vec!["h".into()], timestamp: 1 });
    let messages = vec![
        Message::Join { sender_id: a.clone(), peer_metadata: Some(PeerMetadata { storage_id: Some(StorageId("s".into())), is_ephemeral: false }), supported_protocol_versions: Some(vec!["1".into()]) },
        Message::Join { sender_id: a.clone(), peer_metadata: None, supported_protocol_versions: None },
        Message::Peer { sender_id: b.clone(), target_id: a.clone(), peer_metadata: Some(PeerMetadata::default()), selected_protocol_version: "1".into() },
        Message::Leave { sender_id: a.clone() },
        Message::Error { sender_id: Some(b.clone()), target_id: Some(a.clone()), message: "nope".into(), refusal: None },
        Message::Request(dm.clone()),
        Message::Sync(dm),
        Message::DocUnavailable { sender_id: b.clone(), target_id: a.clone(), document_id: doc },
        Message::Ephemeral(EphemeralMessage { sender_id: a.clone(), target_id: b.clone(), document_id: doc, session_id: "s".into(), count: 7, data: vec![0xa0] }),
        Message::RemoteSubscriptionChange { sender_id: a.clone(), target_id: b.clone(), add: vec![StorageId("x".into())], remove: vec![] },
        Message::RemoteHeadsChanged { sender_id: a, target_id: b, document_id: doc, new_heads: heads },
    ];
    for (i, m) in messages.iter().enumerate() {
        let bytes = m.encode();
        std::fs::write(format!("{dir}/valid-{i:02}-{}", m.type_name()), &bytes)?;
        // Truncations and a flipped byte of each valid frame.
        std::fs::write(format!("{dir}/truncated-{i:02}"), &bytes[..bytes.len() / 2])?;
        let mut flipped = bytes.clone();
        let mid = flipped.len() / 3;
        flipped[mid] ^= 0xff;
        std::fs::write(format!("{dir}/flipped-{i:02}"), &flipped)?;
    }
    let raw: [(&str, &[u8]); 6] = [
        ("empty", &[]),
        ("not-a-map", &[0x01]),
        ("indefinite-map-unterminated", &[0xbf, 0x61, 0x74]),
        ("deep-nesting", &[0x81; 512]),
        ("huge-length-claim", &[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        ("float-count", &[0xa1, 0x65, 0x63, 0x6f, 0x75, 0x6e, 0x74, 0xfb, 0x40, 0x08, 0, 0, 0, 0, 0, 0]),
    ];
    for (name, bytes) in raw {
        std::fs::write(format!("{dir}/{name}"), bytes)?;
    }
    Ok(())
}
