//! Connections that come back: a PostgreSQL restart (or a terminated
//! backend) closes a connection for good, so each of the store's connections
//! is opened again on the first call after it closed, with a bounded
//! backoff between failed attempts. The call whose statement failed still
//! fails (nothing of it is acknowledged); the next one gets a new connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::{Client, Config, NoTls};

use crate::StoreError;

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(5);

/// When the next connection attempt may be made, after failures.
#[derive(Debug)]
pub(super) struct Backoff {
    delay: Duration,
    not_before: Option<Instant>,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { delay: FIRST_DELAY, not_before: None }
    }
}

impl Backoff {
    /// `Err` while the last failed attempt is too recent: a call fails fast
    /// instead of every caller hammering a database that is down.
    pub(super) fn check(&self) -> Result<(), StoreError> {
        match self.not_before {
            Some(at) if Instant::now() < at => Err(StoreError::Connect(format!(
                "the database connection was lost; the next attempt is in {} ms",
                at.saturating_duration_since(Instant::now()).as_millis()
            ))),
            _ => Ok(()),
        }
    }

    pub(super) fn failed(&mut self) {
        self.not_before = Some(Instant::now() + self.delay);
        self.delay = (self.delay * 2).min(MAX_DELAY);
    }

    pub(super) fn succeeded(&mut self) {
        *self = Self::default();
    }

    /// The wait before the next attempt, doubling (for loops that sleep).
    pub(super) fn next_delay(&mut self) -> Duration {
        let delay = self.delay;
        self.delay = (self.delay * 2).min(MAX_DELAY);
        delay
    }
}

/// One connection, its driver spawned on the store's runtime; `session`
/// (settings such as `synchronous_commit`) is run on it first.
pub(super) async fn open(config: &Config, session: &str) -> Result<Client, StoreError> {
    let (client, connection) = config.connect(NoTls).await.map_err(|e| StoreError::Connect(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::error!(error = %e, "database connection lost");
        }
    });
    client.batch_execute(session).await?;
    Ok(client)
}

/// A connection for independent statements, opened again when it closed.
#[derive(Debug)]
pub(super) struct Link {
    config: Arc<Config>,
    session: String,
    state: tokio::sync::Mutex<LinkState>,
}

#[derive(Debug)]
struct LinkState {
    client: Option<Arc<Client>>,
    backoff: Backoff,
}

impl Link {
    /// A link starting with `client`, or connecting on first use.
    pub(super) fn new(config: Arc<Config>, session: String, client: Option<Client>) -> Self {
        let state = LinkState { client: client.map(Arc::new), backoff: Backoff::default() };
        Self { config, session, state: tokio::sync::Mutex::new(state) }
    }

    /// The open connection, or a new one if it closed.
    pub(super) async fn client(&self) -> Result<Arc<Client>, StoreError> {
        let mut state = self.state.lock().await;
        if let Some(client) = &state.client {
            if !client.is_closed() {
                return Ok(client.clone());
            }
            tracing::warn!("database connection closed; reconnecting");
            state.client = None;
        }
        state.backoff.check()?;
        match open(&self.config, &self.session).await {
            Ok(client) => {
                state.backoff.succeeded();
                let client = Arc::new(client);
                state.client = Some(client.clone());
                Ok(client)
            }
            Err(e) => {
                state.backoff.failed();
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_back_off_doubling_up_to_a_bound_and_reset_on_success() {
        let mut backoff = Backoff::default();
        backoff.check().expect("the first attempt is never delayed");
        backoff.failed();
        assert!(matches!(backoff.check(), Err(StoreError::Connect(_))), "right after a failure, calls fail fast");
        for _ in 0..10 {
            backoff.failed();
        }
        assert_eq!(backoff.delay, MAX_DELAY);
        backoff.succeeded();
        backoff.check().expect("a success clears the wait");
        assert_eq!((backoff.next_delay(), backoff.next_delay()), (FIRST_DELAY, FIRST_DELAY * 2));
    }
}
