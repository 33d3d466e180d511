//! HTTP routes: the WebSocket endpoint and the health check.

use std::sync::Arc;

use axum::Router;
use axum::extract::{State, WebSocketUpgrade};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde::Serialize;

use crate::connection;
use crate::hub::Hub;

pub(crate) fn router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/sync", get(sync_socket))
        .route("/health", get(health))
        .with_state(hub)
}

async fn sync_socket(State(hub): State<Arc<Hub>>, upgrade: WebSocketUpgrade) -> Response {
    let limit = hub.config.max_frame_bytes;
    upgrade
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| connection::serve(socket, hub))
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    storage_id: String,
    loaded_documents: usize,
    connections: usize,
    writes: u64,
    flushes: u64,
}

async fn health(State(hub): State<Arc<Hub>>) -> impl IntoResponse {
    let stats = hub.commit.stats();
    Json(Health {
        status: "ok",
        storage_id: hub.handshake.storage_id.0.clone(),
        loaded_documents: hub.loaded_document_count(),
        connections: hub.connection_count(),
        writes: stats.writes.load(std::sync::atomic::Ordering::Relaxed),
        flushes: stats.flushes.load(std::sync::atomic::Ordering::Relaxed),
    })
}
