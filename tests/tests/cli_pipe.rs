//! `konsens … | head`: when the reader of stdout goes away early, the CLI
//! finishes quietly (exit 0, no panic, no backtrace) in text and JSON mode,
//! and for a raw report.
//!
//! The output is made far larger than a pipe's buffer, so the CLI is still
//! writing when the reader closes its end: the broken pipe is certain, not a
//! race.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use konsens_tests::binary;
use konsens_tests::cli::ok;

/// Run `konsens --store STORE ARGS`, read the first bytes of its stdout,
/// close the pipe, and return (exit code, stderr).
fn read_a_little(store: &Path, args: &[&str]) -> Result<(Option<i32>, String)> {
    let mut child = Command::new(binary("konsens")?)
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("KONSENS_SERVER")
        .env_remove("KONSENS_STORE")
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdout = child.stdout.take().context("stdout")?;
    let mut first = [0u8; 16];
    stdout.read_exact(&mut first)?;
    drop(stdout);
    let output = child.wait_with_output()?;
    Ok((output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned()))
}

#[test]
fn a_closed_stdout_ends_the_cli_quietly() -> Result<()> {
    let store = tempfile::tempdir()?;
    let store = store.path();
    ok(store, &["identity", "--name", "Alice Martin", "--org", "Ministry of Labour"])?;
    let process = ok(store, &["process", "create", "--title", "Fair skills partnerships"])?;
    let workshop = ok(store, &["workshop", "add", &process, "--title", "Fair recruitment"])?;
    let rec = ok(store, &["rec", "new", &process, "--workshop", &workshop, "--title", "Publish recruitment fees"])?;
    // About 400 KB of text: several times any pipe buffer.
    let long = store.join("long.md");
    std::fs::write(&long, "Agencies must publish all fees in advance. ".repeat(10_000))?;
    ok(store, &["rec", "set", &rec, "--field", "recommendation", "--from-file", long.to_str().context("path")?])?;
    for status in ["discussion", "consensus", "adopted"] {
        ok(store, &["rec", "status", &rec, status])?;
    }

    for args in [
        vec!["rec", "show", rec.as_str()],
        vec!["--json", "rec", "show", rec.as_str()],
        vec!["export", process.as_str(), "--format", "markdown"],
    ] {
        let (code, stderr) = read_a_little(store, &args)?;
        assert_eq!(code, Some(0), "konsens {args:?} exits 0 when its reader leaves; stderr:\n{stderr}");
        assert!(!stderr.contains("panicked"), "konsens {args:?} panicked:\n{stderr}");
        assert!(!stderr.to_lowercase().contains("broken pipe"), "konsens {args:?} complained:\n{stderr}");
    }
    Ok(())
}
