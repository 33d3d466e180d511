//! Members for a process of forty organisations, and history people can
//! read, end to end: the real server in secure mode and the `konsens` CLI
//! with stores on disk.
//!
//! - A facilitator invites a list from a CSV file as Excel writes it in
//!   Germany (byte-order mark, semicolons, German role names): everyone gets
//!   a link; the list shows them as invited, then as joined once they use it.
//! - A list with mistakes (saved as Windows-1252) invites nobody and names
//!   every mistake by line.
//! - Nobody revokes the last facilitator of a process, nor their own access;
//!   a revoked member stays listed, as revoked.
//! - `konsens history` shows sessions, not one entry per change.

use std::path::Path;

use anyhow::{Context, Result};
use konsens_tests::ServerProcess;
use konsens_tests::cli::{exits, json, ok};
use serde_json::Value;

/// An administrator's store with a process; returns the process.
fn setup(server: &ServerProcess, admin: &Path) -> Result<String> {
    let token = server.admin_token.clone().context("admin link")?;
    ok(admin, &["join", &server.http_url(&format!("/join/{token}"))])?;
    let process = ok(admin, &["process", "create", "--title", "Faire Fachkräfteeinwanderung"])?;
    ok(admin, &["sync"])?;
    Ok(process)
}

fn member<'a>(members: &'a Value, name: &str) -> Option<&'a Value> {
    members.as_array()?.iter().find(|m| m["name"] == name)
}

