//! The schema, as the SQL files in `store/migrations`, applied at start.
//! Each applied version is recorded in `konsens_migrations`; a version
//! recorded there is never applied again, so starting is idempotent.

use tokio_postgres::Client;

use crate::StoreError;

/// Every migration, in order: (version, name, SQL).
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "initial", include_str!("../../migrations/0001_initial.sql")),
    (2, "notifications seen", include_str!("../../migrations/0002_notifications_seen.sql")),
    (3, "leases", include_str!("../../migrations/0003_leases.sql")),
];

/// Key of the advisory lock that keeps two starting servers from migrating at once.
const MIGRATION_LOCK: i64 = 0x6b6f_6e73_656e_7301; // "konsens" 1

/// Bring the database's schema up to date, in one transaction.
pub(super) async fn apply(client: &mut Client) -> Result<Vec<i32>, StoreError> {
    let tx = client.transaction().await?;
    tx.query("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS konsens_migrations (
            version    integer     PRIMARY KEY,
            name       text        NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let applied = tx
        .query("SELECT version FROM konsens_migrations ORDER BY version", &[])
        .await?
        .iter()
        .map(|row| row.try_get::<_, i32>(0))
        .collect::<Result<Vec<_>, _>>()?;
    let known = MIGRATIONS.last().map_or(0, |(version, _, _)| *version);
    if let Some(newer) = applied.iter().find(|v| **v > known) {
        return Err(StoreError::Migration {
            version: *newer,
            reason: format!("the database's schema is newer than this konsens knows (up to {known}); use a newer konsens-server"),
        });
    }
    let mut newly = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql)
            .await
            .map_err(|e| StoreError::Migration { version: *version, reason: e.to_string() })?;
        tx.execute("INSERT INTO konsens_migrations (version, name) VALUES ($1, $2)", &[version, name]).await?;
        newly.push(*version);
    }
    tx.commit().await?;
    if !newly.is_empty() {
        tracing::info!(versions = ?newly, "database schema migrated");
    }
    Ok(newly)
}
