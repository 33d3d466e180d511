//! `konsens-bench`: konsens against the stock automerge-repo sync server,
//! samod and bare Automerge, in one run on one machine. Prints Markdown and
//! writes it to `docs/benchmarks.md` (see `--help`).

mod light;
mod official;
mod peer;
mod scenarios;
mod servers;
mod stats;
mod trace;
mod wire;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;

use crate::servers::Kind;

/// Benchmarks konsens against its peers and automerge's own limit.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Short runs with reduced sizes, for CI (well under 5 minutes).
    #[arg(long)]
    quick: bool,
    /// Scenarios to run (comma-separated): workshop, official, frames, trace, reconnect, many-docs, durable, cold-start, idle, cluster.
    #[arg(long, value_delimiter = ',')]
    scenarios: Option<Vec<String>>,
    /// Servers to run (comma-separated): konsens, stock, samod, limit.
    #[arg(long, value_delimiter = ',')]
    servers: Option<Vec<String>>,
    /// Workshop typist counts to run instead of the mode's list (comma-separated), for profiling one rate.
    #[arg(long, value_delimiter = ',')]
    ks: Option<Vec<usize>>,
    /// Where to write the report; `-` for nowhere.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Node processes hosting the official clients (scenario `official`):
    /// with 1, typists share the watchers' event loop and slow down with it;
    /// with 2 or more, the typists have process 0 to themselves and keep
    /// their rate while the watchers are dealt over the rest.
    #[arg(long, default_value_t = 2)]
    node_processes: usize,
    /// Participants of the official-client workshop instead of the mode's
    /// count (40, quick 6), to see where the driver's core stops keeping up.
    #[arg(long)]
    participants: Option<usize>,
    /// Keep the driver where it is instead of pinning it to core 0.
    #[arg(long)]
    no_pin: bool,
    /// Keystrokes per second of the whole room in the official-client
    /// workshop, split evenly over the typists. Without it each k runs twice:
    /// at the human rate (5/s per typist) and at a rate the driver sustains,
    /// chosen from its measured cost per keystroke.
    #[arg(long)]
    official_rate: Option<f64>,
    /// Texts of the official-client workshop, in single-keystroke changes
    /// (comma-separated; default 20000,200000, quick 20000).
    #[arg(long, value_delimiter = ',')]
    official_sizes: Option<Vec<usize>>,
    /// Keystrokes each official-workshop row types at least, all typists
    /// together (default 60, quick 20).
    #[arg(long)]
    official_keystrokes: Option<usize>,
}

/// The repository root (the bench runs from a clean clone).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".."))
}

/// Scratch space for built documents (git-ignored target dir).
pub fn cache_dir() -> PathBuf {
    repo_root().join("target/bench-cache")
}

