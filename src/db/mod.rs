//! The database layer: connection pool, embedded migrations, table definitions, row models and the
//! queries the domain runs. It knows tables, not roles; every query takes the tenant id.

pub mod embedded;
pub mod models;
pub mod pool;
pub mod prepared;
pub mod queries;
pub mod retry;
pub mod schema;

pub use pool::{abandoning, build_pool, Pool, PoolSettings, PooledConn};

use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::AsyncPgConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

/// The connection type every query function takes (a pooled connection derefs to it).
pub type Conn = AsyncPgConnection;

/// The SQL migrations under `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Runs pending migrations; returns how many ran.
pub async fn run_migrations(url: &str) -> anyhow::Result<usize> {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
        use diesel::connection::SimpleConnection;
        let mut conn = <AsyncConnectionWrapper<AsyncPgConnection> as diesel::Connection>::establish(&url)?;
        // Replicas starting together on a new release take turns; the lock ends with the session.
        SimpleConnection::batch_execute(&mut conn, "SELECT pg_advisory_lock(7263540)")?;
        let ran =
            conn.run_pending_migrations(MIGRATIONS).map_err(|e| anyhow::anyhow!("migration failed: {e}"))?;
        Ok(ran.len())
    })
    .await?
}

/// Whether the database is reachable and has every embedded migration applied (for `/readyz`).
pub async fn is_ready(pool: &Pool) -> bool {
    let Ok(mut conn) = pool.get().await else { return false };
    let Ok(applied) = queries::meta::applied_migrations(&mut conn).await else { return false };
    embedded_versions().iter().all(|v| applied.contains(v))
}

/// Versions of the migrations compiled into the binary.
pub fn embedded_versions() -> Vec<String> {
    use diesel::migration::MigrationSource;
    MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS)
        .map(|ms| ms.iter().map(|m| m.name().version().to_string()).collect())
        .unwrap_or_default()
}
