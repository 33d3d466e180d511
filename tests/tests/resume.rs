//! End-to-end: what the server shares with a peer's storage outlives the
//! connection and a server restart, so a reconnecting peer costs one round
//! trip with a bloom filter of what changed since, not of the whole history.

use anyhow::{Context, Result, bail};
use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ReadDoc, ROOT};
use konsens_sync::{DocMessage, DocumentId, Message, PeerMetadata, StorageId};
use konsens_tests::{Answer, RawPeer, ServerProcess, init_tracing};

/// Changes in the shared history before the peer leaves.
const HISTORY: usize = 400;

fn storage(name: &str) -> PeerMetadata {
    PeerMetadata { storage_id: Some(StorageId(name.into())), is_ephemeral: false }
}

async fn send_sync(peer: &mut RawPeer, doc_id: DocumentId, message: sync::Message) -> Result<()> {
    let target = peer.server_id.clone().context("joined")?;
    peer.send(&Message::Sync(DocMessage {
        sender_id: peer.peer_id.clone(),
        target_id: target,
        document_id: doc_id,
        data: message.encode(),
    }))
    .await
}

/// The next sync message from the server about `doc_id`.
async fn next_sync(peer: &mut RawPeer, doc_id: DocumentId) -> Result<sync::Message> {
    loop {
        match peer.next().await? {
            Answer::Message(Message::Sync(m)) if m.document_id == doc_id => return Ok(sync::Message::decode(&m.data)?),
            Answer::Message(_) => continue,
            other => bail!("connection ended: {other:?}"),
        }
    }
}

/// Sync `doc` with the server until the server advertises exactly its heads
/// (konsens does so only once they are on disk).
async fn sync_until_acknowledged(peer: &mut RawPeer, doc_id: DocumentId, doc: &mut Automerge, state: &mut sync::State) -> Result<()> {
    if let Some(m) = doc.generate_sync_message(state) {
        send_sync(peer, doc_id, m).await?;
    }
    loop {
        let reply = next_sync(peer, doc_id).await?;
        let advertised = reply.heads.clone();
        doc.receive_sync_message(state, reply)?;
        if let Some(m) = doc.generate_sync_message(state) {
            send_sync(peer, doc_id, m).await?;
        }
        if advertised == doc.get_heads() {
            return Ok(());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_peer_resumes_from_what_it_shared_even_after_a_restart() -> Result<()> {
    init_tracing();
    let dir = tempfile::tempdir()?;
    let server = ServerProcess::start(dir.path(), &[])?;
    let doc_id = DocumentId::from_bytes(*b"resume-after-bye");

    // A laptop writes a long history and syncs it.
    let mut laptop = Automerge::new().with_actor(ActorId::from(b"laptop".to_vec()));
    for i in 0..HISTORY {
        let mut tx = laptop.transaction();
        tx.put(ROOT, "paragraph", i as i64)?;
        tx.commit();
    }
    let mut laptop_state = sync::State::new();
    let mut peer = RawPeer::join_with(&server.ws_url(), "laptop-tab-1", storage("laptop-store")).await?;
    sync_until_acknowledged(&mut peer, doc_id, &mut laptop, &mut laptop_state).await?;
    let left_at = laptop.get_heads();
    // Like automerge-repo, the laptop keeps its sync state (shared heads) in its storage.
    let kept = laptop_state.encode();
    drop(peer);

    // Someone else edits meanwhile.
    let mut colleague = Automerge::new().with_actor(ActorId::from(b"colleague".to_vec()));
    let mut colleague_state = sync::State::new();
    let mut other = RawPeer::join_with(&server.ws_url(), "colleague", storage("colleague-store")).await?;
    sync_until_acknowledged(&mut other, doc_id, &mut colleague, &mut colleague_state).await?;
    for i in 0..2 {
        let mut tx = colleague.transaction();
        tx.put(ROOT, "comment", format!("second thoughts {i}"))?;
        tx.commit();
    }
    sync_until_acknowledged(&mut other, doc_id, &mut colleague, &mut colleague_state).await?;
    let current = colleague.get_heads();
    drop(other);

    // The server restarts (gracefully) on the same data.
    let addr = server.addr.clone();
    server.terminate()?;
    let server = ServerProcess::start_on(dir.path(), &addr, &[])?;

    // The same message from the laptop's storage and from a storage the
    // server has never met: only the first may resume.
    let mut replies = Vec::new();
    for (tab, store) in [("laptop-tab-2", "laptop-store"), ("stranger", "stranger-store")] {
        let mut state = sync::State::decode(&kept)?;
        let mut copy = laptop.fork().with_actor(ActorId::from(tab.as_bytes().to_vec()));
        // On the train: edits the server has not seen. (A peer that is merely
        // behind needs no kept state: the server recognises its heads.)
        for i in 0..3 {
            let mut tx = copy.transaction();
            tx.put(ROOT, "offline", format!("{tab} {i}"))?;
            tx.commit();
        }
        let mut peer = RawPeer::join_with(&server.ws_url(), tab, storage(store)).await?;
        let hello = copy.generate_sync_message(&mut state).context("the laptop has something to say")?;
        send_sync(&mut peer, doc_id, hello).await?;
        let reply = next_sync(&mut peer, doc_id).await?;
        let size = reply.clone().encode().len();
        // The first reply brings what the laptop missed...
        copy.receive_sync_message(&mut state, reply.clone())?;
        for head in &current {
            assert!(copy.get_change_by_hash(head).is_some(), "{store}: the first reply carries the colleague's changes");
        }
        // ...and the next round trip takes the offline edits to the server.
        sync_until_acknowledged(&mut peer, doc_id, &mut copy, &mut state).await?;
        replies.push((reply, size));
    }
    let (resumed, resumed_size) = &replies[0];
    let (fresh, fresh_size) = &replies[1];
    let resumed_have = resumed.have.first().context("resumed reply has a have")?;
    let fresh_have = fresh.have.first().context("fresh reply has a have")?;
    assert_eq!(resumed_have.last_sync, left_at, "the server resumed from the heads it shared with the laptop's storage");
    assert!(fresh_have.last_sync.is_empty(), "a storage the server never met starts from nothing");
    let (resumed_bloom, fresh_bloom) = (resumed_have.bloom.to_bytes().len(), fresh_have.bloom.to_bytes().len());
    println!("first reply: resumed {resumed_size} bytes (bloom {resumed_bloom}), from scratch {fresh_size} bytes (bloom {fresh_bloom})");
    assert!(
        resumed_bloom * 20 < fresh_bloom,
        "the resumed bloom filter covers the 2 new changes, not all {HISTORY}: {resumed_bloom} vs {fresh_bloom} bytes"
    );
    server.terminate()?;
    Ok(())
}
