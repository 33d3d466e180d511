//! The PostgreSQL store (`--database postgres://…`): the same records as the
//! sled store, one table each (see `store/migrations`).
//!
//! Why `tokio-postgres` behind a blocking interface: the store's callers are
//! blocking (the group-commit thread, `spawn_blocking` loads, and quick reads
//! from the server's async workers). The blocking `postgres` crate panics
//! when called on an async worker, so the store runs `tokio-postgres` on a
//! runtime of its own (one thread) and every call waits for its answer on a
//! channel, which works from any thread.
//!
//! Two connections: one for reads and single-statement writes, each its own
//! transaction (PostgreSQL pipelines concurrent queries on it); one for the
//! group commit's transactions, so no other statement lands inside one.
//! Both set `synchronous_commit = on`: a commit returns once it is on disk,
//! whatever the server's default, so acknowledged means durable. Each is
//! opened again on the first call after it closed (`link.rs`).
//!
//! Several nodes on one database (`lease.rs`): leases have a third
//! connection, watching token changes a fourth (`notify.rs`).

mod auth;
pub(crate) mod lease;
mod link;
mod migrations;
mod notify;
#[cfg(feature = "throwaway-cluster")]
pub mod throwaway;

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use automerge::ChangeHash;
use konsens_sync::{DocumentId, StorageId, StorageWrite};
use tokio_postgres::{Client, Config, Statement};

use crate::auth::{Provenance, TokenRecord, encode};
use crate::backend::{Backend, GroupItem};
use crate::group_commit::Record;
use crate::lease::{LeaseConfig, LeaseState, Leases};
use crate::{Chunk, KeptSyncState, StoreError};
use link::{Backoff, Link};

/// Run on every new connection.
const SESSION: &str = "SET synchronous_commit = on";

const INSERT_INCREMENTAL: &str = "INSERT INTO chunks (document, is_snapshot, bytes) VALUES ($1, false, $2)";
/// A snapshot replaces every earlier chunk of its document, in one statement.
const INSERT_SNAPSHOT: &str =
    "WITH earlier AS (DELETE FROM chunks WHERE document = $1) INSERT INTO chunks (document, is_snapshot, bytes) VALUES ($1, true, $2)";
const PUT_SYNC_STATE: &str = "INSERT INTO sync_states (document, storage, heads) VALUES ($1, $2, $3)
     ON CONFLICT (document, storage) DO UPDATE SET heads = EXCLUDED.heads";
const BIND_ACTOR: &str = "INSERT INTO actors (actor, participant) VALUES ($1, $2) ON CONFLICT (actor) DO NOTHING";
const SET_DOCUMENT_PROCESS: &str =
    "INSERT INTO document_process (document, process) VALUES ($1, $2) ON CONFLICT (document) DO NOTHING";
const PUT_PROVENANCE: &str = "INSERT INTO provenance (document, change, record) VALUES ($1, $2, $3)
     ON CONFLICT (document, change) DO UPDATE SET record = EXCLUDED.record";
const PUT_META: &str = "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value";

/// The group commit's connection and its statements, prepared once.
struct Writer {
    client: Client,
    statements: Statements,
    /// The `idle_in_transaction_session_timeout` set on it (cluster mode).
    idle_timeout: Option<Duration>,
}

/// The group commit's connection, if open, and when to try again if not.
struct WriterSlot {
    writer: Option<Writer>,
    backoff: Backoff,
}

struct Statements {
    incremental: Statement,
    snapshot: Statement,
    sync_state: Statement,
    bind_actor: Statement,
    document_process: Statement,
    provenance: Statement,
    meta: Statement,
    fence: Statement,
}

async fn prepare(client: &Client) -> Result<Statements, StoreError> {
    Ok(Statements {
        incremental: client.prepare(INSERT_INCREMENTAL).await?,
        snapshot: client.prepare(INSERT_SNAPSHOT).await?,
        sync_state: client.prepare(PUT_SYNC_STATE).await?,
        bind_actor: client.prepare(BIND_ACTOR).await?,
        document_process: client.prepare(SET_DOCUMENT_PROCESS).await?,
        provenance: client.prepare(PUT_PROVENANCE).await?,
        meta: client.prepare(PUT_META).await?,
        fence: client.prepare(lease::FENCE).await?,
    })
}

