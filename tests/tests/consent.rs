//! Consent rounds end to end: the real server in secure mode, members of
//! three organisations with their own `konsens` stores, and a hostile client.
//!
//! - A facilitator opens a round; three organisations answer through the CLI,
//!   one changes its answer; `round show` tallies them and lists nobody as
//!   pending.
//! - The process requires consent: with a block in the closed round, the
//!   server refuses the adoption (`consent-required`), and an answer that
//!   arrives after the close is refused (`round-closed`).
//! - A forged answer for another organisation is refused (`identity`).
//! - A new round without a block, closed with an outcome: the adoption passes.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use automerge::Automerge;
use konsens_client::{Repo, RepoConfig};
use konsens_model::consent;
use konsens_model::schema::Answer;
use konsens_sync::DocumentId;
use konsens_tests::ServerProcess;
use konsens_tests::cli::{exits, invite, join_member, json, ok};
use serde_json::Value;

const PATIENCE: Duration = Duration::from_secs(30);

fn tally(shown: &Value, round: usize) -> Vec<u64> {
    ["agree", "abstain", "disagree", "block"].iter().map(|a| shown["rounds"][round]["tally"][a].as_u64().unwrap_or(u64::MAX)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organisations_answer_a_block_stops_adoption_and_a_new_round_lifts_it() -> Result<()> {
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start_secure(data.path(), "127.0.0.1:0", &[])?;
    let [admin, fac, union, employers, care] = [(); 5].map(|_| tempfile::tempdir());
    let (admin, fac, union, employers, care) = (admin?, fac?, union?, employers?, care?);

    // The administrator sets up a process that requires consent before adoption.
    let token = server.admin_token.clone().context("admin link")?;
    ok(admin.path(), &["join", &server.http_url(&format!("/join/{token}"))])?;
    let process = ok(admin.path(), &["process", "create", "--title", "Faire Fachkräftepartnerschaften"])?;
    let workshop = ok(admin.path(), &["workshop", "add", &process, "--title", "Faire Anwerbung"])?;
    let rec = ok(admin.path(), &["rec", "new", &process, "--workshop", &workshop, "--title", "Keine Vermittlungsgebühren"])?;
    ok(admin.path(), &["rec", "set", &rec, "--field", "recommendation", "--value", "Arbeitgeber tragen alle Kosten der Anwerbung."])?;
    ok(admin.path(), &["rec", "status", &rec, "discussion"])?;
    ok(admin.path(), &["rec", "status", &rec, "consensus"])?;
    ok(admin.path(), &["round", "require", &process, "on"])?;
    ok(admin.path(), &["sync"])?;

    let (link, _) = invite(admin.path(), &process, "facilitator", "Fatima Okafor", "Moderation")?;
    join_member(fac.path(), &link, &process)?;
    let (union_link, union_id) = invite(admin.path(), &process, "participant", "Uta Berg", "Gewerkschaft")?;
    join_member(union.path(), &union_link, &process)?;
    let (link, _) = invite(admin.path(), &process, "participant", "Emil Kraus", "Arbeitgeberverband")?;
    join_member(employers.path(), &link, &process)?;
    let (link, _) = invite(admin.path(), &process, "participant", "Clara Wendt", "Pflegeverband")?;
    join_member(care.path(), &link, &process)?;

    // Participants cannot open rounds (the CLI says so before changing anything).
    let (_, stderr) = exits(union.path(), &["round", "open", &rec, "--deadline", "2027-01-20"], 1)?;
    assert!(stderr.contains("as participant you cannot"), "{stderr}");

    // Round 1: three organisations answer; the care association changes its answer.
    ok(fac.path(), &["round", "open", &rec, "--deadline", "2027-01-20T17:00", "--question", "Können Sie dem Wortlaut zustimmen?"])?;
    ok(fac.path(), &["sync"])?;
    for (store, answer, reason) in [
        (union.path(), "agree", ""),
        (employers.path(), "block", "Die Kosten tragen kleine Betriebe nicht."),
        (care.path(), "disagree", "Zu eng gefasst."),
    ] {
        ok(store, &["sync"])?;
        ok(store, &["round", "answer", &rec, answer, "--reason", reason])?;
        ok(store, &["sync"])?;
    }
    ok(care.path(), &["round", "answer", &rec, "agree", "--reason", "Nach der Klarstellung einverstanden."])?;
    ok(care.path(), &["sync"])?;

    ok(fac.path(), &["sync"])?;
    let shown = json(fac.path(), &["round", "show", &rec])?;
    assert_eq!(tally(&shown, 0), [2, 0, 0, 1], "{shown}");
    assert_eq!(shown["rounds"][0]["not_answered"], serde_json::json!([]), "every participating organisation answered: {shown}");
    assert_eq!(shown["rounds"][0]["question"], "Können Sie dem Wortlaut zustimmen?");
    let answers = shown["rounds"][0]["answers"].as_array().context("answers")?;
    let care_answer = answers.iter().find(|a| a["organisation"] == "Pflegeverband").context("care answered")?;
    assert_eq!((care_answer["answer"].as_str(), care_answer["reason"].as_str()), (Some("agree"), Some("Nach der Klarstellung einverstanden.")));
    assert_eq!(shown["adoption_requires_consent"], true);

    // The facilitator closes with the block standing; the union, not yet
    // synced, answers into the closed round.
    ok(fac.path(), &["round", "close", &rec, "--outcome", "Veto des Arbeitgeberverbands; der Wortlaut wird überarbeitet."])?;
    ok(fac.path(), &["sync"])?;
    ok(union.path(), &["round", "answer", &rec, "block"])?;
    exits(union.path(), &["sync"], 4)?;
    assert_eq!(json(union.path(), &["refused"])?[0]["code"], "round-closed");

    // The block prevents adoption: the server refuses it, typed.
    ok(fac.path(), &["rec", "status", &rec, "adopted"])?;
    let (stdout, _) = exits(fac.path(), &["sync"], 4)?;
    assert!(stdout.contains("consent-required"), "{stdout}");
    let refused = json(fac.path(), &["refused"])?;
    assert_eq!(refused[0]["code"], "consent-required", "{refused}");
    assert!(refused[0]["message"].as_str().unwrap_or("").contains("Arbeitgeberverband"), "{refused}");
    ok(admin.path(), &["sync"])?;
    assert_eq!(json(admin.path(), &["rec", "show", &rec])?["status"], "consensus");

    // Round 2, on a revised wording.
    ok(fac.path(), &["rec", "set", &rec, "--field", "recommendation", "--value", "Arbeitgeber tragen die Kosten der Anwerbung; kleine Betriebe erhalten Zuschüsse."])?;
    ok(fac.path(), &["round", "open", &rec, "--deadline", "2027-02-03"])?;
    ok(fac.path(), &["sync"])?;
    for store in [union.path(), employers.path(), care.path()] {
        ok(store, &["sync"])?;
    }

    // A forged answer for another organisation, written as the union's
    // member through the client library, is refused.
    let rec_id: DocumentId = rec.trim_start_matches("automerge:").parse()?;
    let forged = forged_answer(&server, &union_link, rec_id, &union_id).await?;
    assert_eq!(forged, ["identity"], "an answer for the employers by the union's member");

    ok(employers.path(), &["round", "answer", &rec, "agree", "--reason", "Mit Zuschüssen tragbar."])?;
    ok(employers.path(), &["sync"])?;
    ok(union.path(), &["round", "answer", &rec, "agree"])?;
    ok(union.path(), &["sync"])?;
    ok(fac.path(), &["sync"])?;
    let shown = json(fac.path(), &["round", "show", &rec])?;
    assert_eq!(tally(&shown, 1), [2, 0, 0, 0], "{shown}");
    assert_eq!(shown["rounds"][1]["not_answered"], serde_json::json!(["Pflegeverband"]), "{shown}");
    ok(fac.path(), &["round", "close", &rec, "--outcome", "Konsens ohne Veto."])?;
    ok(fac.path(), &["rec", "status", &rec, "adopted"])?;
    ok(fac.path(), &["sync"])?;
    ok(admin.path(), &["sync"])?;
    assert_eq!(json(admin.path(), &["rec", "show", &rec])?["status"], "adopted");
    let shown = json(admin.path(), &["round", "show", &rec])?;
    assert_eq!(shown["rounds"][1]["closed"]["outcome"], "Konsens ohne Veto.");
    assert_eq!(shown["rounds"][0]["closed"]["outcome"], "Veto des Arbeitgeberverbands; der Wortlaut wird überarbeitet.");
    assert_eq!(shown["adoption_blocked"], Value::Null, "{shown}");
    // The final report shows the round that decided, with its outcome.
    let report = ok(fac.path(), &["export", &process, "--format", "markdown", "--kind", "final", "--lang", "de"])?;
    assert!(report.contains("#### Konsensrunde"), "{report}");
    assert!(report.contains("2 Zustimmungen."), "{report}");
    assert!(report.contains("**Ergebnis:** Konsens ohne Veto."), "{report}");
    assert!(!report.contains("Veto des Arbeitgeberverbands"), "the earlier round did not decide:\n{report}");
    Ok(())
}

/// The union member's token (the last part of the invitation link) driving
/// a client repo that writes the employers' answer; returns the refusal codes.
async fn forged_answer(server: &ServerProcess, link: &str, rec: DocumentId, union_member: &str) -> Result<Vec<String>> {
    let token = link.rsplit('/').next().context("token in the link")?.to_owned();
    let dir = tempfile::tempdir()?;
    let mut config = RepoConfig::new(dir.path()).server(server.ws_url());
    config.token = Some(token);
    let repo = Repo::open(config)?;
    tokio::time::timeout(PATIENCE, repo.find(rec)).await??;
    let by = union_member.to_owned();
    repo.change(rec, move |doc: &mut Automerge| {
        doc.transact(|tx| consent::answer(tx, "Arbeitgeberverband", Answer::Block, "gefälscht", &by, 1)).map(|_| ()).map_err(|f| f.error)
    })
    .await??;
    match tokio::time::timeout(PATIENCE, repo.wait_synced(rec)).await {
        Ok(result) => result?,
        Err(_) => bail!("no answer from the server; log:\n{}", server.log()),
    }
    Ok(repo.take_refusals().await?.into_iter().map(|r| r.code).collect())
}
