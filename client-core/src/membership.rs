//! What a workspace does through the server's JSON API: join with an
//! invitation link, invite, list and revoke members, and read the history
//! with the authors the server verified. The API client is blocking, so
//! every call runs off the async workers.

use konsens_model::api::{BulkInvited, HistorySession, Invited, Me, MemberEntry, Revoked, VerifiedChange};
use konsens_model::schema::MemberRole;
use konsens_sync::DocumentId;

use crate::error::ClientError;
use crate::api::{ApiClient, parse_join_link};
use crate::workspace::{Action, Session, Workspace};

/// Run a blocking API call off the async workers.
async fn blocking<T: Send + 'static>(call: impl FnOnce() -> Result<T, ClientError> + Send + 'static) -> Result<T, ClientError> {
    tokio::task::spawn_blocking(call).await.map_err(|_| ClientError::Closed)?
}

impl Workspace {
    /// Join the server of an invitation link: ask who the token belongs to,
    /// keep the session (server and token) in the store, and make changes
    /// from now on as the member the server verified.
    pub async fn join(&mut self, link: &str) -> Result<Me, ClientError> {
        let (base, sync_url, token) = parse_join_link(link).ok_or_else(|| ClientError::BadInvitationLink(link.to_owned()))?;
        let api = ApiClient::new(base.clone(), token.clone());
        let me = blocking(move || api.me()).await?;
        self.set_session(Session {
            base,
            sync_url,
            token,
            participant: me.participant.clone(),
            role: me.role,
            process: me.process.clone(),
        })?;
        // An open server names nobody; the store keeps its own identity then.
        if !me.participant.is_empty() {
            self.adopt_server_identity(&me.participant, &me.name, &me.organisation)?;
        }
        Ok(me)
    }

    /// Invite a member into `process`; the answer carries their personal link.
    pub async fn invite(&self, process: DocumentId, role: MemberRole, name: &str, organisation: &str) -> Result<Invited, ClientError> {
        self.allow(Action::ManageMembers)?;
        let api = self.api()?;
        let (name, organisation) = (name.to_owned(), organisation.to_owned());
        blocking(move || api.invite(&process.to_string(), role, &name, &organisation)).await
    }

    /// Invite everyone of a roster (CSV text) into `process`, all or nobody.
    pub async fn invite_roster(&self, process: DocumentId, csv: &str) -> Result<BulkInvited, ClientError> {
        self.allow(Action::ManageMembers)?;
        let api = self.api()?;
        let csv = csv.to_owned();
        blocking(move || api.invite_bulk(&process.to_string(), &csv)).await
    }

    /// A new invitation link for a member; the old one stops working.
    pub async fn reissue(&self, token_id: &str) -> Result<Invited, ClientError> {
        self.allow(Action::ManageMembers)?;
        let api = self.api()?;
        let token_id = token_id.to_owned();
        blocking(move || api.reissue(&token_id)).await
    }

    /// The history of `document` in sessions, as the server groups it.
    pub async fn verified_sessions(&self, document: DocumentId) -> Result<Vec<HistorySession>, ClientError> {
        let api = self.api()?;
        blocking(move || api.sessions(&document.to_string())).await
    }

    /// The members of `process` (facilitators also see token ids).
    pub async fn members(&self, process: DocumentId) -> Result<Vec<MemberEntry>, ClientError> {
        let api = self.api()?;
        blocking(move || api.members(&process.to_string())).await
    }

    /// Revoke a member's token; the server closes its connections at once.
    pub async fn revoke(&self, token_id: &str) -> Result<Revoked, ClientError> {
        self.allow(Action::ManageMembers)?;
        let api = self.api()?;
        let token_id = token_id.to_owned();
        blocking(move || api.revoke(&token_id)).await
    }

    /// Every change of `document` with the author the server verified.
    pub async fn verified_history(&self, document: DocumentId) -> Result<Vec<VerifiedChange>, ClientError> {
        let api = self.api()?;
        blocking(move || api.history(&document.to_string())).await
    }
}
