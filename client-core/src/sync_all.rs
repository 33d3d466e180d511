//! `konsens sync`'s walk: push every local document, pull the
//! recommendations of every process and the amendments of every
//! recommendation on the way, and wait until the server
//! acknowledged each (it does so only once they are on its disk).

use std::collections::BTreeSet;
use std::time::Duration;

use konsens_model::schema::{Process, Recommendation};
use konsens_sync::{AutomergeUrl, DocumentId};
use serde::Serialize;

use crate::status::ConnectionStatus;
use crate::workspace::Workspace;
use crate::error::ClientError;
use crate::repo::RefusalReport;

/// How long one document may take to arrive, and to be acknowledged.
const FIND_TIMEOUT: Duration = Duration::from_secs(60);
const ACK_TIMEOUT: Duration = Duration::from_secs(120);

/// What one walk did (the JSON of `konsens sync --json`).
#[derive(Debug, Clone, Serialize)]
pub struct SyncSummary {
    /// The sync URL.
    pub server: String,
    /// Documents the server acknowledged.
    pub documents: usize,
    /// Documents new to this store.
    pub pulled: usize,
    /// Refusals met and recovered from on the way.
    pub refused: Vec<RefusalReport>,
}

/// Progress of the walk, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncProgress {
    /// This many more documents to do.
    Found(u64),
    /// One document done.
    Done(DocumentId),
    /// The server does not have this document; it is skipped.
    Missing(DocumentId),
}

impl Workspace {
    /// Wait until the repo is online; the server refusing us is an error.
    pub async fn wait_online(&self, timeout: Duration) -> Result<(), ClientError> {
        let mut status = self.repo().status();
        let reached = tokio::time::timeout(
            timeout,
            status.wait_for(|s| matches!(s, ConnectionStatus::Online { .. } | ConnectionStatus::Refused(_))),
        )
        .await
        .map_err(|_| ClientError::Unreachable { seconds: timeout.as_secs() })?
        .map_err(|_| ClientError::Closed)?
        .clone();
        match reached {
            ConnectionStatus::Refused(reason) => Err(ClientError::NotAdmitted(reason)),
            _ => Ok(()),
        }
    }

    /// The walk, once online (see [`Workspace::wait_online`]): every local
    /// document and `extra`, then the recommendations each process lists.
    /// `url` only names the server in the summary.
    pub async fn sync_all(
        &self,
        url: &str,
        extra: &[DocumentId],
        mut progress: impl FnMut(SyncProgress),
    ) -> Result<SyncSummary, ClientError> {
        let repo = self.repo();
        let mut done = BTreeSet::new();
        let mut pending: Vec<DocumentId> = repo.local_documents()?;
        pending.extend_from_slice(extra);
        progress(SyncProgress::Found(pending.len() as u64));
        let mut pulled = 0;
        while let Some(id) = pending.pop() {
            if !done.insert(id) {
                continue;
            }
            match tokio::time::timeout(FIND_TIMEOUT, repo.find(id)).await {
                Ok(Ok(_)) => {}
                Ok(Err(ClientError::Unavailable(_))) => {
                    progress(SyncProgress::Missing(id));
                    continue;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(ClientError::TimedOut(format!("timed out fetching {}", id.url()))),
            };
            tokio::time::timeout(ACK_TIMEOUT, repo.wait_synced(id)).await.map_err(|_| {
                ClientError::TimedOut(format!("the server did not acknowledge {} within {} s", id.url(), ACK_TIMEOUT.as_secs()))
            })??;
            // Read again: only now is everything the server had in our copy.
            let doc = repo.find(id).await?;
            // A process lists recommendations others may have created: pull those too.
            if let Ok(process) = Process::from_doc(&doc) {
                let local = repo.local_documents()?;
                for url in process.recommendations.values().flatten() {
                    if let Ok(parsed) = url.parse::<AutomergeUrl>()
                        && !done.contains(&parsed.document_id)
                    {
                        if !local.contains(&parsed.document_id) {
                            pulled += 1;
                        }
                        pending.push(parsed.document_id);
                        progress(SyncProgress::Found(1));
                    }
                }
            }
            // A recommendation lists its amendments' branches: pull those too.
            if let Ok(rec) = Recommendation::from_doc(&doc) {
                let local = repo.local_documents()?;
                for branch in rec.amendments.keys().filter_map(|k| k.parse::<DocumentId>().ok()) {
                    if !done.contains(&branch) {
                        if !local.contains(&branch) {
                            pulled += 1;
                        }
                        pending.push(branch);
                        progress(SyncProgress::Found(1));
                    }
                }
            }
            progress(SyncProgress::Done(id));
        }
        let refused = repo.take_refusals().await?;
        Ok(SyncSummary { server: url.to_owned(), documents: done.len(), pulled, refused })
    }
}
