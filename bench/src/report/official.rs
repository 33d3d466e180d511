//! The report's section on the workshop with official clients: rates, one
//! row per server, text, k and rate with both client kinds side by side,
//! server cost by text size, and the official clients' frames.

use std::fmt::Write as _;

use crate::scenarios::official::{CALIBRATION_ROUNDS, Config, DRIVER_LOAD_LIMIT, OfficialRow, Pace, Rates, SUSTAINABLE_LOAD};
use crate::scenarios::workshop::{RATE_PER_TYPIST, Row};
use crate::servers::Kind;
use crate::stats::ms;

use super::ratio;

/// One text size's results: the rates chosen for it and, per server, its
/// label, the light peers' rows and the official clients' rows.
pub struct OfficialSize<'a> {
    pub size: usize,
    pub rates: Rates,
    pub results: Vec<(&'a str, Vec<Row>, Vec<OfficialRow>)>,
}

impl OfficialSize<'_> {
    fn light<'r>(light: &'r [Row], o: &OfficialRow) -> Option<&'r Row> {
        light.iter().find(|r| r.k == o.row.k && same_rate(r.room_rate, o.row.room_rate) && !r.skipped)
    }

    /// The light peers skipped this row: they had saturated at a lower rate.
    fn light_skipped(light: &[Row], o: &OfficialRow) -> bool {
        light.iter().any(|r| r.k == o.row.k && same_rate(r.room_rate, o.row.room_rate) && r.skipped)
    }
}

fn same_rate(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(1.0)
}

fn text_label(size: usize) -> String {
    if size % 1000 == 0 { format!("{}k", size / 1000) } else { size.to_string() }
}

fn rate_label(pace: Pace, room_rate: f64) -> String {
    format!("{} {}/s", pace.label(), trim(room_rate))
}

/// A rate as short as it is exact enough: 40, 1.5, 0.34.
fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn cpu(r: Option<&Row>) -> String {
    r.map(|r| format!("{:.1} ms", r.server_cpu_per_1000)).unwrap_or_else(|| "—".into())
}

fn latency(r: Option<&Row>) -> String {
    r.map(|r| format!("{} / {}", ms(r.p50_ms), ms(r.p99_ms))).unwrap_or_else(|| "—".into())
}

fn delivered(r: Option<&Row>) -> String {
    r.map(|r| format!("{:.1} %", r.delivered * 100.0)).unwrap_or_else(|| "—".into())
}

fn load(r: Option<&Row>) -> String {
    r.map(|r| format!("{:.0} %", r.driver_load * 100.0)).unwrap_or_else(|| "—".into())
}

