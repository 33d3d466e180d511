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
use thiserror::Error;

use crate::access::AccessRole;
use crate::amendment::FieldHunk;
use crate::schema::{Amendment, AmendmentState};
use crate::schema::{MemberRole, Stance};

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
    /// Invited, joined or revoked; facilitators only (others see joined and
    /// invited members alike, and no revoked ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<MemberStatus>,
    /// When the member first used their link; facilitators only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined_at: Option<i64>,
    /// When the member was last seen (to a few minutes); facilitators only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<i64>,
    /// The e-mail address given when inviting; facilitators only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// Where a member's invitation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberStatus {
    /// The link has not been used yet.
    Invited,
    /// The member has used the link.
    Joined,
    /// The token was revoked; the member stays listed for the record.
    Revoked,
}

/// `POST /api/processes/{id}/invitations/bulk`: a roster as CSV (see
/// the roster module), parsed by the server; every line is valid or nobody
/// is invited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkInvitationRequest {
    pub csv: String,
}

/// The answer to a bulk invitation (HTTP 201): one link per line, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkInvited {
    pub invited: Vec<Invited>,
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
    /// For the facilitator's records (the server sends no mail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
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
    /// Who the link is for (so a list of links can be read).
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub organisation: String,
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

/// One session of `GET /api/docs/{id}/sessions`: one person's changes to
/// one field in one sitting (see [`crate::history`]), oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistorySession {
    /// Who, as the server verified it; else as the document declares it
    /// (`verified: false`), or nobody known.
    pub author: Option<Person>,
    pub verified: bool,
    /// `created`, `title`, `problem`, `recommendation`, `rationale`,
    /// `status`, `endorsements`, `comments`, … (the app translates it).
    pub field: String,
    /// Milliseconds since the Unix epoch: first and last change.
    pub start: i64,
    pub end: i64,
    /// Characters typed and deleted.
    pub inserted: u64,
    pub deleted: u64,
    /// The status or stance set, or the workshop moved to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// How many changes the session groups.
    pub changes: usize,
    /// The version after the session: its last change's hash (hex).
    pub last: String,
    /// The version before it: the first change's dependencies (hex).
    pub before: Vec<String>,
}

/// `GET /api/docs/{rec}/amendments`: one amendment of the recommendation,
/// with what accepting it would change now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmendmentView {
    /// The branch document's id (the key of its entry).
    pub id: String,
    /// `automerge:<branch id>`.
    pub url: String,
    pub title: String,
    /// The author, named as the server knows them.
    pub author: Person,
    pub coauthors: Vec<Person>,
    /// Milliseconds since the Unix epoch.
    pub opened: i64,
    pub state: AmendmentState,
    /// Each organisation's endorsement of the amendment.
    pub endorsements: Vec<AmendmentEndorsement>,
    /// How many organisations support it, have concerns, object.
    pub counts: StanceCounts,
    pub decision: Option<DecisionView>,
    /// What accepting it would change in the recommendation as it is now
    /// (empty once decided, or while the branch is not on the server).
    pub hunks: Vec<HunkView>,
}

/// An organisation's endorsement of an amendment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmendmentEndorsement {
    pub organisation: String,
    pub stance: Stance,
    pub note: String,
    pub by: Person,
    pub at: i64,
}

/// Endorsements counted by stance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StanceCounts {
    pub support: usize,
    pub concerns: usize,
    pub object: usize,
}

/// A facilitator's decision on an amendment, with the official answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionView {
    pub state: AmendmentState,
    pub answer: String,
    pub by: Person,
    pub at: i64,
    pub accepted: Vec<String>,
    pub rejected: Vec<String>,
}

/// One hunk: a field's text now and as accepting would leave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HunkView {
    /// `<field>:<n>`.
    pub id: String,
    pub field: String,
    pub before: String,
    pub after: String,
}

/// `GET /api/docs/{id}/authorship`: who wrote what, per field in reading
/// order (`title`, `problem`, `recommendation`, `rationale`; see
/// [`crate::authorship`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldAuthorship {
    pub field: String,
    pub runs: Vec<AuthoredRun>,
}

/// Consecutive characters by one author.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthoredRun {
    pub text: String,
    /// The member the server bound the writing actor to, with their verified
    /// name and organisation; `None` for an actor without a binding.
    pub author: Option<Person>,
    /// Whether `author` is known from the server's bindings (`false`:
    /// "unverified", whatever the document may claim).
    pub verified: bool,
    /// The hex Automerge actor id of an unverified run (tells unverified
    /// writers apart); `None` for verified runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

