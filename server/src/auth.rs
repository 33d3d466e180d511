//! Tokens and principals. A token is 256 random bits, shown once and stored
//! only as its SHA-256 hash. Each token is an administrator's or one member's
//! of one process, with a role. Every WebSocket and API request presents one
//! (cookie `konsens_token`, `Authorization: Bearer`, or `?token=`), unless the
//! server runs `--open`.

use axum::http::HeaderMap;
use konsens_model::access::{AccessRole, Sender};
use konsens_model::schema::MemberRole;
use konsens_sync::DocumentId;
use konsens_store::{AuthStore, TokenKind, TokenRecord, TokenRole};
use sha2::{Digest, Sha256};

use crate::error::ServerError;
use crate::util::now_millis;

/// The cookie the browser keeps its session token in.
pub const COOKIE: &str = "konsens_token";

/// Who is on the other end of a connection or request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's public id (`open` when the server runs `--open`).
    pub token_id: String,
    pub participant: String,
    pub name: String,
    pub organisation: String,
    pub role: AccessRole,
    /// The member's process; `None` for administrators.
    pub process: Option<DocumentId>,
}

impl Principal {
    /// Everybody, when the server runs `--open`.
    pub fn open() -> Self {
        Self {
            token_id: "open".into(),
            participant: "anonymous".into(),
            name: "anonymous".into(),
            organisation: String::new(),
            role: AccessRole::Admin,
            process: None,
        }
    }

    pub fn sender(&self) -> Sender {
        Sender {
            participant: self.participant.clone(),
            name: self.name.clone(),
            organisation: self.organisation.clone(),
            role: self.role,
            process: self.process,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == AccessRole::Admin
    }

    /// May change membership and decisions of `process`.
    pub fn is_facilitator_of(&self, process: &DocumentId) -> bool {
        self.is_admin() || (self.role == AccessRole::Member(MemberRole::Facilitator) && self.process.as_ref() == Some(process))
    }

    pub fn role_name(&self) -> &'static str {
        match self.role {
            AccessRole::Admin => "admin",
            AccessRole::Member(role) => role.as_str(),
        }
    }
}

/// Why a token was not accepted. The message never says whether a token exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    Missing,
    Invalid,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Missing => f.write_str("a token is required (cookie, Authorization: Bearer, or ?token=)"),
            Rejection::Invalid => f.write_str("the token is invalid, expired or revoked"),
        }
    }
}

pub fn hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh secret: 256 bits, bs58 so it fits in a URL.
fn fresh_secret() -> String {
    bs58::encode(rand::random::<[u8; 32]>()).into_string()
}

/// Access control over the [`AuthStore`].
#[derive(Debug, Clone)]
pub struct Auth {
    pub store: AuthStore,
    /// `--open`: no tokens, everybody is an administrator.
    pub open: bool,
}

/// A member to invite.
#[derive(Debug, Clone)]
pub struct Invitation {
    pub process: DocumentId,
    pub role: MemberRole,
    pub name: String,
    pub organisation: String,
    pub invited_by: String,
    pub expires_at: Option<i64>,
    pub email: Option<String>,
}

/// Why a token may not be revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeRefusal {
    /// It is the last facilitator of its process: nobody could invite or
    /// decide any more (only an administrator could repair it).
    LastFacilitator,
    /// A facilitator's own token: they would lock themselves out mid-session;
    /// another facilitator (or an administrator) revokes it.
    OwnToken,
}

impl RevokeRefusal {
    /// The `code` of the API's error answer.
    pub fn code(self) -> &'static str {
        match self {
            RevokeRefusal::LastFacilitator => "last-facilitator",
            RevokeRefusal::OwnToken => "own-token",
        }
    }
}

impl std::fmt::Display for RevokeRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RevokeRefusal::LastFacilitator => "this is the last facilitator of the process; invite another facilitator first",
            RevokeRefusal::OwnToken => "you cannot revoke your own access; ask another facilitator",
        })
    }
}

/// May `by` revoke `target`, given every token of the server? Revoking an
/// already revoked token changes nothing and is allowed.
pub fn revocation_refusal(target: &TokenRecord, by: &Principal, tokens: &[TokenRecord]) -> Option<RevokeRefusal> {
    if target.revoked {
        return None;
    }
    if target.id == by.token_id {
        return Some(RevokeRefusal::OwnToken);
    }
    let is_facilitator = |t: &TokenRecord| t.kind == TokenKind::Member && t.role == TokenRole::Facilitator && !t.revoked;
    if is_facilitator(target) && target.process.is_some() {
        let others = tokens.iter().filter(|t| t.id != target.id && t.process == target.process && is_facilitator(t)).count();
        if others == 0 {
            return Some(RevokeRefusal::LastFacilitator);
        }
    }
    None
}

