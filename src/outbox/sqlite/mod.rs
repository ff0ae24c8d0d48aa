//! The embedded store: SQLite in WAL mode, one file. This module opens it
//! (two pools, the writer queue, the rendition cache); each storage trait
//! is implemented in its own file, rows read as `FromRow` structs and
//! converted into domain types with `TryFrom`.

mod accounts;
mod consent;
mod crises;
mod dead_letters;
mod follow_ups;
mod hooks;
mod idempotency;
mod leader;
mod ledger;
mod plans;
mod queue;
mod source_links;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::rows::{RenditionCache, count, decode, from_millis, millis, to_json};
use super::{StoreError, WorkDue};

#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Commits reach the disk before they return (`synchronous = FULL`):
    /// crisis transitions, opt-outs, everything an API answer promises.
    pool: SqlitePool,
    /// The dispatcher's bookkeeping (plan batches, claims, outcomes,
    /// releases), committed with `synchronous = NORMAL`: in WAL mode a
    /// process crash loses none of it, and a power cut can only roll back
    /// the latest claims and outcomes, so a delivery is sent again, never
    /// lost. It saves an fsync per claim and per outcome batch, which was
    /// what bounded email throughput (3.7 ms each on the benchmark VM).
    ledger: SqlitePool,
    /// SQLite lets one transaction write at a time, and a second writer
    /// waits in SQLite's busy handler, which sleeps 1, 2, 5… ms between
    /// tries (thousands of such sleeps per fan-out in the benchmark).
    /// Writers queue here instead, and each starts the moment the one
    /// before it commits.
    writer: Arc<tokio::sync::Mutex<()>>,
    /// Decoded renditions by id, so a claim does not parse the same
    /// message for every reader.
    renditions: RenditionCache,
    /// Signalled after commits that queue deliveries.
    work_due: WorkDue,
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Sqlite>;

/// This binary's migrations, for `open` and the check without it.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/outbox/migrations/sqlite");

/// Rows per multi-row statement: 22 parameters each stays well under
/// SQLite's limit of 32,766.
const ROWS_PER_INSERT: usize = 500;

impl SqliteStore {
    /// Opens (creating when missing) the database and applies migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an accepted crisis survives a power cut, not only a crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&pool).await?;
        // Opened lazily, so its connection threads start where the
        // dispatcher runs (and take that runtime's CPU priority).
        let ledger = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_lazy_with(options.synchronous(SqliteSynchronous::Normal));
        Ok(Self {
            pool,
            ledger,
            writer: Arc::default(),
            renditions: RenditionCache::default(),
            work_due: WorkDue::default(),
        })
    }

    /// Migrations this binary knows and the existing file at `path` lacks;
    /// the file is opened read-only.
    pub async fn missing_migrations(path: &Path) -> Result<Vec<String>, StoreError> {
        let options = SqliteConnectOptions::new().filename(path).read_only(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        let applied = super::rows::applied_migrations(&pool).await;
        pool.close().await;
        Ok(super::rows::missing(&MIGRATOR, &applied?))
    }
}
