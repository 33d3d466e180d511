//! The published report end to end: the real server binary serves an
//! interim PDF in German, the real `konsens` CLI writes a final DOCX in
//! English; both are read back as a person's tools would (`pdftotext` from
//! Debian's poppler-utils, the DOCX's `word/document.xml`).

use std::io::Read as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use konsens_tests::ServerProcess;
use konsens_tests::cli::ok;

/// A German process made with the CLI in `store`: one workshop, one adopted
/// and endorsed recommendation, one in discussion, one empty workshop.
/// Returns the process URL.
fn german_process(store: &Path) -> Result<String> {
    ok(store, &["identity", "--name", "Alice Martin", "--org", "Ministerium für Arbeit"])?;
    let process = ok(store, &["process", "create", "--title", "Faire Anwerbung in der Pflege"])?;
    let workshop = ok(store, &["workshop", "add", &process, "--title", "Anwerbung im Ausland", "--sector", "Pflege"])?;
    ok(store, &["workshop", "add", &process, "--title", "Ländliche Räume"])?;
    let adopted = ok(store, &["rec", "new", &process, "--workshop", &workshop, "--title", "Gebühren tragen die Arbeitgeber"])?;
    ok(store, &["rec", "set", &adopted, "--field", "recommendation", "--value", "Vermittlungsgebühren dürfen Beschäftigten nicht auferlegt werden."])?;
    for status in ["discussion", "consensus", "adopted"] {
        ok(store, &["rec", "status", &adopted, status])?;
    }
    ok(store, &["endorse", &adopted, "--stance", "support", "--note", "Mit Überprüfung nach zwei Jahren."])?;
    let open = ok(store, &["rec", "new", &process, "--workshop", &workshop, "--title", "Sprachkurse ab dem ersten Tag"])?;
    ok(store, &["rec", "set", &open, "--field", "problem", "--value", "Sprachkurse beginnen zu spät."])?;
    ok(store, &["rec", "status", &open, "discussion"])?;
    Ok(process)
}

/// One GET on loopback; the status, the headers (lower-cased names) and the raw body.
fn get(addr: &str, path: &str) -> Result<(u16, Vec<(String, String)>, Vec<u8>)> {
    use std::io::Write as _;
    let mut stream = std::net::TcpStream::connect(addr)?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").context("no end of headers")?;
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let body = response[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).context("status")?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok((status, headers, body))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn normalise(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn pdf_text(pdf: &Path) -> Result<String> {
    let out = Command::new("pdftotext")
        .args(["-enc", "UTF-8"])
        .arg(pdf)
        .arg("-")
        .output()
        .context("pdftotext runs (scripts/test.sh installs poppler-utils)")?;
    ensure!(out.status.success(), "pdftotext: {}", String::from_utf8_lossy(&out.stderr));
    Ok(normalise(&String::from_utf8(out.stdout)?))
}

fn docx_text(bytes: &[u8]) -> Result<String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))?;
    let mut xml = String::new();
    archive.by_name("word/document.xml")?.read_to_string(&mut xml)?;
    // The text runs, each element's content; tags become spaces.
    let mut text = String::new();
    let mut in_tag = false;
    for c in xml.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    Ok(normalise(&text.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"")))
}

#[test]
fn server_serves_an_interim_pdf_in_german() -> Result<()> {
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start(data.path(), &[])?;
    let store = tempfile::tempdir()?;
    let process = german_process(store.path())?;
    ok(store.path(), &["sync", &server.ws_url()])?;
    let id = process.strip_prefix("automerge:").unwrap_or(&process);

    let (status, headers, body) = get(&server.addr, &format!("/api/processes/{id}/report?format=pdf&lang=de&kind=interim"))?;
    if status != 200 {
        bail!("{status}: {}\n{}", String::from_utf8_lossy(&body), server.log());
    }
    assert_eq!(header(&headers, "content-type"), Some("application/pdf"));
    assert_eq!(header(&headers, "content-disposition"), Some("attachment; filename=\"zwischenbericht.pdf\""));
    ensure!(body.starts_with(b"%PDF-"), "a PDF");
    let path = store.path().join("zwischenbericht.pdf");
    std::fs::write(&path, &body)?;
    let text = pdf_text(&path)?;
    for expected in [
        "ZWISCHENBERICHT",
        "Faire Anwerbung in der Pflege",
        "Stand:",
        "1. Anwerbung im Ausland",
        "Handlungsempfehlung 1.1: Gebühren tragen die Arbeitgeber",
        "Angenommen",
        "Sprachkurse ab dem ersten Tag",
        "In Diskussion",
        "Ministerium für Arbeit",
        "unterstützt",
        "In diesem Workshop liegen noch keine Handlungsempfehlungen vor.",
        "Beteiligte Organisationen",
    ] {
        ensure!(text.contains(expected), "{expected:?} is not in the PDF:\n{text}");
    }
    ensure!(!text.contains("automerge:"), "no internal ids:\n{text}");

    // An unknown language is the caller's mistake, said as such.
    let (status, _, body) = get(&server.addr, &format!("/api/processes/{id}/report?format=pdf&lang=fr"))?;
    assert_eq!(status, 400);
    let error: serde_json::Value = serde_json::from_slice(&body)?;
    assert!(error["error"].as_str().is_some_and(|e| e.contains("languages are de, en")), "{error}");
    let (status, _, _) = get(&server.addr, &format!("/api/processes/{id}/report?kind=draft"))?;
    assert_eq!(status, 400);
    Ok(())
}

#[test]
fn cli_exports_a_final_docx_in_english() -> Result<()> {
    let store = tempfile::tempdir()?;
    let process = german_process(store.path())?;
    let path = store.path().join("report.docx");
    let path_arg = path.to_str().context("path")?;
    ok(store.path(), &["export", &process, "--format", "docx", "--lang", "en", "--out", path_arg])?;
    let text = docx_text(&std::fs::read(&path)?)?;
    for expected in [
        "FINAL REPORT",
        "Faire Anwerbung in der Pflege",
        "As of:",
        "Recommendation 1.1: Gebühren tragen die Arbeitgeber",
        "Vermittlungsgebühren dürfen Beschäftigten nicht auferlegt werden.",
        "Endorsed by",
        "Ministerium für Arbeit",
        "No recommendation from this workshop was adopted.",
        "Participating organisations",
    ] {
        ensure!(text.contains(expected), "{expected:?} is not in the DOCX:\n{text}");
    }
    ensure!(!text.contains("Sprachkurse ab dem ersten Tag"), "only adopted recommendations:\n{text}");
    ensure!(!text.contains("automerge:"), "no internal ids:\n{text}");
    Ok(())
}
