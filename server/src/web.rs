//! The participants' web app, embedded in the binary: `server/web/dist/` (built
//! from `server/web/src/` with npm and committed) is compiled in with
//! `include_bytes!`, so the one run command serves the app with no Node on the
//! machine. `/`, `/p/<id>` and `/r/<id>` are the app's own routes and all get
//! `index.html`; the script routes in the browser. `/sw.js` is the service
//! worker that keeps these assets on the member's device for offline use
//! (its cache is named after the bundle's hash, see `server/web/build.mjs`).

use std::sync::OnceLock;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

struct Asset {
    bytes: &'static [u8],
    content_type: &'static str,
    /// Stored gzip-compressed (the Automerge wasm: 3.6 MB plain, 1.1 MB gzipped).
    gzipped: bool,
    etag: OnceLock<String>,
}

impl Asset {
    const fn new(bytes: &'static [u8], content_type: &'static str, gzipped: bool) -> Self {
        Self { bytes, content_type, gzipped, etag: OnceLock::new() }
    }

    /// A strong validator from the content. Asset names carry no hash, so
    /// browsers revalidate every time (`no-cache`) and get a 304 while the
    /// binary is the same; a new release is picked up at once.
    fn etag(&self) -> &str {
        self.etag.get_or_init(|| {
            // FNV-1a: no cryptographic need, and no extra dependency.
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
            for byte in self.bytes {
                hash ^= u64::from(*byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
            format!("\"{hash:016x}-{}\"", self.bytes.len())
        })
    }
}

static INDEX: Asset = Asset::new(include_bytes!("../web/dist/index.html"), "text/html; charset=utf-8", false);
static APP_JS: Asset = Asset::new(include_bytes!("../web/dist/assets/app.js"), "text/javascript; charset=utf-8", false);
static APP_CSS: Asset = Asset::new(include_bytes!("../web/dist/assets/app.css"), "text/css; charset=utf-8", false);
static WASM: Asset = Asset::new(include_bytes!("../web/dist/assets/automerge.wasm.gz"), "application/wasm", true);
static SERVICE_WORKER: Asset = Asset::new(include_bytes!("../web/dist/sw.js"), "text/javascript; charset=utf-8", false);

/// The app's routes, to be merged into the server's router.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/p/{id}", get(index))
        .route("/r/{id}", get(index))
        .route("/assets/app.js", get(|headers: HeaderMap| async move { serve(&APP_JS, &headers) }))
        .route("/assets/app.css", get(|headers: HeaderMap| async move { serve(&APP_CSS, &headers) }))
        .route("/assets/automerge.wasm", get(|headers: HeaderMap| async move { serve(&WASM, &headers) }))
        .route("/sw.js", get(service_worker))
}

/// The service worker, for the whole origin (`Service-Worker-Allowed: /`:
/// it is served from the root already, so this states the scope it is
/// registered with rather than widening it). Browsers check it for updates
/// on every navigation, bypassing their HTTP cache; `no-cache` keeps proxies
/// from serving an old one.
async fn service_worker(headers: HeaderMap) -> Response {
    let mut response = serve(&SERVICE_WORKER, &headers);
    response.headers_mut().insert("service-worker-allowed", HeaderValue::from_static("/"));
    response
}

async fn index(headers: HeaderMap) -> Response {
    serve(&INDEX, &headers)
}

fn serve(asset: &'static Asset, headers: &HeaderMap) -> Response {
    let etag = asset.etag();
    let mut response = if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else if asset.gzipped && !accepts_gzip(headers) {
        // Every browser accepts gzip; decompressing here would need a
        // dependency for the benefit of hand-made requests only.
        return (StatusCode::NOT_ACCEPTABLE, "this asset is only available gzip-encoded (Accept-Encoding: gzip)\n").into_response();
    } else {
        let mut r = asset.bytes.into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
        if asset.gzipped {
            r.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        r
    };
    let h = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, value);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if asset.gzipped {
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    // nosniff, the Content-Security-Policy and the Referrer-Policy are set
    // for every response, in `security.rs`.
    response
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|enc| {
            let mut parts = enc.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_negotiation() {
        let mut h = HeaderMap::new();
        assert!(!accepts_gzip(&h));
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip, deflate, br"));
        assert!(accepts_gzip(&h));
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("br;q=1.0, gzip;q=0"));
        assert!(!accepts_gzip(&h));
    }

    #[tokio::test]
    async fn the_service_worker_is_served_for_the_whole_origin() {
        let response = service_worker(HeaderMap::new()).await;
        assert_eq!(response.status(), StatusCode::OK);
        let h = response.headers();
        assert_eq!(h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()), Some("text/javascript; charset=utf-8"));
        assert_eq!(h.get("service-worker-allowed").and_then(|v| v.to_str().ok()), Some("/"));
        assert_eq!(h.get(header::CACHE_CONTROL).and_then(|v| v.to_str().ok()), Some("no-cache"));
        let source = std::str::from_utf8(SERVICE_WORKER.bytes).unwrap_or_default();
        assert!(!source.contains("__KONSENS_BUILD__"), "the build wrote the bundle's hash into the worker");
        assert!(source.contains("(api|sync|join|health)"), "the worker names what it never keeps");
    }

    #[test]
    fn etags_differ_by_content() {
        assert_ne!(INDEX.etag(), APP_JS.etag());
        assert!(INDEX.etag().starts_with('"'));
    }
}
