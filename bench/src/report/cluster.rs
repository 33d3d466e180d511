//! The report's section on several nodes: one table of every configuration
//! and drive, the failover time, and the cost model the figures give.

use std::fmt::Write as _;

use crate::scenarios::cluster::{Config, Drive, Owners, Results, Row, STOP_PATIENCE, Setup, Store};
use crate::stats::{median, ms};

pub fn cluster(config: &Config, results: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Several nodes\n");
    let _ = writeln!(
        s,
        "The *durable* drive ({} writers, each on its own document, each waiting for the durable acknowledgement of its change before the next, for {:.0} s) and the *many-docs* drive ({} documents, a writer and a reader each, 2 edits/s per writer for {:.0} s; its figures are edits delivered to the reader) against one node on sled, one node on PostgreSQL, and three nodes on one PostgreSQL (`--lease-ms {}`). The scenario's connections are dealt round-robin over the nodes (connection n to node n mod 3; in many-docs, document n's writer is connection 2n and its reader 2n + 1). One throwaway PostgreSQL cluster, a fresh database for every row. All nodes and PostgreSQL run on the server core, so three nodes share the one core a single node had.\n",
        config.writers,
        config.duration.as_secs_f64(),
        config.documents,
        config.typing.as_secs_f64(),
        config.lease.as_millis()
    );
    let _ = writeln!(
        s,
        "A document's owner is the node through which it was first touched. *Owner = writer's node*: each durable writer creates its own document, so its own node owns it and nothing is relayed; three nodes are then three single nodes sharing one database. *Owners spread*: document n is created through node ⌊n / 3⌋ mod 3 and written through node n mod 3, so 2/3 of the writers write through a relay, as clients dealt out by a load balancer would. In many-docs the writer creates the document on its node and the reader, always on another node, is relayed: half the connections.\n"
    );
    let _ = writeln!(
        s,
        "Server CPU is all nodes' CPU per change (user + system) and their load in CPU seconds per second (sum, then per node); PostgreSQL's CPU is its processes' (backends, WAL writer, …). Relayed messages are the nodes' `konsens_relayed_messages_total` (both directions) per change; commit p50 is the median group commit (`konsens_commit_seconds`, interpolated in its bucket); documents owned are each node's `konsens_documents_owned` at the end of the window.\n"
    );
    let _ = writeln!(s, "| configuration | drive | changes/s | p50 | p99 | lost | server CPU / change | server load (per node) | PostgreSQL CPU / change | relayed messages / change | commit p50 | documents owned per node |");
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|");
    for r in &results.rows {
        let seconds = r.seconds.max(1e-9);
        let per_node = if r.node_cpu.len() > 1 {
            format!(" ({})", r.node_cpu.iter().map(|c| format!("{:.0} %", c / seconds * 100.0)).collect::<Vec<_>>().join(" / "))
        } else {
            String::new()
        };
        let postgres = r.postgres_cpu.map(|c| us(c / r.changes.max(1.0) * 1e3)).unwrap_or_else(|| "—".into());
        let owned = r.owned.iter().map(|o| format!("{o:.0}")).collect::<Vec<_>>().join(" / ");
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {} | {} | {} | {} | {:.0} %{per_node} | {postgres} | {:.2} | {} | {} |",
            r.setup.label(),
            r.drive.label(),
            r.per_second,
            ms(r.p50_ms),
            ms(r.p99_ms),
            r.lost,
            us(r.cpu_ms_per_change()),
            r.cpu() / seconds * 100.0,
            r.relayed_per_change(),
            ms(r.commit_p50_ms),
            if r.setup.store == Store::Sled { "—".into() } else { owned },
        );
    }
    s.push('\n');

    let _ = writeln!(s, "**Failover.** Three nodes on PostgreSQL, `--lease-ms {}`. A document is created through node 0, which owns it; {} writers, half on node 1 and half on node 2, write to it through relays, each waiting for the acknowledgement of its change before the next. After 1 s node 0 is killed with `kill -9`. Failover time is, per writer, from the kill until a change it made after the kill is acknowledged (one round trip more than the change that was in flight).\n", config.lease.as_millis(), 2 * config.failover_writers_per_node);
    match (&results.failover, &results.failover_error) {
        (Some(f), _) => {
            let mut times = f.times_ms.clone();
            let max = times.iter().copied().fold(f64::NAN, f64::max);
            let _ = writeln!(
                s,
                "- acknowledged again after: median {}, max {} (lease {} ms); new owner: {}; changes acknowledged to the writers: {}, of them not found afterwards by a fresh reader: **{}**\n",
                ms(median(&mut times)),
                ms(Some(max).filter(|m| m.is_finite())),
                f.lease.as_millis(),
                f.new_owner.map(|n| format!("node {n}")).unwrap_or_else(|| "none seen".into()),
                f.acknowledged,
                f.lost
            );
        }
        (None, Some(e)) => {
            let _ = writeln!(s, "- failed: {}\n", e.lines().next().unwrap_or(""));
        }
        (None, None) => {}
    }
    for (store, stops) in [("sled", results.sled_stops), ("PostgreSQL", results.postgres_stops)] {
        if stops.killed > 0 {
            let _ = writeln!(
                s,
                "Of the {} nodes on {store} stopped with SIGTERM after their rows, {} did not exit within {} s and were killed.\n",
                stops.stopped,
                stops.killed,
                STOP_PATIENCE.as_secs()
            );
        }
    }
    s.push_str(&model(&results.rows));
    s
}