impl WriterSlot {
    /// The open writer, or a new one if its connection closed; with the
    /// idle timeout cluster mode asks for (`None`: the server's default).
    async fn ready(&mut self, config: &Config, idle_timeout: Option<Duration>) -> Result<&mut Writer, StoreError> {
        if self.writer.as_ref().is_some_and(|w| w.client.is_closed()) {
            tracing::warn!("the group commit's database connection closed; reconnecting");
            self.writer = None;
        }
        let writer = match self.writer.take() {
            Some(writer) => writer,
            None => {
                self.backoff.check()?;
                let opened = async {
                    let client = link::open(config, SESSION).await?;
                    let statements = prepare(&client).await?;
                    Ok::<_, StoreError>(Writer { client, statements, idle_timeout: None })
                };
                match opened.await {
                    Ok(writer) => {
                        self.backoff.succeeded();
                        writer
                    }
                    Err(e) => {
                        self.backoff.failed();
                        return Err(e);
                    }
                }
            }
        };
        let writer = self.writer.insert(writer);
        if writer.idle_timeout != idle_timeout {
            // A node paused mid-transaction (SIGSTOP, a long GC, a frozen VM)
            // would hold its share locks on lease rows, and so block every
            // claim of those documents, for as long as it is paused: the
            // database ends such a transaction after about one ttl. No
            // `lock_timeout` here: what a commit waits for (a claim's
            // single-row update, a renewal) is short, and a group failed on
            // a timeout would only be written again.
            let millis = idle_timeout.map_or(0, |t| t.as_millis());
            writer.client.batch_execute(&format!("SET idle_in_transaction_session_timeout = {millis}")).await?;
            writer.idle_timeout = idle_timeout;
        }
        Ok(writer)
    }
}

/// The store's own runtime; shut down without waiting, as the last handle
/// may be dropped on an async worker (where a blocking shutdown panics).
pub(crate) struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// A PostgreSQL database holding documents and access records.
pub struct PostgresBackend {
    description: String,
    config: Arc<Config>,
    /// Reads and single-statement writes.
    reader: Arc<Link>,
    writer: Arc<tokio::sync::Mutex<WriterSlot>>,
    /// Set once [`Backend::leases`] was called: group commits are fenced.
    fence: Arc<RwLock<Option<Arc<LeaseState>>>>,
    handle: tokio::runtime::Handle,
    // Last, so the connections above are dropped before their runtime
    // (which lease handles share).
    runtime: Arc<OwnRuntime>,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend").field("database", &self.description).finish_non_exhaustive()
    }
}

fn id_bytes(document: &DocumentId) -> Vec<u8> {
    document.as_bytes().to_vec()
}

fn document_id(table: &'static str, bytes: &[u8]) -> Result<DocumentId, StoreError> {
    <[u8; 16]>::try_from(bytes)
        .map(DocumentId::from_bytes)
        .map_err(|_| StoreError::BadKey { tree: table, len: bytes.len() })
}

/// `PostgreSQL database NAME on HOST:PORT`, from the parsed URL (no password).
fn describe(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let database = config.get_dbname().or(config.get_user()).unwrap_or("postgres");
    format!("PostgreSQL database {database} on {}:{port}", hosts.join(","))
}

impl PostgresBackend {
    /// Connect to `url` (`postgres://user:password@host:port/database`) and
    /// apply the migrations the database lacks.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e: tokio_postgres::Error| StoreError::Connect(e.to_string()))?;
        if config.get_application_name().is_none() {
            config.application_name("konsens");
        }
        // Reconnecting calls must not hang on an unreachable host.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let description = describe(&config);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("konsens-postgres")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Connect(format!("cannot start the database runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let runtime = Arc::new(OwnRuntime(Some(runtime)));
        let config = Arc::new(config);
        let opening = config.clone();
        let (client, writer) = run_on(&handle, async move {
            let client = link::open(&opening, SESSION).await?;
            let mut writer = link::open(&opening, SESSION).await?;
            migrations::apply(&mut writer).await?;
            let statements = prepare(&writer).await?;
            Ok((client, Writer { client: writer, statements, idle_timeout: None }))
        })?;
        Ok(Self {
            description,
            reader: Arc::new(Link::new(config.clone(), SESSION.to_owned(), Some(client))),
            writer: Arc::new(tokio::sync::Mutex::new(WriterSlot { writer: Some(writer), backoff: Backoff::default() })),
            config,
            fence: Arc::default(),
            handle,
            runtime,
        })
    }

    /// Run `query` with the reading connection on the store's runtime and wait for it.
    fn run<T, F>(&self, query: impl FnOnce(Arc<Client>) -> F + Send + 'static) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let reader = self.reader.clone();
        run_on(&self.handle, async move { query(reader.client().await?).await })
    }

    /// The lease state group commits are fenced by, once in cluster mode.
    fn fence(&self) -> Option<Arc<LeaseState>> {
        self.fence.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// One write as a group of one, so that it is fenced like any other.
    fn commit_one(&self, item: GroupItem) -> Result<(), StoreError> {
        self.commit_group(vec![item])?.pop().unwrap_or(Ok(()))
    }
}

