//! The shared store: PostgreSQL, for several daemons on one database. This
//! module opens it (one pool, migrations under PostgreSQL's advisory lock,
//! the rendition cache); each storage trait is implemented in its own
//! file, on the same columns as SQLite (`outbox::rows`). Where SQLite
//! relies on having one writer, this store takes row locks instead: claims
//! skip rows another daemon holds (`FOR UPDATE SKIP LOCKED`), and a write
//! that depends on a crisis's status locks that crisis's row first.

mod accounts;
mod answers;
mod consent;
mod corrections;
mod crises;
mod dead_letters;
mod directory;
mod events;
mod fallbacks;
mod flow;
mod follow_ups;
mod hooks;
mod idempotency;
mod leader;
mod ledger;
mod plans;
mod queue;
mod receipts;
mod retention;
mod source_links;
mod submissions;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// When the deliveries table's statistics are next refreshed.
    statistics: Arc<Statistics>,
}

/// Rows written to `deliveries` since its statistics were last refreshed.
/// A claim asks, of every row it considers, whether an earlier message of
/// its reader is still to go; on a table whose statistics say it is tiny
/// (freshly loaded, before autovacuum's first ANALYZE) PostgreSQL answers
/// from the wrong index and reads every row of the crisis each time, ten
/// times slower on 20,000 rows. So the store runs ANALYZE itself each time
/// the rows it wrote double.
#[derive(Debug)]
struct Statistics {
    written: AtomicU64,
    next_at: AtomicU64,
}

/// The first refresh, after a plan batch or two.
const FIRST_ANALYZE_AT: u64 = 1000;

impl Default for Statistics {
    fn default() -> Self {
        Self {
            written: AtomicU64::new(0),
            next_at: AtomicU64::new(FIRST_ANALYZE_AT),
        }
    }
}

impl PostgresStore {
    /// Counts `rows` written, and refreshes the statistics when they have
    /// doubled since the last refresh. A failure only costs speed.
    async fn wrote_deliveries(&self, rows: usize) {
        let rows = u64::try_from(rows).unwrap_or(u64::MAX);
        let written = self.statistics.written.fetch_add(rows, Ordering::SeqCst) + rows;
        let next_at = self.statistics.next_at.load(Ordering::SeqCst);
        if written < next_at
            || self
                .statistics
                .next_at
                .compare_exchange(
                    next_at,
                    written.saturating_mul(2),
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                )
                .is_err()
        {
            return;
        }
        if let Err(err) = sqlx::query("ANALYZE deliveries").execute(&self.pool).await {
            tracing::warn!(error = %err, "Could not refresh the deliveries table's statistics.");
        }
    }
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Postgres>;

use events::{CRISIS_CHANGED, FLOW_PAUSED, WORK_DUE, notify};
pub use events::{StoreEvent, StoreEvents};

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
            statistics: Arc::default(),
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
