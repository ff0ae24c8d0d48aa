//! Opening the store the config names, and `check-config --connect`'s
//! look at it: reachable, and migrated as far as this binary expects.

use tracing::info;

use crate::config::StoreLocation;
use crate::outbox::{PostgresStore, SqliteStore, Storage, StoreError};

/// Opens (and migrates) the store at `location`.
pub async fn open_location(location: &StoreLocation) -> Result<Storage, StoreError> {
    info!(store = %location, "opening the store");
    Ok(match location {
        StoreLocation::Sqlite(path) => Storage::new(SqliteStore::open(path).await?),
        StoreLocation::Postgres(url) => Storage::new(PostgresStore::open(url.expose()).await?),
    })
}

/// What `check-config --connect` found: the store answers, and which of
/// this binary's migrations it still lacks (a start applies them).
#[derive(Debug)]
pub struct StoreCheck {
    pub missing_migrations: Vec<String>,
    /// A SQLite file that does not exist yet (a start creates it).
    pub created_at_start: bool,
}

/// Connects to the store without changing it.
pub async fn check_store(location: &StoreLocation) -> Result<StoreCheck, StoreError> {
    match location {
        StoreLocation::Sqlite(path) if !path.exists() => Ok(StoreCheck {
            missing_migrations: Vec::new(),
            created_at_start: true,
        }),
        StoreLocation::Sqlite(path) => Ok(StoreCheck {
            missing_migrations: SqliteStore::missing_migrations(path).await?,
            created_at_start: false,
        }),
        StoreLocation::Postgres(url) => Ok(StoreCheck {
            missing_migrations: PostgresStore::missing_migrations(url.expose()).await?,
            created_at_start: false,
        }),
    }
}
