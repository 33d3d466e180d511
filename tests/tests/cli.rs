//! The `konsens` CLI end to end: real stores on disk, the real server binary,
//! offline edits, drafts, Markdown editing, import and export, bad input.

use std::path::Path;

use anyhow::{Context, Result};
use konsens_tests::cli::{fails, json, ok, run as konsens};
use konsens_tests::{ServerProcess, binary, repo_root};
use std::process::Command;
use serde_json::Value;






struct Setup {
    process: String,
    workshop: String,
    rec: String,
}

/// A process with one workshop and one recommendation, made in `store`.
fn setup(store: &Path, name: &str, org: &str) -> Result<Setup> {
    ok(store, &["identity", "--name", name, "--org", org])?;
    let process = ok(store, &["process", "create", "--title", "Fair skills partnerships"])?;
    let workshop = ok(store, &["workshop", "add", &process, "--title", "Fair recruitment", "--sector", "care", "--sector", "construction"])?;
    let rec = ok(store, &["rec", "new", &process, "--workshop", &workshop, "--title", "Publish recruitment fees"])?;
    ok(store, &["rec", "set", &rec, "--field", "recommendation", "--value", "Agencies must publish all fees in advance.\n\nEmployers pay the *costs* of recruitment."])?;
    Ok(Setup { process, workshop, rec })
}

fn show(store: &Path, rec: &str) -> Result<Value> {
    json(store, &["rec", "show", rec])
}

#[test]
fn two_stores_edit_offline_and_converge() -> Result<()> {
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start(data.path(), &[])?;
    let (addr, url) = (server.addr.clone(), server.ws_url());
    let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let s = setup(a.path(), "Alice Martin", "Ministry of Labour")?;
    ok(a.path(), &["sync", &url])?;
    ok(b.path(), &["identity", "--name", "Bora Yilmaz", "--org", "Construction Union"])?;
    let pulled = json(b.path(), &["sync", &url, "--doc", &s.process])?;
    assert!(pulled["documents"].as_u64() >= Some(2), "process and recommendation pulled: {pulled}");

    // The server goes down; both keep working.
    drop(server);
    ok(a.path(), &["rec", "set", &s.rec, "--field", "title", "--value", "Publish all recruitment fees"])?;
    ok(a.path(), &["rec", "status", &s.rec, "discussion", "--note", "ready for the workshop"])?;
    ok(b.path(), &["rec", "set", &s.rec, "--field", "recommendation", "--value",
        "Agencies must publish all fees in advance, in the worker's language.\n\nEmployers pay the *costs* of recruitment."])?;
    ok(b.path(), &["comment", &s.rec, "--quote", "publish all fees", "--body", "Which fees exactly?"])?;

    let server = ServerProcess::start_on(data.path(), &addr, &[])?;
    let url = server.ws_url();
    ok(a.path(), &["sync", &url])?;
    ok(b.path(), &["sync", &url])?;
    ok(a.path(), &["sync", &url])?;
    let (ra, rb) = (show(a.path(), &s.rec)?, show(b.path(), &s.rec)?);
    assert_eq!(ra, rb, "both stores show the same document");
    assert_eq!(ra["title"], "Publish all recruitment fees");
    assert_eq!(ra["status"], "discussion");
    let text = ra["recommendation"].as_str().context("text")?;
    assert!(text.contains("in the worker's language"), "{text}");
    assert!(text.contains("*costs*"), "marks survive: {text}");
    let comment = &ra["comments"][0];
    assert_eq!(comment["body"], "Which fees exactly?");
    assert_eq!(comment["anchored_text"], "publish all fees", "the comment still points at its text");

    // The server indexes the new process, so the start page can list it.
    let listed: Value = serde_json::from_str(&tokio::runtime::Runtime::new()?.block_on(konsens_tests::http_get(&addr, "/api/processes"))?)?;
    assert!(listed.as_array().is_some_and(|l| l.iter().any(|p| p["url"] == s.process.as_str())), "{listed}");

    // History names people, not actor ids.
    let history = json(a.path(), &["history", &s.rec, "--all"])?;
    let names: Vec<&str> = history.as_array().context("list")?.iter().filter_map(|h| h["name"].as_str()).collect();
    assert!(names.contains(&"Alice Martin") && names.contains(&"Bora Yilmaz"), "{history}");
    assert!(history.as_array().context("list")?.iter().any(|h| h["summary"] == "comment on recommendation"));
    Ok(())
}

