//! Regression: a peer's change and its next message (heads equal to the new
//! heads, no changes) arriving in one batch must still get an acknowledgement.
//! Automerge alone would conclude from the second message that we already told
//! the peer our heads, and stay silent; the peer would then wait forever.

use automerge::sync::{ChunkList, Message as SyncMessage, MessageVersion};
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ROOT};
use konsens_sync::{ConnectionId, DocEffect, DocEngine, DocInput, DocMessage, DocumentId, Message, PeerId, Role};

fn sync(document_id: DocumentId, data: Vec<u8>) -> DocInput {
    let message = DocMessage { sender_id: PeerId::from("client"), target_id: PeerId::from("server"), document_id, data };
    DocInput::decode_sync(ConnectionId(1), &message, false).expect("decodes")
}

/// A client's sync message with these heads and changes.
fn message(heads: Vec<automerge::ChangeHash>, changes: Vec<Vec<u8>>) -> Vec<u8> {
    SyncMessage { heads, need: vec![], have: vec![], changes: ChunkList::from(changes), flags: None, version: MessageVersion::V1 }.encode()
}

fn flushes(effects: &[DocEffect]) -> Vec<u64> {
    effects.iter().filter_map(|e| if let DocEffect::Persist { seq, .. } = e { Some(*seq) } else { None }).collect()
}

fn advertised_heads(effects: &[DocEffect]) -> Vec<Vec<automerge::ChangeHash>> {
    effects
        .iter()
        .filter_map(|e| match e {
            DocEffect::Send { message: Message::Sync(m), .. } => SyncMessage::decode(&m.data).ok().map(|s| s.heads),
            _ => None,
        })
        .collect()
}

#[test]
fn a_change_and_a_heads_only_message_in_one_batch_are_acknowledged() {
    let document_id = DocumentId::from_random([3; 16]);
    let mut server = DocEngine::new(document_id, PeerId::from("server"), Role::Server);

    // The client's first change reaches the server and is acknowledged.
    let mut client = Automerge::new().with_actor(ActorId::from(vec![1; 16]));
    let mut tx = client.transaction();
    tx.put(ROOT, "title", "first").expect("put");
    tx.commit();
    let first = client.get_last_local_change().expect("change").raw_bytes().to_vec();
    let effects = server.handle([sync(document_id, message(client.get_heads(), vec![first]))]);
    let seq = flushes(&effects)[0];
    let effects = server.handle([DocInput::Durable { seq }]);
    assert_eq!(advertised_heads(&effects), vec![client.get_heads()]);

    // A second change, and right behind it the client's heads-only message.
    let mut tx = client.transaction();
    tx.put(ROOT, "title", "second").expect("put");
    tx.commit();
    let second = client.get_last_local_change().expect("change").raw_bytes().to_vec();
    let heads = client.get_heads();
    let effects = server.handle([
        sync(document_id, message(heads.clone(), vec![second])),
        sync(document_id, message(heads.clone(), vec![])),
    ]);
    let seq = flushes(&effects)[0];
    assert!(advertised_heads(&effects).is_empty(), "nothing is acknowledged before the flush");
    let effects = server.handle([DocInput::Durable { seq }]);
    assert_eq!(advertised_heads(&effects), vec![heads], "the new change is acknowledged once durable");
}

#[test]
fn a_heads_only_message_arriving_with_the_flush_does_not_swallow_the_acknowledgement() {
    let document_id = DocumentId::from_random([4; 16]);
    let mut server = DocEngine::new(document_id, PeerId::from("server"), Role::Server);
    let mut client = Automerge::new().with_actor(ActorId::from(vec![2; 16]));
    let mut tx = client.transaction();
    tx.put(ROOT, "title", "first").expect("put");
    tx.commit();
    let first = client.get_last_local_change().expect("change").raw_bytes().to_vec();
    let effects = server.handle([sync(document_id, message(client.get_heads(), vec![first]))]);
    let seq = flushes(&effects)[0];
    server.handle([DocInput::Durable { seq }]);

    let mut tx = client.transaction();
    tx.put(ROOT, "title", "second").expect("put");
    tx.commit();
    let second = client.get_last_local_change().expect("change").raw_bytes().to_vec();
    let heads = client.get_heads();
    let effects = server.handle([sync(document_id, message(heads.clone(), vec![second]))]);
    let seq = flushes(&effects)[0];
    // The flush completes and, in the same batch, the client's heads-only
    // message (already claiming the new heads) is waiting.
    let effects = server.handle([DocInput::Durable { seq }, sync(document_id, message(heads.clone(), vec![]))]);
    assert!(advertised_heads(&effects).contains(&heads), "the new change is acknowledged: {effects:?}");
}