/// `GET /api/processes/{id}/notifications`: what changed in the process
/// since the member last looked (see [`crate::notifications`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationsView {
    /// Up to when (ms) the member had seen the list; 0 when never.
    pub seen: i64,
    /// How many items are new.
    pub new: usize,
    /// Newest first.
    pub items: Vec<NotificationItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationItem {
    pub kind: crate::notifications::NotificationKind,
    /// The recommendation's `automerge:` URL and its document id.
    pub recommendation: String,
    pub id: String,
    pub title: String,
    /// Milliseconds since the epoch.
    pub at: i64,
    /// Who did it, as the server verified them.
    pub by: Option<Person>,
    pub value: Option<String>,
    pub new: bool,
}

/// `POST /api/processes/{id}/notifications/seen`: the moment recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationsSeen {
    pub seen: i64,
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
    /// What went wrong, for clients to act on where the status is not
    /// enough (`last-facilitator`, `own-token`, `invalid-roster`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// For `invalid-roster`: every problem with its line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<RosterError>,
}

// -- a roster's problems, line by line (parsed by the roster module) ----------

/// What is wrong with one line of a roster (line 1 is the header).
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
#[serde(tag = "problem", rename_all = "kebab-case")]
pub enum RosterProblem {
    /// The file has no header row (or nothing at all).
    #[error("the file is empty; the first line must name the columns name, organisation, role")]
    Empty,
    /// The header row lacks a required column.
    #[error("the header row has no column {column:?}")]
    MissingColumn { column: String },
    #[error("the name is empty")]
    EmptyName,
    #[error("the organisation is empty")]
    EmptyOrganisation,
    #[error("unknown role {role:?}; roles are participant, observer, facilitator (Teilnehmende, Beobachtende, Moderation)")]
    UnknownRole { role: String },
    #[error("{value:?} is not an e-mail address")]
    BadEmail { value: String },
    /// A quoted field that never ends.
    #[error("a quotation mark is not closed")]
    UnclosedQuote,
    /// The same name and organisation twice in the file.
    #[error("{name} ({organisation}) is listed twice (first on line {first})")]
    Duplicate { name: String, organisation: String, first: usize },
    #[error("more than {max} people in one file")]
    TooManyRows { max: usize },
}

/// A problem and the line it is on (1-based, counting the header).
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
#[error("line {line}: {problem}")]
pub struct RosterError {
    pub line: usize,
    #[serde(flatten)]
    pub problem: RosterProblem,
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
            status: None,
            joined_at: None,
            last_seen: None,
            email: None,
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
        let request = InvitationRequest { role: MemberRole::Participant, name: "x".into(), organisation: "y".into(), expires_in_days: None, email: None };
        assert_eq!(serde_json::to_value(&request)?, serde_json::json!({"role": "participant", "name": "x", "organisation": "y"}));
        let person = Person { participant: "p-2".into(), name: None, organisation: None };
        assert_eq!(serde_json::to_value(&person)?, serde_json::json!({"participant": "p-2"}));
        Ok(())
    }
}

/// An amendment as the API and the CLI show it: `id` its branch id, `hunks`
/// what accepting would change now, `person` names a participant (from the
/// server's verified members).
pub fn amendment_view(id: &str, entry: &Amendment, hunks: Vec<FieldHunk>, person: &dyn Fn(&str) -> Person) -> AmendmentView {
    let mut counts = StanceCounts::default();
    let endorsements = entry
        .endorsements
        .iter()
        .map(|(organisation, e)| {
            match e.stance {
                Stance::Support => counts.support += 1,
                Stance::Concerns => counts.concerns += 1,
                Stance::Object => counts.object += 1,
            }
            AmendmentEndorsement { organisation: organisation.clone(), stance: e.stance, note: e.note.clone(), by: person(&e.by), at: e.at }
        })
        .collect();
    AmendmentView {
        id: id.to_owned(),
        url: entry.url.0.clone(),
        title: entry.title.0.clone(),
        author: person(&entry.by.0),
        coauthors: entry.coauthors.iter().map(|c| person(&c.0)).collect(),
        opened: entry.opened,
        state: entry.state,
        endorsements,
        counts,
        decision: entry.decision.as_ref().map(|d| DecisionView {
            state: d.state,
            answer: d.answer.0.clone(),
            by: person(&d.by.0),
            at: d.at,
            accepted: d.accepted.iter().map(|h| h.0.clone()).collect(),
            rejected: d.rejected.iter().map(|h| h.0.clone()).collect(),
        }),
        hunks: hunks.into_iter().map(|h| HunkView { id: h.id, field: h.field.to_owned(), before: h.before, after: h.after }).collect(),
    }
}
