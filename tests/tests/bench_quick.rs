//! `konsens-bench --quick` runs from a clean checkout and reports every
//! server: konsens, the stock automerge-repo sync server, samod and the
//! in-process limit. Uses the bench binary of the test's own profile (built by
//! `cargo build --workspace --bins`), on a reduced set of scenarios to stay
//! short on CI (trace replay, many documents and cold start run in the full
//! benchmark only). The cluster scenario (nodes on a throwaway PostgreSQL)
//! is a test of its own.

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

/// The cluster scenario in quick mode: every configuration and drive has a
/// row with acknowledged changes and nothing lost, and the failover loses
/// no acknowledged change. Figures only; no timing is asserted.
#[test]
fn quick_cluster_reports_every_configuration() -> Result<()> {
    let (text, _) = bench_report(&["--quick", "--scenarios", "cluster"])?;
    let section = report_section(&text, "Several nodes").with_context(|| format!("no cluster section:\n{text}"))?;
    let rows = [
        ("1 node, sled", "durable, owner = writer's node"),
        ("1 node, sled", "many-docs"),
        ("1 node, PostgreSQL", "durable, owner = writer's node"),
        ("1 node, PostgreSQL", "many-docs"),
        ("3 nodes, PostgreSQL", "durable, owner = writer's node"),
        ("3 nodes, PostgreSQL", "durable, owners spread"),
        ("3 nodes, PostgreSQL", "many-docs"),
    ];
    for (configuration, drive) in rows {
        let row = section
            .lines()
            .find(|l| l.starts_with(&format!("| {configuration} | {drive} |")))
            .with_context(|| format!("no row for {configuration}, {drive}:\n{text}"))?;
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        // | configuration | drive | changes/s | p50 | p99 | lost | …
        let per_second: f64 = cells.get(3).context("no changes/s")?.parse()?;
        ensure!(per_second > 0.0, "no changes acknowledged in {row}");
        ensure!(cells.get(6) == Some(&"0"), "changes lost in {row}");
    }
    let relayed = section
        .lines()
        .find(|l| l.starts_with("| 3 nodes, PostgreSQL | durable, owners spread |"))
        .and_then(|l| l.split('|').map(str::trim).nth(10).map(str::to_owned))
        .context("no relayed messages for owners spread")?;
    ensure!(relayed.parse::<f64>()? > 0.0, "writers on other nodes than their documents' owners relayed nothing:\n{section}");
    ensure!(section.contains("acknowledged again after: median"), "no failover time:\n{section}");
    ensure!(section.contains("not found afterwards by a fresh reader: **0**"), "the failover lost acknowledged changes:\n{section}");
    Ok(())
}
