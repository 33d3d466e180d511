//! Amendments end to end: the real server in secure mode and members with
//! their own `konsens` stores.
//!
//! - A participant proposes a local draft as an amendment; the coauthor she
//!   invites edits the branch; another participant's edit to the branch is
//!   refused (`amendment`); an observer cannot open one and a participant
//!   cannot accept one (the CLI's role errors).
//! - While the recommendation is edited concurrently, the facilitator
//!   accepts two of the three hunks: the recommendation holds the concurrent
//!   edit and the two accepted hunks, not the third, and the server's
//!   provenance names the amendment's authors, merged by the facilitator.
//! - Another amendment is rejected with an official answer; the list (read
//!   by an observer, and from the JSON API) shows states and answers.


use anyhow::{Context, Result};
use konsens_tests::ServerProcess;
use konsens_tests::cli::{exits, invite, join_member, json, ok};
use serde_json::Value;

const TEXT: &str = "Arbeitgeber tragen die Kosten. Die Frist beträgt drei Monate. Kontrollen finden jährlich statt.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amendment_is_proposed_co_edited_and_accepted_in_part() -> Result<()> {
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start_secure(data.path(), "127.0.0.1:0", &[])?;
    let [admin, fac, anna, bert, carl, olga] = [(); 6].map(|_| tempfile::tempdir());
    let (admin, fac, anna, bert, carl, olga) = (admin?, fac?, anna?, bert?, carl?, olga?);

    let token = server.admin_token.clone().context("admin link")?;
    ok(admin.path(), &["join", &server.http_url(&format!("/join/{token}"))])?;
    let process = ok(admin.path(), &["process", "create", "--title", "Faire Fachkräftepartnerschaften"])?;
    let workshop = ok(admin.path(), &["workshop", "add", &process, "--title", "Faire Anwerbung"])?;
    let rec = ok(admin.path(), &["rec", "new", &process, "--workshop", &workshop, "--title", "Keine Vermittlungsgebühren"])?;
    ok(admin.path(), &["rec", "set", &rec, "--field", "recommendation", "--value", TEXT])?;
    ok(admin.path(), &["rec", "status", &rec, "discussion"])?;
    ok(admin.path(), &["sync"])?;

    let (link, _) = invite(admin.path(), &process, "facilitator", "Fatima Okafor", "Moderation")?;
    join_member(fac.path(), &link, &process)?;
    let (link, anna_id) = invite(admin.path(), &process, "participant", "Anna Schmidt", "Caritas")?;
    join_member(anna.path(), &link, &process)?;
    let (link, bert_id) = invite(admin.path(), &process, "participant", "Bert Lange", "Diakonie")?;
    join_member(bert.path(), &link, &process)?;
    let (link, _) = invite(admin.path(), &process, "participant", "Carl Weber", "Arbeitgeberverband")?;
    join_member(carl.path(), &link, &process)?;
    let (olga_link, _) = invite(admin.path(), &process, "observer", "Olga Brandt", "Ministerium")?;
    join_member(olga.path(), &olga_link, &process)?;

    // Anna drafts offline and proposes the draft as an amendment.
    ok(anna.path(), &["draft", "fork", &rec, "--name", "klarer"])?;
    let drafted = TEXT.replace("die Kosten", "alle Kosten").replace("drei Monate", "sechs Monate");
    ok(anna.path(), &["rec", "set", "draft:klarer", "--field", "recommendation", "--value", &drafted])?;
    let proposed = json(anna.path(), &["draft", "propose", "klarer", "--title", "Klarere Pflichten"])?;
    assert_eq!(proposed["synced"], true, "{proposed}");
    let branch = proposed["amendment"].as_str().context("amendment url")?.to_owned();
    ok(anna.path(), &["amendment", "coauthors", &rec, &branch, &bert_id])?;
    ok(anna.path(), &["sync"])?;

    // Her coauthor edits the branch like any recommendation.
    ok(bert.path(), &["sync"])?;
    let coedited = drafted.replace("jährlich", "halbjährlich");
    ok(bert.path(), &["rec", "set", &branch, "--field", "recommendation", "--value", &coedited])?;
    ok(bert.path(), &["sync"])?;

    // Someone she did not invite cannot.
    ok(carl.path(), &["sync"])?;
    ok(carl.path(), &["rec", "set", &branch, "--field", "recommendation", "--value", "Alles anders."])?;
    exits(carl.path(), &["sync"], 4)?;
    let refused = json(carl.path(), &["refused"])?;
    assert_eq!(refused[0]["code"], "amendment", "{refused}");

    // An observer cannot open one, a participant cannot decide one.
    ok(olga.path(), &["draft", "fork", &rec, "--name", "meins"])?;
    let (_, stderr) = exits(olga.path(), &["draft", "propose", "meins", "--title", "Nein"], 1)?;
    assert!(stderr.contains("as observer you cannot"), "{stderr}");
    let (_, stderr) = exits(anna.path(), &["amendment", "accept", &rec, &branch], 1)?;
    assert!(stderr.contains("as participant you cannot"), "{stderr}");

    // Meanwhile the recommendation itself is edited.
    ok(carl.path(), &["rec", "set", &rec, "--field", "recommendation", "--value", &format!("{TEXT} Verstöße werden veröffentlicht.")])?;
    ok(carl.path(), &["sync"])?;

    // The facilitator sees three hunks, the concurrent edit in none of them.
    ok(fac.path(), &["sync"])?;
    let shown = json(fac.path(), &["amendment", "show", &rec, &branch])?;
    let hunks: Vec<(String, String, String)> = shown["hunks"]
        .as_array()
        .context("hunks")?
        .iter()
        .map(|h| (h["id"].as_str().unwrap_or("").to_owned(), h["before"].as_str().unwrap_or("").to_owned(), h["after"].as_str().unwrap_or("").to_owned()))
        .collect();
    let expected = [("recommendation:0", "die", "alle"), ("recommendation:1", "drei", "sechs"), ("recommendation:2", "jährlich", "halbjährlich")];
    assert_eq!(hunks, expected.map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned())).to_vec(), "{shown}");
    assert_eq!(shown["author"]["name"], "Anna Schmidt", "{shown}");
    assert_eq!(shown["state"], "open");

    let decided = json(fac.path(), &["amendment", "accept", &rec, &branch, "--hunks", "recommendation:0,recommendation:2", "--answer", "Übernommen bis auf die Frist."])?;
    assert_eq!(decided["rejected"], serde_json::json!(["recommendation:1"]), "{decided}");
    ok(fac.path(), &["sync"])?;

    ok(admin.path(), &["sync"])?;
    let now = json(admin.path(), &["rec", "show", &rec])?;
    let text = now["recommendation"].as_str().context("recommendation text")?;
    assert_eq!(text.trim(), "Arbeitgeber tragen alle Kosten. Die Frist beträgt drei Monate. Kontrollen finden halbjährlich statt. Verstöße werden veröffentlicht.", "{now}");

    // The accepted words are the authors', relayed by the facilitator.
    let history = json(admin.path(), &["history", &rec, "--all"])?;
    let changes = history.as_array().context("history")?;
    let by = |who: &str| changes.iter().filter(|c| c["author"]["participant"] == who).collect::<Vec<_>>();
    assert!(!by(&anna_id).is_empty() && !by(&bert_id).is_empty(), "{history}");
    let merged = |changes: Vec<&Value>| changes.iter().any(|c| c["merged_by"]["name"] == "Fatima Okafor" && c["verified"] == true);
    assert!(merged(by(&anna_id)) && merged(by(&bert_id)), "the authors' changes, relayed by the facilitator: {history}");

    // A second amendment, rejected with an official answer.
    ok(carl.path(), &["draft", "fork", &rec, "--name", "weniger"])?;
    ok(carl.path(), &["rec", "set", "draft:weniger", "--field", "recommendation", "--value", "Arbeitgeber tragen einen Teil der Kosten."])?;
    let second = json(carl.path(), &["draft", "propose", "weniger", "--title", "Kosten teilen"])?;
    let second = second["amendment"].as_str().context("second amendment")?.to_owned();
    ok(fac.path(), &["sync"])?;
    ok(fac.path(), &["amendment", "reject", &rec, &second, "--answer", "Nicht im Sinne des Workshops."])?;
    ok(fac.path(), &["sync"])?;

    ok(olga.path(), &["sync"])?;
    let listed = json(olga.path(), &["amendment", "list", &rec])?;
    let state = |url: &str| listed.as_array().and_then(|l| l.iter().find(|a| a["url"] == url)).cloned().unwrap_or(Value::Null);
    assert_eq!(state(&branch)["state"], "accepted", "{listed}");
    assert_eq!(state(&branch)["decision"]["answer"], "Übernommen bis auf die Frist.", "{listed}");
    assert_eq!(state(&second)["state"], "rejected", "{listed}");
    assert_eq!(state(&second)["decision"]["answer"], "Nicht im Sinne des Workshops.", "{listed}");
    assert_eq!(state(&second)["decision"]["by"]["name"], "Fatima Okafor", "{listed}");

    // The JSON API lists the same, with verified names; and the branch is
    // refused now that it is decided.
    let olga_token = link_token(&olga_link);
    let path = format!("/api/docs/{}/amendments", rec.trim_start_matches("automerge:"));
    let (status, body) = konsens_tests::http_request(&server.addr, "GET", &path, Some(&olga_token), None).await?;
    assert_eq!(status, 200, "{body}");
    let api: Value = serde_json::from_str(&body)?;
    let rejected = api.as_array().and_then(|l| l.iter().find(|a| a["url"] == second.as_str())).context("second in the API")?;
    assert_eq!((rejected["state"].as_str(), rejected["author"]["organisation"].as_str()), (Some("rejected"), Some("Arbeitgeberverband")), "{api}");
    let (status, _) = konsens_tests::http_request(&server.addr, "GET", &path, Some("not-a-token"), None).await?;
    assert!(status == 401 || status == 404, "{status}");
    Ok(())
}

/// The token of an invitation link (its last part).
fn link_token(link: &str) -> String {
    link.rsplit('/').next().unwrap_or_default().to_owned()
}
