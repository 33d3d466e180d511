//! Several nodes on one PostgreSQL. Every node accepts any client; each
//! loaded document has exactly one owner node, which holds its lease (a row
//! with an epoch in PostgreSQL, claimed by compare-and-swap and renewed
//! while the document is loaded; the store fences every write by it). A node
//! whose clients talk about a document owned elsewhere relays for them over
//! a link to the owner, so access rules are decided once, by the owner.
//!
//! - `envelope`: the frames of a node-to-node link;
//! - `link`: this node's links to owner nodes;
//! - `proxy`: the relay task of one document owned elsewhere.
//!
//! The owner's side of a link is `relayed.rs`; where a document is placed
//! (owner here, or relay) is decided in `hub.rs` with [`Cluster::place`].

pub(crate) mod envelope;
pub(crate) mod link;
pub(crate) mod proxy;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use konsens_store::ChunkStore;
use konsens_sync::DocumentId;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::ClusterConfig;
use crate::metrics::Metrics;
use crate::util::lock;
use konsens_store::{Claim, Holder, LeaseConfig, Leases};
use link::{Link, LinkEvent, Links};

/// Where a document lives for this node.
#[derive(Debug)]
pub(crate) enum Placement {
    /// This node owns it (holds its lease).
    Here,
    /// Another node owns it; relay over this link.
    There(Arc<Link>, Holder),
}

/// A relayed document whose owner is watched.
#[derive(Debug)]
struct Watched {
    node: String,
    epoch: u64,
    events: mpsc::UnboundedSender<LinkEvent>,
}

#[derive(Debug)]
pub(crate) struct Cluster {
    pub leases: Leases,
    pub links: Links,
    /// How the other nodes reach this one; also how we recognise an earlier
    /// life of this node in a lease that has not expired yet.
    address: Option<String>,
    watched: std::sync::Mutex<HashMap<DocumentId, Watched>>,
    metrics: Arc<Metrics>,
}

impl Cluster {
    /// A cluster member when the store is shared (PostgreSQL), else `None`
    /// (sled: one node, nothing to fence).
    pub fn new(store: &ChunkStore, config: &ClusterConfig, max_frame_bytes: usize, metrics: Arc<Metrics>) -> Option<Self> {
        let node = uuid::Uuid::new_v4().to_string();
        let address = config.node_address.clone();
        let leases = store.leases(LeaseConfig { node, address: address.clone().unwrap_or_default(), ttl: config.lease })?;
        Some(Self {
            leases,
            links: Links::new(config.secret.clone(), max_frame_bytes, metrics.clone()),
            address,
            watched: std::sync::Mutex::default(),
            metrics,
        })
    }

    fn tick(&self) -> Duration {
        self.leases.ttl() / 3
    }

    /// Decide where a document lives: claim its lease, or find its owner and
    /// a link to it. Waits while the owner is unreachable and its lease has
    /// not expired (a dead owner's documents wait at most the lease time).
    /// `None`: the server is shutting down.
    pub async fn place(&self, document: DocumentId, shutdown: &CancellationToken) -> Option<Placement> {
        loop {
            let leases = self.leases.clone();
            let claim = tokio::task::spawn_blocking(move || leases.claim(&document)).await;
            let wait = match claim {
                Ok(Ok(Claim::Owned { epoch })) => {
                    self.metrics.lease_claimed();
                    tracing::debug!(%document, epoch, "lease claimed");
                    return Some(Placement::Here);
                }
                Ok(Ok(Claim::HeldBy(holder))) if holder.expired => Duration::ZERO,
                Ok(Ok(Claim::HeldBy(holder))) if self.address.as_deref() == Some(holder.address.as_str()) => {
                    // An earlier life of this node (it restarted): wait for its lease to run out.
                    holder.expires_in
                }
                Ok(Ok(Claim::HeldBy(holder))) => match self.links.get(&holder.address).await {
                    Ok(link) => return Some(Placement::There(link, holder)),
                    Err(error) => {
                        tracing::warn!(%document, owner = %holder.address, %error, "cannot reach the document's owner; waiting for its lease to run out");
                        holder.expires_in.min(self.tick()).max(Duration::from_millis(50))
                    }
                },
                Ok(Err(error)) => {
                    tracing::error!(%document, %error, "cannot claim the document's lease");
                    self.tick()
                }
                Err(error) => {
                    tracing::error!(%document, %error, "the lease task failed");
                    self.tick()
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => return None,
            }
        }
    }

    /// The owner here let the document go (idle): others may claim it at once.
    pub async fn release(&self, document: DocumentId) {
        let leases = self.leases.clone();
        match tokio::task::spawn_blocking(move || leases.release(&document)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%document, %error, "cannot release the lease; it runs out by itself"),
            Err(error) => tracing::warn!(%document, %error, "the lease task failed"),
        }
    }

    /// Tell `events` when the owner `holder` of a relayed document is gone
    /// (its lease expired or moved on).
    pub fn watch(&self, document: DocumentId, holder: &Holder, events: mpsc::UnboundedSender<LinkEvent>) {
        lock(&self.watched).insert(document, Watched { node: holder.node.clone(), epoch: holder.epoch, events });
    }

    pub fn unwatch(&self, document: DocumentId) {
        lock(&self.watched).remove(&document);
    }

    /// Renew this node's leases and watch the owners of relayed documents,
    /// every third of the lease time, until shutdown. `lost` gets the
    /// documents whose lease moved to another node.
    pub async fn maintain(self: Arc<Self>, lost: impl Fn(Vec<DocumentId>) + Send + 'static, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(self.tick());
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let leases = self.leases.clone();
            match tokio::task::spawn_blocking(move || leases.renew()).await {
                Ok(Ok(gone)) => {
                    self.metrics.lease_renewed(self.leases.held().len());
                    if !gone.is_empty() {
                        tracing::warn!(documents = gone.len(), "leases lost to another node");
                        // Every lost lease shows here, also one whose owner
                        // noticed first (a fenced write): the store forgets a
                        // lease only when a renewal finds it gone.
                        self.metrics.lease_lost(gone.len());
                        lost(gone);
                    }
                }
                Ok(Err(error)) => tracing::error!(%error, "cannot renew leases"),
                Err(error) => tracing::error!(%error, "the lease task failed"),
            }
            self.check_owners().await;
            self.metrics.set_documents(self.leases.held().len(), lock(&self.watched).len());
        }
    }

    /// One query for all relayed documents: tell the relays whose owner is gone.
    async fn check_owners(&self) {
        let documents: Vec<DocumentId> = lock(&self.watched).keys().copied().collect();
        if documents.is_empty() {
            return;
        }
        let leases = self.leases.clone();
        let holders = match tokio::task::spawn_blocking(move || leases.holders(&documents)).await {
            Ok(Ok(holders)) => holders,
            Ok(Err(error)) => {
                tracing::error!(%error, "cannot read the owners of relayed documents");
                return;
            }
            Err(_) => return,
        };
        let watched = lock(&self.watched);
        for (document, holder) in holders {
            let Some(watch) = watched.get(&document) else { continue };
            let gone = match &holder {
                None => true,
                Some(holder) => holder.expired || holder.node != watch.node || holder.epoch != watch.epoch,
            };
            if gone {
                tracing::info!(%document, "the owner of a relayed document is gone");
                let _ = watch.events.send(LinkEvent::Moved);
            }
        }
    }
}