#[test]
fn draft_forked_offline_diffed_and_merged_while_upstream_moves() -> Result<()> {
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start(data.path(), &[])?;
    let url = server.ws_url();
    let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let s = setup(a.path(), "Alice Martin", "Ministry of Labour")?;
    ok(a.path(), &["sync", &url])?;
    ok(b.path(), &["identity", "--name", "Bora Yilmaz", "--org", "Construction Union"])?;
    ok(b.path(), &["sync", &url, "--doc", &s.process])?;

    // Alice forks a draft and works on it offline.
    ok(a.path(), &["draft", "fork", &s.rec, "--name", "train"])?;
    ok(a.path(), &["rec", "set", "draft:train", "--field", "rationale", "--value", "Fees push workers into debt."])?;
    ok(a.path(), &["rec", "set", "draft:train", "--field", "workshop", "--value", "green-skills"])?;
    // Meanwhile Bora edits upstream, including the same scalar field.
    ok(b.path(), &["rec", "set", &s.rec, "--field", "addressees", "--value", "Federal Employment Agency, employers"])?;
    ok(b.path(), &["rec", "set", &s.rec, "--field", "workshop", "--value", "fair-recruitment-2"])?;
    ok(b.path(), &["sync", &url])?;
    ok(a.path(), &["sync", &url])?;

    let diff = json(a.path(), &["draft", "diff", "train"])?;
    let fields: Vec<&str> = diff["draft"].as_array().context("list")?.iter().filter_map(|d| d["field"].as_str()).collect();
    assert!(fields.contains(&"rationale") && fields.contains(&"workshop"), "{diff}");
    assert!(diff["upstream_changes"].as_u64() >= Some(2), "{diff}");
    assert!(diff["conflicts"].as_array().context("list")?.iter().any(|c| c["field"] == "workshop"), "{diff}");
    let words = diff["draft"].as_array().context("list")?.iter().find(|d| d["field"] == "rationale").context("rationale")?["words"].clone();
    assert!(words.as_str().is_some_and(|w| w.contains("{+")), "word-level diff: {words}");

    let merged = konsens(a.path(), &["--json", "--server", &url, "draft", "merge", "train"])?;
    assert!(merged.status.success(), "{}", String::from_utf8_lossy(&merged.stderr));
    let merged: Value = serde_json::from_slice(&merged.stdout)?;
    assert_eq!(merged["synced"], true);
    assert!(merged["conflicts"].as_array().context("list")?.iter().any(|c| c["field"] == "workshop"));
    assert!(ok(a.path(), &["draft", "list"])?.is_empty(), "a merged draft is gone");

    ok(b.path(), &["sync", &url])?;
    let rec = show(b.path(), &s.rec)?;
    assert_eq!(rec["rationale"], "Fees push workers into debt.");
    assert_eq!(rec["addressees"], serde_json::json!(["Federal Employment Agency", "employers"]));
    let mut values: Vec<String> = serde_json::from_value(rec["conflicts"][0]["values"].clone())?;
    values.sort();
    assert_eq!(values, vec!["fair-recruitment-2".to_owned(), "green-skills".to_owned()]);
    // Resolving is setting the field.
    ok(b.path(), &["rec", "set", &s.rec, "--field", "workshop", "--value", &s.workshop])?;
    assert_eq!(show(b.path(), &s.rec)?["conflicts"], serde_json::json!([]));
    Ok(())
}

#[test]
fn markdown_edit_keeps_concurrent_upstream_edits() -> Result<()> {
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start(data.path(), &[])?;
    let url = server.ws_url();
    let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let s = setup(a.path(), "Alice Martin", "Ministry of Labour")?;
    let markdown = "Recognition must be **fast**.\n\n- one contact point\n- decisions within three months\n\nSee [the act](https://example.org/act).";
    ok(a.path(), &["rec", "set", &s.rec, "--field", "problem", "--value", markdown])?;
    ok(a.path(), &["sync", &url])?;
    ok(b.path(), &["identity", "--name", "Bora Yilmaz", "--org", "Construction Union"])?;
    ok(b.path(), &["sync", &url, "--doc", &s.process])?;
    let shown = show(b.path(), &s.rec)?;
    assert_eq!(shown["problem"].as_str().map(str::trim_end), Some(markdown), "Markdown round-trips through rich text");

    // Bora changes the first paragraph upstream...
    ok(b.path(), &["rec", "set", &s.rec, "--field", "problem", "--value", &markdown.replace("**fast**", "**fast and free**")])?;
    ok(b.path(), &["sync", &url])?;
    // ...while Alice, not yet synced, edits a list item in her editor.
    let editor = a.path().join("editor.sh");
    std::fs::write(&editor, "#!/bin/sh\nsed -i 's/three months/eight weeks/' \"$1\"\n")?;
    let status = Command::new(binary("konsens")?)
        .args(["--store"]).arg(a.path()).args(["rec", "edit", &s.rec, "--field", "problem"])
        .env("EDITOR", format!("sh {}", editor.display()))
        .env_remove("VISUAL")
        .output()?;
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    ok(a.path(), &["sync", &url])?;
    ok(b.path(), &["sync", &url])?;
    for store in [a.path(), b.path()] {
        let problem = show(store, &s.rec)?["problem"].as_str().context("text")?.to_owned();
        assert!(problem.contains("**fast and free**"), "upstream edit kept: {problem}");
        assert!(problem.contains("eight weeks"), "editor edit kept: {problem}");
        assert!(problem.contains("- one contact point"), "list kept: {problem}");
    }
    Ok(())
}