fn wants(list: &Option<Vec<String>>, name: &str) -> bool {
    list.as_ref().is_none_or(|l| l.iter().any(|x| x == name))
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !args.no_pin {
        // The driver keeps to core 0, the servers get core 1.
        let status = std::process::Command::new("taskset")
            .args(["-a", "-p", "-c", servers::DRIVER_CORE, &std::process::id().to_string()])
            .stdout(std::process::Stdio::null())
            .status()
            .context("running taskset")?;
        anyhow::ensure!(status.success(), "taskset could not pin the driver");
    }
    let mut kinds = Vec::new();
    if wants(&args.servers, "konsens") {
        kinds.push(Kind::Konsens);
    }
    if wants(&args.servers, "samod") {
        kinds.push(Kind::Samod);
    }
    if wants(&args.servers, "stock") {
        kinds.push(Kind::Stock);
    }
    let limit = wants(&args.servers, "limit");
    let scratch = tempfile::Builder::new().prefix("konsens-bench-").tempdir()?;
    let started = std::time::SystemTime::now();

    let mut report = String::new();
    let mut failures: Vec<String> = Vec::new();
    // The workshop and reconnect scenarios share one document, built once.
    let friendsforever = std::cell::OnceCell::new();
    let friendsforever = || -> Result<&automerge::Automerge> {
        if friendsforever.get().is_none() {
            eprintln!("building the friendsforever document");
            let _ = friendsforever.set(trace::build_concurrent("friendsforever.json.gz")?);
        }
        friendsforever.get().context("friendsforever document")
    };
    if wants(&args.scenarios, "workshop") {
        eprintln!("workshop");
        let base = friendsforever()?;
        let config = if args.quick {
            scenarios::workshop::Config {
                participants: 40,
                ks: vec![1, 2, 8],
                typing: Duration::from_secs(3),
                drain: Duration::from_secs(5),
            }
        } else {
            scenarios::workshop::Config {
                participants: 40,
                // k = 1 is below the list: the peers' only sustainable rate.
                ks: vec![1, 2, 4, 8, 16, 32],
                typing: Duration::from_secs(10),
                drain: Duration::from_secs(10),
            }
        };
        let config = match &args.ks {
            Some(ks) => scenarios::workshop::Config { ks: ks.clone(), ..config },
            None => config,
        };
        // The same server without its coalescing window, to show what it buys.
        let mut workshop_kinds = kinds.clone();
        if kinds.contains(&Kind::Konsens) {
            workshop_kinds.insert(1, Kind::KonsensNoCoalesce);
        }
        let mut results = Vec::new();
        for &kind in &workshop_kinds {
            let dir = scratch.path().join(format!("workshop-{kind:?}"));
            if let Some(r) = attempt(&mut failures, "workshop", kind, scenarios::workshop::run_server(kind, &base, &config, &dir)) {
                results.push((kind.label(), r));
            }
        }
        if limit {
            results.push(("bare automerge (limit)", scenarios::workshop::run_limit(&base, &config)?));
        }
        report.push_str(&report::workshop(&config, &results));
    }

    if wants(&args.scenarios, "official") {
        eprintln!("workshop with official clients");
        let config = if args.quick {
            scenarios::official::Config {
                participants: 6,
                ks: vec![1, 4],
                sizes: vec![20_000],
                rate: None,
                keystrokes: 20,
                drain: Duration::from_secs(10),
                processes: args.node_processes,
            }
        } else {
            scenarios::official::Config {
                participants: 40,
                ks: vec![1, 4, 8],
                sizes: vec![20_000, 200_000],
                rate: None,
                keystrokes: 60,
                // At the human rate one driver core cannot keep 39 official
                // watchers current: they lag, and catch up after the typing.
                drain: Duration::from_secs(90),
                processes: args.node_processes,
            }
        };
        let config = scenarios::official::Config {
            participants: args.participants.unwrap_or(config.participants),
            ks: args.ks.clone().unwrap_or(config.ks),
            sizes: args.official_sizes.clone().unwrap_or(config.sizes),
            rate: args.official_rate.or(config.rate),
            keystrokes: args.official_keystrokes.unwrap_or(config.keystrokes),
            ..config
        };
        if let Some(rate) = config.rate {
            anyhow::ensure!(rate.is_finite() && rate > 0.0, "--official-rate must be a positive number of keystrokes per second");
        }
        let mut sizes = Vec::new();
        for &size in &config.sizes {
            eprintln!("the {size}-keystroke document");
            let base = scenarios::official::build_keystrokes(size)?;
            // Chosen during the first server's run, then the same for all.
            let mut rates = scenarios::official::Rates::default();
            let mut official = Vec::new();
            for &kind in &kinds {
                let dir = scratch.path().join(format!("official-{size}-{kind:?}"));
                let rows = attempt(&mut failures, &format!("official ({size})"), kind, scenarios::official::run_server(kind, &base, &config, &mut rates, &dir));
                official.push((kind, rows.unwrap_or_default()));
            }
            // The light peers on the same document, same participants, k and rates.
            let plans = rates.light_plans(&config);
            let mut results = Vec::new();
            for (kind, official) in official {
                let dir = scratch.path().join(format!("official-light-{size}-{kind:?}"));
                let light = attempt(
                    &mut failures,
                    &format!("official ({size}, light peers)"),
                    kind,
                    scenarios::workshop::run_plans(kind, &base, config.participants, &plans, config.drain, &dir),
                );
                results.push((kind.label(), light.unwrap_or_default(), official));
            }
            sizes.push(report::OfficialSize { size, rates, results });
        }
        report.push_str(&report::official(&config, &sizes));
    }
    if wants(&args.scenarios, "frames") && kinds.contains(&Kind::Konsens) {
        eprintln!("frames: official client against light peers, through konsens");
        let base = scenarios::official::build_keystrokes(20_000)?;
        let dir = scratch.path().join("frames");
        if let Some((official, light)) = attempt(&mut failures, "frames", Kind::Konsens, scenarios::official::record_both(&base, &dir)) {
            report.push_str(&report::frames(&official, &light));
        }
    }
    if wants(&args.scenarios, "trace") {
        eprintln!("trace replay: automerge-paper");
        let trace = scenarios::replay::load(args.quick)?;
        let mut results = Vec::new();
        for &kind in &kinds {
            let dir = scratch.path().join(format!("trace-{kind:?}"));
            let rust = attempt(&mut failures, "trace replay", kind, scenarios::replay::run_server(kind, &trace, &dir));
            let dir = scratch.path().join(format!("trace-official-{kind:?}"));
            let official = attempt(&mut failures, "trace replay (official writer)", kind, scenarios::replay::run_server_official(kind, &trace, &dir));
            results.push((kind.label(), rust, official));
        }
        let limit_row = if limit { Some(scenarios::replay::run_limit(&trace)?) } else { None };
        report.push_str(&report::replay(&results, limit_row.as_ref()));
    }
    if wants(&args.scenarios, "reconnect") {
        eprintln!("reconnect");
        let base = friendsforever()?;
        let reconnects = if args.quick { 5 } else { 30 };
        let mut results = Vec::new();
        for &kind in &kinds {
            let dir = scratch.path().join(format!("reconnect-{kind:?}"));
            if let Some(rows) = attempt(&mut failures, "reconnect", kind, scenarios::reconnect::run_server(kind, &base, reconnects, &dir)) {
                results.push((kind.label(), rows));
            }
        }
        report.push_str(&report::reconnect(&results));
    }
    if wants(&args.scenarios, "many-docs") {
        eprintln!("many documents");
        let (documents, typing) = if args.quick { (100, Duration::from_secs(5)) } else { (1000, Duration::from_secs(20)) };
        let mut results = Vec::new();
        for &kind in &kinds {
            let dir = scratch.path().join(format!("many-{kind:?}"));
            if let Some(r) = attempt(&mut failures, "many documents", kind, scenarios::docs::many_documents(kind, documents, typing, &dir)) {
                results.push((kind.label(), r));
            }
        }
        report.push_str(&report::many(&results, typing));
    }
    if wants(&args.scenarios, "durable") {
        eprintln!("durable acknowledgements");
        let (writers, duration) = if args.quick { (32, Duration::from_secs(3)) } else { (256, Duration::from_secs(10)) };
        let mut durable_kinds = kinds.clone();
        if kinds.contains(&Kind::Konsens) {
            durable_kinds.insert(1, Kind::KonsensNoGroup);
        }
        let mut results = Vec::new();
        for &kind in &durable_kinds {
            let dir = scratch.path().join(format!("durable-{kind:?}"));
            if let Some(r) = attempt(&mut failures, "durable acknowledgements", kind, scenarios::docs::durable(kind, writers, duration, &dir)) {
                results.push((kind, r));
            }
        }
        report.push_str(&report::durable(&results, duration));
    }
    if wants(&args.scenarios, "cold-start") {
        eprintln!("cold start");
        let documents = if args.quick { 1000 } else { 10_000 };
        let mut results = Vec::new();
        for &kind in &kinds {
            let dir = scratch.path().join(format!("cold-{kind:?}"));
            if let Some(r) = attempt(&mut failures, "cold start", kind, scenarios::docs::cold_start(kind, documents, &dir)) {
                results.push((kind.label(), r));
            }
        }
        report.push_str(&report::cold(&results));
    }
    if wants(&args.scenarios, "idle") {
        eprintln!("idle connections");
        let connections = if args.quick { 1000 } else { 10_000 };
        let mut results = Vec::new();
        for &kind in &kinds {
            let dir = scratch.path().join(format!("idle-{kind:?}"));
            if let Some(r) = attempt(&mut failures, "idle connections", kind, scenarios::docs::idle(kind, connections, &dir)) {
                results.push((kind.label(), r));
            }
        }
        report.push_str(&report::idle(&results));
    }
    if wants(&args.scenarios, "cluster") && kinds.contains(&Kind::Konsens) {
        eprintln!("cluster: 1 node sled, 1 node PostgreSQL, 3 nodes PostgreSQL, failover");
        let config = if args.quick {
            scenarios::cluster::Config {
                writers: 24,
                duration: Duration::from_secs(2),
                documents: 60,
                typing: Duration::from_secs(2),
                lease: Duration::from_millis(1000),
                failover_writers_per_node: 1,
            }
        } else {
            scenarios::cluster::Config {
                writers: 256,
                duration: Duration::from_secs(10),
                documents: 1000,
                typing: Duration::from_secs(20),
                // The server's default (`DEFAULT_LEASE_MS`).
                lease: Duration::from_millis(3000),
                failover_writers_per_node: 2,
            }
        };
        match scenarios::cluster::run(&config, &scratch.path().join("cluster"), &mut failures) {
            Ok(results) => report.push_str(&report::cluster(&config, &results)),
            Err(e) => {
                eprintln!("  cluster FAILED: {e:#}");
                failures.push(format!("cluster: {e:#}"));
            }
        }
    }

    if !failures.is_empty() {
        report.push_str("## Runs that failed\n\nThese servers have no row in the tables above; the reason is the driver's error.\n\n");
        for f in &failures {
            report.push_str(&format!("- {f}\n"));
        }
        report.push('\n');
    }

    let elapsed = started.elapsed().unwrap_or_default();
    let header = report::header(&args_line(), args.quick, elapsed);
    let full = format!("{header}{report}");
    println!("{full}");
    let out = args.out.clone().unwrap_or_else(|| repo_root().join(if args.quick { "target/benchmarks-quick.md" } else { "docs/benchmarks.md" }));
    if out.as_os_str() != "-" {
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&out, &full).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}

