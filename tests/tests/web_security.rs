//! Web and session hardening, end to end against the real server binary: the
//! same-origin check on everything a session cookie could be abused for
//! (state-changing API calls, accepting an invitation, the `/sync` upgrade),
//! the two-step invitation link, `--public-url` (Secure cookie, https links),
//! and the security headers on every kind of response.
//!
//! Requests are written by hand, so each test says exactly which headers a
//! browser (or an attacker's page in it) would send.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use konsens_tests::{ServerProcess, binary, init_tracing};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A page on another port of the same host: another origin, but the same
/// *site*, so a `SameSite=Lax` cookie still goes along with its requests.
const FOREIGN: &str = "http://127.0.0.1:9";

/// An answer, with its headers (names lower-cased).
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// One HTTP/1.1 request with exactly these extra headers.
async fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&Value>) -> Result<Reply> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let body = body.map(Value::to_string);
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    match &body {
        Some(body) => text.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len())),
        None if method == "POST" => text.push_str("Content-Length: 0\r\n\r\n"),
        None => text.push_str("\r\n"),
    }
    stream.write_all(text.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw)).await.context("no answer within 30 s")??;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").context("no end of headers")?;
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).context("no status")?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(Reply { status, headers, body: body.to_owned() })
}

/// A secure server with the demo process, its administrator, and members.
struct World {
    server: ServerProcess,
    admin: String,
    process: String,
    title: String,
    _data: tempfile::TempDir,
}

impl World {
    async fn new(extra_args: &[&str]) -> Result<Self> {
        init_tracing();
        let data = tempfile::tempdir()?;
        let mut args = vec!["--demo"];
        args.extend_from_slice(extra_args);
        let server = ServerProcess::start_secure(data.path(), "127.0.0.1:0", &args)?;
        let admin = server.admin_token.clone().context("the first start prints an admin link")?;
        let bearer = format!("Bearer {admin}");
        let listed = request(&server.addr, "GET", "/api/processes", &[("Authorization", &bearer)], None).await?;
        let first = listed.json().get(0).cloned().context("the demo process is listed")?;
        let process = first["id"].as_str().context("process id")?.to_owned();
        let title = first["title"].as_str().context("process title")?.to_owned();
        Ok(Self { server, admin, process, title, _data: data })
    }

    fn addr(&self) -> &str {
        &self.server.addr
    }