/// A CPU cost given in ms, in µs (a change costs tens of them).
fn us(ms: f64) -> String {
    format!("{:.0} µs", ms * 1e3)
}

fn find(rows: &[Row], nodes: usize, store: Store, drive: Drive) -> Option<&Row> {
    rows.iter().find(|r| r.setup == Setup { nodes, store } && r.drive == drive)
}

/// What the rows say about N nodes of M cores: each document costs its owner
/// what it costs a single node, and every relayed message costs the nodes
/// what the 3-node rows spent beyond the 1-node PostgreSQL row.
fn model(rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "**The model.** On this machine every node and PostgreSQL share one core, so three nodes cannot acknowledge more than one: the rows show what a cluster costs, not what it gains. What carries over to real machines:\n");
    let single = find(rows, 1, Store::Postgres, Drive::Durable(Owners::Writers));
    let spread = find(rows, 3, Store::Postgres, Drive::Durable(Owners::Spread));
    let local = find(rows, 3, Store::Postgres, Drive::Durable(Owners::Writers));
    let many1 = find(rows, 1, Store::Postgres, Drive::Many);
    let many3 = find(rows, 3, Store::Postgres, Drive::Many);
    if let Some(spread) = spread {
        let owned = spread.owned.iter().map(|o| format!("{o:.0}")).collect::<Vec<_>>().join(" / ");
        let _ = writeln!(s, "- **Documents per node.** A document lives on its owner only; with owners spread, the nodes owned {owned} documents. Each costs its owner what it costs a single node (the owner loads it, applies, commits and answers), so the documents, and the CPU they need, divide over the nodes.");
    }
    // Relay cost per message, from each drive that relayed.
    let mut relay_costs = Vec::new();
    for (name, base, cluster) in [("durable, owners spread", single, spread), ("many-docs", many1, many3)] {
        if let (Some(base), Some(cluster)) = (base, cluster)
            && cluster.relayed_per_change() > 0.05
        {
            let extra = cluster.cpu_ms_per_change() - base.cpu_ms_per_change();
            let per_message = extra / cluster.relayed_per_change();
            relay_costs.push(per_message);
            let _ = writeln!(
                s,
                "- **Relay cost ({name}).** {} of server CPU per change on three nodes against {} on one node (PostgreSQL), with {:.2} relayed messages per change: {} of extra CPU per relayed message (both nodes' sides of the link).",
                us(cluster.cpu_ms_per_change()),
                us(base.cpu_ms_per_change()),
                cluster.relayed_per_change(),
                us(per_message)
            );
        }
    }
    if let (Some(single), Some(local)) = (single, local) {
        let _ = writeln!(
            s,
            "- **Nothing relayed** (owner = writer's node): {} of server CPU per change on three nodes against {} on one: the difference is what three processes sharing a core and renewing three sets of leases add without relaying.",
            us(local.cpu_ms_per_change()),
            us(single.cpu_ms_per_change())
        );
        if let Some(spread) = spread
            && spread.relayed_per_change() > 0.05
        {
            let _ = writeln!(
                s,
                "- **Relay cost net of that** (owners spread against owner = writer's node, both on three nodes): {} per relayed message. The model below uses the larger figure above, which counts the extra processes as part of relaying.",
                us((spread.cpu_ms_per_change() - local.cpu_ms_per_change()) / spread.relayed_per_change())
            );
        }
    }
    if let (Some(single), Some(spread), Some(&r)) = (single, spread, relay_costs.first()) {
        let c = single.cpu_ms_per_change();
        // Relayed messages per change whose client is not on the owner
        // (2/3 of them in the spread row).
        let k = spread.relayed_per_change() / (2.0 / 3.0);
        let p = single.postgres_cpu.map(|p| p / single.changes.max(1.0) * 1e3);
        let _ = writeln!(
            s,
            "- **N nodes of M cores.** A change costs its owner c = {} (durable drive, one node on PostgreSQL); with clients dealt out at random, (N − 1)/N of them are on another node and add k = {k:.2} relayed messages of r = {} each (the durable relay cost). If the nodes' CPU is the limit and a node uses its M cores, the cluster acknowledges about N·M / (c + (N − 1)/N · k · r) changes per second{}:",
            us(c),
            us(r),
            p.map(|p| format!(", as long as PostgreSQL keeps up (it spent {} of CPU per change here, in group commits of many writes; it must have that for every change of the whole cluster)", us(p))).unwrap_or_default()
        );
        let _ = writeln!(s);
        let _ = writeln!(s, "| N nodes | M cores each | server CPU per change | changes/s (CPU-bound) | PostgreSQL cores needed |");
        let _ = writeln!(s, "|---:|---:|---:|---:|---:|");
        for (n, m) in [(1.0, 2.0), (3.0, 4.0), (3.0, 8.0), (5.0, 8.0)] {
            let per_change = c + (n - 1.0) / n * k * r;
            let rate = n * m * 1e3 / per_change.max(1e-6);
            let pg = p.map(|p| format!("{:.1}", rate * p / 1e3)).unwrap_or_else(|| "—".into());
            let _ = writeln!(s, "| {n:.0} | {m:.0} | {} | {rate:.0} | {pg} |", us(per_change));
        }
        let _ = writeln!(s, "\nThe durable drive's rate at a fixed number of writers is bound by the commit latency (each writer waits for its own), not by CPU, until the CPU is busy; the table is the CPU bound.");
    }
    s.push('\n');
    s
}
