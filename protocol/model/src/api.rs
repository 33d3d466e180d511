//! The JSON API's requests and answers, shared by the server (which
//! serialises them) and the Rust client (which deserialises them). The web
//! app (`server/web/src`) reads the same JSON, so a key here is a key there:
//! renaming a field is a wire change.
//!
//! Roles, statuses and stances travel as their schema names (`"facilitator"`,
//! `"adopted"`, `"support"`); an administrator's role is `"admin"`.
//!
//! An error answer is [`ApiErrorBody`]; clients act on its HTTP `status`,
//! never on the English `error` text, which is for people.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::access::AccessRole;
use crate::schema::MemberRole;

/// `GET /api/me`: who the presented token belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub participant: String,
    pub name: String,
    pub organisation: String,
    pub role: AccessRole,
    /// The member's process as an `automerge:` URL; `None` for administrators.
    pub process: Option<String>,
    /// The server runs `--open` (everybody may do everything).
    pub open: bool,
}

/// An entry of `GET /api/processes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessSummary {
    /// `automerge:<id>`
    pub url: String,
    /// The bare document id.
    pub id: String,
    pub title: String,
}

/// `GET /api/processes/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessView {
    pub url: String,
    pub title: String,
    pub description: String,
    pub workshops: Vec<WorkshopView>,
    pub members: Vec<MemberEntry>,
}

/// A workshop as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkshopView {
    pub id: String,
    pub title: String,
    pub theme: String,
    pub sectors: Vec<String>,
    /// `YYYY-MM-DD`, `null` when not set.
    pub date: Option<String>,
}

/// A member of a process (`GET /api/processes/{id}/members`, and in
/// [`ProcessView`]). Facilitators also see the token fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberEntry {
    pub participant: String,
    pub name: String,
    pub organisation: String,
    pub role: MemberRole,
    /// For `POST /api/tokens/{token_id}/revoke`; facilitators only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// Milliseconds since the Unix epoch; facilitators only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invited_at: Option<i64>,
}

/// `POST /api/processes/{id}/invitations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationRequest {
    pub role: MemberRole,
    pub name: String,
    pub organisation: String,
    /// The link stops working after this many days; never when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
}

/// The answer to an invitation (HTTP 201): the member's personal link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invited {
    /// The secret; shown once.
    pub token: String,
    /// `{base}/join/{token}`
    pub link: String,
    pub participant: String,
    pub token_id: String,
    pub role: MemberRole,
}

/// `POST /api/tokens/{token_id}/revoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    /// The token id.
    pub revoked: String,
    /// Connections of that token the server closed.
    pub closed_connections: usize,
}

/// One change of `GET /api/docs/{id}/history`, with the author the server
/// verified when it accepted the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedChange {
    pub hash: String,
    /// Seconds since the Unix epoch, as the writer recorded it (0: none).
    pub time: i64,
    /// Hex Automerge actor id.
    pub actor: String,
    pub message: Option<String>,
    pub author: Option<Person>,
    pub delivered_by: Option<Person>,
    /// Set when a facilitator relayed someone else's change.
    pub merged_by: Option<Person>,
    /// Milliseconds since the Unix epoch.
    pub accepted_at: Option<i64>,
    /// `false` for changes from before access control (no provenance).
    pub verified: bool,
}

/// A participant, with name and organisation when the server knows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub participant: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organisation: Option<String>,
}

impl fmt::Display for Person {
    /// "Name (Organisation)", or the participant id when unknown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.name, &self.organisation) {
            (Some(name), Some(organisation)) => write!(f, "{name} ({organisation})"),
            _ => f.write_str(&self.participant),
        }
    }
}

/// Every error answer: `{"error": message, "status": code}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// For people; clients must not parse it.
    pub error: String,
    /// The HTTP status, repeated.
    pub status: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_json_keeps_its_keys() -> Result<(), serde_json::Error> {
        let member = MemberEntry {
            participant: "p-1".into(),
            name: "Bora".into(),
            organisation: "Union".into(),
            role: MemberRole::Observer,
            token_id: None,
            invited_at: None,
        };
        assert_eq!(
            serde_json::to_value(&member)?,
            serde_json::json!({"participant": "p-1", "name": "Bora", "organisation": "Union", "role": "observer"})
        );
        let me: Me = serde_json::from_value(serde_json::json!({
            "participant": "admin", "name": "Admin", "organisation": "", "role": "admin", "process": null, "open": false
        }))?;
        assert_eq!(me.role, AccessRole::Admin);
        let unknown = serde_json::from_value::<InvitationRequest>(serde_json::json!({"role": "king", "name": "x", "organisation": "y"}));
        assert!(unknown.is_err_and(|e| e.to_string().contains("unknown role")));
        let request = InvitationRequest { role: MemberRole::Participant, name: "x".into(), organisation: "y".into(), expires_in_days: None };
        assert_eq!(serde_json::to_value(&request)?, serde_json::json!({"role": "participant", "name": "x", "organisation": "y"}));
        let person = Person { participant: "p-2".into(), name: None, organisation: None };
        assert_eq!(serde_json::to_value(&person)?, serde_json::json!({"participant": "p-2"}));
        Ok(())
    }
}