/// Spawn `future` on the store's runtime and block this thread until it is done.
fn run_on<T, F>(handle: &tokio::runtime::Handle, future: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, StoreError>> + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    handle.spawn(async move {
        // The caller is blocked on `rx` until this arrives.
        let _ = tx.send(future.await);
    });
    rx.recv().map_err(|_| StoreError::Connect("the database runtime has stopped".into()))?
}

/// A group item as the statement and parameters that write it.
async fn write_item(tx: &tokio_postgres::Transaction<'_>, writer: &Statements, item: &GroupItem) -> Result<(), StoreError> {
    match item {
        GroupItem::Document { document, write } => {
            let (statement, bytes) = match write {
                StorageWrite::Incremental(bytes) => (&writer.incremental, bytes),
                StorageWrite::Snapshot(bytes) => (&writer.snapshot, bytes),
            };
            tx.execute(statement, &[&id_bytes(document), bytes]).await?;
        }
        GroupItem::Record(Record::SyncState { document, storage, heads }) => {
            tx.execute(&writer.sync_state, &[&id_bytes(document), &storage.0, &crate::encode_heads(heads)]).await?;
        }
        GroupItem::Record(Record::BindActor { actor, participant }) => {
            tx.execute(&writer.bind_actor, &[actor, participant]).await?;
        }
        GroupItem::Record(Record::DocumentProcess { document, process }) => {
            tx.execute(&writer.document_process, &[&id_bytes(document), &id_bytes(process)]).await?;
        }
        GroupItem::Record(Record::Provenance { document, change, provenance }) => {
            let record = String::from_utf8_lossy(&encode("auth-provenance", provenance)?).into_owned();
            tx.execute(&writer.provenance, &[&id_bytes(document), &change.as_slice(), &record]).await?;
        }
        GroupItem::Record(Record::Meta { key, value }) => {
            tx.execute(&writer.meta, &[key, value]).await?;
        }
    }
    Ok(())
}

impl Backend for PostgresBackend {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn load(&self, document: &DocumentId) -> Result<Vec<Chunk>, StoreError> {
        let document = id_bytes(document);
        self.run(move |client| async move {
            let rows = client
                .query("SELECT is_snapshot, bytes FROM chunks WHERE document = $1 ORDER BY seq", &[&document])
                .await?;
            rows.iter()
                .map(|row| Ok(Chunk { is_snapshot: row.try_get(0)?, bytes: row.try_get(1)? }))
                .collect()
        })
    }

    fn contains(&self, document: &DocumentId) -> Result<bool, StoreError> {
        let document = id_bytes(document);
        self.run(move |client| async move {
            let row = client.query_one("SELECT EXISTS (SELECT 1 FROM chunks WHERE document = $1)", &[&document]).await?;
            Ok(row.try_get(0)?)
        })
    }

    /// Committed (durable) when it returns. Fenced in cluster mode.
    fn write(&self, document: &DocumentId, write: &StorageWrite) -> Result<(), StoreError> {
        if self.fence().is_some() {
            return self.commit_one(GroupItem::Document { document: *document, write: write.clone() });
        }
        let document = id_bytes(document);
        let (sql, bytes) = match write {
            StorageWrite::Incremental(bytes) => (INSERT_INCREMENTAL, bytes.clone()),
            StorageWrite::Snapshot(bytes) => (INSERT_SNAPSHOT, bytes.clone()),
        };
        self.run(move |client| async move {
            client.execute(sql, &[&document, &bytes]).await?;
            Ok(())
        })
    }

