//! Connections (issue 11, item 5), end to end against the real server:
//! - a peer id in use by another token is refused; the same token replaces;
//! - ephemeral messages are relayed only under the sender's own peer id;
//! - revocation closes sockets that have not joined yet; an invitation that
//!   expires closes its open connections;
//! - ids longer than the limit are refused;
//! - `sync` and `request` answer alike for unreadable and missing documents;
//! - a server-side close logs one line and no panic.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use konsens_sync::{DocMessage, DocumentId, EphemeralMessage, Message, PeerId, PeerMetadata};
use konsens_tests::{Answer, RawPeer, ServerProcess, http_request, init_tracing};
use serde_json::{Value, json};

const PATIENCE: Duration = Duration::from_secs(30);

/// A secure server with two processes, each with a recommendation, made by
/// an administrator through the client library.
struct World {
    server: ServerProcess,
    admin: String,
    processes: [DocumentId; 2],
    recs: [DocumentId; 2],
    data: tempfile::TempDir,
    _store: tempfile::TempDir,
}

impl World {
    async fn new() -> Result<Self> {
        init_tracing();
        let data = tempfile::tempdir()?;
        let server = ServerProcess::start_secure(data.path(), "127.0.0.1:0", &[])?;
        let admin = server.admin_token.clone().context("the first start prints an admin link")?;
        let store = tempfile::tempdir()?;
        let ws = konsens_tests::admin_workspace(&server, &admin, store.path())?;
        let mut processes = Vec::new();
        let mut recs = Vec::new();
        for title in ["Fair skills partnerships", "Digital innovation"] {
            let process = ws.create_process(title, "").await?;
            let workshop = ws.add_workshop(process, "Workshop", "", vec![], None).await?;
            let rec = ws.new_recommendation(process, &workshop, "A recommendation").await?;
            for id in [process, rec] {
                tokio::time::timeout(PATIENCE, ws.repo().wait_synced(id)).await??;
            }
            processes.push(process);
            recs.push(rec);
        }
        Ok(Self {
            server,
            admin,
            processes: [processes[0], processes[1]],
            recs: [recs[0], recs[1]],
            data,
            _store: store,
        })
    }

    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> Result<(u16, Value)> {
        let (status, text) = http_request(&self.server.addr, method, path, Some(&self.admin), body.as_ref()).await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    /// Invite into a process; returns (token, token id).
    async fn invite(&self, process: DocumentId, role: &str, name: &str) -> Result<(String, String)> {
        let body = json!({"role": role, "name": name, "organisation": format!("{name}'s organisation"), "expires_in_days": 1});
        let (status, body) = self.api("POST", &format!("/api/processes/{process}/invitations"), Some(body)).await?;
        if status != 201 {
            bail!("invitation failed: {status} {body}");
        }
        Ok((body["token"].as_str().context("token")?.to_owned(), body["token_id"].as_str().context("id")?.to_owned()))
    }

    fn url(&self, token: &str) -> String {
        format!("{}?token={token}", self.server.ws_url())
    }
}

fn doc_message(peer: &RawPeer, id: DocumentId, data: Vec<u8>) -> DocMessage {
    DocMessage {
        sender_id: peer.peer_id.clone(),
        target_id: peer.server_id.clone().unwrap_or_else(|| PeerId::from("server")),
        document_id: id,
        data,
    }
}

/// The next answer, or None if nothing comes within `wait`.
async fn next_within(peer: &mut RawPeer, wait: Duration) -> Result<Option<Answer>> {
    match tokio::time::timeout(wait, peer.next()).await {
        Ok(answer) => Ok(Some(answer?)),
        Err(_) => Ok(None),
    }
}

async fn still_served(peer: &mut RawPeer, what: &str) -> Result<()> {
    let id = DocumentId::from_random([42; 16]);
    let message = Message::Request(doc_message(peer, id, konsens_tests::empty_sync_message()));
    peer.send(&message).await?;
    match peer.next().await? {
        Answer::Message(Message::DocUnavailable { .. }) => Ok(()),
        other => bail!("{what}: expected to be served, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_id_in_use_by_another_token_is_refused_and_the_same_token_replaces_it() -> Result<()> {
    let world = World::new().await?;
    let (victim_token, _) = world.invite(world.processes[0], "participant", "Vera").await?;
    let (attacker_token, _) = world.invite(world.processes[0], "participant", "Mallory").await?;
    let mut victim = RawPeer::join(&world.url(&victim_token), "vera-laptop").await?;

    // Another token with the victim's peer id: refused, again and again.
    for _ in 0..3 {
        let mut attacker = RawPeer::connect(&world.url(&attacker_token), "vera-laptop").await?;
        attacker
            .send(&Message::Join {
                sender_id: attacker.peer_id.clone(),
                peer_metadata: Some(PeerMetadata::default()),
                supported_protocol_versions: Some(vec!["1".into()]),
            })
            .await?;
        let mut answers = Vec::new();
        loop {
            let answer = attacker.next().await?;
            let done = matches!(answer, Answer::Close { .. } | Answer::Ended);
            answers.push(answer);
            if done {
                break;
            }
        }
        assert!(
            answers.iter().any(|a| matches!(a, Answer::Close { code: 1008, reason } if reason.contains("peer id in use"))),
            "{answers:?}"
        );
    }
    // The victim never noticed.
    assert!(next_within(&mut victim, Duration::from_millis(300)).await?.is_none(), "the victim is left alone");
    still_served(&mut victim, "the victim").await?;

    // The same token reconnecting takes over, as a reconnect should.
    let mut again = RawPeer::join(&world.url(&victim_token), "vera-laptop").await?;
    match victim.next().await? {
        Answer::Close { code, reason } => {
            assert_eq!(code, 1008);
            assert!(reason.contains("replaced"), "{reason}");
        }
        other => bail!("the old connection of the same token is replaced, got {other:?}"),
    }
    still_served(&mut again, "the newer connection").await?;
    assert!(world.server.wait_for_log("peer id in use by another token", std::time::Duration::from_secs(10)));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_messages_are_relayed_only_under_the_senders_own_peer_id() -> Result<()> {
    let world = World::new().await?;
    let (a_token, _) = world.invite(world.processes[0], "participant", "Anna").await?;
    let (b_token, _) = world.invite(world.processes[0], "participant", "Ben").await?;
    let rec = world.recs[0];
    let mut a = RawPeer::join(&world.url(&a_token), "anna").await?;
    let mut b = RawPeer::join(&world.url(&b_token), "ben").await?;
    for peer in [&mut a, &mut b] {
        let message = Message::Request(doc_message(peer, rec, konsens_tests::empty_sync_message()));
        peer.send(&message).await?;
        match peer.next().await? {
            Answer::Message(Message::Sync(_)) => {}
            other => bail!("expected the document, got {other:?}"),
        }
    }
    let ephemeral = |sender: &str, count: u64| {
        Message::Ephemeral(EphemeralMessage {
            sender_id: PeerId::from(sender),
            target_id: PeerId::from("server"),
            document_id: rec,
            session_id: "session".into(),
            count,
            data: vec![0xa0],
        })
    };
    // Anna claims to be the facilitator, then someone unknown: neither arrives.
    a.send(&ephemeral("facilitator-laptop", 1)).await?;
    a.send(&ephemeral("ben", 2)).await?;
    // Under her own id it does, as hers.
    a.send(&ephemeral("anna", 3)).await?;
    let mut received = Vec::new();
    while let Some(answer) = next_within(&mut b, Duration::from_millis(500)).await? {
        if let Answer::Message(Message::Ephemeral(e)) = answer {
            received.push((e.sender_id.0, e.count));
        }
    }
    assert_eq!(received, vec![("anna".to_owned(), 3)], "only Anna's own message is relayed");
    still_served(&mut a, "the sender").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_closes_sockets_that_have_not_joined_yet() -> Result<()> {
    let world = World::new().await?;
    let (token, token_id) = world.invite(world.processes[0], "participant", "Pia").await?;
    // Upgraded, never joined.
    let mut waiting = RawPeer::connect(&world.url(&token), "pia-laptop").await?;
    let started = Instant::now();
    let (status, body) = world.api("POST", &format!("/api/tokens/{token_id}/revoke"), None).await?;
    assert_eq!(status, 200, "{body}");
    // The client sees the upgrade before the server has started serving the
    // socket: the revocation either closes it (counted here) or the socket
    // finds the token revoked when it starts. Closed it is, either way.
    assert!(body["closed_connections"].as_u64().is_some_and(|n| n <= 1), "{body}");
    match waiting.next().await? {
        Answer::Close { code, reason } => {
            assert_eq!(code, 1008);
            assert!(reason.contains("revoked"), "{reason}");
        }
        other => bail!("expected a close, got {other:?}"),
    }
    eprintln!("an unjoined socket closed {:?} after its token was revoked", started.elapsed());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_that_expires_closes_its_open_connections() -> Result<()> {
    let world = World::new().await?;
    let (token, _) = world.invite(world.processes[0], "participant", "Eva").await?;
    // Move the expiry to a few seconds from now, while the server is stopped
    // (sled allows one process), the way an invitation of a day ends a day later.
    let World { server, data, _store, .. } = world;
    server.terminate()?;
    let expires_in = Duration::from_secs(4);
    {
        let store = konsens_store::ChunkStore::open(data.path())?;
        let auth = store.auth()?;
        let hash = {
            use sha2::Digest;
            sha2::Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect::<String>()
        };
        let mut record = auth.token(&hash)?.context("the token's record")?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
        record.expires_at = Some(now + expires_in.as_millis() as i64);
        auth.put_token(&hash, &record)?;
        store.flush()?;
    }
    let server = ServerProcess::start_secure(data.path(), "127.0.0.1:0", &[])?;
    let started = Instant::now();
    let mut peer = RawPeer::join(&format!("{}?token={token}", server.ws_url()), "eva-laptop").await?;
    match tokio::time::timeout(expires_in + Duration::from_secs(5), peer.next()).await?? {
        Answer::Close { code, reason } => {
            assert_eq!(code, 1008);
            assert!(reason.contains("expired"), "{reason}");
        }
        other => bail!("expected a close at expiry, got {other:?}"),
    }
    let after = started.elapsed();
    eprintln!("an open connection closed {after:?} after joining with a token that expired {expires_in:?} after the restart began");
    assert!(after <= expires_in + Duration::from_secs(1), "{after:?}");
    let err = RawPeer::connect(&format!("{}?token={token}", server.ws_url()), "eva-laptop").await.expect_err("expired");
    assert!(err.to_string().contains("401"), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_longer_than_the_limit_are_refused_and_never_logged() -> Result<()> {
    let world = World::new().await?;
    let long = "x".repeat(1 << 20);
    let mut peer = RawPeer::connect(&world.url(&world.admin), &long).await?;
    peer.send(&Message::Join {
        sender_id: peer.peer_id.clone(),
        peer_metadata: Some(PeerMetadata::default()),
        supported_protocol_versions: Some(vec!["1".into()]),
    })
    .await?;
    let mut closed = None;
    while closed.is_none() {
        match peer.next().await? {
            Answer::Close { code, reason } => closed = Some((code, reason)),
            Answer::Ended => closed = Some((1006, String::new())),
            Answer::Message(_) => {}
        }
    }
    let (code, reason) = closed.context("closed")?;
    assert_eq!(code, 1002, "{reason}");
    assert!(reason.contains("longer than 256 bytes"), "{reason}");
    // A session id the same.
    let mut joined = RawPeer::join(&world.url(&world.admin), "short").await?;
    joined
        .send(&Message::Ephemeral(EphemeralMessage {
            sender_id: PeerId::from("short"),
            target_id: PeerId::from("server"),
            document_id: world.recs[0],
            session_id: "s".repeat(1000),
            count: 1,
            data: vec![0xa0],
        }))
        .await?;
    let mut closed = false;
    while let Some(answer) = next_within(&mut joined, Duration::from_secs(5)).await? {
        if let Answer::Close { code, reason } = answer {
            assert_eq!(code, 1002);
            assert!(reason.contains("sessionId"), "{reason}");
            closed = true;
            break;
        }
    }
    assert!(closed, "an over-long session id is refused");
    let log = world.server.log();
    assert!(!log.contains(&"x".repeat(300)), "the id never reaches the log");
    assert!(log.lines().all(|l| l.len() < 4096), "no log line carries a long id");
    Ok(())
}

/// What the server sends back to one message, until it is quiet for a moment.
async fn answers(peer: &mut RawPeer, message: &Message) -> Result<Vec<Message>> {
    peer.send(message).await?;
    let mut out = Vec::new();
    while let Some(answer) = next_within(peer, Duration::from_millis(700)).await? {
        match answer {
            Answer::Message(m) => out.push(m),
            other => bail!("the connection ended: {other:?}"),
        }
    }
    Ok(out)
}

/// The same answer with the document id taken out.
fn shape(messages: Vec<Message>) -> Vec<String> {
    messages
        .into_iter()
        .map(|m| match m {
            Message::Sync(m) => format!("sync {:?}", m.data),
            Message::Request(m) => format!("request {:?}", m.data),
            Message::DocUnavailable { .. } => "doc-unavailable".into(),
            Message::Error { message, refusal, .. } => {
                format!("error {:?} {:?}", message.split_once("refused:").map(|(_, why)| why.to_owned()), refusal.map(|r| (r.code, r.refused)))
            }
            other => format!("{other:?}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_and_request_answer_alike_for_unreadable_and_missing_documents() -> Result<()> {
    let world = World::new().await?;
    // A member of the second process asks about the first process's recommendation.
    let (observer, _) = world.invite(world.processes[1], "observer", "Otto").await?;
    let (participant, _) = world.invite(world.processes[1], "participant", "Paula").await?;
    let other_process = world.recs[0];
    let missing = DocumentId::from_random([77; 16]);
    let change = {
        use automerge::transaction::Transactable;
        let mut doc = automerge::Automerge::new();
        let mut tx = doc.transaction();
        tx.put(automerge::ROOT, "title", "probe")?;
        tx.commit();
        doc.get_changes(&[]).pop().context("change")?.raw_bytes().to_vec()
    };
    let with_changes = automerge::sync::Message {
        heads: vec![],
        need: vec![],
        have: vec![],
        changes: automerge::sync::ChunkList::from(vec![change]),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    }
    .encode();
    // A first sync as the JS client sends it for a document it has: heads and a filter.
    let first_sync = {
        use automerge::sync::SyncDoc;
        let mut doc = automerge::Automerge::new();
        {
            use automerge::transaction::Transactable;
            let mut tx = doc.transaction();
            tx.put(automerge::ROOT, "x", 1)?;
            tx.commit();
        }
        doc.generate_sync_message(&mut automerge::sync::State::new()).context("a first message")?.encode()
    };
    for (token, who) in [(&observer, "observer"), (&participant, "participant")] {
        let mut peer = RawPeer::join(&world.url(token), &format!("{who}-probe")).await?;
        for (kind, data) in [("request", konsens_tests::empty_sync_message()), ("empty sync", konsens_tests::empty_sync_message()), ("first sync", first_sync.clone()), ("sync with changes", with_changes.clone())] {
            let make = |peer: &RawPeer, id: DocumentId| {
                let m = doc_message(peer, id, data.clone());
                if kind == "request" { Message::Request(m) } else { Message::Sync(m) }
            };
            let message = make(&peer, other_process);
            let unreadable = answers(&mut peer, &message).await?;
            let message = make(&peer, missing);
            let absent = answers(&mut peer, &message).await?;
            eprintln!("{who}, {kind}: unreadable {:?} / missing {:?}", shape(unreadable.clone()), shape(absent.clone()));
            assert_eq!(shape(unreadable), shape(absent), "{who}, {kind}: another process's document answers like a missing one");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_closes_log_one_line_and_no_panic() -> Result<()> {
    let world = World::new().await?;
    let (token, token_id) = world.invite(world.processes[0], "participant", "Cleo").await?;
    // Closed by the server in several ways: leave, replaced, bad input, revoked.
    let mut first = RawPeer::join(&world.url(&token), "cleo-1").await?;
    first.send(&Message::Leave { sender_id: PeerId::from("cleo-1") }).await?;
    let _ = first.next().await?;
    let mut old = RawPeer::join(&world.url(&token), "cleo-2").await?;
    let _new = RawPeer::join(&world.url(&token), "cleo-2").await?;
    let _ = old.next().await?;
    let mut bad = RawPeer::join(&world.url(&token), "cleo-3").await?;
    bad.send_text("not cbor").await?;
    while !matches!(bad.next().await?, Answer::Close { .. } | Answer::Ended) {}
    let mut revoked = RawPeer::join(&world.url(&token), "cleo-4").await?;
    world.api("POST", &format!("/api/tokens/{token_id}/revoke"), None).await?;
    while !matches!(revoked.next().await?, Answer::Close { .. } | Answer::Ended) {}
    // A connection logs its close once the close handshake is over (our
    // peers here do not answer it, so after the server's grace of 2 s).
    let logged = async {
        while world.server.log().lines().filter(|l| l.contains("connection closed") && l.contains("peer=cleo-")).count() < 4 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), logged).await;
    let log = world.server.log();
    assert!(!log.contains("panicked"), "{log}");
    assert!(!log.contains("JoinHandle polled after completion"), "{log}");
    assert!(!log.contains("stack backtrace"), "{log}");
    for peer in ["cleo-1", "cleo-2", "cleo-3", "cleo-4"] {
        let closed = log.lines().filter(|l| l.contains("connection closed") && l.contains(&format!("peer={peer}"))).count();
        assert!(closed >= 1, "{peer}: {log}");
    }
    Ok(())
}
