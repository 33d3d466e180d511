//! The real server binary on PostgreSQL (`--database`), on a throwaway
//! cluster these tests start themselves: what the server acknowledged
//! survives `kill -9`, and `konsens-server migrate` moves a sled deployment
//! (documents, tokens, actor bindings) into PostgreSQL. Without PostgreSQL
//! installed these tests fail; `scripts/test.sh` installs it.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, ensure};
use konsens_store::ChunkStore;
use konsens_store::postgres::throwaway::ThrowawayCluster;
use konsens_tests::ServerProcess;
use konsens_tests::cli::{json, ok};
use serde_json::Value;

fn cluster() -> Result<ThrowawayCluster> {
    ThrowawayCluster::start().context("starting a throwaway PostgreSQL cluster (is PostgreSQL installed? scripts/test.sh installs it)")
}

/// A process with a workshop and a recommendation, written by the CLI user
/// of `store` and synced to their server; returns (process, recommendation).
fn draft(store: &Path) -> Result<(String, String)> {
    let process = ok(store, &["process", "create", "--title", "Faire Anwerbung"])?;
    let workshop = ok(store, &["workshop", "add", &process, "--title", "Pflege", "--sector", "care"])?;
    let rec = ok(store, &["rec", "new", &process, "--workshop", &workshop, "--title", "Gebühren offenlegen"])?;
    ok(store, &["rec", "set", &rec, "--field", "recommendation", "--value", "Agenturen legen alle Gebühren vorab offen."])?;
    ok(store, &["sync"])?;
    Ok((process, rec))
}

/// What a fresh store joined with `link` pulls of the recommendation.
fn pulled(link: &str, process: &str, rec: &str) -> Result<Value> {
    let fresh = tempfile::tempdir()?;
    ok(fresh.path(), &["join", link])?;
    ok(fresh.path(), &["sync", "--doc", process])?;
    ok(fresh.path(), &["sync", "--doc", rec])?;
    json(fresh.path(), &["rec", "show", rec])
}

#[test]
fn acknowledged_edits_survive_kill_9_on_postgres() -> Result<()> {
    let cluster = cluster()?;
    let url = cluster.create_database("konsens")?;
    let data = tempfile::tempdir()?; // unused with --database; the harness passes --data
    let server = ServerProcess::start_secure(data.path(), "127.0.0.1:0", &["--database", &url])?;
    ensure!(
        server.wait_for_log("store=PostgreSQL database konsens on 127.0.0.1", std::time::Duration::from_secs(10)),
        "the server says where it keeps things:\n{}",
        server.log()
    );
    let token = server.admin_token.clone().context("no administrator link on first start")?;
    let link = server.http_url(&format!("/join/{token}"));
    let store = tempfile::tempdir()?;
    ok(store.path(), &["join", &link])?;
    let (process, rec) = draft(store.path())?;
    ok(store.path(), &["rec", "set", &rec, "--field", "title", "--value", "Alle Gebühren offenlegen"])?;
    ok(store.path(), &["sync"])?;
    let before = json(store.path(), &["rec", "show", &rec])?;

    let addr = server.addr.clone();
    server.kill_hard()?;
    let server = ServerProcess::start_secure(data.path(), &addr, &["--database", &url])?;
    ensure!(server.admin_token.is_none(), "the administrator token was kept: no new one on restart");
    let after = pulled(&link, &process, &rec)?;
    assert_eq!(after["title"], "Alle Gebühren offenlegen", "{after}");
    assert_eq!(after, before, "everything acknowledged before kill -9 is there");
    // And the first store keeps syncing with the restarted server.
    ok(store.path(), &["rec", "set", &rec, "--field", "rationale", "--value", "Gebühren treiben in die Schuldenfalle."])?;
    ok(store.path(), &["sync"])?;
    assert_eq!(pulled(&link, &process, &rec)?["rationale"], "Gebühren treiben in die Schuldenfalle.");
    Ok(())
}

#[test]
fn migration_from_sled_keeps_documents_tokens_and_bindings() -> Result<()> {
    let cluster = cluster()?;
    let url = cluster.create_database("moved")?;
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start_secure(data.path(), "127.0.0.1:0", &[])?;
    let token = server.admin_token.clone().context("no administrator link on first start")?;
    let link = server.http_url(&format!("/join/{token}"));
    let store = tempfile::tempdir()?;
    ok(store.path(), &["join", &link])?;
    let (process, rec) = draft(store.path())?;
    let before = json(store.path(), &["rec", "show", &rec])?;
    let addr = server.addr.clone();
    ensure!(server.terminate()?.success(), "the sled server stops cleanly");

    let migrate = |to: &str| -> Result<std::process::Output> {
        Ok(Command::new(konsens_tests::binary("konsens-server")?)
            .args(["migrate", "--from", "sled"])
            .arg(data.path())
            .args(["--to", to])
            .env_remove("KONSENS_DATABASE")
            .output()?)
    };
    let out = migrate(&url)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.success(), "migrate failed:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
    ensure!(stdout.contains("documents have the same heads in both stores"), "{stdout}");
    // Into a database that already holds documents: refused, non-zero.
    let again = migrate(&url)?;
    ensure!(!again.status.success(), "a second migration into the same database must fail");
    ensure!(String::from_utf8_lossy(&again.stderr).contains("not empty"), "{}", String::from_utf8_lossy(&again.stderr));

    // Every actor binding and token is in PostgreSQL (both stores read directly; no server runs).
    let (sled, postgres) = (ChunkStore::open(data.path())?, ChunkStore::connect(&url)?);
    let bindings = sled.auth()?.actor_bindings()?;
    ensure!(!bindings.is_empty(), "the CLI user's edits bound their actor");
    assert_eq!(postgres.auth()?.actor_bindings()?, bindings);
    assert_eq!(postgres.auth()?.token_entries()?, sled.auth()?.token_entries()?);
    drop((sled, postgres));

    // The same server address, now on PostgreSQL: the same token works.
    let server = ServerProcess::start_secure(data.path(), &addr, &["--database", &url])?;
    ensure!(server.admin_token.is_none(), "the migrated administrator token is found: no new one");
    assert_eq!(pulled(&link, &process, &rec)?, before);
    ok(store.path(), &["rec", "set", &rec, "--field", "title", "--value", "Nach dem Umzug"])?;
    ok(store.path(), &["sync"])?;
    assert_eq!(pulled(&link, &process, &rec)?["title"], "Nach dem Umzug");
    drop(server);
    Ok(())
}