#[test]
fn import_a_dossier_and_export_the_report() -> Result<()> {
    let store = tempfile::tempdir()?;
    let s = setup(store.path(), "Alice Martin", "Ministry of Labour")?;
    let dossier = repo_root().join("protocol/model/tests/fixtures/dossier.md");
    let imported = json(store.path(), &["import", &s.process, dossier.to_str().context("path")?, "--workshop", &s.workshop])?;
    let created = imported["created"].as_array().context("list")?;
    assert!(created.len() >= 3, "{imported}");
    let listed = json(store.path(), &["rec", "list", &s.process])?;
    assert_eq!(listed["recommendations"].as_array().context("list")?.len(), created.len() + 1);

    // Adopt one, endorse it; only adopted recommendations reach the report.
    let adopted = created[0]["url"].as_str().context("url")?;
    for status in ["discussion", "consensus", "adopted"] {
        ok(store.path(), &["rec", "status", adopted, status])?;
    }
    ok(store.path(), &["endorse", adopted, "--stance", "support", "--note", "with a review after two years"])?;
    let report = ok(store.path(), &["export", &s.process, "--format", "markdown"])?;
    assert!(report.contains(created[0]["title"].as_str().context("title")?), "{report}");
    assert!(!report.contains("Publish recruitment fees"), "a draft is not in the report:\n{report}");
    assert!(report.contains("Ministry of Labour"), "endorsements are in the report:\n{report}");
    let again = ok(store.path(), &["export", &s.process, "--format", "markdown"])?;
    assert_eq!(report, again, "export is deterministic");
    let html_path = store.path().join("report.html");
    ok(store.path(), &["export", &s.process, "--format", "html", "--out", html_path.to_str().context("path")?])?;
    assert!(std::fs::read_to_string(&html_path)?.contains("<html"));
    let as_json: Value = serde_json::from_str(&ok(store.path(), &["export", &s.process, "--format", "json"])?)?;
    assert!(as_json.is_object());
    Ok(())
}

#[test]
fn bad_input_is_explained_and_changes_nothing() -> Result<()> {
    let store = tempfile::tempdir()?;
    let s = setup(store.path(), "Alice Martin", "Ministry of Labour")?;
    let before = show(store.path(), &s.rec)?;

    let err = fails(store.path(), &["rec", "show", "automerge:not-a-real-id"], 1)?;
    assert!(err.contains("invalid"), "{err}");
    let err = fails(store.path(), &["rec", "set", &s.rec, "--field", "colour", "--value", "red"], 1)?;
    assert!(err.contains("unknown field"), "{err}");
    let err = fails(store.path(), &["rec", "set", &s.process, "--field", "title", "--value", "x"], 1)?;
    assert!(err.contains("not a konsens recommendation"), "{err}");
    let err = fails(store.path(), &["rec", "status", &s.rec, "adopted"], 1)?;
    assert!(err.contains("cannot go from draft to adopted"), "{err}");
    let err = fails(store.path(), &["sync", "ws://127.0.0.1:9/sync", "--connect-timeout", "2"], 3)?;
    assert!(err.contains("cannot reach"), "{err}");
    // Stances are a closed set clap knows: an unknown one is a usage error
    // (exit 2) that lists the possible values.
    let err = fails(store.path(), &["endorse", &s.rec, "--stance", "maybe"], 2)?;
    assert!(err.contains("invalid value 'maybe'") && err.contains("support, concerns, object"), "{err}");

    assert_eq!(show(store.path(), &s.rec)?, before, "the store is unchanged");
    let fresh = tempfile::tempdir()?;
    let err = fails(fresh.path(), &["process", "create", "--title", "x"], 1)?;
    assert!(err.contains("no identity"), "{err}");
    Ok(())
}
