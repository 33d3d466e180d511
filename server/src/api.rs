//! The JSON API (invitation links are in `join.rs`). Every route checks the same roles
//! the sync path does; a document the caller may not see answers 404, exactly
//! like one that does not exist.

use std::collections::BTreeMap;
use std::sync::Arc;

use automerge::Automerge;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use konsens_model::api::{
    ApiErrorBody, BulkInvitationRequest, BulkInvited, InvitationRequest, Invited, Me, MemberEntry, MemberStatus, Person, ProcessSummary,
    ProcessView, Revoked, VerifiedChange, WorkshopView, HistorySession,
};
use konsens_model::roster::{self, RosterError};
use konsens_model::report::{self, Language, ReportFormat, ReportKind, ReportOptions};
use konsens_model::schema::{Process, Recommendation};
use konsens_store::TokenRecord;
use konsens_sync::DocumentId;
use serde::Deserialize;

use crate::auth::{self, Invitation, Principal, RevokeRefusal, member_role};
use crate::hub::Hub;

pub(crate) fn routes() -> Router<Arc<Hub>> {
    Router::new()
        .route("/api/me", get(me))
        .route("/api/processes", get(processes))
        .route("/api/processes/{id}", get(process))
        .route("/api/processes/{id}/members", get(members))
        .route("/api/processes/{id}/invitations", post(invite))
        .route("/api/processes/{id}/invitations/bulk", post(invite_bulk))
        .route("/api/tokens/{token_id}/reissue", post(reissue))
        .route("/api/processes/{id}/report", get(report_route))
        .route("/api/tokens/{token_id}/revoke", post(revoke))
        .route("/api/docs/{id}/history", get(history))
        .route("/api/docs/{id}/sessions", get(sessions))
        .merge(crate::join::routes())
}

/// An error as JSON: `{"error": message, "status": code}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    /// A machine-readable code where the status is not enough.
    code: Option<&'static str>,
    /// Every problem of a refused roster.
    lines: Vec<RosterError>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), code: None, lines: Vec::new() }
    }

    fn coded(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { code: Some(code), ..Self::new(status, message) }
    }

    fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "no such document")
    }

    pub(crate) fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "API request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error; see the server log")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ApiErrorBody { error: self.message, status: self.status.as_u16(), code: self.code.map(str::to_owned), lines: self.lines };
        (self.status, Json(body)).into_response()
    }
}

pub(crate) fn caller(hub: &Arc<Hub>, headers: &HeaderMap, uri: &Uri) -> Result<Principal, ApiError> {
    let token = auth::presented_token(headers, uri.query());
    let who = hub.auth.authenticate(token.as_deref()).map_err(|rejection| {
        tracing::info!(path = %uri.path(), %rejection, "API request refused");
        ApiError::new(StatusCode::UNAUTHORIZED, rejection.to_string())
    })?;
    // Every client asks `/api/me` when it starts (the app on each load, the
    // CLI when it joins), so API use is when a member is seen. Off the async
    // workers, and not awaited: the answer does not depend on it.
    if !hub.auth.open {
        let (seen, who) = (hub.clone(), who.clone());
        tokio::task::spawn_blocking(move || seen.auth.mark_seen(&who));
    }
    Ok(who)
}

pub(crate) fn document_id(text: &str) -> Result<DocumentId, ApiError> {
    let text = text.strip_prefix("automerge:").unwrap_or(text);
    text.parse().map_err(|_| ApiError::not_found())
}

/// The document as flushed to disk (what the server has acknowledged).
pub(crate) async fn load(hub: &Hub, id: DocumentId) -> Result<Automerge, ApiError> {
    hub.flushed_document(id).await.map_err(ApiError::internal)?.ok_or_else(ApiError::not_found)
}

pub(crate) fn readable(hub: &Hub, who: &Principal, id: &DocumentId) -> Result<(), ApiError> {
    if hub.auth.can_read(who, id) { Ok(()) } else { Err(ApiError::not_found()) }
}

async fn me(State(hub): State<Arc<Hub>>, headers: HeaderMap, uri: Uri) -> Result<Json<Me>, ApiError> {
    let who = caller(&hub, &headers, &uri)?;
    Ok(Json(Me {
        role: who.role,
        process: who.process.map(|p| p.url()),
        participant: who.participant,
        name: who.name,
        organisation: who.organisation,
        open: hub.auth.open,
    }))
}