#[test]
fn a_csv_list_is_invited_in_one_go_and_joining_shows() -> Result<()> {
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start_secure(data.path(), "127.0.0.1:0", &[])?;
    let (admin, anna) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let process = setup(&server, admin.path())?;

    let csv = admin.path().join("teilnehmende.csv");
    std::fs::write(
        &csv,
        "\u{feff}Name;Organisation;Rolle;E-Mail\r\nAnna Schmidt;Caritas;Teilnehmende;anna@caritas.example\r\nJörg Müller;\"Verband; Pflege\";Beobachtende;\r\nFatma Yılmaz;BMAS;Moderation;\r\n",
    )?;
    let invited = json(admin.path(), &["invite", &process, "--csv", csv.to_str().context("path")?])?;
    let invited = invited["invited"].as_array().context("invited")?;
    assert_eq!(invited.len(), 3);
    assert_eq!(invited[1]["organisation"], "Verband; Pflege");
    assert_eq!(invited[2]["role"], "facilitator");
    assert!(invited.iter().all(|i| i["link"].as_str().is_some_and(|l| l.contains("/join/"))));

    let members = json(admin.path(), &["members", &process])?;
    let listed = member(&members, "Anna Schmidt").context("Anna listed")?;
    assert_eq!((listed["status"].as_str(), listed["email"].as_str()), (Some("invited"), Some("anna@caritas.example")));

    // Anna uses her link: from then on she is listed as joined.
    ok(anna.path(), &["join", invited[0]["link"].as_str().context("link")?])?;
    let joined = (0..50).any(|_| {
        let members = json(admin.path(), &["members", &process]).unwrap_or_default();
        let joined = member(&members, "Anna Schmidt").is_some_and(|m| m["status"] == "joined" && m["joined_at"].is_i64());
        if !joined {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        joined
    });
    assert!(joined, "Anna is shown as joined");
    // Members see each other, without the facilitators' details.
    let seen_by_anna = json(anna.path(), &["members", &process])?;
    let entry = member(&seen_by_anna, "Jörg Müller").context("Jörg listed")?;
    assert!(entry.get("status").is_none() && entry.get("token_id").is_none() && entry.get("email").is_none(), "{entry}");
    Ok(())
}

#[test]
fn a_list_with_mistakes_invites_nobody_and_names_every_line() -> Result<()> {
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start_secure(data.path(), "127.0.0.1:0", &[])?;
    let admin = tempfile::tempdir()?;
    let process = setup(&server, admin.path())?;
    let csv = admin.path().join("list.csv");
    // Saved by Excel on German Windows: Windows-1252, not UTF-8.
    std::fs::write(&csv, b"name,organisation,role\nAnna,Caritas,participant\nBora,,observer\nCem,Union,K\xf6nigin\n")?;
    let (_, stderr) = exits(admin.path(), &["invite", &process, "--csv", csv.to_str().context("path")?], 1)?;
    assert!(stderr.contains("line 3: the organisation is empty"), "{stderr}");
    assert!(stderr.contains("line 4: unknown role \"Königin\""), "{stderr}");
    let members = json(admin.path(), &["members", &process])?;
    assert_eq!(members.as_array().map(Vec::len), Some(0), "nobody was invited: {members}");
    Ok(())
}

#[test]
fn the_last_facilitator_stays_and_revoked_members_stay_listed() -> Result<()> {
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start_secure(data.path(), "127.0.0.1:0", &[])?;
    let (admin, fatima) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let process = setup(&server, admin.path())?;
    let invite = |role: &str, name: &str| -> Result<Value> {
        json(admin.path(), &["invite", &process, "--role", role, "--name", name, "--org", "Skills Think Tank"])
    };
    let fatima_invite = invite("facilitator", "Fatima Facilitator")?;
    let pia = invite("participant", "Pia Participant")?;
    ok(fatima.path(), &["join", fatima_invite["link"].as_str().context("link")?])?;
    let fatima_token = fatima_invite["token_id"].as_str().context("token id")?;

    // Fatima cannot lock herself out, and the administrator cannot remove
    // the process's only facilitator.
    let (_, stderr) = exits(fatima.path(), &["revoke", fatima_token], 1)?;
    assert!(stderr.contains("409") || stderr.contains("your own access"), "{stderr}");
    let (_, stderr) = exits(admin.path(), &["revoke", fatima_token], 1)?;
    assert!(stderr.contains("last facilitator"), "{stderr}");

    // She revokes a participant, who stays listed as revoked.
    ok(fatima.path(), &["revoke", pia["token_id"].as_str().context("token id")?])?;
    let members = json(fatima.path(), &["members", &process])?;
    assert_eq!(member(&members, "Pia Participant").context("Pia still listed")?["status"], "revoked");

    // With a second facilitator, Fatima's access can go.
    invite("facilitator", "Frank Facilitator")?;
    ok(admin.path(), &["revoke", fatima_token])?;
    let members = json(admin.path(), &["members", &process])?;
    assert_eq!(member(&members, "Fatima Facilitator").context("Fatima listed")?["status"], "revoked");

    // A lost link is replaced: the new one works, the old one no longer does.
    let omar = invite("observer", "Omar Observer")?;
    let fresh = json(admin.path(), &["reissue", omar["token_id"].as_str().context("token id")?])?;
    assert_ne!(fresh["link"], omar["link"]);
    let (old_store, new_store) = (tempfile::tempdir()?, tempfile::tempdir()?);
    exits(old_store.path(), &["join", omar["link"].as_str().context("link")?], 1)?;
    ok(new_store.path(), &["join", fresh["link"].as_str().context("link")?])?;
    Ok(())
}

#[test]
fn history_groups_a_sitting_into_one_session() -> Result<()> {
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start_secure(data.path(), "127.0.0.1:0", &[])?;
    let admin = tempfile::tempdir()?;
    let process = setup(&server, admin.path())?;
    let workshop = ok(admin.path(), &["workshop", "add", &process, "--title", "Anerkennung"])?;
    let rec = ok(admin.path(), &["rec", "new", &process, "--workshop", &workshop, "--title", "Schnellere Anerkennung"])?;
    for text in ["Die Bundesregierung", "Die Bundesregierung sorgt", "Die Bundesregierung sorgt für Tempo."] {
        ok(admin.path(), &["rec", "set", &rec, "--field", "recommendation", "--value", text])?;
    }
    ok(admin.path(), &["rec", "status", &rec, "discussion"])?;
    ok(admin.path(), &["sync"])?;

    let sessions = json(admin.path(), &["history", &rec])?;
    let sessions = sessions.as_array().context("sessions")?;
    let fields: Vec<&str> = sessions.iter().filter_map(|s| s["field"].as_str()).collect();
    assert_eq!(fields, ["created", "recommendation", "status"], "{sessions:?}");
    assert_eq!(sessions[1]["changes"], 3);
    assert_eq!(sessions[1]["inserted"], "Die Bundesregierung sorgt für Tempo.".chars().count());
    assert_eq!(sessions[2]["value"], "discussion");
    assert!(sessions.iter().all(|s| s["verified"] == true), "{sessions:?}");
    let text = ok(admin.path(), &["history", &rec])?;
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.contains("edited recommendation, +36 / -0 characters"), "{text}");
    let every = json(admin.path(), &["history", &rec, "--all"])?;
    assert!(every.as_array().map(Vec::len).unwrap_or(0) >= 5, "{every}");
    Ok(())
}
