//! Invitation links, `/join/<token>`. Opening one (a GET) changes nothing: it
//! shows who the link is for and a button; only the button's POST, from this
//! server's own page (`security.rs` checks its origin), sets the session
//! cookie. A bare GET that set the cookie would let any page, image or link
//! preview sign a visitor in as someone else (login CSRF), or silently
//! replace a member's session with an attacker's, after which the victim's
//! words would be written under the attacker's name into the attacker's
//! process. So the button is there even without a session, and with one the
//! page says which session it replaces.
//!
//! The page is rendered here, not by the app: it needs no script, works
//! before the app's bundle loads, and comes in English or German following
//! `Accept-Language` (the app's rule: German if any German variant comes
//! first, English otherwise).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use konsens_model::schema::Process;

use crate::auth::{self, Principal};
use crate::hub::Hub;

/// How long the browser keeps the session cookie, in seconds (a year: the
/// token itself expires or is revoked on the server).
const COOKIE_MAX_AGE_SECS: u64 = 31_536_000;

pub(crate) fn routes() -> Router<Arc<Hub>> {
    Router::new()
        .route("/join/{token}", get(show).post(accept))
        // A link pasted with a trailing slash is the same link.
        .route("/join/{token}/", get(show).post(accept))
        // What is left of a link cut or garbled on its way (no token, more
        // segments) gets the same page as an invalid token, in the member's
        // language, instead of a bare 404 the browser fills with its own
        // words.
        .route("/join", get(malformed))
        .route("/join/", get(malformed))
        .route("/join/{token}/{*rest}", get(malformed))
}

async fn malformed(headers: HeaderMap) -> Response {
    tracing::info!("malformed invitation link");
    invalid(Lang::from_headers(&headers))
}

/// The member an invitation link names, or the answer instead: on an
/// `--open` server nobody needs a session; an invalid link says so.
fn invited(hub: &Hub, token: &str, lang: Lang, action: &'static str) -> Result<auth::Principal, Response> {
    if hub.auth.open {
        return Err(see_other("/"));
    }
    hub.auth.authenticate(Some(token)).map_err(|rejection| {
        tracing::info!(%rejection, action, "invalid invitation link");
        invalid(lang)
    })
}

/// GET: the confirmation page (or, if this browser's session already is this
/// link's, straight to the process).
async fn show(State(hub): State<Arc<Hub>>, Path(token): Path<String>, headers: HeaderMap) -> Response {
    let lang = Lang::from_headers(&headers);
    let who = match invited(&hub, &token, lang, "opened") {
        Ok(who) => who,
        Err(answer) => return answer,
    };
    let current = auth::cookie_token(&headers).and_then(|t| hub.auth.authenticate(Some(&t)).ok());
    if current.as_ref().is_some_and(|c| c.token_id == who.token_id) {
        return see_other(&target(&who));
    }
    let process = process_title(&hub, &who).await;
    page(StatusCode::OK, lang, &confirmation(lang, &token, &who, process.as_deref(), current.as_ref()))
}

/// POST (from the page above): set the session cookie and go to the process.
async fn accept(State(hub): State<Arc<Hub>>, Path(token): Path<String>, headers: HeaderMap) -> Response {
    let lang = Lang::from_headers(&headers);
    let who = match invited(&hub, &token, lang, "accepted") {
        Ok(who) => who,
        Err(answer) => return answer,
    };
    let replaced = auth::cookie_token(&headers)
        .and_then(|t| hub.auth.authenticate(Some(&t)).ok())
        .filter(|c| c.token_id != who.token_id)
        .map(|c| c.participant);
    let secure = if hub.config.public_url.as_ref().is_some_and(|u| u.is_https()) { "; Secure" } else { "" };
    let cookie = format!("{}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={COOKIE_MAX_AGE_SECS}{secure}", auth::COOKIE);
    tracing::info!(participant = %who.participant, replaced = replaced.as_deref().unwrap_or("-"), "joined through a link");
    // The facilitator's list shows the member as joined from now on.
    let seen = hub.clone();
    let joined = who.clone();
    tokio::task::spawn_blocking(move || seen.auth.mark_seen(&joined));
    let mut response = see_other(&target(&who));
    match HeaderValue::from_str(&cookie) {
        Ok(value) => {
            response.headers_mut().insert(header::SET_COOKIE, value);
            response
        }
        // Only a token that authenticated gets here, and tokens are bs58;
        // anything else is a bug, and a session without a cookie is no session.
        Err(_) => {
            tracing::error!("a valid token does not fit in a cookie");
            invalid(lang)
        }
    }
}

fn target(who: &Principal) -> String {
    match who.process {
        Some(p) => format!("/p/{p}"),
        None => "/".to_owned(),
    }
}

fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn process_title(hub: &Hub, who: &Principal) -> Option<String> {
    let id = who.process?;
    let doc = hub.flushed_document(id).await.ok()??;
    Process::from_doc(&doc).ok().map(|p| p.title.0).filter(|t| !t.trim().is_empty())
}

/// The page for a link that does not work: what happened, what to do (ask
/// for a new one), and a way into the app for a browser that has a session.
fn invalid(lang: Lang) -> Response {
    let s = lang.strings();
    let body = format!(
        "<h1>{}</h1>\n<p>{}</p>\n<p><strong>{}</strong></p>\n<p class=\"hint\">{} <a href=\"/\">{}</a></p>",
        escape(s.invalid_title),
        escape(s.invalid),
        escape(s.invalid_what_to_do),
        escape(s.invalid_signed_in),
        escape(s.open_app),
    );
    page_titled(StatusCode::UNAUTHORIZED, lang, s.invalid_title, "join-invalid", &body)
}

fn confirmation(lang: Lang, token: &str, who: &Principal, process: Option<&str>, current: Option<&Principal>) -> String {
    let s = lang.strings();
    let name = escape(&who.name);
    let (heading, button) = match process {
        Some(title) => (escape(title), fill(s.join_process, &[("process", &escape(title)), ("name", &name)])),
        None if who.is_admin() => (escape(s.admin_heading), fill(s.join_admin, &[("name", &name)])),
        None => (escape(s.invitation), fill(s.join_admin, &[("name", &name)])),
    };
    let role = match who.role_name() {
        "facilitator" => s.role_facilitator,
        "participant" => s.role_participant,
        "observer" => s.role_observer,
        _ => s.role_admin,
    };
    let invited = if who.organisation.is_empty() {
        fill(s.invited_as_no_org, &[("name", &name), ("role", &escape(role))])
    } else {
        fill(s.invited_as, &[("name", &name), ("organisation", &escape(&who.organisation)), ("role", &escape(role))])
    };
    let replaces = current
        .map(|c| {
            let who = if c.organisation.is_empty() { escape(&c.name) } else { format!("{} ({})", escape(&c.name), escape(&c.organisation)) };
            format!("\n<p class=\"notice\" id=\"current-session\">{}</p>", fill(s.replaces, &[("current", &who)]))
        })
        .unwrap_or_default();
    format!(
        "<h1>{heading}</h1>\n<p>{invited}</p>{replaces}\n<form method=\"post\" action=\"/join/{token}\" class=\"actions\">\n<button class=\"primary\" type=\"submit\" id=\"join\">{button}</button>\n</form>\n<p class=\"hint\">{personal}</p>",
        token = escape(token),
        personal = escape(s.personal),
    )
}

/// The whole page around `body`, with the app's stylesheet. It must not be
/// cached (the link's page names a person) nor leak its URL (the token), which
/// `Referrer-Policy` (set for every response) already prevents.
fn page(status: StatusCode, lang: Lang, body: &str) -> Response {
    page_titled(status, lang, lang.strings().invitation, "join-page", body)
}

/// [`page`] with its own title and card id.
fn page_titled(status: StatusCode, lang: Lang, title: &str, id: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"{code}\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<link rel=\"icon\" href=\"data:,\">\n<title>{title} · konsens</title>\n<link rel=\"stylesheet\" href=\"/assets/app.css\">\n</head>\n<body>\n<header class=\"top\"><a class=\"brand\" href=\"/\">konsens</a></header>\n<main id=\"main\">\n<section class=\"card narrow join\" id=\"{id}\">\n{body}\n</section>\n</main>\n</body>\n</html>\n",
        code = lang.code(),
        title = escape(title),
        id = escape(id),
    );
    (
        status,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::VARY, HeaderValue::from_static("Accept-Language, Cookie")),
        ],
        html,
    )
        .into_response()
}

/// The page's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    En,
    De,
}

impl Lang {
    /// The first of English and German in the browser's order of preference
    /// (by `q`, then by position), English if it names neither.
    fn from_headers(headers: &HeaderMap) -> Self {
        let mut best: Option<(f32, Lang)> = None;
        let ranges = headers.get_all(header::ACCEPT_LANGUAGE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(','));
        for range in ranges {
            let mut parts = range.split(';');
            let tag = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or_default();
            let lang = match primary {
                "de" => Lang::De,
                "en" => Lang::En,
                _ => continue,
            };
            if q > 0.0 && best.is_none_or(|(best_q, _)| q > best_q) {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::En, |(_, lang)| lang)
    }

    fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
        }
    }

    fn strings(self) -> &'static Strings {
        match self {
            Lang::En => &EN,
            Lang::De => &DE,
        }
    }
}