    /// This server's own origin, as a browser on its pages sends it.
    fn own(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// Invite with the administrator's bearer token; returns the answer.
    async fn invite(&self, role: &str, name: &str) -> Result<Value> {
        let bearer = format!("Bearer {}", self.admin);
        let body = json!({"role": role, "name": name, "organisation": format!("{name}'s organisation")});
        let reply = request(self.addr(), "POST", &format!("/api/processes/{}/invitations", self.process), &[("Authorization", &bearer)], Some(&body)).await?;
        if reply.status != 201 {
            bail!("invitation failed: {} {}", reply.status, reply.body);
        }
        Ok(reply.json())
    }

    /// Does this token still work?
    async fn valid(&self, token: &str) -> Result<bool> {
        let bearer = format!("Bearer {token}");
        Ok(request(self.addr(), "GET", "/api/me", &[("Authorization", &bearer)], None).await?.status == 200)
    }

    async fn member_count(&self) -> Result<usize> {
        let bearer = format!("Bearer {}", self.admin);
        let reply = request(self.addr(), "GET", &format!("/api/processes/{}/members", self.process), &[("Authorization", &bearer)], None).await?;
        reply.json().as_array().map(Vec::len).context("a member list")
    }
}

fn cookie(token: &str) -> String {
    format!("konsens_token={token}")
}

fn text(value: &Value, key: &str) -> Result<String> {
    value[key].as_str().map(str::to_owned).with_context(|| format!("no {key} in {value}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_requests_that_change_state_must_come_from_our_pages() -> Result<()> {
    let w = World::new(&[]).await?;
    let fatima = w.invite("facilitator", "Fatima").await?;
    let victim = w.invite("participant", "Pia").await?;
    let (session, victim_token, victim_id) = (cookie(&text(&fatima, "token")?), text(&victim, "token")?, text(&victim, "token_id")?);
    let revoke = format!("/api/tokens/{victim_id}/revoke");
    let invitations = format!("/api/processes/{}/invitations", w.process);
    let new_member = json!({"role": "facilitator", "name": "Mallory", "organisation": "Nobody"});
    let members = w.member_count().await?;

    // A page elsewhere on the same site, with the facilitator's cookie: 403 for
    // every way a browser can say (or not say) where it comes from.
    let foreign_ways: [&[(&str, &str)]; 6] = [
        &[("Origin", FOREIGN)],
        &[("Origin", FOREIGN), ("Sec-Fetch-Site", "same-site")],
        &[("Origin", &w.own()), ("Sec-Fetch-Site", "cross-site")],
        &[("Origin", "null")],
        // Deny by default: a cookie and no word on the origin.
        &[],
        &[("Sec-Fetch-Site", "none")],
    ];
    for extra in foreign_ways {
        let mut headers = vec![("Cookie", session.as_str())];
        headers.extend_from_slice(extra);
        let reply = request(w.addr(), "POST", &revoke, &headers, None).await?;
        assert_eq!(reply.status, 403, "revoke with {extra:?}: {}", reply.body);
        assert_eq!(reply.json()["status"], 403, "a JSON error like every API error");
        let reply = request(w.addr(), "POST", &invitations, &headers, Some(&new_member)).await?;
        assert_eq!(reply.status, 403, "invite with {extra:?}: {}", reply.body);
    }
    // `?token=` next to the cookie changes nothing: the cookie is what is used.
    let with_query = format!("{revoke}?token={}", text(&fatima, "token")?);
    let reply = request(w.addr(), "POST", &with_query, &[("Cookie", &session), ("Origin", FOREIGN)], None).await?;
    assert_eq!(reply.status, 403);
    // Any other state-changing request, routed or not.
    for (method, path) in [("DELETE", revoke.as_str()), ("PUT", "/api/me"), ("POST", "/api/anything")] {
        let reply = request(w.addr(), method, path, &[("Cookie", &session), ("Origin", FOREIGN)], None).await?;
        assert_eq!(reply.status, 403, "{method} {path}");
    }
    assert!(w.valid(&victim_token).await?, "nothing was revoked");
    assert_eq!(w.member_count().await?, members, "nobody was invited");
    assert!(w.server.wait_for_log("cross-origin request refused", std::time::Duration::from_secs(10)), "refusals are logged");

    // The app's own pages: Origin or Sec-Fetch-Site says so.
    let reply = request(w.addr(), "POST", &invitations, &[("Cookie", &session), ("Sec-Fetch-Site", "same-origin")], Some(&new_member)).await?;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let reply = request(w.addr(), "POST", &revoke, &[("Cookie", &session), ("Origin", &w.own())], None).await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(!w.valid(&victim_token).await?, "revoked from our own page");

    // A bearer token carries no ambient authority: no Origin needed, and a
    // foreign one does not matter (it is the CLI or a script acting as the
    // token's holder).
    let other = w.invite("observer", "Otto").await?;
    let bearer = format!("Bearer {}", text(&fatima, "token")?);
    let revoke_other = format!("/api/tokens/{}/revoke", text(&other, "token_id")?);
    let reply = request(w.addr(), "POST", &revoke_other, &[("Authorization", &bearer), ("Origin", FOREIGN)], None).await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = request(w.addr(), "POST", &invitations, &[("Authorization", &bearer)], Some(&new_member)).await?;
    assert_eq!(reply.status, 201, "{}", reply.body);
    // Reads need no check (and cannot be read across origins anyway).
    let reply = request(w.addr(), "GET", "/api/me", &[("Cookie", &session), ("Origin", FOREIGN)], None).await?;
    assert_eq!(reply.status, 200);
    Ok(())
}

/// Open `/sync` with these headers; the HTTP status of the answer (101 when
/// upgraded).
async fn upgrade(url: &str, headers: &[(&str, &str)]) -> Result<u16> {
    let mut request = url.into_client_request()?;
    for (name, value) in headers {
        request.headers_mut().insert(tungstenite::http::HeaderName::from_bytes(name.as_bytes())?, value.parse()?);
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_socket, response)) => Ok(response.status().as_u16()),
        Err(tungstenite::Error::Http(response)) => Ok(response.status().as_u16()),
        Err(e) => Err(e.into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_upgrade_with_a_cookie_must_come_from_our_pages() -> Result<()> {
    let w = World::new(&[]).await?;
    let member = w.invite("participant", "Pia").await?;
    let token = text(&member, "token")?;
    let session = cookie(&token);
    let url = w.server.ws_url();
    assert_eq!(upgrade(&url, &[("Cookie", &session), ("Origin", FOREIGN)]).await?, 403, "a foreign page");
    assert_eq!(upgrade(&url, &[("Cookie", &session), ("Origin", FOREIGN), ("Sec-Fetch-Site", "same-site")]).await?, 403);
    assert_eq!(upgrade(&url, &[("Cookie", &session)]).await?, 403, "a cookie without an origin");
    assert_eq!(upgrade(&url, &[("Cookie", &session), ("Origin", &w.own())]).await?, 101, "our own page");
    assert_eq!(upgrade(&url, &[("Cookie", &session), ("Sec-Fetch-Site", "same-origin")]).await?, 101);
    // Explicit tokens: the Node client, the CLI.
    let bearer = format!("Bearer {token}");
    assert_eq!(upgrade(&url, &[("Authorization", &bearer), ("Origin", FOREIGN)]).await?, 101);
    assert_eq!(upgrade(&format!("{url}?token={token}"), &[]).await?, 101);
    // Without any token it stays a 401.
    assert_eq!(upgrade(&url, &[("Origin", &w.own())]).await?, 401);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_server_is_not_lent_to_other_sites() -> Result<()> {
    init_tracing();
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start(data.path(), &[])?;
    let own = format!("http://{}", server.addr);
    // No token, no cookie: the network position is the authority, and a page
    // on another site in a visitor's browser must not borrow it.
    assert_eq!(upgrade(&server.ws_url(), &[("Origin", FOREIGN)]).await?, 403);
    assert_eq!(upgrade(&server.ws_url(), &[("Origin", &own)]).await?, 101);
    // Clients that are not browsers send no Origin.
    assert_eq!(upgrade(&server.ws_url(), &[]).await?, 101);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_link_asks_before_it_sets_the_session() -> Result<()> {
    let w = World::new(&[]).await?;
    let pia = w.invite("participant", "Pia Participant").await?;
    let omar = w.invite("observer", "Omar").await?;
    let (token, link) = (text(&pia, "token")?, text(&pia, "link")?);
    let path = format!("/join/{token}");
    assert_eq!(link, format!("http://{}{path}", w.addr()), "without --public-url the link is built from Host");
    let target = format!("/p/{}", w.process);

    // Opening the link changes nothing: a page with one button.
    let page = request(w.addr(), "GET", &path, &[("Accept-Language", "en-US,en;q=0.9")], None).await?;
    assert_eq!(page.status, 200);
    assert!(page.header("set-cookie").is_none(), "GET sets no cookie");
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert!(page.header("content-type").is_some_and(|c| c.starts_with("text/html")));
    let button = format!("Join “{}” as Pia Participant", w.title);
    assert!(page.body.contains(&button), "{}", page.body);
    assert!(page.body.contains(&format!("<form method=\"post\" action=\"{path}\"")), "{}", page.body);
    assert!(page.body.contains("href=\"/assets/app.css\""), "styled like the app");
    assert!(!page.body.contains("current-session"), "no session to replace");
    // In German for a German browser.
    let page = request(w.addr(), "GET", &path, &[("Accept-Language", "de-DE,de;q=0.9,en;q=0.8")], None).await?;
    assert!(page.body.contains(&format!("„{}“ als Pia Participant beitreten", w.title)), "{}", page.body);
    assert!(page.body.contains("<html lang=\"de\">"));
    // With another member's session, the page says which one it replaces.
    let omar_session = cookie(&text(&omar, "token")?);
    let page = request(w.addr(), "GET", &path, &[("Cookie", &omar_session)], None).await?;
    assert_eq!(page.status, 200);
    assert!(page.header("set-cookie").is_none());
    assert!(page.body.contains("id=\"current-session\"") && page.body.contains("Omar (Omar&#39;s organisation)"), "{}", page.body);
    // With this very session, straight on to the process.
    let again = request(w.addr(), "GET", &path, &[("Cookie", &cookie(&token))], None).await?;
    assert_eq!((again.status, again.header("location")), (303, Some(target.as_str())));
    assert!(again.header("set-cookie").is_none());

    // The button's POST from a foreign page, or from nowhere, is refused
    // (login CSRF), whatever credentials it brings along.
    let bearer = format!("Bearer {}", w.admin);
    let refused: [(&str, Vec<(&str, &str)>); 5] = [
        (&path, vec![("Origin", FOREIGN)]),
        (&path, vec![("Origin", FOREIGN), ("Sec-Fetch-Site", "same-site")]),
        (&path, vec![]),
        (&path, vec![("Origin", FOREIGN), ("Authorization", &bearer)]),
        (&format!("{path}?token={}", w.admin), vec![("Origin", FOREIGN)]),
    ];
    for (p, headers) in &refused {
        let reply = request(w.addr(), "POST", p, headers, None).await?;
        assert_eq!(reply.status, 403, "POST {p} with {headers:?}");
        assert!(reply.header("set-cookie").is_none());
    }

    // From our page: the cookie, HttpOnly, Lax, not Secure on plain http.
    let joined = request(w.addr(), "POST", &path, &[("Origin", &w.own()), ("Cookie", &omar_session)], None).await?;
    assert_eq!((joined.status, joined.header("location")), (303, Some(target.as_str())), "{}", joined.body);
    let set = joined.header("set-cookie").context("POST sets the session cookie")?;
    assert!(set.starts_with(&format!("konsens_token={token};")), "{set}");
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Path=/"), "{set}");
    assert!(!set.contains("Secure"), "{set}");
    assert!(w.server.wait_for_log("joined through a link", std::time::Duration::from_secs(10)));

    // A link that does not work says so, in the browser's language, and sets nothing.
    for method in ["GET", "POST"] {
        let reply = request(w.addr(), method, "/join/not-a-token", &[("Accept-Language", "de"), ("Sec-Fetch-Site", "same-origin")], None).await?;
        assert_eq!(reply.status, 401, "{method}");
        assert!(reply.header("set-cookie").is_none());
        assert!(reply.body.contains("Dieser Einladungslink funktioniert nicht"), "{}", reply.body);
    }
    Ok(())
}

/// Every header a response must carry, whatever it is.
fn assert_protected(what: &str, reply: &Reply, connect: &str) {
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"), "{what}: {:?}", reply.headers);
    assert_eq!(reply.header("referrer-policy"), Some("same-origin"), "{what}");
    let csp = reply.header("content-security-policy").unwrap_or_else(|| panic!("{what}: no CSP in {:?}", reply.headers));
    for directive in [
        "default-src 'self'",
        "script-src 'self' 'wasm-unsafe-eval';",
        "style-src 'self';",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        connect,
    ] {
        assert!(csp.contains(directive), "{what}: {directive} missing from {csp}");
    }
    assert!(!csp.replace("'wasm-unsafe-eval'", "").contains("unsafe-eval"), "{what}: {csp}");
    let sources = csp.split(';').flat_map(str::split_whitespace);
    assert!(!sources.into_iter().any(|s| matches!(s, "ws:" | "wss:" | "*" | "http:" | "https:")), "{what}: only our own origins: {csp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_security_headers() -> Result<()> {
    let w = World::new(&[]).await?;
    let member = w.invite("participant", "Pia").await?;
    let token = text(&member, "token")?;
    let bearer = format!("Bearer {}", w.admin);
    let session = cookie(&token);
    let report = format!("/api/processes/{}/report", w.process);
    let (html, markdown) = (format!("{report}?format=html"), format!("{report}?format=markdown"));
    let join = format!("/join/{token}");
    let gzip = [("Accept-Encoding", "gzip")];
    let authed = [("Authorization", bearer.as_str())];
    /// Method, path, headers, expected status.
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, u16);
    let cases: Vec<Case> = vec![
        ("GET", "/", vec![], 200),
        ("GET", "/p/whatever", vec![], 200),
        ("GET", "/assets/app.js", vec![], 200),
        ("GET", "/assets/app.css", vec![], 200),
        ("GET", "/assets/automerge.wasm", gzip.to_vec(), 200),
        ("GET", "/assets/automerge.wasm", vec![], 406),
        ("GET", "/health", vec![], 200),
        ("GET", "/api/me", authed.to_vec(), 200),
        ("GET", "/api/me", vec![], 401),
        ("GET", &html, authed.to_vec(), 200),
        ("GET", &markdown, authed.to_vec(), 200),
        ("GET", "/api/processes/not-a-doc", authed.to_vec(), 404),
        ("DELETE", "/api/me", authed.to_vec(), 405),
        ("GET", "/no/such/route", vec![], 404),
        ("GET", &join, vec![], 200),
        ("GET", "/join/not-a-token", vec![], 401),
        ("POST", "/api/tokens/x/revoke", vec![("Cookie", session.as_str()), ("Origin", FOREIGN)], 403),
        ("GET", "/sync", authed.to_vec(), 400),
    ];
    let connect = format!("connect-src 'self' ws://{0} wss://{0};", w.addr());
    for (method, path, headers, status) in &cases {
        let reply = request(w.addr(), method, path, headers, None).await?;
        let what = format!("{method} {path}");
        // /sync without an upgrade: whatever axum answers, as long as it is refused.
        if *path == "/sync" {
            assert!((400..500).contains(&reply.status), "{what}: {}", reply.status);
        } else {
            assert_eq!(reply.status, *status, "{what}: {}", reply.body);
        }
        assert_protected(&what, &reply, &connect);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_https_url_gives_secure_cookies_and_https_links() -> Result<()> {
    const PUBLIC: &str = "https://konsens.example.org";
    let w = World::new(&["--public-url", "https://Konsens.Example.org/"]).await?;
    let pia = w.invite("participant", "Pia").await?;
    let token = text(&pia, "token")?;
    assert_eq!(text(&pia, "link")?, format!("{PUBLIC}/join/{token}"), "invitation links use the public URL");
    let path = format!("/join/{token}");

    // Only the public origin is ours now (the browser's Sec-Fetch-Site still decides when sent).
    let local = request(w.addr(), "POST", &path, &[("Origin", &w.own())], None).await?;
    assert_eq!(local.status, 403, "the listener's address is not the public origin");
    for headers in [[("Origin", PUBLIC)], [("Sec-Fetch-Site", "same-origin")]] {
        let joined = request(w.addr(), "POST", &path, &headers, None).await?;
        assert_eq!(joined.status, 303, "{headers:?}: {}", joined.body);
        let set = joined.header("set-cookie").context("a session cookie")?;
        assert!(set.contains("; Secure") && set.contains("HttpOnly"), "{set}");
    }
    let page = request(w.addr(), "GET", &path, &[], None).await?;
    assert_protected("join page behind https", &page, "connect-src 'self' wss://konsens.example.org;");

    // The administrator link printed at the first start uses it too.
    let data = tempfile::tempdir()?;
    let mut child = Command::new(binary("konsens-server")?)
        .args(["--listen", "127.0.0.1:0", "--public-url", PUBLIC, "--data"])
        .arg(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let first = BufReader::new(stdout).lines().map_while(Result::ok).next();
        let _ = tx.send(first);
    });
    let line = rx.recv_timeout(Duration::from_secs(30)).ok().flatten();
    let _ = child.kill();
    let _ = child.wait();
    let line = line.context("no administrator link printed")?;
    assert!(line.starts_with(&format!("open {PUBLIC}/join/")), "{line}");

    // A public URL the app could not work under is refused at start.
    let refused = Command::new(binary("konsens-server")?)
        .args(["--listen", "127.0.0.1:0", "--public-url", "https://konsens.example.org/konsens", "--data"])
        .arg(data.path())
        .output()?;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no path"), "{}", String::from_utf8_lossy(&refused.stderr));
    Ok(())
}
