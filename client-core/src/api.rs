//! A small client for konsens-server's JSON API (blocking; callers run it off
//! the async workers). Plain HTTP: put TLS in front of the server in
//! production and use the https URL there.
//!
//! Requests and answers are the types of [`konsens_model::api`], the ones the
//! server serialises. An error answer becomes [`ClientError::Api`] with its
//! HTTP status; the server's text is passed on for people, never parsed.

use konsens_model::api::{
    FieldAuthorship,
    ApiErrorBody, BulkInvitationRequest, BulkInvited, HistorySession, InvitationRequest, Invited, Me, MemberEntry, Revoked, VerifiedChange,
};
use konsens_model::schema::MemberRole;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ClientError;

/// The server's HTTP base (`http://host:port`) and our token.
#[derive(Debug, Clone)]
pub struct ApiClient {
    pub base: String,
    pub token: String,
}

impl ApiClient {
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Self {
        Self { base: base.into().trim_end_matches('/').to_owned(), token: token.into() }
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(30)))
            .build()
            .into()
    }

    fn answer<T: DeserializeOwned>(
        &self,
        path: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, ClientError> {
        let mut response = result.map_err(|e| ClientError::Connect { url: self.base.clone(), reason: e.to_string() })?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            response
                .body_mut()
                .read_json()
                .map_err(|e| ClientError::UnexpectedAnswer { path: path.to_owned(), reason: e.to_string() })
        } else {
            // A proxy in front of the server may answer without our JSON.
            let message = response
                .body_mut()
                .read_json::<ApiErrorBody>()
                .map(|body| body.error)
                .unwrap_or_else(|_| "request failed".to_owned());
            Err(ClientError::Api { status, message })
        }
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let result = Self::agent()
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .call();
        self.answer(path, result)
    }

    fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, ClientError> {
        let result = Self::agent()
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .send_json(body);
        self.answer(path, result)
    }

    /// Who the token belongs to.
    pub fn me(&self) -> Result<Me, ClientError> {
        self.get("/api/me")
    }

    /// Invite a member into `process` (a bare document id); facilitators only.
    pub fn invite(&self, process: &str, role: MemberRole, name: &str, organisation: &str) -> Result<Invited, ClientError> {
        let request =
            InvitationRequest { role, name: name.to_owned(), organisation: organisation.to_owned(), expires_in_days: None, email: None };
        self.post(&format!("/api/processes/{process}/invitations"), &request)
    }

    /// Invite everyone of a roster (CSV text, see `konsens_model::roster`):
    /// all or nobody; the server's error names every problem with its line.
    pub fn invite_bulk(&self, process: &str, csv: &str) -> Result<BulkInvited, ClientError> {
        self.post(&format!("/api/processes/{process}/invitations/bulk"), &BulkInvitationRequest { csv: csv.to_owned() })
    }

    /// A new link for a member; the old one stops working.
    pub fn reissue(&self, token_id: &str) -> Result<Invited, ClientError> {
        self.post(&format!("/api/tokens/{token_id}/reissue"), &serde_json::json!({}))
    }

    /// The history grouped into sessions, with verified authors.
    pub fn sessions(&self, document: &str) -> Result<Vec<HistorySession>, ClientError> {
        self.get(&format!("/api/docs/{document}/sessions"))
    }

    /// Who wrote what, per field, with the members the server verified.
    pub fn authorship(&self, document: &str) -> Result<Vec<FieldAuthorship>, ClientError> {
        self.get(&format!("/api/docs/{document}/authorship"))
    }

    pub fn revoke(&self, token_id: &str) -> Result<Revoked, ClientError> {
        self.post(&format!("/api/tokens/{token_id}/revoke"), &serde_json::json!({}))
    }

    pub fn members(&self, process: &str) -> Result<Vec<MemberEntry>, ClientError> {
        self.get(&format!("/api/processes/{process}/members"))
    }

    /// Every change with the author the server verified.
    pub fn history(&self, document: &str) -> Result<Vec<VerifiedChange>, ClientError> {
        self.get(&format!("/api/docs/{document}/history"))
    }
}

/// Split an invitation link `http://host:port/join/<token>` into the HTTP
/// base, the WebSocket sync URL and the token.
pub fn parse_join_link(link: &str) -> Option<(String, String, String)> {
    let (base, token) = link.trim().split_once("/join/")?;
    let token = token.trim_end_matches('/');
    if token.is_empty() || token.contains('/') {
        return None;
    }
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}/sync")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}/sync")
    } else {
        return None;
    };
    Some((base.to_owned(), ws, token.to_owned()))
}

/// The HTTP base of a sync URL (`ws://host:port/sync` → `http://host:port`).
pub fn http_base(sync_url: &str) -> Option<String> {
    let rest = sync_url.trim_end_matches('/').trim_end_matches("/sync");
    if let Some(host) = rest.strip_prefix("wss://") {
        Some(format!("https://{host}"))
    } else {
        rest.strip_prefix("ws://").map(|host| format!("http://{host}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_links_and_bases_parse() {
        assert_eq!(
            parse_join_link("http://127.0.0.1:8080/join/abc"),
            Some(("http://127.0.0.1:8080".into(), "ws://127.0.0.1:8080/sync".into(), "abc".into()))
        );
        assert_eq!(parse_join_link("ftp://x/join/abc"), None);
        assert_eq!(parse_join_link("http://x/join/"), None);
        assert_eq!(http_base("ws://h:1/sync").as_deref(), Some("http://h:1"));
        assert_eq!(http_base("wss://h/sync").as_deref(), Some("https://h"));
    }
}