async fn processes(State(hub): State<Arc<Hub>>, headers: HeaderMap, uri: Uri) -> Result<Json<Vec<ProcessSummary>>, ApiError> {
    let who = caller(&hub, &headers, &uri)?;
    let ids = match who.process {
        Some(p) => vec![p],
        None => hub.auth.store.processes().map_err(ApiError::internal)?,
    };
    let mut out = Vec::new();
    for id in ids {
        let Ok(doc) = load(&hub, id).await else { continue };
        if let Ok(process) = Process::from_doc(&doc) {
            out.push(ProcessSummary { url: id.url(), id: id.to_string(), title: process.title.0 });
        }
    }
    Ok(Json(out))
}

/// participant → token record, for names and roles.
pub(crate) fn people(hub: &Hub) -> Result<BTreeMap<String, TokenRecord>, ApiError> {
    Ok(hub
        .auth
        .store
        .tokens()
        .map_err(ApiError::internal)?
        .into_iter()
        .map(|t| (t.participant.clone(), t))
        .collect())
}

async fn process(State(hub): State<Arc<Hub>>, Path(id): Path<String>, headers: HeaderMap, uri: Uri) -> Result<Json<ProcessView>, ApiError> {
    let who = caller(&hub, &headers, &uri)?;
    let id = document_id(&id)?;
    readable(&hub, &who, &id)?;
    let doc = load(&hub, id).await?;
    let process = Process::from_doc(&doc).map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    Ok(Json(ProcessView {
        url: id.url(),
        title: process.title.0,
        description: process.description.0,
        workshops: process
            .workshops
            .into_iter()
            .map(|w| WorkshopView { id: w.id, title: w.title, theme: w.theme, sectors: w.sectors, date: w.date })
            .collect(),
        members: member_list(&hub, &who, &id)?,
    }))
}

/// The members of a process, in the order they were invited. Facilitators
/// also see each token's state, and revoked members (greyed in the app, so
/// the record of who took part stays).
fn member_list(hub: &Hub, who: &Principal, process: &DocumentId) -> Result<Vec<MemberEntry>, ApiError> {
    let facilitator = who.is_facilitator_of(process);
    let mut tokens = hub.auth.store.tokens().map_err(ApiError::internal)?;
    tokens.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(tokens
        .into_iter()
        .filter(|t| (facilitator || !t.revoked) && t.process == Some(*process))
        .filter_map(|t| {
            // A member token always names a member role; anything else is
            // not a member of this process.
            let role = member_role(t.role)?;
            let status = if t.revoked {
                MemberStatus::Revoked
            } else if t.joined_at.is_some() {
                MemberStatus::Joined
            } else {
                MemberStatus::Invited
            };
            Some(MemberEntry {
                participant: t.participant,
                name: t.name,
                organisation: t.organisation,
                role,
                token_id: facilitator.then_some(t.id),
                invited_at: facilitator.then_some(t.created_at),
                status: facilitator.then_some(status),
                joined_at: t.joined_at.filter(|_| facilitator),
                last_seen: t.last_seen.filter(|_| facilitator),
                email: t.email.filter(|_| facilitator),
            })
        })
        .collect())
}

/// Where invitation links point: the public URL when the server was told it
/// (behind TLS: `https`); otherwise the address this request reached, which
/// is right on a LAN.
fn link_base(hub: &Hub, headers: &HeaderMap) -> String {
    match &hub.config.public_url {
        Some(url) => url.to_string(),
        None => headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|host| format!("http://{host}"))
            .unwrap_or_default(),
    }
}

fn invited(base: &str, secret: String, record: &konsens_store::TokenRecord) -> Result<Invited, ApiError> {
    let role = member_role(record.role).ok_or_else(|| ApiError::internal("a member token without a member role"))?;
    Ok(Invited {
        link: format!("{base}/join/{secret}"),
        token: secret,
        participant: record.participant.clone(),
        token_id: record.id.clone(),
        role,
        name: record.name.clone(),
        organisation: record.organisation.clone(),
    })
}

