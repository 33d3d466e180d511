//! Who wrote what, end to end: the real server in secure mode, two
//! participants of different organisations typing into one field through
//! the CLI, and one of them writing an `authors` entry into the document
//! that claims the other's actor is theirs, in his own verified name: the
//! server refuses it (`identity`: an entry only for one's own actors). The
//! authorship API and `konsens authorship` name the member the server bound
//! each actor to.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use automerge::transaction::Transactable;
use automerge::{Automerge, ObjType, ROOT, ReadDoc};
use konsens_client::{Repo, RepoConfig};
use konsens_sync::DocumentId;
use konsens_tests::ServerProcess;
use konsens_tests::cli::{invite, json, ok};
use serde_json::Value;

const PATIENCE: Duration = Duration::from_secs(30);

/// (text, participant or "", name) of each run of `field` in a
/// `konsens authorship --json` answer.
fn runs(answer: &Value, field: &str) -> Vec<(String, String, String)> {
    let Some(fields) = answer.as_array() else { return Vec::new() };
    fields
        .iter()
        .filter(|f| f["field"] == field)
        .flat_map(|f| f["runs"].as_array().cloned().unwrap_or_default())
        .map(|r| {
            let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
            (s(&r["text"]), s(&r["author"]["participant"]), s(&r["author"]["name"]))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_name_the_verified_members_whatever_the_document_claims() -> Result<()> {
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start_secure(data.path(), "127.0.0.1:0", &[])?;
    let [admin, union, employers] = [(); 3].map(|_| tempfile::tempdir());
    let (admin, union, employers) = (admin?, union?, employers?);

    let token = server.admin_token.clone().context("admin link")?;
    ok(admin.path(), &["join", &server.http_url(&format!("/join/{token}"))])?;
    let process = ok(admin.path(), &["process", "create", "--title", "Faire Anwerbung"])?;
    let workshop = ok(admin.path(), &["workshop", "add", &process, "--title", "Gebühren"])?;
    let rec = ok(admin.path(), &["rec", "new", &process, "--workshop", &workshop, "--title", "Keine Vermittlungsgebühren"])?;
    ok(admin.path(), &["sync"])?;
    let (union_link, union_id) = invite(admin.path(), &process, "participant", "Uta Berg", "Gewerkschaft")?;
    let (employers_link, employers_id) = invite(admin.path(), &process, "participant", "Emil Kraus", "Arbeitgeberverband")?;
    for (store, link) in [(union.path(), &union_link), (employers.path(), &employers_link)] {
        ok(store, &["join", link])?;
        ok(store, &["sync", "--doc", &process])?;
        ok(store, &["sync"])?;
    }

    // Uta writes the sentence, Emil adds a clause in the middle (`rec set`
    // writes a minimal diff, so Uta's characters stay hers).
    ok(union.path(), &["rec", "set", &rec, "--field", "recommendation", "--value", "Arbeitgeber tragen alle Kosten."])?;
    ok(union.path(), &["sync"])?;
    ok(employers.path(), &["sync"])?;
    ok(
        employers.path(),
        &["rec", "set", &rec, "--field", "recommendation", "--value", "Arbeitgeber tragen alle Kosten der Anwerbung selbst."],
    )?;
    ok(employers.path(), &["sync"])?;

    // Emil, through the client library, declares in the document that Uta's
    // actor is his, in his own verified name: refused, and the authorship
    // names Uta whatever any document says.
    let rec_id: DocumentId = rec.trim_start_matches("automerge:").parse()?;
    let union_actor = actor_of_field(&server, &union_link, rec_id).await?;
    claim_actor(&server, &employers_link, rec_id, &union_actor, &employers_id).await?;

    ok(admin.path(), &["sync"])?;
    let shown = json(admin.path(), &["authorship", &rec, "--field", "recommendation"])?;
    assert_eq!(shown.as_array().map(Vec::len), Some(1), "one field asked for: {shown}");
    assert_eq!(
        runs(&shown, "recommendation"),
        vec![
            ("Arbeitgeber tragen alle Kosten".to_owned(), union_id.clone(), "Uta Berg".to_owned()),
            (" der Anwerbung selbst".to_owned(), employers_id.clone(), "Emil Kraus".to_owned()),
            (".".to_owned(), union_id.clone(), "Uta Berg".to_owned()),
        ],
        "{shown}"
    );
    let all = json(employers.path(), &["authorship", &rec])?;
    let title = runs(&all, "title");
    assert_eq!(title.len(), 1, "{all}");
    assert_eq!(title[0].0, "Keine Vermittlungsgebühren");
    assert_eq!(title[0].2, "administrator", "the admin created it: {all}");
    assert!(all.as_array().is_some_and(|f| f.iter().all(|f| f["runs"].as_array().is_some_and(|r| r.iter().all(|r| r["verified"] == true)))), "{all}");
    // The text form names them too.
    let text = ok(union.path(), &["authorship", &rec, "--field", "recommendation"])?;
    assert!(text.contains("Uta Berg (Gewerkschaft)") && text.contains("Emil Kraus (Arbeitgeberverband)"), "{text}");

    // Somebody outside the process gets a 404, as for sessions.
    let outsider = tempfile::tempdir()?;
    let other = ok(admin.path(), &["process", "create", "--title", "Anderer Prozess"])?;
    ok(admin.path(), &["sync"])?;
    let (link, _) = invite(admin.path(), &other, "participant", "Olga Fremd", "Anderswo")?;
    ok(outsider.path(), &["join", &link])?;
    let refused = konsens_tests::cli::run(outsider.path(), &["authorship", &rec])?;
    assert!(!refused.status.success(), "an outsider reads nothing");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("404") || String::from_utf8_lossy(&refused.stderr).contains("no such document"), "{}", String::from_utf8_lossy(&refused.stderr));
    Ok(())
}

fn repo(server: &ServerProcess, link: &str, dir: &Path) -> Result<Repo> {
    let token = link.rsplit('/').next().context("token in the link")?.to_owned();
    let mut config = RepoConfig::new(dir).server(server.ws_url());
    config.token = Some(token);
    Ok(Repo::open(config)?)
}

/// The hex actor that inserted the first character of the recommendation text.
async fn actor_of_field(server: &ServerProcess, link: &str, rec: DocumentId) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let repo = repo(server, link, dir.path())?;
    let doc = tokio::time::timeout(PATIENCE, repo.find(rec)).await??;
    let runs = konsens_model::authorship::field_runs(&doc, "recommendation", &|_| None)?;
    match runs.first().map(|r| &r.author) {
        Some(konsens_model::authorship::Author::Unbound { actor }) => Ok(actor.clone()),
        other => bail!("no first run: {other:?}"),
    }
}

/// Write `authors[actor] = <the sender's verified identity>`; the server must refuse it.
async fn claim_actor(server: &ServerProcess, link: &str, rec: DocumentId, actor: &str, participant: &str) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let repo = repo(server, link, dir.path())?;
    tokio::time::timeout(PATIENCE, repo.find(rec)).await??;
    let (actor, participant) = (actor.to_owned(), participant.to_owned());
    repo.change(rec, move |doc: &mut Automerge| {
        doc.transact::<_, _, automerge::AutomergeError>(|tx| {
            let authors = match tx.get(ROOT, "authors")? {
                Some((automerge::Value::Object(ObjType::Map), id)) => id,
                _ => tx.put_object(ROOT, "authors", ObjType::Map)?,
            };
            let entry = tx.put_object(&authors, actor.as_str(), ObjType::Map)?;
            tx.put(&entry, "participant", participant.as_str())?;
            tx.put(&entry, "name", "Emil Kraus")?;
            tx.put(&entry, "organisation", "Arbeitgeberverband")?;
            Ok(())
        })
        .map(|_| ())
        .map_err(|f| f.error)
    })
    .await??;
    match tokio::time::timeout(PATIENCE, repo.wait_synced(rec)).await {
        Ok(result) => result?,
        Err(_) => bail!("no answer from the server; log:\n{}", server.log()),
    }
    let refused: Vec<String> = repo.take_refusals().await?.into_iter().map(|r| r.code).collect();
    assert_eq!(refused, vec!["identity".to_owned()], "an authors entry only for one's own actors");
    Ok(())
}
