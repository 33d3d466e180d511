//! What `GET /metrics` shows Prometheus: connections and documents, the
//! cluster's relaying and leases, and how long group commits take. Gauges the
//! hub already knows (connections, loaded documents) are read at scrape time;
//! the rest is counted where it happens, through the setters below. Encoded
//! in the Prometheus text format (0.0.4) by `prometheus-client`.

use std::fmt;
use std::time::Duration;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The `Content-Type` of what [`Metrics::encode`] returns.
pub(crate) const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds of the commit latency buckets, in seconds: 0.5 ms (a group on
/// a fast disk) to 1 s (a stalled one; slower lands in `+Inf`).
const COMMIT_BUCKETS: [f64; 11] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// Which way a relayed message went between two nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// From the node a client is connected to, to the document's owner.
    ToOwner,
    /// From the owner back to a node that relays to its clients.
    FromOwner,
}

/// The server's metrics, shared through the hub (`Hub::metrics`).
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    connections: Gauge,
    documents_loaded: Gauge,
    documents_owned: Gauge,
    documents_relayed: Gauge,
    relayed_to_owner: Counter,
    relayed_from_owner: Counter,
    lease_claims: Counter,
    lease_renewals: Counter,
    lease_losses: Counter,
    commit_seconds: Histogram,
    commit_groups: Counter,
    commit_writes: Counter,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("konsens");
        let connections = Gauge::default();
        registry.register("connections", "Joined WebSocket connections", connections.clone());
        let documents_loaded = Gauge::default();
        registry.register("documents_loaded", "Documents loaded in memory", documents_loaded.clone());
        let documents_owned = Gauge::default();
        registry.register("documents_owned", "Documents whose lease this node holds", documents_owned.clone());
        let documents_relayed = Gauge::default();
        registry.register(
            "documents_relayed",
            "Documents owned by another node that this node relays for its clients",
            documents_relayed.clone(),
        );
        // Both directions exist from the start, so a rate over them never
        // starts from a missing series.
        let relayed = Family::<[(&'static str, &'static str); 1], Counter>::default();
        let relayed_to_owner = relayed.get_or_create_owned(&[("direction", "to_owner")]);
        let relayed_from_owner = relayed.get_or_create_owned(&[("direction", "from_owner")]);
        registry.register("relayed_messages", "Messages relayed between nodes", relayed);
        let lease_claims = Counter::default();
        registry.register("lease_claims", "Document leases claimed", lease_claims.clone());
        let lease_renewals = Counter::default();
        registry.register("lease_renewals", "Document leases renewed", lease_renewals.clone());
        let lease_losses = Counter::default();
        registry.register("lease_losses", "Document leases lost to another node or not renewed in time", lease_losses.clone());
        let commit_seconds = Histogram::new(COMMIT_BUCKETS);
        registry.register(
            "commit_seconds",
            "Group commit latency, from a group's first submission until it is durable",
            commit_seconds.clone(),
        );
        let commit_groups = Counter::default();
        registry.register("commit_groups", "Group commits made durable", commit_groups.clone());
        let commit_writes = Counter::default();
        registry.register("commit_writes", "Document writes made durable by group commits", commit_writes.clone());
        Self {
            registry,
            connections,
            documents_loaded,
            documents_owned,
            documents_relayed,
            relayed_to_owner,
            relayed_from_owner,
            lease_claims,
            lease_renewals,
            lease_losses,
            commit_seconds,
            commit_groups,
            commit_writes,
        }
    }

    /// How many loaded documents this node owns and how many it relays to
    /// their owner elsewhere; set whenever either changes.
    pub fn set_documents(&self, owned: usize, relayed: usize) {
        self.documents_owned.set(gauge_value(owned));
        self.documents_relayed.set(gauge_value(relayed));
    }

    /// One message relayed between this node and another, in `direction`.
    pub fn relayed(&self, direction: Direction) {
        match direction {
            Direction::ToOwner => self.relayed_to_owner.inc(),
            Direction::FromOwner => self.relayed_from_owner.inc(),
        };
    }

    /// This node claimed the lease of a document (it is its owner now).
    pub fn lease_claimed(&self) {
        self.lease_claims.inc();
    }

    /// `renewed` leases were renewed (one renewal round).
    pub fn lease_renewed(&self, renewed: usize) {
        self.lease_renewals.inc_by(counter_value(renewed));
    }

    /// `lost` leases were lost: another node took them or they were not
    /// renewed in time.
    pub fn lease_lost(&self, lost: usize) {
        self.lease_losses.inc_by(counter_value(lost));
    }

    /// A group commit became durable `latency` after its first submission,
    /// with `writes` document writes (what `GroupCommit::observe` reports).
    pub fn commit_observed(&self, latency: Duration, writes: usize) {
        self.commit_seconds.observe(latency.as_secs_f64());
        self.commit_groups.inc();
        self.commit_writes.inc_by(counter_value(writes));
    }

    /// Everything in the Prometheus text format, with the gauges read at
    /// scrape time.
    pub fn encode(&self, connections: usize, documents_loaded: usize) -> Result<String, fmt::Error> {
        self.connections.set(gauge_value(connections));
        self.documents_loaded.set(gauge_value(documents_loaded));
        let mut text = String::new();
        prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn counter_value(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// The text format read back: `# TYPE` per family, and every sample line
    /// (name with labels) to its value.
    fn parse(text: &str) -> (HashMap<String, String>, HashMap<String, f64>) {
        let mut types = HashMap::new();
        let mut samples = HashMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("a TYPE line names a type");
                types.insert(name.to_owned(), kind.to_owned());
            } else if !line.starts_with('#') && !line.is_empty() {
                let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
                samples.insert(series.to_owned(), value.parse().expect("a number"));
            }
        }
        (types, samples)
    }

    #[test]
    fn the_text_names_every_metric_with_its_type_and_value() {
        let metrics = Metrics::new();
        metrics.set_documents(3, 2);
        metrics.relayed(Direction::ToOwner);
        metrics.relayed(Direction::ToOwner);
        metrics.relayed(Direction::FromOwner);
        metrics.lease_claimed();
        metrics.lease_renewed(4);
        metrics.lease_lost(1);
        metrics.commit_observed(Duration::from_micros(300), 2);
        metrics.commit_observed(Duration::from_millis(7), 5);
        metrics.commit_observed(Duration::from_secs(2), 1);
        let (types, samples) = parse(&metrics.encode(5, 4).expect("encodes"));

        for (name, kind) in [
            ("konsens_connections", "gauge"),
            ("konsens_documents_loaded", "gauge"),
            ("konsens_documents_owned", "gauge"),
            ("konsens_documents_relayed", "gauge"),
            ("konsens_relayed_messages_total", "counter"),
            ("konsens_lease_claims_total", "counter"),
            ("konsens_lease_renewals_total", "counter"),
            ("konsens_lease_losses_total", "counter"),
            ("konsens_commit_seconds", "histogram"),
            ("konsens_commit_groups_total", "counter"),
            ("konsens_commit_writes_total", "counter"),
        ] {
            assert_eq!(types.get(name).map(String::as_str), Some(kind), "{name}");
        }
        assert_eq!(types.len(), 11, "nothing else: {types:?}");
        let value = |series: &str| *samples.get(series).unwrap_or_else(|| panic!("no sample {series} in {samples:?}"));
        assert_eq!(value("konsens_connections"), 5.0);
        assert_eq!(value("konsens_documents_loaded"), 4.0);
        assert_eq!(value("konsens_documents_owned"), 3.0);
        assert_eq!(value("konsens_documents_relayed"), 2.0);
        assert_eq!(value(r#"konsens_relayed_messages_total{direction="to_owner"}"#), 2.0);
        assert_eq!(value(r#"konsens_relayed_messages_total{direction="from_owner"}"#), 1.0);
        assert_eq!(value("konsens_lease_claims_total"), 1.0);
        assert_eq!(value("konsens_lease_renewals_total"), 4.0);
        assert_eq!(value("konsens_lease_losses_total"), 1.0);
        assert_eq!(value("konsens_commit_groups_total"), 3.0);
        assert_eq!(value("konsens_commit_writes_total"), 8.0);
        // Buckets are cumulative: 0.3 ms is in every one, 7 ms from 10 ms
        // on, 2 s only in +Inf.
        assert_eq!(value(r#"konsens_commit_seconds_bucket{le="0.0005"}"#), 1.0);
        assert_eq!(value(r#"konsens_commit_seconds_bucket{le="0.005"}"#), 1.0);
        assert_eq!(value(r#"konsens_commit_seconds_bucket{le="0.01"}"#), 2.0);
        assert_eq!(value(r#"konsens_commit_seconds_bucket{le="1"}"#), 2.0);
        assert_eq!(value(r#"konsens_commit_seconds_bucket{le="+Inf"}"#), 3.0);
        assert_eq!(value("konsens_commit_seconds_count"), 3.0);
        assert!((value("konsens_commit_seconds_sum") - 2.0073).abs() < 1e-9);
    }

    #[test]
    fn the_gauges_read_at_scrape_time_follow_the_hub() {
        let metrics = Metrics::new();
        let (_, samples) = parse(&metrics.encode(2, 1).expect("encodes"));
        assert_eq!(samples["konsens_connections"], 2.0);
        let (_, samples) = parse(&metrics.encode(0, 0).expect("encodes"));
        assert_eq!(samples["konsens_connections"], 0.0);
        assert_eq!(samples["konsens_documents_loaded"], 0.0);
        assert_eq!(samples["konsens_commit_seconds_count"], 0.0, "an empty histogram is shown, at zero");
    }
}
