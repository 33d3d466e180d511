//! End-to-end: `GET /metrics` of the real server binary, read as Prometheus
//! reads it, after a client-core peer has synced a document.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use automerge::transaction::Transactable;
use automerge::{Automerge, ROOT};
use konsens_client::{Repo, RepoConfig};
use konsens_tests::{ServerProcess, init_tracing};

/// Every wait in these tests is for an event; this bound only turns a hang into a failure.
const PATIENCE: Duration = Duration::from_secs(30);

/// One scrape: every family's `# TYPE`, and every sample (its name with its
/// labels, as written) with its value.
#[derive(Debug)]
struct Scrape {
    types: HashMap<String, String>,
    samples: HashMap<String, f64>,
}

impl Scrape {
    fn parse(text: &str) -> Result<Self> {
        let mut types = HashMap::new();
        let mut samples = HashMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').with_context(|| format!("TYPE without a type: {line}"))?;
                types.insert(name.to_owned(), kind.to_owned());
            } else if line.starts_with('#') || line.is_empty() {
                continue;
            } else {
                let (series, value) = line.rsplit_once(' ').with_context(|| format!("sample without a value: {line}"))?;
                let value: f64 = value.parse().with_context(|| format!("not a number: {line}"))?;
                if samples.insert(series.to_owned(), value).is_some() {
                    bail!("sample {series} twice");
                }
            }
        }
        Ok(Self { types, samples })
    }

    fn value(&self, series: &str) -> Result<f64> {
        self.samples.get(series).copied().with_context(|| format!("no sample {series}"))
    }

    fn kind(&self, family: &str) -> Option<&str> {
        self.types.get(family).map(String::as_str)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_connection_the_document_and_its_commits() -> Result<()> {
    init_tracing();
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start(data.path(), &[])?;

    let before = scrape(&server).await?;
    assert_eq!(before.value("konsens_connections")?, 0.0);
    assert_eq!(before.value("konsens_documents_loaded")?, 0.0);

    let dir = tempfile::tempdir()?;
    let repo = Repo::open(RepoConfig::new(dir.path()).server(server.ws_url()))?;
    let id = repo.create().await?;
    repo.change(id, |doc: &mut Automerge| {
        doc.transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(ROOT, "title", "Recognition of foreign qualifications")?;
            Ok(())
        })
        .map(|_| ())
        .map_err(|f| f.error)
    })
    .await??;
    // Acknowledged means durable, and the group is counted before anyone is
    // told: the scrape after this sees it.
    tokio::time::timeout(PATIENCE, repo.wait_synced(id))
        .await
        .context("timed out waiting for the server's acknowledgement")??;

    let after = scrape(&server).await?;
    assert_eq!(after.kind("konsens_connections"), Some("gauge"));
    assert_eq!(after.value("konsens_connections")?, 1.0);
    assert_eq!(after.kind("konsens_documents_loaded"), Some("gauge"));
    assert_eq!(after.value("konsens_documents_loaded")?, 1.0);
    assert_eq!(after.kind("konsens_commit_groups_total"), Some("counter"));
    let groups = after.value("konsens_commit_groups_total")?;
    assert!(groups >= 1.0, "{groups} groups");
    assert_eq!(after.kind("konsens_commit_seconds"), Some("histogram"));
    let count = after.value("konsens_commit_seconds_count")?;
    assert!(count >= 1.0, "{count} observations");
    assert_eq!(after.value(r#"konsens_commit_seconds_bucket{le="+Inf"}"#)?, count);
    assert!(after.value("konsens_commit_seconds_sum")? > 0.0);
    // A single server relays nothing and holds no leases.
    assert_eq!(after.value(r#"konsens_relayed_messages_total{direction="to_owner"}"#)?, 0.0);
    assert_eq!(after.value("konsens_lease_claims_total")?, 0.0);
    Ok(())
}

/// `GET /metrics`, checked to be the Prometheus text format, parsed.
async fn scrape(server: &ServerProcess) -> Result<Scrape> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(&server.addr).await?;
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", server.addr);
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    tokio::time::timeout(PATIENCE, stream.read_to_string(&mut response))
        .await
        .context("timed out reading /metrics")??;
    let (head, body) = response.split_once("\r\n\r\n").context("no HTTP body")?;
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default();
    ensure!(status.starts_with("HTTP/1.1 200"), "GET /metrics answered {status}: {body}");
    let content_type = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map(|(_, value)| value.trim());
    ensure!(
        content_type.is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "content type {content_type:?}"
    );
    Scrape::parse(body)
}
