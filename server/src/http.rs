//! HTTP: our own accept loop (connection caps, timeouts) and the routes: the
//! WebSocket endpoint, the health check, the metrics and the web app.
//!
//! We do not use `axum::serve`: it sets no header-read timeout, so a client
//! sending one header line every few seconds held its connection forever,
//! and it accepts until the process runs out of descriptors. Here every
//! connection passes the [`Gate`] first, hyper's HTTP/1 reader times out a
//! request head that is not complete in time (and an idle keep-alive
//! connection), and each request has a deadline of its own.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::{State, WebSocketUpgrade};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::connection;
use crate::gate::{Full, Permit, refusal_response};
use crate::hub::Hub;

/// Read and write buffer of each WebSocket (see `sync_socket`).
const SOCKET_BUFFER_BYTES: usize = 4 * 1024;

/// Refused connections kept open at once while the 503 drains (see `refuse`).
const MAX_LINGERING: usize = 256;

/// How long a refused connection is kept to let its 503 reach the client.
const LINGER: Duration = Duration::from_secs(2);

/// Descriptors the process needs besides its connections: refused ones
/// lingering, sled's files, the listener, the runtime.
pub(crate) const DESCRIPTOR_RESERVE: usize = MAX_LINGERING + 256;

/// Serve HTTP on `listener` until `shutdown` is cancelled, then let the
/// requests in progress finish (WebSockets end with the hub's shutdown).
pub(crate) async fn serve(listener: TcpListener, hub: Arc<Hub>, shutdown: CancellationToken) {
    let app = router(hub.clone());
    let connections = TaskTracker::new();
    let lingering = Arc::new(tokio::sync::Semaphore::new(MAX_LINGERING));
    let mut accept_errors = AcceptErrors::default();
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    accept_errors.back_off(error).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        match hub.gate.admit(addr.ip()) {
            Ok(permit) => {
                let io = TokioIo::new(Counted { stream, _permit: permit });
                connections.spawn(serve_connection(io, app.clone(), hub.config.clone(), shutdown.clone()));
            }
            Err(full) => {
                hub.gate.log_refusal(addr.ip(), full);
                refuse(stream, full, &lingering);
            }
        }
    }
    connections.close();
    connections.wait().await;
}

/// One HTTP/1.1 connection, with upgrades (the WebSocket takes the socket,
/// and its place in the gate, with it).
async fn serve_connection(io: TokioIo<Counted>, app: Router, config: crate::config::ServerConfig, shutdown: CancellationToken) {
    let request_timeout = config.request_timeout;
    let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let app = app.clone();
        async move {
            let path = request.uri().path().to_owned();
            match tokio::time::timeout(request_timeout, app.oneshot(request)).await {
                Ok(response) => response,
                Err(_) => {
                    tracing::info!(%path, timeout_secs = request_timeout.as_secs(), "request took too long; answering 408");
                    let mut response = (
                        axum::http::StatusCode::REQUEST_TIMEOUT,
                        Json(serde_json::json!({"error": "the request took too long", "status": 408})),
                    )
                        .into_response();
                    // Made outside the router, so without security.rs's headers: add them.
                    use axum::http::{HeaderValue, header};
                    let headers = response.headers_mut();
                    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
                    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
                    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
                    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'"));
                    Ok(response)
                }
            }
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(config.header_timeout);
    let connection = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(connection);
    let mut shutting_down = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    // A head not read in time, a client that went away: its own business.
                    tracing::debug!(%error, "HTTP connection ended");
                }
                return;
            }
            () = shutdown.cancelled(), if !shutting_down => {
                shutting_down = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Answer a connection over a cap with a 503 and close it, at the cost of a
/// write into a fresh socket. If the client's request is still unread at the
/// close, the kernel sends a reset that can destroy the 503 before it is
/// read, so a few refused connections are half-closed and drained first;
/// under a flood the rest are simply dropped.
fn refuse(stream: TcpStream, full: Full, lingering: &Arc<tokio::sync::Semaphore>) {
    let _ = stream.try_write(&refusal_response(full));
    let Ok(place) = lingering.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _place = place;
        let mut stream = stream;
        let _ = stream.shutdown().await;
        let _ = tokio::time::timeout(LINGER, async {
            let mut buffer = [0u8; 1024];
            let mut drained = 0;
            while drained < 64 * 1024 {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => drained += n,
                }
            }
        })
        .await;
    });
}

/// `accept` failing: a connection that died in the queue is nothing; running
/// out of descriptors or memory is waited out briefly (retrying at once
/// would spin), logged once a second at most.
#[derive(Default)]
struct AcceptErrors {
    last_logged: Option<tokio::time::Instant>,
    unlogged: u64,
}

impl AcceptErrors {
    async fn back_off(&mut self, error: io::Error) {
        if matches!(error.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted) {
            return;
        }
        self.unlogged += 1;
        let now = tokio::time::Instant::now();
        if self.last_logged.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1)) {
            tracing::error!(%error, errors = self.unlogged, "accept failed; backing off");
            self.last_logged = Some(now);
            self.unlogged = 0;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A TCP stream that holds its place in the [`Gate`] for as long as it
/// lives, through an upgrade too.
struct Counted {
    stream: TcpStream,
    _permit: Permit,
}

impl AsyncRead for Counted {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

pub(crate) fn router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/sync", get(sync_socket))
        .route("/health", get(health))
        .route(crate::cluster::link::LINK_PATH, get(crate::relayed::link_socket))
        .route("/metrics", get(metrics))
        .merge(crate::api::routes())
        // The amendments, authorship and notifications routes use the API's
        // helpers (caller, read checks, errors); merged here, not by `api`,
        // so that the dependency runs one way.
        .merge(crate::amendments::routes())
        .merge(crate::authorship::routes())
        .merge(crate::notifications::routes())
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
        .on_upgrade(move |socket| connection::serve(socket, hub, principal, token))
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    storage_id: String,
    loaded_documents: usize,
    connections: usize,
    /// Open TCP connections, WebSockets included (see the connection caps).
    open_connections: usize,
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
        open_connections: hub.gate.open(),
        writes: stats.writes.load(std::sync::atomic::Ordering::Relaxed),
        flushes: stats.flushes.load(std::sync::atomic::Ordering::Relaxed),
    })
}

/// Prometheus scrapes this. Without a token, like `/health`: operators
/// firewall it (it names no document and no member).
async fn metrics(State(hub): State<Arc<Hub>>) -> Response {
    match hub.metrics.encode(hub.connection_count(), hub.loaded_document_count()) {
        Ok(text) => ([(axum::http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "metrics not encoded");
            (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                Json(serde_json::json!({"error": "metrics not encoded", "status": 500})),
            )
                .into_response()
        }
    }
}
