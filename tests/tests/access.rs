//! Access control end to end, against the real server started without
//! `--open`: tokens, roles, enforced reads and writes, verified authorship.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ROOT, ReadDoc};
use konsens_client::{ClientError, Repo, RepoConfig};
use konsens_model::schema::{self, Status};
use konsens_sync::{DocMessage, DocumentId, Message, PeerId};
use konsens_tests::{Answer, RawPeer, ServerProcess, http_request, init_tracing};
use serde_json::{Value, json};

const PATIENCE: Duration = Duration::from_secs(30);

/// A secure server with a process (one workshop, one recommendation) that an
/// administrator made through the client library.
struct World {
    server: ServerProcess,
    admin: String,
    process: DocumentId,
    rec: DocumentId,
    _dirs: Vec<tempfile::TempDir>,
}

impl World {
    async fn new() -> Result<Self> {
        init_tracing();
        let data = tempfile::tempdir()?;
        let server = ServerProcess::start_secure(data.path(), "127.0.0.1:0", &[])?;
        let admin = server.admin_token.clone().context("the first start prints an admin link")?;
        let store = tempfile::tempdir()?;
        let ws = konsens_tests::admin_workspace(&server, &admin, store.path())?;
        let process = ws.create_process("Fair skills partnerships", "").await?;
        let workshop = ws.add_workshop(process, "Fair recruitment", "", vec!["care".into()], None).await?;
        let rec = ws.new_recommendation(process, &workshop, "Publish recruitment fees").await?;
        let r = konsens_client::DocRef::Doc { id: rec, heads: None };
        ws.set_field(&r, "recommendation", "Agencies must publish all fees.").await?;
        for id in [process, rec] {
            match tokio::time::timeout(PATIENCE, ws.repo().wait_synced(id)).await {
                Ok(result) => result?,
                Err(_) => bail!("the server did not acknowledge {id}; server log:\n{}", server.log()),
            }
        }
        Ok(Self { server, admin, process, rec, _dirs: vec![data, store] })
    }

