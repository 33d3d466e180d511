//! `GET /api/processes/{id}/notifications` and
//! `POST /api/processes/{id}/notifications/seen`: what changed in a member's
//! process since they last looked (`konsens_model::notifications`), with the
//! names the server verified.
//!
//! "Last looked" lives on the server, per token (`AuthStore::
//! notifications_seen`), so it follows the member from the laptop to the
//! phone; the app records it when the member opens the list, not when the
//! page loads (a reload must not swallow what they have not read yet).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::{get, post};
use axum::{Json, Router};
use konsens_model::api::{NotificationItem, NotificationsSeen, NotificationsView, Person};
use konsens_model::notifications::{self, Moments};
use konsens_model::schema::{Process, Recommendation};

use crate::api::{ApiError, caller, document_id, load, people, readable};
use crate::hub::Hub;

/// Items older than this are left out of the list, read or not.
const WINDOW_MS: i64 = 14 * 24 * 60 * 60 * 1000;

pub(crate) fn routes() -> Router<Arc<Hub>> {
    Router::new()
        .route("/api/processes/{id}/notifications", get(list))
        .route("/api/processes/{id}/notifications/seen", post(seen))
}

async fn list(State(hub): State<Arc<Hub>>, Path(id): Path<String>, headers: HeaderMap, uri: Uri) -> Result<Json<NotificationsView>, ApiError> {
    let who = caller(&hub, &headers, &uri)?;
    let id = document_id(&id)?;
    readable(&hub, &who, &id)?;
    let doc = load(&hub, id).await?;
    let process =
        Process::from_doc(&doc).map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let mut recommendations = Vec::new();
    for url in process.recommendations.values().flatten() {
        let Ok(rec_id) = document_id(url) else { continue };
        let Ok(rec_doc) = load(&hub, rec_id).await else { continue };
        if let Ok(rec) = Recommendation::from_doc(&rec_doc) {
            recommendations.push((url.clone(), rec));
        }
    }
    let people = people(&hub)?;
    // Never looked: everything since the member joined is new.
    let seen = match hub.auth.store.notifications_seen(&who.token_id).map_err(ApiError::internal)? {
        Some(at) => at,
        None => people.get(&who.participant).and_then(|t| t.joined_at).unwrap_or(0),
    };
    let now = crate::util::now_millis();
    let moments = Moments { me: &who.participant, seen, window_start: seen.min(now - WINDOW_MS), now };
    let items: Vec<NotificationItem> = notifications::collect(&process, &recommendations, moments)
        .into_iter()
        .map(|n| NotificationItem {
            id: n.recommendation.trim_start_matches("automerge:").split('#').next().unwrap_or_default().to_owned(),
            kind: n.kind,
            recommendation: n.recommendation,
            title: n.title,
            at: n.at,
            by: n.by.map(|participant| Person {
                name: people.get(&participant).map(|t| t.name.clone()),
                organisation: people.get(&participant).map(|t| t.organisation.clone()),
                participant,
            }),
            value: n.value,
            new: n.new,
        })
        .collect();
    Ok(Json(NotificationsView { seen, new: items.iter().filter(|i| i.new).count(), items }))
}

async fn seen(State(hub): State<Arc<Hub>>, Path(id): Path<String>, headers: HeaderMap, uri: Uri) -> Result<Json<NotificationsSeen>, ApiError> {
    let who = caller(&hub, &headers, &uri)?;
    let id = document_id(&id)?;
    readable(&hub, &who, &id)?;
    let now = crate::util::now_millis();
    let (store, token) = (hub.auth.store.clone(), who.token_id.clone());
    tokio::task::spawn_blocking(move || store.mark_notifications_seen(&token, now))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok(Json(NotificationsSeen { seen: now }))
}
