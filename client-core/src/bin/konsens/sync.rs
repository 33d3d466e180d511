//! `konsens sync` and `konsens refused`: talk to the server, and read what
//! it refused.

use std::io::{self, Write};
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;
use konsens_client::{RefusalReport, SyncProgress, SyncSummary};

use crate::output::{Render, warn};
use crate::values::doc_id;
use crate::{Context, SetAside, Unreachable};

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Servers to sync with (default: --server).
    urls: Vec<String>,
    /// Also fetch this document (and, for a process, its recommendations).
    #[arg(long = "doc")]
    docs: Vec<String>,
    /// Seconds to wait for a connection.
    #[arg(long, default_value_t = 10)]
    connect_timeout: u64,
}

pub async fn run(args: SyncArgs, cx: &Context) -> Result<()> {
    let extra = args.docs.iter().map(|d| doc_id(d)).collect::<Result<Vec<_>>>()?;
    let mut targets = args.urls;
    if targets.is_empty() {
        targets.extend(cx.server.clone());
    }
    if targets.is_empty() {
        bail!("no server to sync with: pass a URL, --server, KONSENS_SERVER, or `konsens join` one");
    }
    let mut set_aside = 0;
    for url in targets {
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            bail!("{url:?} is not a WebSocket URL (ws://host:port/sync)");
        }
        cx.ws.connect(&url);
        let summary = walk(cx, &url, &extra, Duration::from_secs(args.connect_timeout)).await;
        cx.ws.disconnect();
        let summary = summary?;
        set_aside += summary.refused.iter().map(|r| r.dropped).sum::<usize>();
        cx.out.show(&summary)?;
    }
    if set_aside > 0 {
        return Err(SetAside(set_aside).into());
    }
    Ok(())
}

/// One server: get online, then walk.
async fn walk(cx: &Context, url: &str, extra: &[konsens_sync::DocumentId], connect_timeout: Duration) -> Result<SyncSummary> {
    // Anything that keeps us from getting online is "unreachable" (exit 3).
    cx.ws
        .wait_online(connect_timeout)
        .await
        .map_err(|error| Unreachable { url: url.to_owned(), error })?;
    let bar = cx.out.progress();
    let summary = cx
        .ws
        .sync_all(url, extra, |event| match event {
            SyncProgress::Found(n) => bar.inc_length(n),
            SyncProgress::Done(_) => bar.inc(1),
            SyncProgress::Missing(id) => {
                bar.suspend(|| warn(format_args!("warning: the server does not have {}", id.url())));
                bar.inc(1);
            }
        })
        .await;
    bar.finish_and_clear();
    Ok(summary?)
}

impl Render for SyncSummary {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "synced {} document(s) with {}", self.documents, self.server)?;
        self.refused.iter().try_for_each(|r| refusal(r, out))
    }
}

/// What a refusal did, as `sync` and `refused` print it.
fn refusal(r: &RefusalReport, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "refused by the server ({}): {}", r.code, r.message)?;
    writeln!(out, "  set aside {} change(s) of yours to automerge:{}", r.dropped, r.document)?;
    if !r.reapplied.is_empty() {
        writeln!(out, "  made your later edits again and sent them: {}", r.reapplied.join(", "))?;
    }
    if !r.skipped.is_empty() {
        writeln!(out, "  not sent again: {}", r.skipped.join(", "))?;
    }
    if !r.wording.is_empty() {
        writeln!(out, "  your wording is kept: `konsens refused`")?;
    }
    Ok(())
}

/// `konsens refused`: the kept refusals with their wording.
#[derive(Debug, serde::Serialize)]
#[serde(transparent)]
struct Kept(Vec<RefusalReport>);

impl Render for Kept {
    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        if self.0.is_empty() {
            return writeln!(out, "no refused changes");
        }
        for r in &self.0 {
            writeln!(out, "{}  {}", konsens_model::report::iso_date(r.at), r.document)?;
            refusal(r, out)?;
            for (field, text) in &r.wording {
                writeln!(out, "  your {field}:\n    {}", text.replace('\n', "\n    "))?;
            }
        }
        Ok(())
    }
}

pub fn refused(cx: &Context) -> Result<()> {
    cx.out.show(&Kept(cx.ws.refusals()?))
}