    fn documents(&self) -> Result<Vec<DocumentId>, StoreError> {
        self.run(move |client| async move {
            let rows = client.query("SELECT DISTINCT document FROM chunks ORDER BY document", &[]).await?;
            rows.iter().map(|row| document_id("chunks", row.try_get(0)?)).collect()
        })
    }

    fn sync_states(&self, document: &DocumentId) -> Result<Vec<KeptSyncState>, StoreError> {
        let id = *document;
        let document = id_bytes(document);
        self.run(move |client| async move {
            let rows = client
                .query("SELECT storage, heads FROM sync_states WHERE document = $1 ORDER BY storage", &[&document])
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let storage: String = row.try_get(0)?;
                match crate::decode_heads(row.try_get(1)?) {
                    Some(heads) => out.push((StorageId(storage), heads)),
                    None => tracing::warn!(document = %id, storage, "skipping a malformed sync state"),
                }
            }
            Ok(out)
        })
    }

    /// Fenced in cluster mode.
    fn put_sync_state(&self, document: &DocumentId, storage: &StorageId, heads: &[ChangeHash]) -> Result<(), StoreError> {
        if self.fence().is_some() {
            let record = Record::SyncState { document: *document, storage: storage.clone(), heads: heads.to_vec() };
            return self.commit_one(GroupItem::Record(record));
        }
        let (document, storage, heads) = (id_bytes(document), storage.0.clone(), crate::encode_heads(heads));
        self.run(move |client| async move {
            client.execute(PUT_SYNC_STATE, &[&document, &storage, &heads]).await?;
            Ok(())
        })
    }

    /// Every statement commits with `synchronous_commit` on: nothing waits.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// One transaction: all or nothing. A failed statement or commit fails
    /// the whole group (the transaction is rolled back when dropped). In
    /// cluster mode the writes of documents this node does not hold (see
    /// `lease.rs`) are refused one by one, and the rest commits.
    fn commit_group(&self, group: Vec<GroupItem>) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let (writer, config, fence) = (self.writer.clone(), self.config.clone(), self.fence());
        run_on(&self.handle, async move {
            let mut slot = writer.lock().await;
            let idle_timeout = fence.as_ref().map(|state| state.config.ttl);
            let Writer { client, statements, .. } = slot.ready(&config, idle_timeout).await?;
            let tx = client.transaction().await?;
            let refused = match &fence {
                Some(state) => lease::refused(&tx, &statements.fence, state, &group).await?,
                None => HashSet::new(),
            };
            let mut results = Vec::with_capacity(group.len());
            for item in &group {
                match lease::fenced_document(item).filter(|document| refused.contains(*document)) {
                    Some(document) => results.push(Err(StoreError::Fenced { document: document.to_string() })),
                    None => {
                        write_item(&tx, statements, item).await?;
                        results.push(Ok(()));
                    }
                }
            }
            tx.commit().await?;
            if !refused.is_empty() {
                tracing::warn!(documents = refused.len(), "writes of documents owned by another node refused");
            }
            Ok(results)
        })
    }

    /// Turns fencing on: from now on every group commit checks the leases.
    fn leases(&self, config: LeaseConfig) -> Option<Leases> {
        let table = lease::LeaseTable::new(self.config.clone(), config.ttl, self.handle.clone(), self.runtime.clone());
        let state = Arc::new(LeaseState::new(config));
        *self.fence.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(state.clone());
        Some(Leases::new(state, Arc::new(table)))
    }

    fn watch_tokens(&self, on_change: Arc<dyn Fn(String) + Send + Sync>) -> Result<(), StoreError> {
        notify::watch(&self.handle, self.config.clone(), on_change)
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.run(move |client| async move {
            let row = client.query_one("SELECT pg_database_size(current_database())", &[]).await?;
            let size: i64 = row.try_get(0)?;
            Ok(u64::try_from(size).unwrap_or(0))
        })
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_owned();
        self.run(move |client| async move {
            let row = client.query_opt("SELECT value FROM meta WHERE key = $1", &[&key]).await?;
            Ok(row.map(|row| row.try_get(0)).transpose()?)
        })
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let (key, value) = (key.to_owned(), value.to_vec());
        self.run(move |client| async move {
            client.execute(PUT_META, &[&key, &value]).await?;
            Ok(())
        })
    }

    fn put_meta_once(&self, key: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        let (key, value) = (key.to_owned(), value.to_vec());
        self.run(move |client| async move {
            client.execute("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING", &[&key, &value]).await?;
            let row = client.query_one("SELECT value FROM meta WHERE key = $1", &[&key]).await?;
            Ok(row.try_get(0)?)
        })
    }

    fn remove_meta(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.run(move |client| async move {
            client.execute("DELETE FROM meta WHERE key = $1", &[&key]).await?;
            Ok(())
        })
    }

    fn scan_meta(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let prefix = prefix.to_owned();
        self.run(move |client| async move {
            // Byte order (COLLATE "C"), as sled orders its keys.
            let rows = client
                .query("SELECT key, value FROM meta WHERE starts_with(key, $1) ORDER BY key COLLATE \"C\"", &[&prefix])
                .await?;
            rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).collect()
        })
    }

    fn put_tokens(&self, tokens: &[(String, TokenRecord)]) -> Result<(), StoreError> {
        auth::put_tokens(self, tokens)
    }

    fn token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        auth::token(self, "hash", hash)
    }

    fn token_by_id(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        auth::token(self, "id", id)
    }

    fn token_entries(&self) -> Result<Vec<(String, TokenRecord)>, StoreError> {
        auth::token_entries(self)
    }

    fn mark_seen(&self, id: &str, now: i64, granularity: i64) -> Result<bool, StoreError> {
        auth::mark_seen(self, id, now, granularity)
    }

    fn notifications_seen(&self, id: &str) -> Result<Option<i64>, StoreError> {
        auth::notifications_seen(self, id)
    }

    fn mark_notifications_seen(&self, id: &str, at: i64) -> Result<(), StoreError> {
        auth::mark_notifications_seen(self, id, at)
    }

    fn reissue(&self, id: &str, new_hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        auth::reissue(self, id, new_hash)
    }

    fn revoke(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        auth::revoke(self, id)
    }

    fn set_document_process(&self, document: &DocumentId, process: &DocumentId) -> Result<(), StoreError> {
        let (document, process) = (id_bytes(document), id_bytes(process));
        self.run(move |client| async move {
            client.execute(SET_DOCUMENT_PROCESS, &[&document, &process]).await?;
            Ok(())
        })
    }

    fn document_process(&self, document: &DocumentId) -> Result<Option<DocumentId>, StoreError> {
        let document = id_bytes(document);
        self.run(move |client| async move {
            let row = client.query_opt("SELECT process FROM document_process WHERE document = $1", &[&document]).await?;
            row.map(|row| document_id("document_process", row.try_get(0)?)).transpose()
        })
    }

    fn document_processes(&self) -> Result<Vec<(DocumentId, DocumentId)>, StoreError> {
        self.run(move |client| async move {
            let rows = client.query("SELECT document, process FROM document_process ORDER BY document", &[]).await?;
            rows.iter()
                .map(|row| Ok((document_id("document_process", row.try_get(0)?)?, document_id("document_process", row.try_get(1)?)?)))
                .collect()
        })
    }

    fn actor_owner(&self, actor: &[u8]) -> Result<Option<String>, StoreError> {
        let actor = actor.to_vec();
        self.run(move |client| async move {
            let row = client.query_opt("SELECT participant FROM actors WHERE actor = $1", &[&actor]).await?;
            Ok(row.map(|row| row.try_get(0)).transpose()?)
        })
    }

    fn bind_actor(&self, actor: &[u8], participant: &str) -> Result<(), StoreError> {
        let (actor, participant) = (actor.to_vec(), participant.to_owned());
        self.run(move |client| async move {
            client.execute(BIND_ACTOR, &[&actor, &participant]).await?;
            Ok(())
        })
    }

    fn actor_bindings(&self) -> Result<Vec<(Vec<u8>, String)>, StoreError> {
        self.run(move |client| async move {
            let rows = client.query("SELECT actor, participant FROM actors ORDER BY actor", &[]).await?;
            rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).collect()
        })
    }

    fn record_provenance(&self, document: &DocumentId, change: &[u8; 32], provenance: &Provenance) -> Result<(), StoreError> {
        auth::record_provenance(self, document, change, provenance)
    }

    fn provenance(&self, document: &DocumentId, change: &[u8; 32]) -> Result<Option<Provenance>, StoreError> {
        auth::provenance(self, document, change)
    }

    fn provenance_entries(&self) -> Result<Vec<(DocumentId, [u8; 32], Provenance)>, StoreError> {
        auth::provenance_entries(self)
    }
}
