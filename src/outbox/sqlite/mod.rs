//! The embedded store: SQLite in WAL mode, one file. This module opens it
//! (two pools, the writer queue, the rendition cache); each storage trait
//! is implemented in its own file, rows read as `FromRow` structs and
//! converted into domain types with `TryFrom`.

mod accounts;
mod answers;
mod consent;
mod corrections;
mod crises;
mod dead_letters;
mod directory;
mod fallbacks;
mod flow;
mod follow_ups;
mod hooks;
mod idempotency;
mod in_use;
mod leader;
mod ledger;
mod plans;
mod queue;
mod receipts;
mod retention;
mod source_links;
mod submissions;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    SqliteTransactionManager,
};
use sqlx::{ConnectOptions, Connection, SqlitePool, TransactionManager};

use super::rows::{RenditionCache, count, decode, from_millis, millis, to_json};
use super::{StoreError, WorkDue, WriteFaults};

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
    /// The database file opened, checked before every query.
    file: Arc<FileIdentity>,
    /// Recent writes that failed for the store's own reasons.
    faults: Arc<WriteFaults>,
    /// The daemon's hold on the file, while it runs on it.
    in_use: Option<Arc<InUse>>,
}

pub use in_use::InUse;

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
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an accepted crisis survives a power cut, not only a crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        // Created (and migrated) by this first connection only: a
        // connection opened later never makes a new, empty database where
        // the real one was deleted.
        let mut first = options.clone().create_if_missing(true).connect().await?;
        MIGRATOR.run(&mut first).await?;
        first.close().await?;
        let file = FileIdentity::of(path)
            .ok_or_else(|| StoreError::Replaced(path.to_path_buf()))
            .map(Arc::new)?;
        let pool = pool_options(8, &file).connect_with(options.clone()).await?;
        // Opened lazily, so its connection threads start where the
        // dispatcher runs (and take that runtime's CPU priority). One
        // connection: its writes queue on `writer` anyway, and SQLite
        // empties a connection's page cache whenever another connection
        // has written since its last transaction, so with several each
        // claim and outcome batch began by reading its pages again.
        let ledger = pool_options(1, &file)
            .connect_lazy_with(options.synchronous(SqliteSynchronous::Normal));
        Ok(Self {
            pool,
            ledger,
            writer: Arc::default(),
            renditions: RenditionCache::default(),
            work_due: WorkDue::default(),
            file,
            faults: Arc::default(),
            in_use: None,
        })
    }

    /// Opens the store at `path` for a daemon: taken for this process
    /// first (`InUse`), so `store copy` and a second daemon see it in use.
    pub async fn open_for_daemon(path: &Path) -> Result<Self, StoreError> {
        let in_use = InUse::take(path)?;
        let mut store = Self::open(path).await?;
        store.in_use = Some(Arc::new(in_use));
        Ok(store)
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

/// The database file as the daemon opened it: its device and inode. A
/// file deleted (or replaced) while the daemon runs keeps living for the
/// connections that have it open, so writes would go on "succeeding" into
/// a file nobody will ever read again.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileIdentity {
    path: PathBuf,
    device: u64,
    inode: u64,
}

impl FileIdentity {
    fn of(path: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(path).ok()?;
        Some(Self {
            path: path.to_path_buf(),
            device: metadata.dev(),
            inode: metadata.ino(),
        })
    }

    /// The file at the path is still the one opened (one `stat`).
    fn check(&self) -> Result<(), StoreError> {
        match Self::of(&self.path) {
            Some(now) if now == *self => Ok(()),
            _ => Err(StoreError::Replaced(self.path.clone())),
        }
    }
}

/// A pool whose connections are checked on the way out and back in.
///
/// Out (`before_acquire`): the database file must still be the one
/// opened, else the connection is closed and the next one, opened on a
/// missing file, fails: no query reaches a deleted database.
///
/// In (`after_release`): a connection still inside a transaction is closed
/// rather than reused, which rolls the transaction back and frees SQLite's
/// write lock. After a failed COMMIT (a full disk: SQLite may already have
/// rolled back itself) sqlx's own count of open transactions can be one
/// too many, and such a connection would take every later `BEGIN` as a
/// nested savepoint whose rollback leaves the write lock held: every other
/// writer, in this process or not, then got "database is locked" until a
/// restart.
fn pool_options(max: u32, file: &Arc<FileIdentity>) -> SqlitePoolOptions {
    let file = file.clone();
    SqlitePoolOptions::new()
        .max_connections(max)
        .before_acquire(move |_, _| {
            let identity = file.check();
            Box::pin(async move { Ok(identity.is_ok()) })
        })
        .after_release(|connection, _| {
            Box::pin(async move {
                // Runs a rollback a dropped transaction queued, first.
                connection.ping().await?;
                Ok(SqliteTransactionManager::get_transaction_depth(connection) == 0)
            })
        })
}
