//! The bench's light peers send what the official client sends. `konsens-bench
//! --scenarios frames` records, through a real konsens server, the frames an
//! official automerge-repo 2.5.6 typist and its watchers exchange per
//! keystroke (Node, `tests/js/official-workshop.mjs`), then the same with the
//! light peers, and reports both patterns: message types and counts per
//! keystroke, heads, `need`, `have` entries and whether their bloom filters
//! hold anything. This test fails when the patterns disagree, so a change to
//! the light peers or to the official client (a lockfile bump) that makes the
//! bench measure something else is caught.
//!
//! Needs `npm ci --prefix tests/js` and the binaries of the test's profile
//! (`cargo build --workspace --bins`).

use anyhow::{Context, Result, ensure};
use konsens_tests::{bench_report, report_section};

#[test]
fn light_peers_match_the_official_client_per_keystroke() -> Result<()> {
    // The driver pins itself to core 0 by default; a test runs where it is put.
    let (text, stderr) = bench_report(&["--scenarios", "frames", "--servers", "konsens", "--no-pin"])?;
    let section = report_section(&text, "Frames per keystroke")
        .with_context(|| format!("no frames section in the report:\n{text}\n{stderr}"))?;
    ensure!(section.contains("**Official automerge-repo 2.5.6 client:**"), "no official pattern:\n{section}");
    ensure!(section.contains("| typist | sends | sync ("), "the official typist sent no sync message:\n{section}");
    ensure!(section.contains("| watcher | receives | sync ("), "no official watcher received a keystroke:\n{section}");
    ensure!(section.contains("Patterns match: yes"), "light peers and official client differ:\n{section}");
    Ok(())
}
