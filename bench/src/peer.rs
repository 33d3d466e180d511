//! Peers of the load driver built on `wire` and `light`.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use automerge::Automerge;
use automerge::sync::{self, SyncDoc};
use konsens_sync::DocumentId;

use crate::wire::{self, Incoming};

/// Bound on any single wait for the server, so a stuck run fails instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// Sync a whole document to the server with real Automerge sync, until the
/// server's heads equal ours (for konsens: until it is on disk).
pub async fn seed(url: &str, peer_id: &str, document_id: DocumentId, doc: &Automerge) -> Result<()> {
    let (mut tx, mut rx) = wire::connect(url, peer_id).await?;
    let mut state = sync::State::new();
    let first = doc.generate_sync_message(&mut state).context("nothing to send")?;
    tx.sync(document_id, first.encode()).await?;
    let ours = doc.get_heads();
    let mut doc = doc.clone();
    tokio::time::timeout(PATIENCE, async {
        loop {
            match rx.next().await? {
                None => bail!("server closed the connection while seeding"),
                Some(Incoming::Sync { document_id: d, data }) if d == document_id => {
                    let message = sync::Message::decode(&data)?;
                    doc.receive_sync_message(&mut state, message)?;
                    if let Some(m) = doc.generate_sync_message(&mut state) {
                        tx.sync(document_id, m.encode()).await?;
                    }
                    if state.their_heads.as_ref() == Some(&ours) {
                        return Ok(());
                    }
                }
                Some(_) => {}
            }
        }
    })
    .await
    .context("seeding took too long")??;
    tx.close().await;
    Ok(())
}