/// The process `id` names, if the caller facilitates it (and it is a process).
async fn facilitated_process(hub: &Arc<Hub>, who: &Principal, id: &str) -> Result<DocumentId, ApiError> {
    let id = document_id(id)?;
    readable(hub, who, &id)?;
    if !who.is_facilitator_of(&id) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "only facilitators invite members"));
    }
    let doc = load(hub, id).await?;
    Process::from_doc(&doc).map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    Ok(id)
}

/// A roster (CSV) in one request: every line valid, or nobody invited and
/// every problem answered with its line.
async fn invite_bulk(
    State(hub): State<Arc<Hub>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<Json<BulkInvitationRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<BulkInvited>), ApiError> {
    let who = caller(&hub, &headers, &uri)?;
    let id = facilitated_process(&hub, &who, &id).await?;
    let Json(request) = body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let entries = roster::parse(&request.csv).map_err(|lines| {
        // One problem a line, so the CLI can print the text as it is.
        let summary = lines.iter().map(|l| format!("\n  {l}")).collect::<String>();
        ApiError { lines, ..ApiError::coded(StatusCode::UNPROCESSABLE_ENTITY, "invalid-roster", format!("nobody was invited; the list has problems:{summary}")) }
    })?;
    let invitations: Vec<Invitation> = entries
        .into_iter()
        .map(|e| Invitation {
            process: id,
            role: e.invitation.role,
            name: e.invitation.name,
            organisation: e.invitation.organisation,
            invited_by: who.participant.clone(),
            expires_at: None,
            email: e.invitation.email,
        })
        .collect();
    let issuer = hub.clone();
    let issued = tokio::task::spawn_blocking(move || issuer.auth.invite_all(&invitations))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    tracing::info!(process = %id, count = issued.len(), by = %who.participant, "members invited from a roster");
    let base = link_base(&hub, &headers);
    let invited = issued.into_iter().map(|(secret, record)| invited(&base, secret, &record)).collect::<Result<_, _>>()?;
    Ok((StatusCode::CREATED, Json(BulkInvited { invited })))
}

/// A new link for a member whose link was lost (the server keeps only a
/// hash of each secret, so it cannot show the old one again): the old link
/// stops working and the member's connections close.
async fn reissue(State(hub): State<Arc<Hub>>, Path(token_id): Path<String>, headers: HeaderMap, uri: Uri) -> Result<Json<Invited>, ApiError> {
    let who = caller(&hub, &headers, &uri)?;
    let target = hub.auth.store.token_by_id(&token_id).map_err(ApiError::internal)?;
    let Some(target) = target.filter(|t| t.process.is_some_and(|p| who.is_facilitator_of(&p))) else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such token"));
    };
    if target.revoked {
        return Err(ApiError::coded(StatusCode::CONFLICT, "revoked", "this member's access was revoked; invite them again"));
    }
    if target.id == who.token_id {
        return Err(ApiError::coded(StatusCode::CONFLICT, "own-token", RevokeRefusal::OwnToken.to_string()));
    }
    let issuer = hub.clone();
    let id = token_id.clone();
    let (secret, record) = tokio::task::spawn_blocking(move || issuer.auth.reissue(&id))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such token"))?;
    let closed = hub.close_token_connections(&token_id);
    tracing::info!(token = %token_id, by = %who.participant, closed, "invitation link reissued");
    Ok(Json(invited(&link_base(&hub, &headers), secret, &record)?))
}

async fn members(State(hub): State<Arc<Hub>>, Path(id): Path<String>, headers: HeaderMap, uri: Uri) -> Result<Json<Vec<MemberEntry>>, ApiError> {
    let who = caller(&hub, &headers, &uri)?;
    let id = document_id(&id)?;
    readable(&hub, &who, &id)?;
    Ok(Json(member_list(&hub, &who, &id)?))
}