/// The page's words; `{name}`-style placeholders are filled with escaped HTML.
/// The role names are the app's (`server/web/src/i18n.js`, `role_*`).
#[derive(Debug)]
struct Strings {
    invitation: &'static str,
    admin_heading: &'static str,
    join_process: &'static str,
    join_admin: &'static str,
    invited_as: &'static str,
    invited_as_no_org: &'static str,
    replaces: &'static str,
    personal: &'static str,
    invalid_title: &'static str,
    invalid: &'static str,
    invalid_what_to_do: &'static str,
    invalid_signed_in: &'static str,
    open_app: &'static str,
    role_facilitator: &'static str,
    role_participant: &'static str,
    role_observer: &'static str,
    role_admin: &'static str,
}

static EN: Strings = Strings {
    invitation: "Invitation",
    admin_heading: "konsens administration",
    join_process: "Join “{process}” as {name}",
    join_admin: "Continue as {name}",
    invited_as: "This personal link is for {name} ({organisation}), as {role}.",
    invited_as_no_org: "This personal link is for {name}, as {role}.",
    replaces: "This browser is signed in as {current}. Joining signs it out of that session.",
    personal: "The link is personal: please do not pass it on.",
    invalid_title: "This invitation link does not work",
    invalid: "The link is invalid, has expired or was revoked, or it was cut off when it was copied.",
    invalid_what_to_do: "Please ask the facilitators of your process for a new personal link.",
    invalid_signed_in: "Already signed in with this browser?",
    open_app: "Open konsens",
    role_facilitator: "facilitator",
    role_participant: "participant",
    role_observer: "observer",
    role_admin: "administrator",
};

static DE: Strings = Strings {
    invitation: "Einladung",
    admin_heading: "konsens-Administration",
    join_process: "„{process}“ als {name} beitreten",
    join_admin: "Weiter als {name}",
    invited_as: "Dieser persönliche Link ist für {name} ({organisation}), Rolle: {role}.",
    invited_as_no_org: "Dieser persönliche Link ist für {name}, Rolle: {role}.",
    replaces: "Dieser Browser ist als {current} angemeldet. Mit dem Beitritt wird diese Sitzung beendet.",
    personal: "Der Link ist persönlich: Bitte geben Sie ihn nicht weiter.",
    invalid_title: "Dieser Einladungslink funktioniert nicht",
    invalid: "Der Link ist ungültig, abgelaufen oder wurde widerrufen – oder er wurde beim Kopieren abgeschnitten.",
    invalid_what_to_do: "Bitte wenden Sie sich an die Moderation Ihres Prozesses und lassen Sie sich einen neuen persönlichen Link schicken.",
    invalid_signed_in: "Sind Sie in diesem Browser schon angemeldet?",
    open_app: "konsens öffnen",
    role_facilitator: "Moderation",
    role_participant: "Teilnehmende",
    role_observer: "Beobachtende",
    role_admin: "Administration",
};

/// `template` with each `{key}` replaced by its (already escaped) value, in
/// one pass, so a value that looks like a placeholder stays as it is; the
/// template's own text is escaped.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&escape(&rest[..open]));
        let after = &rest[open + 1..];
        match after.find('}').map(|close| (&after[..close], close)) {
            Some((key, close)) if values.iter().any(|(k, _)| *k == key) => {
                out.extend(values.iter().filter(|(k, _)| *k == key).map(|(_, v)| *v).take(1));
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(&escape(rest));
    out
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    konsens_model::richtext::escape_html(text, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept_language(value: &'static str) -> Lang {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static(value));
        Lang::from_headers(&h)
    }

    #[test]
    fn language_follows_the_browser() {
        assert_eq!(Lang::from_headers(&HeaderMap::new()), Lang::En);
        assert_eq!(accept_language("de-DE,de;q=0.9,en;q=0.8"), Lang::De);
        assert_eq!(accept_language("fr-CH, fr;q=0.9, de;q=0.8, en;q=0.7"), Lang::De);
        assert_eq!(accept_language("en-GB,de;q=0.5"), Lang::En);
        assert_eq!(accept_language("en;q=0.4, de-AT;q=0.6"), Lang::De);
        assert_eq!(accept_language("de;q=0, fr"), Lang::En);
    }

    #[test]
    fn names_are_escaped_once() {
        let filled = fill(EN.join_process, &[("process", &escape("<b>Fair & square</b>")), ("name", &escape("Ada \"A\""))]);
        assert_eq!(filled, "Join “&lt;b&gt;Fair &amp; square&lt;/b&gt;” as Ada &quot;A&quot;");
        assert_eq!(fill(EN.join_process, &[("process", "{name}"), ("name", "Ada")]), "Join “{name}” as Ada");
    }
}