impl Auth {
    /// Find the principal for a presented token.
    pub fn authenticate(&self, token: Option<&str>) -> Result<Principal, Rejection> {
        if self.open {
            return Ok(Principal::open());
        }
        let token = token.filter(|t| !t.is_empty()).ok_or(Rejection::Missing)?;
        let record = match self.store.token(&hash(token)) {
            Ok(Some(record)) => record,
            Ok(None) => return Err(Rejection::Invalid),
            Err(e) => {
                tracing::error!(error = %e, "token lookup failed");
                return Err(Rejection::Invalid);
            }
        };
        if record.revoked || record.expires_at.is_some_and(|t| t <= now_millis()) {
            return Err(Rejection::Invalid);
        }
        principal(&record).ok_or(Rejection::Invalid)
    }

    /// The member of a token id while its token is valid: a node relaying
    /// a connection names the token it verified, and the owner node reads
    /// the record itself (a revocation since is seen here too).
    pub fn principal_by_id(&self, token_id: &str) -> Option<Principal> {
        if self.open {
            return Some(Principal::open());
        }
        let record = match self.store.token_by_id(token_id) {
            Ok(record) => record?,
            Err(e) => {
                tracing::error!(error = %e, "token lookup failed");
                return None;
            }
        };
        if record.revoked || record.expires_at.is_some_and(|t| t <= now_millis()) {
            return None;
        }
        principal(&record)
    }

    /// A new administrator token; returns the secret (shown once).
    pub fn issue_admin(&self, name: &str) -> Result<(String, TokenRecord), ServerError> {
        let id = format!("t-{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
        let record = TokenRecord {
            participant: format!("admin:{id}"),
            id,
            kind: TokenKind::Admin,
            process: None,
            name: name.to_owned(),
            organisation: String::new(),
            role: TokenRole::Admin,
            created_at: now_millis(),
            expires_at: None,
            revoked: false,
            created_by: None,
            joined_at: None,
            last_seen: None,
            email: None,
        };
        let secret = fresh_secret();
        self.store.put_token(&hash(&secret), &record)?;
        Ok((secret, record))
    }

    /// A personal invitation into one process.
    pub fn invite(&self, invitation: &Invitation) -> Result<(String, TokenRecord), ServerError> {
        let (secret, record) = member_token(invitation);
        self.store.put_token(&hash(&secret), &record)?;
        Ok((secret, record))
    }

    /// Several invitations, stored all at once or not at all.
    pub fn invite_all(&self, invitations: &[Invitation]) -> Result<Vec<(String, TokenRecord)>, ServerError> {
        let issued: Vec<(String, TokenRecord)> = invitations.iter().map(member_token).collect();
        let hashed: Vec<(String, TokenRecord)> = issued.iter().map(|(secret, record)| (hash(secret), record.clone())).collect();
        self.store.put_tokens(&hashed)?;
        Ok(issued)
    }

    /// A new secret for a member's token; the old link stops working.
    pub fn reissue(&self, token_id: &str) -> Result<Option<(String, TokenRecord)>, ServerError> {
        let secret = fresh_secret();
        Ok(self.store.reissue(token_id, &hash(&secret))?.map(|record| (secret, record)))
    }

    /// Note that a principal's token is in use (joined, last seen), writing
    /// at most once per [`SEEN_GRANULARITY_MS`]. Blocking: sled.
    pub fn mark_seen(&self, principal: &Principal) {
        if self.open {
            return;
        }
        if let Err(e) = self.store.mark_seen(&principal.token_id, now_millis(), SEEN_GRANULARITY_MS) {
            tracing::warn!(error = %e, token = %principal.token_id, "could not record when a token was used");
        }
    }
}

/// "Last seen" is kept to this many milliseconds (five minutes): precise
/// enough for a facilitator, and a busy member writes rarely.
pub const SEEN_GRANULARITY_MS: i64 = 5 * 60 * 1000;

/// A member token for an invitation, with a fresh secret and ids.
fn member_token(invitation: &Invitation) -> (String, TokenRecord) {
    let id = format!("t-{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
        let record = TokenRecord {
            id,
            kind: TokenKind::Member,
            process: Some(invitation.process),
            participant: format!("p-{:016x}", rand::random::<u64>()),
            name: invitation.name.clone(),
            organisation: invitation.organisation.clone(),
            role: token_role(invitation.role),
            created_at: now_millis(),
            expires_at: invitation.expires_at,
            revoked: false,
            created_by: Some(invitation.invited_by.clone()),
            joined_at: None,
            last_seen: None,
            email: invitation.email.clone(),
        };
    (fresh_secret(), record)
}

impl Auth {

    /// May this principal see this document? Unknown documents are visible to
    /// nobody but administrators (and, by `request`, get `doc-unavailable`).
    pub fn can_read(&self, principal: &Principal, document: &DocumentId) -> bool {
        if self.open || principal.is_admin() {
            return true;
        }
        match self.store.document_process(document) {
            Ok(Some(process)) => principal.process == Some(process),
            Ok(None) => false,
            Err(e) => {
                tracing::error!(error = %e, "document lookup failed");
                false
            }
        }
    }

    /// Is the document known to belong to some process (or otherwise exist
    /// under access control)?
    pub fn is_registered(&self, document: &DocumentId) -> bool {
        matches!(self.store.document_process(document), Ok(Some(_)))
    }
}

/// The role a member token stores.
pub fn token_role(role: MemberRole) -> TokenRole {
    match role {
        MemberRole::Facilitator => TokenRole::Facilitator,
        MemberRole::Participant => TokenRole::Participant,
        MemberRole::Observer => TokenRole::Observer,
    }
}

/// A stored role as a member's role; `None` for an administrator's.
pub fn member_role(role: TokenRole) -> Option<MemberRole> {
    match role {
        TokenRole::Admin => None,
        TokenRole::Facilitator => Some(MemberRole::Facilitator),
        TokenRole::Participant => Some(MemberRole::Participant),
        TokenRole::Observer => Some(MemberRole::Observer),
    }
}

/// What a token record grants. A member token that names no member role
/// grants nothing.
fn principal(record: &TokenRecord) -> Option<Principal> {
    let role = match record.kind {
        TokenKind::Admin => AccessRole::Admin,
        TokenKind::Member => AccessRole::Member(member_role(record.role)?),
    };
    Some(Principal {
        token_id: record.id.clone(),
        participant: record.participant.clone(),
        name: record.name.clone(),
        organisation: record.organisation.clone(),
        role,
        process: record.process,
    })
}

/// How a request presented its token. A cookie is ambient authority: the
/// browser attaches it to requests other sites make, so only a cookie needs
/// the same-origin check (`security.rs`). A bearer header or `?token=` is
/// written by whoever makes the request, which then acts as that token's
/// holder, not as the person whose browser it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Bearer,
    Cookie,
    Query,
}

/// The token a request presents: `Authorization: Bearer`, then the cookie,
/// then `?token=`.
pub fn presented_token(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    presented(headers, query).map(|(token, _)| token)
}

/// [`presented_token`] with where it came from.
pub fn presented(headers: &HeaderMap, query: Option<&str>) -> Option<(String, TokenSource)> {
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        && let Some(token) = value.strip_prefix("Bearer ")
    {
        return Some((token.trim().to_owned(), TokenSource::Bearer));
    }
    if let Some(token) = cookie_token(headers) {
        return Some((token, TokenSource::Cookie));
    }
    query?.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == "token").then(|| (value.to_owned(), TokenSource::Query))
    })
}