async fn invite(
    State(hub): State<Arc<Hub>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<Json<InvitationRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Invited>), ApiError> {
    let who = caller(&hub, &headers, &uri)?;
    let id = document_id(&id)?;
    readable(&hub, &who, &id)?;
    if !who.is_facilitator_of(&id) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "only facilitators invite members"));
    }
    // An unknown role fails here, with the schema's message in the text.
    let Json(request) = body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    if request.name.trim().is_empty() || request.organisation.trim().is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "name and organisation must not be empty"));
    }
    // The process must exist and be a process.
    let doc = load(&hub, id).await?;
    Process::from_doc(&doc).map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let expires_at = request.expires_in_days.map(|days| crate::util::now_millis() + i64::from(days) * 86_400_000);
    let invitation = Invitation {
        process: id,
        role: request.role,
        name: request.name.trim().to_owned(),
        organisation: request.organisation.trim().to_owned(),
        invited_by: who.participant.clone(),
        expires_at,
        email: request.email.map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()),
    };
    // The token is flushed before its link is shown; not on an async worker.
    let issuer = hub.clone();
    let (secret, record) = tokio::task::spawn_blocking(move || issuer.auth.invite(&invitation))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    tracing::info!(process = %id, participant = %record.participant, role = %record.role, by = %who.participant, "member invited");
    Ok((StatusCode::CREATED, Json(invited(&link_base(&hub, &headers), secret, &record)?)))
}

async fn revoke(State(hub): State<Arc<Hub>>, Path(token_id): Path<String>, headers: HeaderMap, uri: Uri) -> Result<Json<Revoked>, ApiError> {
    let who = caller(&hub, &headers, &uri)?;
    let tokens = hub.auth.store.tokens().map_err(ApiError::internal)?;
    let Some(target) = tokens.iter().find(|t| t.id == token_id).cloned() else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such token"));
    };
    let allowed = who.is_admin() || target.process.is_some_and(|p| who.is_facilitator_of(&p));
    if !allowed {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "only facilitators of its process revoke a token"));
    }
    if let Some(refusal) = auth::revocation_refusal(&target, &who, &tokens) {
        tracing::info!(token = %token_id, by = %who.participant, code = refusal.code(), "revocation refused");
        return Err(ApiError::coded(StatusCode::CONFLICT, refusal.code(), refusal.to_string()));
    }
    let (store, id) = (hub.auth.store.clone(), token_id.clone());
    tokio::task::spawn_blocking(move || store.revoke(&id))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let closed = hub.close_token_connections(&token_id);
    tracing::info!(token = %token_id, by = %who.participant, closed, "token revoked");
    Ok(Json(Revoked { revoked: token_id, closed_connections: closed }))
}

async fn history(State(hub): State<Arc<Hub>>, Path(id): Path<String>, headers: HeaderMap, uri: Uri) -> Result<Json<Vec<VerifiedChange>>, ApiError> {
    let who = caller(&hub, &headers, &uri)?;
    let id = document_id(&id)?;
    readable(&hub, &who, &id)?;
    let doc = load(&hub, id).await?;
    let people = people(&hub)?;
    let person = |participant: &str| Person {
        participant: participant.to_owned(),
        name: people.get(participant).map(|t| t.name.clone()),
        organisation: people.get(participant).map(|t| t.organisation.clone()),
    };
    let mut out = Vec::new();
    for change in doc.get_changes(&[]) {
        let provenance = hub.auth.store.provenance(&id, &change.hash().0).map_err(ApiError::internal)?;
        out.push(VerifiedChange {
            hash: change.hash().to_string(),
            time: change.timestamp(),
            actor: change.actor_id().to_hex_string(),
            message: change.message().map(str::to_owned),
            author: provenance.as_ref().map(|p| person(&p.author)),
            delivered_by: provenance.as_ref().map(|p| person(&p.delivered_by)),
            merged_by: provenance.as_ref().and_then(|p| p.merged_by.as_deref()).map(person),
            accepted_at: provenance.as_ref().map(|p| p.at),
            verified: provenance.is_some(),
        });
    }
    Ok(Json(out))
}

