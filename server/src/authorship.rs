//! `GET /api/docs/{id}/authorship`: who wrote what in a recommendation, from
//! the op ids of its text (`konsens_model::authorship`) mapped through the
//! server's actor bindings to verified members. What a document says about
//! its authors is never read here.

use std::collections::HashMap;
use std::sync::Arc;

use automerge::ActorId;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::routing::get;
use axum::{Json, Router};
use konsens_model::api::{AuthoredRun, FieldAuthorship, Person};
use konsens_model::authorship::{self, Author};

use crate::api::{ApiError, caller, document_id, load, people, readable};
use crate::hub::Hub;

pub(crate) fn routes() -> Router<Arc<Hub>> {
    Router::new().route("/api/docs/{id}/authorship", get(authorship_route))
}

async fn authorship_route(
    State(hub): State<Arc<Hub>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<Vec<FieldAuthorship>>, ApiError> {
    let who = caller(&hub, &headers, &uri)?;
    let id = document_id(&id)?;
    readable(&hub, &who, &id)?;
    let doc = load(&hub, id).await?;
    let people = people(&hub)?;
    // The bindings of every actor of the document, read once (a few sled
    // lookups, from its cache) before the walk over the text.
    let mut owners: HashMap<ActorId, Option<String>> = HashMap::new();
    for change in doc.get_changes(&[]) {
        let actor = change.actor_id();
        if !owners.contains_key(actor) {
            let owner = hub.auth.store.actor_owner(actor.to_bytes()).map_err(ApiError::internal)?;
            owners.insert(actor.clone(), owner);
        }
    }
    // Walking every character of long fields is work: off the async workers.
    let fields = tokio::task::spawn_blocking(move || {
        authorship::all_fields(&doc, &|actor| owners.get(actor).cloned().flatten())
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    let person = |participant: String| Person {
        name: people.get(&participant).map(|t| t.name.clone()),
        organisation: people.get(&participant).map(|t| t.organisation.clone()),
        participant,
    };
    Ok(Json(
        fields
            .into_iter()
            .map(|(field, runs)| FieldAuthorship {
                field: field.to_owned(),
                runs: runs
                    .into_iter()
                    .map(|run| match run.author {
                        Author::Member { participant } => {
                            AuthoredRun { text: run.text, author: Some(person(participant)), verified: true, actor: None }
                        }
                        Author::Unbound { actor } => {
                            AuthoredRun { text: run.text, author: None, verified: false, actor: Some(actor) }
                        }
                    })
                    .collect(),
            })
            .collect(),
    ))
}