/// The session cookie's token, if the request carries one.
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    for cookies in headers.get_all(axum::http::header::COOKIE) {
        let Ok(cookies) = cookies.to_str() else { continue };
        for pair in cookies.split(';') {
            if let Some((name, value)) = pair.trim().split_once('=')
                && name == COOKIE
            {
                return Some(value.to_owned());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(id: &str, role: TokenRole, process: DocumentId) -> TokenRecord {
        TokenRecord {
            id: id.into(),
            kind: TokenKind::Member,
            process: Some(process),
            participant: format!("p-{id}"),
            name: id.into(),
            organisation: "O".into(),
            role,
            created_at: 0,
            expires_at: None,
            revoked: false,
            created_by: None,
            joined_at: None,
            last_seen: None,
            email: None,
        }
    }

    #[test]
    fn the_last_facilitator_and_ones_own_token_are_not_revoked() {
        let process = DocumentId::from_bytes([3; 16]);
        let other = DocumentId::from_bytes([4; 16]);
        let fatima = token("f1", TokenRole::Facilitator, process);
        let pia = token("p1", TokenRole::Participant, process);
        let elsewhere = token("f9", TokenRole::Facilitator, other);
        let admin = Principal { role: AccessRole::Admin, process: None, ..Principal::open() };
        let as_fatima = principal(&fatima).expect("member");
        let tokens = vec![fatima.clone(), pia.clone(), elsewhere.clone()];

        assert_eq!(revocation_refusal(&pia, &as_fatima, &tokens), None);
        assert_eq!(revocation_refusal(&fatima, &as_fatima, &tokens), Some(RevokeRefusal::OwnToken));
        assert_eq!(revocation_refusal(&fatima, &admin, &tokens), Some(RevokeRefusal::LastFacilitator), "a facilitator of another process does not count");

        let mut revoked_second = token("f2", TokenRole::Facilitator, process);
        revoked_second.revoked = true;
        let with_revoked = [tokens.clone(), vec![revoked_second.clone()]].concat();
        assert_eq!(revocation_refusal(&fatima, &admin, &with_revoked), Some(RevokeRefusal::LastFacilitator), "a revoked facilitator does not count");
        assert_eq!(revocation_refusal(&revoked_second, &admin, &with_revoked), None, "revoking again changes nothing");

        let second = token("f3", TokenRole::Facilitator, process);
        let with_second = [tokens, vec![second.clone()]].concat();
        assert_eq!(revocation_refusal(&fatima, &principal(&second).expect("member"), &with_second), None);
    }
}