/// The history grouped into sessions (`konsens_model::history`), with the
/// authors the server verified; changes from before access control (or on
/// an `--open` server) name whom the document declares, as not verified.
async fn sessions(State(hub): State<Arc<Hub>>, Path(id): Path<String>, headers: HeaderMap, uri: Uri) -> Result<Json<Vec<HistorySession>>, ApiError> {
    let who = caller(&hub, &headers, &uri)?;
    let id = document_id(&id)?;
    readable(&hub, &who, &id)?;
    let doc = load(&hub, id).await?;
    let people = people(&hub)?;
    // Reading every change of a long history is work: off the async workers.
    let (declared, mut facts) = tokio::task::spawn_blocking(move || {
        (konsens_model::history::declared_authors(&doc), konsens_model::history::change_facts(&doc))
    })
    .await
    .map_err(ApiError::internal)?;
    // (participant, verified) per change.
    let mut authors = std::collections::HashMap::new();
    for fact in &mut facts {
        let hash: automerge::ChangeHash = fact.hash.parse().map_err(ApiError::internal)?;
        match hub.auth.store.provenance(&id, &hash.0).map_err(ApiError::internal)? {
            Some(p) => {
                if fact.time == 0 {
                    fact.time = p.at;
                }
                authors.insert(fact.hash.clone(), (p.author, true));
            }
            None => {
                if let Some(person) = declared.get(&fact.actor) {
                    authors.insert(fact.hash.clone(), (person.participant.clone(), false));
                }
            }
        }
    }
    let grouped = konsens_model::history::sessions(&facts, |f| authors.get(&f.hash).cloned());
    let person = |participant: &str, verified: bool| {
        let known = if verified { people.get(participant).map(|t| (t.name.clone(), t.organisation.clone())) } else { None };
        let known = known.or_else(|| {
            declared.values().find(|p| p.participant == participant).and_then(|p| Some((p.name.clone()?, p.organisation.clone()?)))
        });
        Person { participant: participant.to_owned(), name: known.as_ref().map(|k| k.0.clone()), organisation: known.map(|k| k.1) }
    };
    Ok(Json(
        grouped
            .into_iter()
            .map(|s| {
                let verified = s.author.as_ref().is_some_and(|a| a.1);
                let author = s.author.as_ref().map(|(p, verified)| person(p, *verified));
                s.into_api(author, verified)
            })
            .collect(),
    ))
}

/// `?format=markdown|html|json|pdf|docx&lang=de|en&kind=final|interim`;
/// the defaults are Markdown, the process's language and the final report.
#[derive(Debug, Deserialize)]
struct ReportQuery {
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    lang: Option<String>,
    #[serde(default)]
    kind: Option<String>,
}

async fn report_route(
    State(hub): State<Arc<Hub>>,
    Path(id): Path<String>,
    Query(query): Query<ReportQuery>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let who = caller(&hub, &headers, &uri)?;
    let id = document_id(&id)?;
    readable(&hub, &who, &id)?;
    let bad_request = |e: report::ReportError| ApiError::new(StatusCode::BAD_REQUEST, e.to_string());
    let format: ReportFormat = query.format.as_deref().unwrap_or("markdown").parse().map_err(bad_request)?;
    let kind: ReportKind = query.kind.as_deref().map(str::parse).transpose().map_err(bad_request)?.unwrap_or_default();
    let language: Option<Language> = query.lang.as_deref().map(str::parse).transpose().map_err(bad_request)?;
    let doc = load(&hub, id).await?;
    let mut process = Process::from_doc(&doc).map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    // Organisations in the report are the server's verified members, not
    // what the document says (its `members` map is written by a client). On
    // an open server there are no members; the document's list is all there is.
    if !hub.auth.open {
        process.members = people(&hub)?
            .into_values()
            .filter(|t| t.process == Some(id))
            .filter_map(|t| {
                let role = member_role(t.role)?;
                Some((t.participant, konsens_model::schema::Member { name: t.name, organisation: t.organisation, role }))
            })
            .collect();
    }
    let mut recommendations = Vec::new();
    for url in process.recommendations.values().flatten() {
        let Ok(rec_id) = document_id(url) else { continue };
        let Ok(rec_doc) = load(&hub, rec_id).await else { continue };
        // The final report prints the adopted wording, the interim one the
        // wording as it stands.
        let rec = match kind {
            ReportKind::Final => Recommendation::from_doc_as_adopted(&rec_doc),
            ReportKind::Interim => Recommendation::from_doc(&rec_doc),
        };
        if let Ok(rec) = rec {
            recommendations.push((url.clone(), rec));
        }
    }
    let options = ReportOptions {
        kind,
        language: language.unwrap_or_else(|| Language::of(&process)),
        date: crate::util::now_millis(),
    };
    let built = report::build(&process, &recommendations, &options);
    let file_name = built.file_name(format);
    // Typesetting a PDF takes a CPU for a moment: off the async workers.
    let body = tokio::task::spawn_blocking(move || konsens_publish::render(&built, format))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, format.media_type().to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file_name}\"")),
        ],
        body,
    )
        .into_response())
}
