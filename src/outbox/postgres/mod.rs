//! The shared store: PostgreSQL, for several daemons on one database. This
//! module opens it (one pool, migrations under PostgreSQL's advisory lock,
//! the rendition cache); each storage trait is implemented in its own
//! file, on the same columns as SQLite (`outbox::rows`). Where SQLite
//! relies on having one writer, this store takes row locks instead: claims
//! skip rows another daemon holds (`FOR UPDATE SKIP LOCKED`), and a write
//! that depends on a crisis's status locks that crisis's row first.

mod accounts;
mod consent;
mod crises;
mod dead_letters;
mod follow_ups;
mod hooks;
mod idempotency;
mod ledger;
mod plans;
mod queue;
mod source_links;
mod submissions;

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::rows::{
    RenditionCache, applied_migrations, count, decode, from_millis, millis, missing, to_json,
};
use super::{StoreError, WorkDue};

/// How long a statement may wait for a connection from the pool before
/// the caller gets an error (and retries, as after any store error).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection attempt may take: a database that does not answer
/// is reported, not waited on forever.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// This binary's migrations, for `open` and the check without it.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/outbox/migrations/postgres");

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// Decoded renditions by id, so a claim does not parse the same
    /// message for every reader.
    renditions: RenditionCache,
    /// Signalled after this daemon's commits that queue deliveries.
    work_due: WorkDue,
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Postgres>;

impl PostgresStore {
    /// Connects to `url` and applies migrations. sqlx holds a PostgreSQL
    /// advisory lock while it migrates, so daemons starting together
    /// migrate once and the others wait for it.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let pool = Self::connect(url, 16).await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self {
            pool,
            renditions: RenditionCache::default(),
            work_due: WorkDue::default(),
        })
    }

    /// A pool on `url`, without migrating (check-config's reachability
    /// check uses it too).
    pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
        let options = PgConnectOptions::from_str(url)?.application_name("crisisd");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options);
        tokio::time::timeout(CONNECT_TIMEOUT, pool)
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::PoolTimedOut))?
            .map_err(StoreError::from)
    }

    /// Migrations this binary knows and the database has not applied.
    pub async fn missing_migrations(url: &str) -> Result<Vec<String>, StoreError> {
        let pool = Self::connect(url, 1).await?;
        let applied = applied_migrations(&pool).await;
        pool.close().await;
        Ok(missing(&MIGRATOR, &applied?))
    }
}
