//! Token changes, told to every node: each statement that revokes, reissues
//! or replaces a token record also runs `pg_notify('konsens_tokens', id)`,
//! delivered when its transaction commits; every node LISTENs on a
//! connection of its own and closes that token's connections.
//!
//! A notification sent while the listening connection was down is lost, so
//! after reconnecting the watcher is told `"*"`: check every token again.

use std::sync::Arc;

use tokio_postgres::{AsyncMessage, Client, Config, NoTls};

use super::link::Backoff;
use super::run_on;
use crate::StoreError;

/// The channel, and the payload of every notification is a token id.
pub(super) const CHANNEL: &str = "konsens_tokens";

/// Told a changed token's id, or `"*"` after notifications may have been missed.
pub(super) type OnChange = Arc<dyn Fn(String) + Send + Sync>;

/// A listening connection: the client (which keeps the connection open)
/// and the task driving it, which ends when the connection does.
struct Listener {
    _client: Client,
    driver: tokio::task::JoinHandle<()>,
}

async fn listen(config: &Config, on_change: &OnChange) -> Result<Listener, StoreError> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(|e| StoreError::Connect(e.to_string()))?;
    let notify = on_change.clone();
    // Notifications arrive only to whoever polls the connection itself,
    // which also carries the client's statements (the LISTEN below).
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) if n.channel() == CHANNEL => notify(n.payload().to_owned()),
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "the token watch connection was lost");
                    return;
                }
                None => return,
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    Ok(Listener { _client: client, driver })
}

/// Listen now (an error if the database is not reachable), and keep
/// listening on the store's runtime for the life of the store.
pub(super) fn watch(handle: &tokio::runtime::Handle, config: Arc<Config>, on_change: OnChange) -> Result<(), StoreError> {
    let first = {
        let (config, on_change) = (config.clone(), on_change.clone());
        run_on(handle, async move { listen(&config, &on_change).await })?
    };
    handle.spawn(async move {
        let mut listener = first;
        loop {
            // The connection ended; dropping the listener drops its client.
            let _ = (&mut listener.driver).await;
            let mut backoff = Backoff::default();
            listener = loop {
                tokio::time::sleep(backoff.next_delay()).await;
                match listen(&config, &on_change).await {
                    Ok(listener) => break listener,
                    Err(e) => tracing::warn!(error = %e, "cannot listen for token changes yet"),
                }
            };
            tracing::info!("listening for token changes again");
            on_change("*".to_owned());
        }
    });
    Ok(())
}