/// Keep going when one server fails a scenario: note why, report the rest.
fn attempt<T>(failures: &mut Vec<String>, scenario: &str, kind: Kind, result: Result<T>) -> Option<T> {
    match result {
        Ok(r) => Some(r),
        Err(e) => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string().lines().next().unwrap_or("").to_owned()).collect();
            let reason = chain.join(": ");
            eprintln!("  {:<28} FAILED {scenario}: {reason}", kind.label());
            failures.push(format!("{scenario}, {}: {reason}", kind.label()));
            None
        }
    }
}

fn args_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("konsens-bench {}", args.join(" ")).trim().to_owned()
}

mod report {
    use super::*;
    use crate::scenarios::workshop;
    use crate::stats::ms;

    pub fn header(command: &str, quick: bool, elapsed: Duration) -> String {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned()))
            .unwrap_or_else(|| "unknown".into());
        // Counted from /proc: the driver pins itself, which hides the other core from available_parallelism.
        let cores = std::fs::read_to_string("/proc/cpuinfo")
            .map(|c| c.lines().filter(|l| l.starts_with("processor")).count())
            .unwrap_or(0);
        let mem = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| m.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|kb| kb.parse::<u64>().ok()))
            .map(|kb| format!("{:.0} GiB", kb as f64 / 1024.0 / 1024.0))
            .unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let date = std::process::Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let mut s = String::new();
        let _ = writeln!(s, "# Benchmarks{}\n", if quick { " (quick mode)" } else { "" });
        let _ = writeln!(s, "- **Command:** `cargo build --release -p konsens-server -p konsens-bench && target/release/{command}`");
        let _ = writeln!(s, "- **Date:** {date}; run took {:.0} s", elapsed.as_secs_f64());
        // Where the servers' data lives matters for flush-before-acknowledge.
        let disk = std::process::Command::new("df")
            .args(["--output=fstype,source"])
            .arg(std::env::temp_dir())
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().nth(1).map(|l| l.split_whitespace().collect::<Vec<_>>().join(" on ")))
            .unwrap_or_else(|| "unknown".into());
        let _ = writeln!(s, "- **Machine:** {cpu}, {cores} cores, {mem}, Linux {}; data directories on {disk}", kernel.trim());
        let _ = writeln!(s, "- **Notes:** what the figures mean, what stands between konsens and each target, and what failed: [benchmarks-notes.md](benchmarks-notes.md)");
        let _ = writeln!(s, "- **Pinning:** each server on core {}, the load driver on core {} (`taskset`); server CPU is utime+stime from `/proc/<pid>/stat`, memory is VmRSS from `/proc/<pid>/status`.", servers::SERVER_CORE, servers::DRIVER_CORE);
        let _ = writeln!(s, "- **Servers:** konsens-server (release, sled, flush before acknowledge, group commit); the stock sync server of `@automerge/automerge-repo` 2.5.6 with `NodeFSStorageAdapter` (`tests/js`, pinned by its lockfile); samod 0.16 with its filesystem storage (`bench/src/bin/samod-server.rs`); the limit is the same work on bare Automerge 0.12 in the driver's process, no network, no disk.");
        let _ = writeln!(s, "- **Driver:** one Rust process, one thread, speaking the automerge-repo protocol. Watchers are light peers (change graph only, same sync messages as Automerge would send); one participant per run is a real Automerge replica whose CPU is reported as the participants' cost. The *official* scenario's participants are official automerge-repo 2.5.6 clients in Node processes on the driver's core, commanded by the driver (`tests/js/official-workshop.mjs`).\n");
        s
    }

    fn ratio(a: f64, b: f64) -> String {
        if a.is_finite() && b.is_finite() && b > 0.0 { format!("{:.2}×", a / b) } else { "—".into() }
    }

    /// One server's trace replay: its label, the Rust writer's row, the official writer's row.
    pub type ReplayResult<'a> = (&'a str, Option<scenarios::replay::Row>, Option<scenarios::replay::Row>);

    pub fn replay(results: &[ReplayResult<'_>], limit: Option<&scenarios::replay::Row>) -> String {
        let mut s = String::new();
        let edits = results
            .iter()
            .find_map(|r| r.1.as_ref().or(r.2.as_ref()).map(|r| r.edits))
            .or(limit.map(|l| l.edits))
            .unwrap_or(0);
        let _ = writeln!(s, "## Trace replay\n");
        let _ = writeln!(s, "The automerge-paper trace ({edits} edits, one transaction each) typed by one client through the server to a second client, as fast as the server acknowledges. End-to-end time is from the first edit until the reader (the bench's Rust client) holds the writer's final heads (and the same text). The limit is the least Automerge itself must do for the same result, in one process on one core: type every edit as its own transaction, then sync writer → server replica → reader once.\n");
        let _ = writeln!(s, "Two writers. *Rust*: the bench's client, Automerge in the driver's process, which sends what it has typed whenever its previous message is answered. *Official*: an `@automerge/automerge-repo` 2.5.6 client in Node (`tests/js/official-replay.mjs`, on the driver's core) that types each edit as its own `handle.change` (256 between turns of the event loop, as the Rust writer) and leaves the sending to its repo, which syncs at most every 100 ms; its document (an empty text) is seeded into the server before the clock starts. *Writer's own typing* is how long the official client took to make every edit (`handle.change`, with its repo's work in between); when it is close to the end-to-end time, the client, not the server, sets the pace.\n");
        let _ = writeln!(s, "| server | writer | end-to-end | server CPU | vs limit | writer's own typing |");
        let _ = writeln!(s, "|---|---|---:|---:|---:|---:|");
        let lim = limit.map(|l| l.seconds).unwrap_or(f64::NAN);
        for (label, rust, official) in results {
            for (writer, row) in [("Rust", rust), ("official (Node)", official)] {
                match row {
                    Some(r) => {
                        let typing = r.writer_seconds.map(|t| format!("{t:.2} s")).unwrap_or_else(|| "—".into());
                        let _ = writeln!(s, "| {label} | {writer} | {:.2} s | {:.2} s | {} | {typing} |", r.seconds, r.server_cpu, ratio(r.seconds, lim));
                    }
                    None => {
                        let _ = writeln!(s, "| {label} | {writer} | failed | — | — | — |");
                    }
                }
            }
        }
        if let Some(l) = limit {
            let _ = writeln!(s, "| bare automerge (limit) | — | {:.2} s | — | 1.00× | — |", l.seconds);
        }
        s.push('\n');
        s
    }

    pub fn many(results: &[(&str, scenarios::docs::ManyRow)], typing: Duration) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "## Many documents
");
        let docs = results.first().map(|r| r.1.documents).unwrap_or(0);
        let _ = writeln!(s, "{docs} documents, each with one writer and one reader (2,000 connections at full size), every writer making 2 edits/s for {:.0} s. Latency is writer → reader; RSS is the server's at the end of the typing.
", typing.as_secs_f64());
        let _ = writeln!(s, "| server | edits | delivered | p50 | p99 | server CPU s / 1000 edits | server RSS | driver load |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for (label, r) in results {
            let _ = writeln!(s, "| {label} | {} | {:.1} % | {} | {} | {:.3} | {:.0} MiB | {:.0} % |", r.edits, r.delivered * 100.0, ms(r.p50_ms), ms(r.p99_ms), r.server_cpu_per_1000, r.rss_mib, r.driver_load * 100.0);
        }
        s.push('\n');
        s
    }

    pub fn durable(results: &[(Kind, scenarios::docs::DurableRow)], duration: Duration) -> String {
        let mut s = String::new();
        let writers = results.first().map(|r| r.1.writers).unwrap_or(0);
        let _ = writeln!(s, "## Durable acknowledgements
");
        let _ = writeln!(s, "{writers} writers, each on its own document, each making a change, waiting until the server's sync reply includes it, and repeating, for {:.0} s. konsens acknowledges only what is flushed (fsync) to disk; *no group commit* flushes once per write. The stock server and samod acknowledge what is in memory and write to disk afterwards, so their figures are not durable acknowledgements.
", duration.as_secs_f64());
        let _ = writeln!(s, "Driver load is the driver's share of its core (core 0) while writing, server load the server's CPU seconds per second (1.0 = its one core busy): whichever is near 100 % limits the rate.
");
        let _ = writeln!(s, "| server | acknowledged changes/s | p50 | p99 | durable when acknowledged | driver load | server load |");
        let _ = writeln!(s, "|---|---:|---:|---:|---|---:|---:|");
        for (kind, r) in results {
            let durable = matches!(kind, Kind::Konsens | Kind::KonsensNoGroup);
            let _ = writeln!(s, "| {} | {:.0} | {} | {} | {} | {:.0} % | {:.0} % |", kind.label(), r.per_second, ms(r.p50_ms), ms(r.p99_ms), if durable { "yes (fsync)" } else { "no" }, r.driver_load * 100.0, r.server_load * 100.0);
        }
        s.push('\n');
        s
    }

    pub fn reconnect(results: &[(&str, Vec<scenarios::reconnect::Row>)]) -> String {
        let mut s = String::new();
        let n = results.first().and_then(|r| r.1.first()).map(|r| r.reconnects).unwrap_or(0);
        let _ = writeln!(s, "## Reconnect
");
        let _ = writeln!(s, "One real Automerge participant holding the friendsforever document leaves, makes 3 edits offline and comes back, {n} times. Like automerge-repo it keeps its sync state in its storage and announces its `storageId`. *Same storage*: it returns with the storage id it left with, so a server that keeps its side of the sync state per storage resumes from the heads they shared; *new storage*: a storage id the server has never met, so it starts from nothing. Bytes and messages are what the server sent until it acknowledged the offline edits (medians); the time includes connecting and the handshake.
");
        let _ = writeln!(s, "| server | storage | bytes from the server | messages | p50 | server CPU per reconnect |");
        let _ = writeln!(s, "|---|---|---:|---:|---:|---:|");
        for (label, rows) in results {
            for r in rows {
                let _ = writeln!(
                    s,
                    "| {label} | {} | {:.0} | {:.0} | {} | {:.2} ms |",
                    if r.same_storage { "same" } else { "new" },
                    r.server_bytes,
                    r.server_messages,
                    ms(Some(r.p50_ms)),
                    r.server_cpu_ms
                );
            }
        }
        s.push('\n');
        s
    }

    pub fn cold(results: &[(&str, scenarios::docs::ColdRow)]) -> String {
        let mut s = String::new();
        let docs = results.first().map(|r| r.1.documents).unwrap_or(0);
        let _ = writeln!(s, "## Cold start
");
        let _ = writeln!(s, "{docs} documents on disk, written by the driver straight into each server's own storage before it starts (konsens: one snapshot chunk per document through `konsens-store`'s `ChunkStore`; the JS server and samod: one snapshot file per document in the layout they share, `DIR/<id[..2]>/<id[2..]>/snapshot/<heads hash>`), each the document saved whole, as the server would have stored it. Creating them through the JS server or samod took 15–25 minutes, which measured creation rather than start. Start is from spawning the process until it accepts connections; first sync is connect + handshake + `request` of a document nobody has loaded, until its content arrives.
");
        let _ = writeln!(s, "| server | start | first sync of an unloaded document | RSS after start |");
        let _ = writeln!(s, "|---|---:|---:|---:|");
        for (label, r) in results {
            let _ = writeln!(s, "| {label} | {:.0} ms | {} | {:.0} MiB |", r.start_ms, ms(Some(r.first_sync_ms)), r.rss_mib);
        }
        s.push('\n');
        s
    }

    pub fn idle(results: &[(&str, scenarios::docs::IdleRow)]) -> String {
        let mut s = String::new();
        let n = results.first().map(|r| r.1.connections).unwrap_or(0);
        let _ = writeln!(s, "## Idle connections
");
        let _ = writeln!(s, "{n} WebSocket connections that complete the `join`/`peer` handshake and stay idle. Memory per connection is the growth of the server's RSS divided by the connections.
");
        let _ = writeln!(s, "| server | RSS before | RSS with {n} connections | per connection |");
        let _ = writeln!(s, "|---|---:|---:|---:|");
        for (label, r) in results {
            let _ = writeln!(s, "| {label} | {:.0} MiB | {:.0} MiB | {:.1} KiB |", r.rss_before_mib, r.rss_after_mib, r.kib_per_connection);
        }
        s.push('\n');
        s
    }

    mod cluster;
    mod official;
    pub use cluster::cluster;
    pub use official::{OfficialSize, official};

    pub fn frames(official: &scenarios::official::Pattern, light: &scenarios::official::Pattern) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "## Frames per keystroke: official client and light peers\n");
        let _ = writeln!(
            s,
            "Recorded through konsens on the 20,000-keystroke text: one typist types {} keystrokes at {} per second, {} participants watch; every frame from the first recorded keystroke until the server is idle again, per keystroke (a watcher's counts per watcher). The official client's frames are taken at its WebSocket adapter (`send`/`receiveMessage`), the light peers' at the bench's socket. `tests/tests/bench_frames.rs` checks that the patterns agree.\n",
            official.keystrokes,
            workshop::RATE_PER_TYPIST,
            official.watchers
        );
        let _ = writeln!(s, "**Official automerge-repo 2.5.6 client:**\n");
        s.push_str(&official.markdown());
        let _ = writeln!(s, "\n**Light peers:**\n");
        s.push_str(&light.markdown());
        let diff = official.differences(light, scenarios::official::PATTERN_TOLERANCE);
        if diff.is_empty() {
            let _ = writeln!(s, "\nPatterns match: yes (message types, counts, heads, `have`/`need` content within {} messages per keystroke, bloom filter sizes within half).\n", scenarios::official::PATTERN_TOLERANCE);
        } else {
            let _ = writeln!(s, "\nPatterns match: no. Differences (official vs light):\n");
            for d in diff {
                let _ = writeln!(s, "- {d}");
            }
            s.push('\n');
        }
        s
    }

    pub fn workshop(config: &workshop::Config, results: &[(&str, Vec<workshop::Row>)]) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "## Workshop\n");
        let _ = writeln!(
            s,
            "One recommendation holding the friendsforever history (two authors, concurrent), {} participants connected, k typing {} keystrokes/s each for {:.0} s. Latency is keystroke → each other participant; *sustained* means every keystroke arrived and p99 < {} ms.\n",
            config.participants,
            workshop::RATE_PER_TYPIST,
            config.typing.as_secs_f64(),
            workshop::SUSTAINED_P99_MS
        );
        let _ = writeln!(s, "| server | largest k sustained | server CPU per keystroke at k=8 | vs konsens | participant CPU per keystroke at k=8 |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|");
        let konsens_cpu8 = results
            .iter()
            .find(|(l, _)| *l == Kind::Konsens.label())
            .and_then(|(_, rows)| rows.iter().find(|r| r.k == 8 && !r.skipped).map(|r| r.server_cpu_per_1000));
        for (label, rows) in results {
            let best = rows.iter().filter(|r| r.sustained()).map(|r| r.k).max();
            let cpu8 = rows.iter().find(|r| r.k == 8 && !r.skipped).map(|r| r.server_cpu_per_1000);
            let ratio = match (cpu8, konsens_cpu8) {
                (Some(c), Some(k)) if k > 0.0 => format!("{:.1}×", c / k),
                _ => "—".into(),
            };
            let participant8 = rows.iter().find(|r| r.k == 8 && !r.skipped).and_then(|r| r.participant_ms_per_keystroke);
            let _ = writeln!(
                s,
                "| {label} | {} | {} | {ratio} | {} |",
                best.map(|k| k.to_string()).unwrap_or_else(|| "none".into()),
                cpu8.map(|c| format!("{:.2} ms", c)).unwrap_or_else(|| "—".into()),
                participant8.map(|c| format!("{:.2} ms", c)).unwrap_or_else(|| "—".into()),
            );
        }
        let _ = writeln!(s, "\n| server | k | keystrokes/s | keystrokes | delivered | p50 | p99 | server CPU s / 1000 keystrokes | participant CPU / keystroke | driver load | sustained |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        for (label, rows) in results {
            for r in rows {
                if r.skipped {
                    let _ = writeln!(s, "| {label} | {} | {} | — | — | — | — | — | — | — | not run (saturated at a smaller k) |", r.k, r.room_rate);
                    continue;
                }
                let _ = writeln!(
                    s,
                    "| {label} | {} | {} | {} | {:.1} % | {} | {} | {:.3} | {} | {:.0} % | {} |",
                    r.k,
                    r.room_rate,
                    r.keystrokes,
                    r.delivered * 100.0,
                    ms(r.p50_ms),
                    ms(r.p99_ms),
                    r.server_cpu_per_1000,
                    ms(r.participant_ms_per_keystroke),
                    r.driver_load * 100.0,
                    if r.p50_ms.is_none() && r.delivered >= 1.0 { "(in-process)" } else if r.sustained() { "yes" } else { "no" },
                );
            }
        }
        s.push('\n');
        s
    }
}
