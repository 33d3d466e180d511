//! A refused change is never a trap, from the `konsens` CLI: real stores on
//! disk, the real server binary in secure mode, members whose role changes
//! while they work offline.
//!
//! - The CLI refuses up front what the member's role does not allow.
//! - A facilitator adopts offline and keeps writing; she is re-invited as a
//!   participant before she syncs. The server refuses the adoption; `sync`
//!   sets it aside, makes her later text again as new changes, sends it,
//!   says so, and exits 4; the next `sync` exits 0.
//! - A participant is re-invited as an observer while offline: nothing is
//!   sent again, her wording is kept for `konsens refused`.

use std::path::Path;

use anyhow::{Context, Result};
use konsens_tests::ServerProcess;
use konsens_tests::cli::{exits, json, ok};






/// An administrator's store with a process, a workshop and a recommendation
/// at consensus; returns (process, recommendation).
fn setup(server: &ServerProcess, admin: &Path) -> Result<(String, String)> {
    let token = server.admin_token.clone().context("admin link")?;
    ok(admin, &["join", &server.http_url(&format!("/join/{token}"))])?;
    let process = ok(admin, &["process", "create", "--title", "Fair skills partnerships"])?;
    let workshop = ok(admin, &["workshop", "add", &process, "--title", "Fair recruitment", "--sector", "care"])?;
    let rec = ok(admin, &["rec", "new", &process, "--workshop", &workshop, "--title", "No fees for workers"])?;
    ok(admin, &["rec", "set", &rec, "--field", "recommendation", "--value", "Employers pay all recruitment costs."])?;
    ok(admin, &["rec", "status", &rec, "discussion"])?;
    ok(admin, &["rec", "status", &rec, "consensus"])?;
    ok(admin, &["sync"])?;
    Ok((process, rec))
}

fn invite(admin: &Path, process: &str, role: &str, name: &str) -> Result<(String, String)> {
    let answer = json(admin, &["invite", process, "--role", role, "--name", name, "--org", "Construction Union"])?;
    let link = answer["link"].as_str().context("link")?.to_owned();
    let token_id = answer["token_id"].as_str().context("token id")?.to_owned();
    Ok((link, token_id))
}

fn text_of(store: &Path, rec: &str) -> Result<(String, String)> {
    let shown = json(store, &["rec", "show", rec])?;
    let status = shown["status"].as_str().context("status")?.to_owned();
    let text = shown["recommendation"].as_str().context("recommendation text")?.to_owned();
    Ok((status, text))
}

#[test]
fn roles_are_respected_before_any_change_is_made() -> Result<()> {
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start_secure(data.path(), "127.0.0.1:0", &[])?;
    let (admin, member) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (process, rec) = setup(&server, admin.path())?;
    let (link, _) = invite(admin.path(), &process, "participant", "Bora Yilmaz")?;
    ok(member.path(), &["join", &link])?;
    ok(member.path(), &["sync", "--doc", &process])?;
    let (_, stderr) = exits(member.path(), &["rec", "status", &rec, "adopted"], 1)?;
    assert!(stderr.contains("as participant you cannot adopt"), "{stderr}");
    exits(member.path(), &["workshop", "add", &process, "--title", "Another"], 1)?;
    exits(member.path(), &["invite", &process, "--role", "observer", "--name", "X", "--org", "Y"], 1)?;
    // What participants do is allowed: a recommendation of their own reaches the server.
    let workshop = json(member.path(), &["process", "show", &process])?["workshops"][0]["id"].as_str().context("workshop")?.to_owned();
    let own = ok(member.path(), &["rec", "new", &process, "--workshop", &workshop, "--title", "Language courses paid by employers"])?;
    ok(member.path(), &["sync"])?;
    ok(admin.path(), &["sync"])?;
    let listed = json(admin.path(), &["rec", "list", &process])?;
    assert!(listed.to_string().contains(own.trim_start_matches("automerge:")), "{listed}");
    Ok(())
}

#[test]
fn a_refused_adoption_is_set_aside_and_later_text_still_arrives() -> Result<()> {
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start_secure(data.path(), "127.0.0.1:0", &[])?;
    let (admin, member) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (process, rec) = setup(&server, admin.path())?;
    let (link, token_id) = invite(admin.path(), &process, "facilitator", "Fatima Facilitator")?;
    ok(member.path(), &["join", &link])?;
    ok(member.path(), &["sync", "--doc", &process])?;

    // Offline, as facilitator: adopt, then keep writing on top of it.
    ok(member.path(), &["rec", "status", &rec, "adopted"])?;
    ok(member.path(), &["rec", "set", &rec, "--field", "recommendation", "--value", "Employers pay all recruitment costs. Agencies publish their fees."])?;
    // Meanwhile she is made a participant (a process keeps a facilitator:
    // another one is invited first).
    invite(admin.path(), &process, "facilitator", "Frank Facilitator")?;
    ok(admin.path(), &["revoke", &token_id])?;
    let (link, _) = invite(admin.path(), &process, "participant", "Fatima Facilitator")?;
    ok(member.path(), &["join", &link])?;

    let (stdout, stderr) = exits(member.path(), &["sync"], 4)?;
    assert!(stdout.contains("refused by the server (decision)"), "{stdout}");
    assert!(stdout.contains("made your later edits again and sent them: recommendation"), "{stdout}");
    assert!(stderr.contains("set aside"), "{stderr}");
    // Nothing is stuck: the next sync is clean, and the server has her text
    // but not the adoption.
    ok(member.path(), &["sync"])?;
    ok(admin.path(), &["sync"])?;
    let (status, text) = text_of(admin.path(), &rec)?;
    assert_eq!(status, "consensus");
    assert_eq!(text, "Employers pay all recruitment costs. Agencies publish their fees.");
    assert_eq!(text_of(member.path(), &rec)?, (status, text));
    let kept = json(member.path(), &["refused"])?;
    assert_eq!(kept[0]["code"], "decision", "{kept}");
    Ok(())
}

#[test]
fn an_observers_offline_text_is_kept_for_her_and_nothing_is_sent() -> Result<()> {
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start_secure(data.path(), "127.0.0.1:0", &[])?;
    let (admin, member) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (process, rec) = setup(&server, admin.path())?;
    let (link, token_id) = invite(admin.path(), &process, "participant", "Bora Yilmaz")?;
    ok(member.path(), &["join", &link])?;
    ok(member.path(), &["sync", "--doc", &process])?;
    ok(member.path(), &["rec", "set", &rec, "--field", "rationale", "--value", "Fees push workers into debt."])?;
    ok(admin.path(), &["revoke", &token_id])?;
    let (link, _) = invite(admin.path(), &process, "observer", "Bora Yilmaz")?;
    ok(member.path(), &["join", &link])?;

    let (stdout, _) = exits(member.path(), &["sync"], 4)?;
    assert!(stdout.contains("refused by the server (read-only)"), "{stdout}");
    assert!(stdout.contains("set aside 1 change(s) of yours"), "{stdout}");
    assert!(!stdout.contains("made your later edits again"), "an observer's edits are not sent again: {stdout}");
    ok(member.path(), &["sync"])?;
    let kept = ok(member.path(), &["refused"])?;
    assert!(kept.contains("Fees push workers into debt."), "{kept}");
    // An observer's CLI makes no change at all.
    exits(member.path(), &["rec", "set", &rec, "--field", "rationale", "--value", "again"], 1)?;
    ok(admin.path(), &["sync"])?;
    let shown = json(admin.path(), &["rec", "show", &rec])?;
    assert_eq!(shown["rationale"], "", "{shown}");
    Ok(())
}