    async fn api(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Result<(u16, Value)> {
        let (status, text) = http_request(&self.server.addr, method, path, token, body.as_ref()).await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    /// Invite into `process`; returns (token, participant, token id).
    async fn invite(&self, process: DocumentId, role: &str, name: &str) -> Result<(String, String, String)> {
        let (status, body) = self
            .api("POST", &format!("/api/processes/{process}/invitations"), Some(&self.admin), Some(json!({"role": role, "name": name, "organisation": format!("{name}'s organisation")})))
            .await?;
        if status != 201 {
            bail!("invitation failed: {status} {body}");
        }
        let text = |k: &str| body[k].as_str().map(str::to_owned).context("field");
        Ok((text("token")?, text("participant")?, text("token_id")?))
    }

    /// A client repo with a token, optionally as a given Automerge actor.
    fn repo(&mut self, token: &str, actor: Option<ActorId>) -> Result<Repo> {
        let dir = tempfile::tempdir()?;
        let mut config = RepoConfig::new(dir.path()).server(self.server.ws_url());
        config.token = Some(token.to_owned());
        config.actor = actor;
        self._dirs.push(dir);
        Ok(Repo::open(config)?)
    }

    /// A second process, created by the administrator.
    async fn another_process(&mut self) -> Result<DocumentId> {
        let store = tempfile::tempdir()?;
        let ws = konsens_tests::admin_workspace(&self.server, &self.admin, store.path())?;
        let other = ws.create_process("Another process", "").await?;
        tokio::time::timeout(PATIENCE, ws.repo().wait_synced(other)).await??;
        self._dirs.push(store);
        Ok(other)
    }

    async fn history(&self) -> Result<Vec<Value>> {
        let (status, body) = self.api("GET", &format!("/api/docs/{}/history", self.rec), Some(&self.admin), None).await?;
        if status != 200 {
            bail!("history: {status} {body}");
        }
        Ok(body.as_array().cloned().unwrap_or_default())
    }
}

async fn put_title(repo: &Repo, id: DocumentId, title: &'static str) -> Result<()> {
    repo.change(id, move |doc: &mut Automerge| {
        doc.transact::<_, _, schema::SchemaError>(|tx| schema::set_title(tx, title)).map(|_| ()).map_err(|f| f.error)
    })
    .await??;
    Ok(())
}

async fn synced(repo: &Repo, id: DocumentId) -> Result<(), ClientError> {
    tokio::time::timeout(PATIENCE, repo.wait_synced(id)).await.map_err(|_| ClientError::Closed)?
}

fn title(doc: &Automerge) -> String {
    match doc.get(ROOT, "title") {
        Ok(Some((_, id))) => doc.text(&id).unwrap_or_default(),
        _ => String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_wrong_and_expired_tokens_are_refused() -> Result<()> {
    let world = World::new().await?;
    assert_eq!(world.api("GET", "/api/me", None, None).await?.0, 401);
    assert_eq!(world.api("GET", "/api/me", Some("not-a-token"), None).await?.0, 401);
    let (status, me) = world.api("GET", "/api/me", Some(&world.admin), None).await?;
    assert_eq!((status, me["role"].as_str()), (200, Some("admin")));

    let err = RawPeer::connect(&world.server.ws_url(), "anon").await.expect_err("no token, no socket");
    assert!(err.to_string().contains("401"), "{err}");
    let err = RawPeer::connect(&format!("{}?token=wrong", world.server.ws_url()), "anon").await.expect_err("wrong token");
    assert!(err.to_string().contains("401"), "{err}");

    let (status, body) = world
        .api("POST", &format!("/api/processes/{}/invitations", world.process), Some(&world.admin), Some(json!({"role": "participant", "name": "Late", "organisation": "O", "expires_in_days": 0})))
        .await?;
    assert_eq!(status, 201, "{body}");
    let expired = body["token"].as_str().context("token")?;
    assert_eq!(world.api("GET", "/api/me", Some(expired), None).await?.0, 401, "an expired token is refused");
    let (status, body) = world.api("POST", "/api/processes/whatever/invitations", Some(&world.admin), Some(json!({"role": "king", "name": "x", "organisation": "y"}))).await?;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].is_string());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_mid_session_closes_its_connections() -> Result<()> {
    let world = World::new().await?;
    let (token, _, token_id) = world.invite(world.process, "participant", "Bora").await?;
    let url = format!("{}?token={token}", world.server.ws_url());
    let mut peer = RawPeer::join(&url, "bora-laptop").await?;
    let (status, body) = world.api("POST", &format!("/api/tokens/{token_id}/revoke"), Some(&world.admin), None).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["closed_connections"], 1);
    match peer.next().await? {
        Answer::Close { reason, .. } => assert!(reason.contains("revoked"), "{reason}"),
        other => panic!("expected the connection to close, got {other:?}"),
    }
    let err = RawPeer::connect(&url, "bora-laptop").await.expect_err("revoked tokens cannot reconnect");
    assert!(err.to_string().contains("401"), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observers_write_reaches_neither_disk_nor_peers() -> Result<()> {
    let mut world = World::new().await?;
    let (observer_token, _, _) = world.invite(world.process, "observer", "Olga").await?;
    let (participant_token, _, _) = world.invite(world.process, "participant", "Pia").await?;
    let observer = world.repo(&observer_token, None)?;
    let participant = world.repo(&participant_token, None)?;
    let rec = world.rec;
    let seen = tokio::time::timeout(PATIENCE, observer.find(rec)).await??;
    assert_eq!(title(&seen), "Publish recruitment fees", "observers read");
    tokio::time::timeout(PATIENCE, participant.find(rec)).await??;

    put_title(&observer, rec, "Observer was here").await?;
    // The server refuses it; the client sets it aside instead of staying stuck.
    synced(&observer, rec).await?;
    let refusals = observer.take_refusals().await?;
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0].code, "read-only");
    assert!(refusals[0].message.contains("observers cannot change documents"), "{refusals:?}");
    assert_eq!(refusals[0].wording, vec![("title".to_owned(), "Observer was here".to_owned())]);
    assert_eq!(title(&observer.find(rec).await?), "Publish recruitment fees", "the observer's copy is the server's again");

    // A later legitimate change arrives; the observer's never does.
    let mut watch = participant.subscribe(rec).await?;
    put_title(&participant, rec, "Publish all recruitment fees").await?;
    synced(&participant, rec).await?;
    let admin_view = {
        let (status, history) = world.api("GET", &format!("/api/docs/{rec}/history"), Some(&world.admin), None).await?;
        assert_eq!(status, 200);
        history
    };
    assert!(
        admin_view.as_array().context("list")?.iter().all(|c| c["author"]["name"] != "Olga"),
        "no change by the observer is on disk: {admin_view}"
    );
    let doc = participant.find(rec).await?;
    assert_eq!(title(&doc), "Publish all recruitment fees");
    let _ = watch.borrow_and_update();
    assert!(world.server.wait_for_log("observers cannot change documents", std::time::Duration::from_secs(10)), "the refusal is logged");

    // And only facilitators decide.
    participant
        .change(rec, |doc: &mut Automerge| {
            doc.transact::<_, _, schema::SchemaError>(|tx| {
                tx.put(ROOT, "status", Status::Adopted.as_str())?;
                Ok(())
            })
            .map(|_| ())
            .map_err(|f| f.error)
        })
        .await??;
    synced(&participant, rec).await?;
    let refusals = participant.take_refusals().await?;
    assert_eq!(refusals.iter().map(|r| r.code.as_str()).collect::<Vec<_>>(), ["decision"], "participants cannot adopt");
    assert!(refusals[0].message.contains("only facilitators"), "{refusals:?}");
    let status = participant.find(rec).await?.get(ROOT, "status")?.map(|(v, _)| v.to_string());
    assert_eq!(status.as_deref(), Some("\"draft\""), "the participant's copy is the server's again");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_member_cannot_tell_a_secret_document_from_a_missing_one() -> Result<()> {
    let mut world = World::new().await?;
    // A second process, with its own member.
    let other = world.another_process().await?;
    let (token, _, _) = world.invite(other, "participant", "Outsider").await?;

    let mut peer = RawPeer::join(&format!("{}?token={token}", world.server.ws_url()), "outsider").await?;
    let server_id = peer.server_id.clone().context("joined")?;
    let empty_sync = konsens_tests::empty_sync_message();
    let missing = DocumentId::from_random([77; 16]);
    let mut answers = Vec::new();
    for (document_id, request) in [(world.rec, true), (missing, true), (world.process, true), (world.rec, false), (missing, false)] {
        let message = DocMessage { sender_id: PeerId::from("outsider"), target_id: server_id.clone(), document_id, data: empty_sync.clone() };
        peer.send(&if request { Message::Request(message) } else { Message::Sync(message) }).await?;
        answers.push(peer.next().await?);
    }
    for answer in &answers[..3] {
        assert!(matches!(answer, Answer::Message(Message::DocUnavailable { .. })), "{answers:?}");
    }
    // A `sync` gets what a missing document gets (the reply of an empty one:
    // a `sync` may be about to create it), the same for the secret document.
    match (&answers[3], &answers[4]) {
        (Answer::Message(Message::Sync(secret)), Answer::Message(Message::Sync(absent))) => assert_eq!(secret.data, absent.data),
        other => panic!("a sync for a secret and for a missing document answer alike: {other:?}"),
    }
    let secret = world.api("GET", &format!("/api/docs/{}/history", world.rec), Some(&token), None).await?;
    let absent = world.api("GET", &format!("/api/docs/{missing}/history"), Some(&token), None).await?;
    assert_eq!(secret, absent, "the same 404 for a secret and a missing document");
    assert_eq!(secret.0, 404);
    let (_, processes) = world.api("GET", "/api/processes", Some(&token), None).await?;
    assert_eq!(processes.as_array().map(Vec::len), Some(1), "a member sees only their process: {processes}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_actor_is_refused_unless_a_facilitator_relays_it() -> Result<()> {
    let mut world = World::new().await?;
    let (alice_token, alice, _) = world.invite(world.process, "participant", "Alice").await?;
    let (mallory_token, _, _) = world.invite(world.process, "participant", "Mallory").await?;
    let (fatima_token, fatima, _) = world.invite(world.process, "facilitator", "Fatima").await?;
    let actor = ActorId::from(vec![0xa1; 16]);
    let rec = world.rec;

    let alice_repo = world.repo(&alice_token, Some(actor.clone()))?;
    tokio::time::timeout(PATIENCE, alice_repo.find(rec)).await??;
    put_title(&alice_repo, rec, "Alice's title").await?;
    synced(&alice_repo, rec).await?;

    let mallory = world.repo(&mallory_token, Some(actor.clone()))?;
    tokio::time::timeout(PATIENCE, mallory.find(rec)).await??;
    put_title(&mallory, rec, "Mallory pretends to be Alice").await?;
    synced(&mallory, rec).await?;
    let refusals = mallory.take_refusals().await?;
    assert_eq!(refusals.iter().map(|r| r.code.as_str()).collect::<Vec<_>>(), ["foreign-actor"], "another member's actor is refused");
    assert!(refusals[0].message.contains("belongs to another member"), "{refusals:?}");
    assert_eq!(title(&mallory.find(rec).await?), "Alice's title");

    // A facilitator relaying a change made as Alice's actor (merging her draft).
    let facilitator = world.repo(&fatima_token, Some(actor))?;
    tokio::time::timeout(PATIENCE, facilitator.find(rec)).await??;
    put_title(&facilitator, rec, "Alice's draft, merged").await?;
    synced(&facilitator, rec).await?;

    let history = world.history().await?;
    let last = history.last().context("history")?;
    assert_eq!(last["author"]["participant"], alice.as_str(), "{last}");
    assert_eq!(last["merged_by"]["participant"], fatima.as_str(), "{last}");
    assert_eq!(last["merged_by"]["name"], "Fatima");
    assert!(history.iter().all(|c| c["author"]["name"] != "Mallory"), "nothing of Mallory's is stored");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorship_stays_correct_under_concurrent_edits() -> Result<()> {
    let mut world = World::new().await?;
    let rec = world.rec;
    let mut members = Vec::new();
    for (i, name) in ["Amira", "Bernd", "Chiara"].into_iter().enumerate() {
        let (token, participant, _) = world.invite(world.process, "participant", name).await?;
        let actor = ActorId::from(vec![0x10 + i as u8; 16]);
        let repo = world.repo(&token, Some(actor.clone()))?;
        tokio::time::timeout(PATIENCE, repo.find(rec)).await??;
        members.push((repo, participant, actor, name));
    }
    let mut tasks = Vec::new();
    for (repo, _, _, name) in &members {
        let repo = repo.clone();
        let name = name.to_string();
        tasks.push(tokio::spawn(async move {
            for i in 0..5 {
                let key = format!("note-{name}-{i}");
                repo.change(rec, move |doc: &mut Automerge| {
                    doc.transact::<_, _, automerge::AutomergeError>(|tx| {
                        tx.put(ROOT, key.as_str(), "typed concurrently")?;
                        Ok(())
                    })
                    .map(|_| ())
                    .map_err(|f| f.error)
                })
                .await??;
            }
            synced(&repo, rec).await?;
            Ok::<_, anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let history = world.history().await?;
    for (_, participant, actor, name) in &members {
        let theirs: Vec<&Value> = history.iter().filter(|c| c["actor"] == actor.to_hex_string()).collect();
        assert_eq!(theirs.len(), 5, "{name}: {history:?}");
        for change in theirs {
            assert_eq!(change["author"]["participant"], participant.as_str(), "{change}");
            assert_eq!(change["author"]["name"], *name);
            assert_eq!(change["verified"], true);
            assert!(change["merged_by"].is_null());
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_client_connects_with_a_token() -> Result<()> {
    let world = World::new().await?;
    let root = konsens_tests::repo_root();
    let run = |url: String| {
        let root = root.clone();
        move || {
            std::process::Command::new("node")
                .arg(root.join("tests/js/interop.mjs"))
                .args(["create", &url, r#"{"title":"from JS"}"#])
                .env("INTEROP_TIMEOUT_MS", "10000")
                .output()
        }
    };
    let with_token = tokio::task::spawn_blocking(run(format!("{}?token={}", world.server.ws_url(), world.admin))).await??;
    assert!(with_token.status.success(), "{}", String::from_utf8_lossy(&with_token.stderr));
    let created: Value = serde_json::from_slice(with_token.stdout.split(|b| *b == b'\n').find(|l| !l.is_empty()).context("output")?)?;
    assert!(created["url"].as_str().is_some_and(|u| u.starts_with("automerge:")));
    let without = tokio::task::spawn_blocking(run(world.server.ws_url())).await??;
    assert!(!without.status.success(), "no token, no sync");
    assert!(String::from_utf8_lossy(&without.stderr).contains("401"), "{}", String::from_utf8_lossy(&without.stderr));
    Ok(())
}

/// A member may ask for a document before it exists (a recommendation linked
/// a moment before it reached the server): it arrives once created, if the
/// member may read it, and never if it belongs to another process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_asked_for_before_it_exists_reaches_only_those_who_may_read_it() -> Result<()> {
    let mut world = World::new().await?;
    let (member_token, _, _) = world.invite(world.process, "participant", "Pia").await?;
    let (creator_token, _, _) = world.invite(world.process, "participant", "Bora").await?;
    let other = world.another_process().await?;
    let (outsider_token, _, _) = world.invite(other, "participant", "Outsider").await?;

    // The creator makes a document id, and both ask for it before it exists.
    let creator = world.repo(&creator_token, None)?;
    let rec = creator.create().await?;
    let empty_sync = konsens_tests::empty_sync_message();
    let mut peers = Vec::new();
    for (token, name) in [(&member_token, "member"), (&outsider_token, "outsider")] {
        let mut peer = RawPeer::join(&format!("{}?token={token}", world.server.ws_url()), name).await?;
        let server_id = peer.server_id.clone().context("joined")?;
        peer.send(&Message::Request(DocMessage { sender_id: PeerId::from(name), target_id: server_id, document_id: rec, data: empty_sync.clone() })).await?;
        assert!(matches!(peer.next().await?, Answer::Message(Message::DocUnavailable { .. })));
        peers.push(peer);
    }
    let process_url = world.process.url();
    creator
        .change(rec, move |doc: &mut Automerge| {
            doc.transact::<_, _, schema::SchemaError>(|tx| schema::init_recommendation(tx, &process_url, "fair-recruitment", "Language courses", &[]))
                .map(|_| ())
                .map_err(|f| f.error)
        })
        .await??;
    synced(&creator, rec).await?;

    // The member hears of it.
    match peers[0].next().await? {
        Answer::Message(Message::Sync(m)) => assert_eq!(m.document_id, rec),
        other => bail!("the member should receive the new document, got {other:?}"),
    }
    // The outsider does not: the next thing it hears is the answer to its next question.
    let missing = DocumentId::from_random([78; 16]);
    let server_id = peers[1].server_id.clone().context("joined")?;
    peers[1].send(&Message::Request(DocMessage { sender_id: PeerId::from("outsider"), target_id: server_id, document_id: missing, data: empty_sync })).await?;
    match peers[1].next().await? {
        Answer::Message(Message::DocUnavailable { document_id, .. }) => assert_eq!(document_id, missing, "nothing about {rec}"),
        other => bail!("the outsider must learn nothing of another process's document, got {other:?}"),
    }
    Ok(())
}

/// The official JS client does not recover from a refusal: it keeps the
/// refused change and advertises it. It must not loop with the server (the
/// server answers nothing that offers refused changes), must be told once,
/// and must still receive the others' edits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_js_client_holding_a_refused_change_does_not_loop_and_still_hears_others() -> Result<()> {
    let world = World::new().await?;
    let (observer, _, _) = world.invite(world.process, "observer", "Olga").await?;
    let (participant, _, _) = world.invite(world.process, "participant", "Pia").await?;
    let ws = |token: &str| format!("{}?token={token}", world.server.ws_url());
    let (observer_url, participant_url, rec) = (ws(&observer), ws(&participant), world.rec.url());
    let result = tokio::task::spawn_blocking(move || {
        konsens_tests::js_harness(&["stubborn", &observer_url, &participant_url, &rec, "forged", "1", "3"])
    })
    .await??;
    assert_eq!(result["code"], "read-only", "{result}");
    assert_eq!(result["refusals"], 1, "told once: {result}");
    // 12 edits by the other member arrive in those 3 s; the stubborn client
    // answers each, and nothing answers it back. (Before, one such client
    // sent 1,502 frames in 12 s.)
    let sent = result["framesSent"].as_u64().context("framesSent")?;
    eprintln!("stubborn JS client: {sent} frames in 3 s after the refusal");
    assert!(sent <= 40, "the refused client's frames stay flat: {sent} in 3 s");
    assert!(world.server.wait_for_log("refused changes", Duration::from_secs(10)));
    assert_eq!(world.server.log().matches("refused changes").count(), 1, "logged once");
    Ok(())
}
