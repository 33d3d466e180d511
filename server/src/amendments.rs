//! `GET /api/docs/{rec}/amendments`: a recommendation's amendments, with
//! their authors named as the server knows them and, for those still open,
//! what accepting would change now (hunks against the merged preview).
//! Role-checked like the other document routes: a recommendation the caller
//! may not read answers 404.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use konsens_model::amendment;
use konsens_model::api::{AmendmentView, Person};
use konsens_model::schema::Recommendation;
use konsens_sync::DocumentId;

use crate::api::{ApiError, caller, document_id, load, people, readable};
use crate::hub::Hub;

pub(crate) fn routes() -> axum::Router<Arc<Hub>> {
    axum::Router::new().route("/api/docs/{id}/amendments", axum::routing::get(list))
}

async fn list(State(hub): State<Arc<Hub>>, Path(id): Path<String>, headers: HeaderMap, uri: Uri) -> Result<Json<Vec<AmendmentView>>, ApiError> {
    let who = caller(&hub, &headers, &uri)?;
    let id = document_id(&id)?;
    readable(&hub, &who, &id)?;
    let rec = load(&hub, id).await?;
    let entries = Recommendation::from_doc(&rec).map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?.amendments;
    // The branches still open, as flushed (a branch not on the server yet shows no hunks).
    let mut branches = Vec::new();
    for (key, entry) in &entries {
        let branch = match key.parse::<DocumentId>() {
            Ok(branch) if entry.state.is_editable() => hub.flushed_document(branch).await.map_err(ApiError::internal)?,
            _ => None,
        };
        branches.push(branch);
    }
    let people = people(&hub)?;
    // Merging and diffing is work: off the async workers.
    let views = tokio::task::spawn_blocking(move || {
        let person = |participant: &str| match people.get(participant) {
            Some(t) => Person { participant: participant.to_owned(), name: Some(t.name.clone()), organisation: Some(t.organisation.clone()) },
            None => Person { participant: participant.to_owned(), name: None, organisation: None },
        };
        entries
            .iter()
            .zip(branches)
            .map(|((key, entry), branch)| {
                let hunks = match branch {
                    Some(branch) if !branch.is_empty() => amendment::hunks(&rec, &branch).unwrap_or_else(|error| {
                        tracing::warn!(amendment = %key, %error, "cannot diff an amendment");
                        Vec::new()
                    }),
                    _ => Vec::new(),
                };
                konsens_model::api::amendment_view(key, entry, hunks, &person)
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(ApiError::internal)?;
    Ok(Json(views))
}
