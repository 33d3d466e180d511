//! HTTP routes: the WebSocket endpoint, the health check and the web app.

use std::sync::Arc;

use axum::Router;
use axum::extract::{State, WebSocketUpgrade};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde::Serialize;

use crate::connection;
use crate::hub::Hub;

/// Read and write buffer of each WebSocket (see `sync_socket`).
const SOCKET_BUFFER_BYTES: usize = 4 * 1024;

pub(crate) fn router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/sync", get(sync_socket))
        .route("/health", get(health))
        .merge(crate::api::routes())
        .merge(crate::web::routes())
        // Outermost: same-origin checks and security headers for every route.
        .layer(axum::middleware::from_fn_with_state(hub.clone(), crate::security::protect))
        .with_state(hub)
}

async fn sync_socket(
    State(hub): State<Arc<Hub>>,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
    upgrade: WebSocketUpgrade,
) -> Response {
    // Authenticate before upgrading: a refused client gets a plain 401.
    let token = crate::auth::presented_token(&headers, uri.query());
    let principal = match hub.auth.authenticate(token.as_deref()) {
        Ok(principal) => principal,
        Err(rejection) => {
            tracing::info!(%rejection, "WebSocket refused");
            return (
                axum::http::StatusCode::UNAUTHORIZED,
                Json(serde_json::json!({"error": rejection.to_string(), "status": 401})),
            )
                .into_response();
        }
    };
    let limit = hub.config.max_frame_bytes;
    // tungstenite's default buffers are 128 KiB each, allocated per socket: at
    // 10,000 idle participants that is over a GiB for nothing. Our messages are
    // mostly small sync rounds; a larger message grows the read buffer as
    // needed (up to the frame limit) and is written straight through.
    upgrade
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| connection::serve(socket, hub, principal))
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
