//! TEMPORARY: the shape of `konsens_store::Leases` until the store's leases
//! land (a helper builds them); without them no lease is ever held, so the
//! server behaves as a single node.

use std::time::Duration;

use konsens_store::{ChunkStore, StoreError};
use konsens_sync::DocumentId;

pub struct LeaseConfig {
    pub node: String,
    pub address: String,
    pub ttl: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    Owned { epoch: u64 },
    HeldBy(Holder),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub node: String,
    pub address: String,
    pub epoch: u64,
    pub expired: bool,
    pub expires_in: Duration,
}

#[derive(Debug, Clone)]
pub struct Leases {
    node: String,
    ttl: Duration,
}

pub fn leases(_store: &ChunkStore, _config: LeaseConfig) -> Option<Leases> {
    None
}

impl Leases {
    pub fn node(&self) -> &str {
        &self.node
    }
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
    pub fn claim(&self, _document: &DocumentId) -> Result<Claim, StoreError> {
        Ok(Claim::Owned { epoch: 1 })
    }
    pub fn renew(&self) -> Result<Vec<DocumentId>, StoreError> {
        Ok(Vec::new())
    }
    pub fn release(&self, _document: &DocumentId) -> Result<(), StoreError> {
        Ok(())
    }
    pub fn held(&self) -> Vec<DocumentId> {
        Vec::new()
    }
    pub fn holders(&self, documents: &[DocumentId]) -> Result<Vec<(DocumentId, Option<Holder>)>, StoreError> {
        Ok(documents.iter().map(|d| (*d, None)).collect())
    }
}