pub fn official(config: &Config, sizes: &[OfficialSize<'_>]) -> String {
    let mut s = String::new();
    let texts: Vec<String> = sizes.iter().map(|z| format!("{} single-keystroke changes", z.size)).collect();
    let _ = writeln!(s, "## Workshop with official clients\n");
    let _ = writeln!(
        s,
        "One recommendation whose text holds {}, {} participants connected, k of them typing. \
*Official* participants are `@automerge/automerge-repo` 2.5.6 clients in Node (`tests/js/official-workshop.mjs`: one `Repo` per participant, its own WebSocket and peer id, no storage; {} Node process(es) on the driver's core); a keystroke is `handle.change` + `splice`, and its latency ends at a watcher's `change` event holding its hash. \
*Light* participants are the bench's light peers on the same document, same k, rate and keystrokes (the workshop scenario's driver). \
Server CPU per keystroke is the server's CPU from the first keystroke until every participant held every keystroke (or the {:.0} s drain ended), divided by the keystrokes. Driver load is the Node processes' (official) or the Rust driver's (light) CPU while typing, as a share of one core.\n",
        texts.join(" or "),
        config.participants,
        config.processes,
        config.drain.as_secs_f64(),
    );
    let _ = writeln!(
        s,
        "**Rates.** The rate is keystrokes per second of the whole room, split evenly over the k typists; every row types at least {} keystrokes. {} \
A row is *valid* when every keystroke reached every participant and the Node driver stayed under {:.0} % of its core; otherwise the clients lagged, and a server's cost is that of lagging clients.\n",
        config.keystrokes,
        match config.rate {
            Some(r) => format!("This run used one rate, given on the command line: {}/s.", trim(r)),
            None => format!(
                "Each k runs at the *human* rate ({RATE_PER_TYPIST}/s per typist) and at a *sustainable* one: before the first server's rows of a k, one typist types {}·k keystrokes one at a time, each waited for until every client holds it (every client current, every keystroke in a message of its own, as at that rate), which gives the Node driver's CPU per keystroke; the sustainable rate is {:.0} % of a core divided by that, rounded down, and the same for every server and for the light peers. When it is above the human rate, the human row alone runs.",
                CALIBRATION_ROUNDS,
                SUSTAINABLE_LOAD * 100.0
            ),
        },
        DRIVER_LOAD_LIMIT * 100.0,
    );
    let _ = writeln!(s, "| text | k | Node driver CPU / keystroke (all clients current) | rates (whole room) |");
    let _ = writeln!(s, "|---|---:|---:|---|");
    for z in sizes {
        for (k, choice) in &z.rates.by_k {
            let rates: Vec<String> = choice.rates.iter().map(|r| rate_label(r.pace, r.room)).collect();
            let _ = writeln!(s, "| {} | {k} | {} | {} |", text_label(z.size), ms(choice.node_ms_per_keystroke), rates.join(", "));
        }
    }
    s.push('\n');

    let _ = writeln!(
        s,
        "| server | text | k | rate | keystrokes | light: server CPU / keystroke | light: p50 / p99 | light: delivered | official: server CPU / keystroke | official: p50 / p99 | official: delivered | official ÷ light | official vs konsens | driver load light / official | Node CPU / keystroke | valid |"
    );
    let _ = writeln!(s, "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for z in sizes {
        let konsens = z.results.iter().find(|r| r.0 == Kind::Konsens.label());
        for (label, light, official) in &z.results {
            for o in official {
                let l = OfficialSize::light(light, o);
                let ko = konsens.and_then(|r| r.2.iter().find(|x| x.row.k == o.row.k && x.pace == o.pace));
                let _ = writeln!(
                    s,
                    "| {label} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {:.0} ms | {} |",
                    text_label(z.size),
                    o.row.k,
                    rate_label(o.pace, o.row.room_rate),
                    o.row.keystrokes,
                    if OfficialSize::light_skipped(light, o) { "not run (saturated at a lower rate)".to_owned() } else { cpu(l) },
                    latency(l),
                    delivered(l),
                    cpu(Some(&o.row)),
                    latency(Some(&o.row)),
                    delivered(Some(&o.row)),
                    l.map(|l| ratio(o.row.server_cpu_per_1000, l.server_cpu_per_1000)).unwrap_or_else(|| "—".into()),
                    ko.map(|k| ratio(o.row.server_cpu_per_1000, k.row.server_cpu_per_1000)).unwrap_or_else(|| "—".into()),
                    load(l),
                    load(Some(&o.row)),
                    o.node_ms_per_keystroke,
                    if o.valid() {
                        "yes".to_owned()
                    } else if !o.complete {
                        "no (not all delivered)".to_owned()
                    } else {
                        "no (driver saturated)".to_owned()
                    },
                );
            }
            // Light rows whose server failed the official run still show.
            if official.is_empty() {
                for l in light.iter().filter(|r| !r.skipped) {
                    let _ = writeln!(
                        s,
                        "| {label} | {} | {} | {}/s | {} | {} | {} | {} | — | — | — | — | — | {} / — | — | — |",
                        text_label(z.size),
                        l.k,
                        trim(l.room_rate),
                        l.keystrokes,
                        cpu(Some(l)),
                        latency(Some(l)),
                        delivered(Some(l)),
                        load(Some(l)),
                    );
                }
            }
        }
    }
    s.push('\n');

    if let (Some(small), Some(large)) = (sizes.first(), sizes.last())
        && sizes.len() > 1
    {
        s.push_str(&by_size(small, large));
    }

    let _ = writeln!(
        s,
        "What the official clients sent and received during each row (frames taken at their WebSocket adapter; typists' counts per keystroke for all typists together, watchers' per keystroke and watcher; \"mean sync bytes\" is the sync message, without the envelope):\n"
    );
    for z in sizes {
        for (label, _, official) in &z.results {
            for o in official {
                let _ = writeln!(
                    s,
                    "<details><summary>{label}, {} text, k = {}, {}: official clients' frames per keystroke</summary>\n",
                    text_label(z.size),
                    o.row.k,
                    rate_label(o.pace, o.row.room_rate)
                );
                s.push_str(&o.pattern.markdown());
                let _ = writeln!(s, "\n</details>\n");
            }
        }
    }
    s
}

/// Server CPU per keystroke on the small and the large text, per server, k
/// and kind of rate, with the ratio large ÷ small.
fn by_size(small: &OfficialSize<'_>, large: &OfficialSize<'_>) -> String {
    let mut s = String::new();
    let (a, b) = (text_label(small.size), text_label(large.size));
    let _ = writeln!(s, "### Server CPU per keystroke by text size\n");
    let _ = writeln!(
        s,
        "The same rows on the {a} and the {b} text. A sustainable rate is chosen per text, so the two may differ (both shown); the human rate is the same. Rows that were not valid are marked with *.\n"
    );
    let _ = writeln!(s, "| server | k | rate ({a} / {b}) | light: {a} | light: {b} | light: {b} ÷ {a} | official: {a} | official: {b} | official: {b} ÷ {a} |");
    let _ = writeln!(s, "|---|---:|---|---:|---:|---:|---:|---:|---:|");
    for (label, light_small, official_small) in &small.results {
        let Some((_, light_large, official_large)) = large.results.iter().find(|r| r.0 == *label) else { continue };
        for os in official_small {
            let Some(ol) = official_large.iter().find(|o| o.row.k == os.row.k && o.pace == os.pace) else { continue };
            let ls = OfficialSize::light(light_small, os);
            let ll = OfficialSize::light(light_large, ol);
            let mark = |o: &OfficialRow| format!("{:.1} ms{}", o.row.server_cpu_per_1000, if o.valid() { "" } else { "*" });
            let _ = writeln!(
                s,
                "| {label} | {} | {} {} / {} | {} | {} | {} | {} | {} | {} |",
                os.row.k,
                os.pace.label(),
                trim(os.row.room_rate),
                trim(ol.row.room_rate),
                cpu(ls),
                cpu(ll),
                match (ls, ll) {
                    (Some(x), Some(y)) => ratio(y.server_cpu_per_1000, x.server_cpu_per_1000),
                    _ => "—".into(),
                },
                mark(os),
                mark(ol),
                ratio(ol.row.server_cpu_per_1000, os.row.server_cpu_per_1000),
            );
        }
    }
    s.push('\n');
    s
}
