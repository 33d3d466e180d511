//! What every HTTP response and every request that changes something go
//! through, for the sake of the browsers that run the web app: the
//! same-origin check and the security headers. One middleware around the
//! whole router ([`protect`]), so a route added later is covered without
//! anyone remembering to.
//!
//! The same-origin check exists because a browser attaches the session cookie
//! to requests that other pages make: a page on `http://127.0.0.1:9999` (the
//! same *site* as `http://127.0.0.1:8080`, so even a `SameSite=Lax` cookie goes
//! along) could otherwise revoke tokens, invite members or open `/sync` as the
//! visitor. A request that presents its token itself (`Authorization: Bearer`
//! or `?token=`: the CLI, the JS client in Node) carries no such ambient
//! authority and is not checked.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::{self, TokenSource};
use crate::config::PublicUrl;
use crate::hub::Hub;

/// Sent with every response: the app's own files and nothing else. Scripts
/// only from this origin (the wasm needs `'wasm-unsafe-eval'`, not `eval`);
/// stylesheets only from this origin, while `style` attributes (presence
/// colours) stay allowed because they cannot run code; connections only to
/// this origin's HTTP and WebSocket URLs (`{connect}` is filled in per
/// request); no plugins, no `<base>`, forms only to us, never in a frame.
const CSP_TEMPLATE: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; style-src-attr 'unsafe-inline'; connect-src 'self'{connect}; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `same-origin` rather than `no-referrer`: a form submission (the join
/// button) under `no-referrer` is sent with `Origin: null`, which the
/// same-origin check would have to refuse; `same-origin` still sends nothing
/// to other sites (links in a recommendation, say).
const REFERRER_POLICY: &str = "same-origin";

/// The middleware: refuse a cross-origin request that relies on ambient
/// authority, then put the security headers on whatever the answer is
/// (refusals, errors, the API, reports, the app, the join page).
pub(crate) async fn protect(State(hub): State<Arc<Hub>>, request: Request, next: Next) -> Response {
    let public_url = hub.config.public_url.as_ref();
    let csp = content_security_policy(public_url, request.headers());
    let mut response = match required_check(request.method(), request.uri(), request.headers()) {
        Some(check) if !check.passes(origin_verdict(public_url, request.headers())) => {
            let headers = request.headers();
            // The client chose these values: log a bounded prefix only.
            let shown = |name: &str| {
                let value = headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("-");
                value.chars().take(120).collect::<String>()
            };
            tracing::info!(
                method = %request.method(),
                path = %request.uri().path(),
                origin = %shown("origin"),
                sec_fetch_site = %shown("sec-fetch-site"),
                "cross-origin request refused"
            );
            forbidden()
        }
        _ => next.run(request).await,
    };
    let h = response.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static(REFERRER_POLICY));
    // A route may set a policy of its own; every other response gets ours.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY)
        && let Ok(value) = HeaderValue::from_str(&csp)
    {
        h.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        Json(json!({
            "error": "cross-origin request refused: with the session cookie, only this server's own pages may change anything or open /sync",
            "status": 403,
        })),
    )
        .into_response()
}

/// How sure we must be that a request comes from one of our own pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// The browser must say so (`Sec-Fetch-Site: same-origin` or our
    /// `Origin`); saying nothing is refused.
    Strict,
    /// Refused only if the browser says it comes from elsewhere. For requests
    /// without any token: on an `--open` server the network position is the
    /// authority, and a page on another site must not borrow a visitor's, but
    /// a CLI or Node client sends no `Origin` at all. (On a secure server such
    /// a request is refused for lack of a token anyway.)
    Lenient,
}

/// The origin verdict a browser's headers give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    SameOrigin,
    Foreign,
    /// Neither `Sec-Fetch-Site` nor `Origin`: not a browser, or a very old one.
    Unknown,
}

impl Check {
    pub(crate) fn passes(self, verdict: Verdict) -> bool {
        match self {
            Check::Strict => verdict == Verdict::SameOrigin,
            Check::Lenient => verdict != Verdict::Foreign,
        }
    }
}

/// Which check a request needs, if any: those that change state (every
/// method but GET, HEAD and OPTIONS) and WebSocket upgrades (a socket reads
/// and writes every document the token may, and browsers let any page open
/// one to any origin).
pub(crate) fn required_check(method: &Method, uri: &axum::http::Uri, headers: &HeaderMap) -> Option<Check> {
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("websocket"));
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) && !upgrade {
        return None;
    }
    // Accepting an invitation sets the session cookie: a form on another site
    // must not sign a visitor in as the attacker (login CSRF), whatever
    // credentials it adds to the request.
    if uri.path().starts_with("/join/") {
        return Some(Check::Strict);
    }
    match auth::presented(headers, uri.query()).map(|(_, source)| source) {
        Some(TokenSource::Bearer | TokenSource::Query) => None,
        Some(TokenSource::Cookie) => Some(Check::Strict),
        None => Some(Check::Lenient),
    }
}

