//! *Reconnect*: a participant comes back from the train. One real Automerge
//! peer holds the workshop document (friendsforever), syncs, leaves, makes a
//! few edits offline and reconnects, again and again. Like automerge-repo it
//! keeps its sync state (the shared heads) in its storage and announces its
//! `storageId`. A server that keeps its side of that state per storage
//! answers with a bloom filter of what changed since; one that does not
//! summarises the whole history. The same run with a new storage id each
//! time shows the cost of starting over.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge};
use konsens_sync::DocumentId;

use crate::peer::{self, PATIENCE};
use crate::servers::{Kind, Server};
use crate::stats::median;
use crate::wire::{self, Incoming};

/// Offline edits per absence.
const OFFLINE_EDITS: usize = 3;

#[derive(Debug, Clone)]
pub struct Row {
    /// The peer came back with the storage id it left with.
    pub same_storage: bool,
    pub reconnects: usize,
    /// Median bytes of sync data the server sent per reconnect.
    pub server_bytes: f64,
    /// Median sync messages the server sent until it acknowledged the offline edits.
    pub server_messages: f64,
    /// Median connect + handshake + sync until acknowledged.
    pub p50_ms: f64,
    pub server_cpu_ms: f64,
}

pub fn run_server(kind: Kind, base: &Automerge, reconnects: usize, data_dir: &std::path::Path) -> Result<Vec<Row>> {
    let server = Server::start(kind, data_dir, "127.0.0.1:0")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let rows = runtime.block_on(async {
        let mut rows = Vec::new();
        for (n, same_storage) in [true, false].into_iter().enumerate() {
            let id = DocumentId::from_bytes([0x5e, 0xc0, n as u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            rows.push(drive(&server, base, id, same_storage, reconnects).await?);
        }
        Ok::<_, anyhow::Error>(rows)
    });
    let rows = rows.with_context(|| format!("reconnect against {}:\n{}", kind.label(), server.log_tail()))?;
    server.stop()?;
    Ok(rows)
}

async fn drive(server: &Server, base: &Automerge, id: DocumentId, same_storage: bool, reconnects: usize) -> Result<Row> {
    peer::seed(&server.url, "reconnect-seed", id, base).await?;
    let text = crate::trace::text_obj(base)?;
    let mut laptop = base.fork().with_actor(ActorId::from(b"laptop".to_vec()));
    let mut kept = sync::State::new().encode();
    // The first visit syncs from scratch and is not measured.
    let storage = |i: usize| if same_storage { "laptop-store".to_owned() } else { format!("laptop-store-{i}") };
    visit(&server.url, id, &mut laptop, &mut kept, &storage(0), 0).await?;
    let cpu_before = server.cpu_seconds()?;
    let (mut bytes, mut messages, mut times) = (Vec::new(), Vec::new(), Vec::new());
    for i in 1..=reconnects {
        for e in 0..OFFLINE_EDITS {
            let mut tx = laptop.transaction();
            tx.splice_text(&text, 0, 0, &format!("{i}.{e} "))?;
            tx.commit();
        }
        let started = Instant::now();
        let (b, m) = visit(&server.url, id, &mut laptop, &mut kept, &storage(i), i).await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        bytes.push(b as f64);
        messages.push(m as f64);
    }
    let server_cpu_ms = (server.cpu_seconds()? - cpu_before) * 1000.0 / reconnects as f64;
    Ok(Row {
        same_storage,
        reconnects,
        server_bytes: median(&mut bytes).unwrap_or(f64::NAN),
        server_messages: median(&mut messages).unwrap_or(f64::NAN),
        p50_ms: median(&mut times).unwrap_or(f64::NAN),
        server_cpu_ms,
    })
}

/// Connect, sync until the server advertises our heads, keep the sync state
/// as automerge-repo does, leave. Returns the bytes and messages the server sent.
async fn visit(url: &str, id: DocumentId, doc: &mut Automerge, kept: &mut Vec<u8>, storage: &str, n: usize) -> Result<(usize, usize)> {
    let (mut tx, mut rx) = wire::connect_as(url, &format!("laptop-tab-{n}"), Some(storage)).await?;
    let mut state = sync::State::decode(kept)?;
    let first = doc.generate_sync_message(&mut state).context("the laptop has something to say")?;
    tx.sync(id, first.encode()).await?;
    let (mut bytes, mut messages) = (0, 0);
    tokio::time::timeout(PATIENCE, async {
        loop {
            match rx.next().await? {
                None => bail!("server closed the connection"),
                Some(Incoming::Sync { document_id, data }) if document_id == id => {
                    bytes += data.len();
                    messages += 1;
                    let message = sync::Message::decode(&data)?;
                    let advertised = message.heads.clone();
                    doc.receive_sync_message(&mut state, message)?;
                    if let Some(m) = doc.generate_sync_message(&mut state) {
                        tx.sync(id, m.encode()).await?;
                    }
                    if advertised == doc.get_heads() {
                        return Ok(());
                    }
                }
                Some(_) => {}
            }
        }
    })
    .await
    .context("the server did not acknowledge the offline edits")??;
    *kept = state.encode();
    tx.close().await;
    Ok((bytes, messages))
}
