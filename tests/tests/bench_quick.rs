//! `konsens-bench --quick` runs from a clean checkout and reports every
//! server: konsens, the stock automerge-repo sync server, samod and the
//! in-process limit. Uses the bench binary of the test's own profile (built by
//! `cargo build --workspace --bins`), on a reduced set of scenarios to stay
//! short on CI (trace replay, many documents and cold start run in the full
//! benchmark only).

use anyhow::{Context, Result, ensure};
use konsens_tests::{bench_report, report_section};

#[test]
fn quick_bench_reports_every_server() -> Result<()> {
    let (text, _) = bench_report(&["--quick", "--scenarios", "workshop,durable,idle"])?;
    for section in ["## Workshop", "## Durable acknowledgements", "## Idle connections"] {
        ensure!(text.contains(section), "no {section} in the report:\n{text}");
    }
    let workshop = report_section(&text, "Workshop").context("no workshop section")?;
    for server in ["konsens", "automerge-repo 2.5.6 (JS)", "samod 0.16", "bare automerge (limit)"] {
        let rows = workshop.lines().filter(|l| l.starts_with(&format!("| {server} |"))).count();
        ensure!(rows >= 2, "workshop has no rows for {server}:\n{workshop}");
    }
    ensure!(text.contains("**Machine:**") && text.contains("**Command:**"), "header missing:\n{text}");
    Ok(())
}