/// Does the request come from a page of this server's origin?
/// `Sec-Fetch-Site` is set by the browser itself (a page cannot forge it) and
/// is not confused by a proxy that rewrites `Host`, so it decides when
/// present. Browsers send it only to https and loopback origins; elsewhere
/// `Origin` is compared with `--public-url`, or without one with the `Host`
/// the request was sent to (either scheme: behind a TLS proxy we cannot tell).
pub(crate) fn origin_verdict(public_url: Option<&PublicUrl>, headers: &HeaderMap) -> Verdict {
    if let Some(site) = headers.get("sec-fetch-site") {
        return if site.as_bytes().eq_ignore_ascii_case(b"same-origin") { Verdict::SameOrigin } else { Verdict::Foreign };
    }
    let Some(origin) = headers.get(header::ORIGIN) else { return Verdict::Unknown };
    let Ok(origin) = origin.to_str() else { return Verdict::Foreign };
    let ours = match public_url {
        Some(url) => origin.eq_ignore_ascii_case(&url.origin()),
        None => {
            let authority = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
            matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
        }
    };
    // `Origin: null` (sandboxed frames, opaque origins) is never ours.
    if ours { Verdict::SameOrigin } else { Verdict::Foreign }
}

/// The policy for one response: `connect-src` names this origin's WebSocket
/// URLs, since not every browser lets `'self'` cover `ws:`/`wss:`.
fn content_security_policy(public_url: Option<&PublicUrl>, headers: &HeaderMap) -> String {
    let connect = match public_url {
        Some(url) => format!(" {}://{}", if url.is_https() { "wss" } else { "ws" }, url.authority()),
        None => match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
            // The Host header is the client's to choose; only a plain
            // authority may go into the policy.
            Some(host) if is_authority(host) => format!(" ws://{host} wss://{host}"),
            _ => String::new(),
        },
    };
    CSP_TEMPLATE.replace("{connect}", &connect)
}

fn is_authority(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_static(value));
        }
        h
    }

    #[test]
    fn which_requests_are_checked() {
        let uri = |s: &'static str| axum::http::Uri::from_static(s);
        let cookie = headers(&[("cookie", "konsens_token=abc")]);
        let bearer = headers(&[("authorization", "Bearer abc"), ("cookie", "konsens_token=abc")]);
        assert_eq!(required_check(&Method::GET, &uri("/api/me"), &cookie), None);
        assert_eq!(required_check(&Method::POST, &uri("/api/tokens/t/revoke"), &cookie), Some(Check::Strict));
        assert_eq!(required_check(&Method::DELETE, &uri("/api/anything"), &cookie), Some(Check::Strict));
        assert_eq!(required_check(&Method::POST, &uri("/api/tokens/t/revoke"), &bearer), None);
        // A cookie beats `?token=` when both are there (as in `auth::presented`).
        assert_eq!(required_check(&Method::POST, &uri("/api/tokens/t/revoke?token=x"), &cookie), Some(Check::Strict));
        assert_eq!(required_check(&Method::POST, &uri("/api/tokens/t/revoke?token=x"), &HeaderMap::new()), None);
        assert_eq!(required_check(&Method::POST, &uri("/api/x"), &HeaderMap::new()), Some(Check::Lenient));
        assert_eq!(required_check(&Method::POST, &uri("/join/abc?token=x"), &bearer), Some(Check::Strict));
        let upgrade = headers(&[("upgrade", "websocket"), ("cookie", "konsens_token=abc")]);
        assert_eq!(required_check(&Method::GET, &uri("/sync"), &upgrade), Some(Check::Strict));
    }

    #[test]
    fn origin_verdicts() {
        let public: PublicUrl = "https://konsens.example".parse().expect("valid");
        let v = |pairs, public| origin_verdict(public, &headers(pairs));
        assert_eq!(v(&[("sec-fetch-site", "same-origin"), ("origin", "http://x")], None), Verdict::SameOrigin);
        assert_eq!(v(&[("sec-fetch-site", "same-site")], None), Verdict::Foreign);
        assert_eq!(v(&[("sec-fetch-site", "none")], None), Verdict::Foreign);
        assert_eq!(v(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")], None), Verdict::SameOrigin);
        assert_eq!(v(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:9999")], None), Verdict::Foreign);
        assert_eq!(v(&[("host", "127.0.0.1:8080"), ("origin", "null")], None), Verdict::Foreign);
        assert_eq!(v(&[("host", "konsens.example"), ("origin", "https://konsens.example")], Some(&public)), Verdict::SameOrigin);
        assert_eq!(v(&[("host", "konsens.example"), ("origin", "http://konsens.example")], Some(&public)), Verdict::Foreign);
        assert_eq!(v(&[("host", "127.0.0.1:8080")], None), Verdict::Unknown);
        assert!(!Check::Strict.passes(Verdict::Unknown));
        assert!(Check::Lenient.passes(Verdict::Unknown));
        assert!(!Check::Lenient.passes(Verdict::Foreign));
    }

    #[test]
    fn policy_names_our_websocket_origin_only() {
        let csp = content_security_policy(None, &headers(&[("host", "127.0.0.1:8080")]));
        assert!(csp.contains("connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080;"), "{csp}");
        let csp = content_security_policy(None, &headers(&[("host", "x; script-src *")]));
        assert!(csp.contains("connect-src 'self';"), "{csp}");
        let public: PublicUrl = "https://konsens.example".parse().expect("valid");
        let csp = content_security_policy(Some(&public), &HeaderMap::new());
        assert!(csp.contains("connect-src 'self' wss://konsens.example;"), "{csp}");
        assert!(csp.contains("script-src 'self' 'wasm-unsafe-eval';"), "{csp}");
    }
}
