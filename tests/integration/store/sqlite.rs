//! The store contract against SQLite: a real database file in a temporary
//! directory of its own for each test; and what only SQLite has, its
//! migrations.

use crisisd::domain::DeliveryId;
use crisisd::outbox::{DeadCause, DeadFilter, SqliteStore, Storage};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use tempfile::TempDir;

use super::contract::Database;

pub struct SqliteFile(TempDir);

impl SqliteFile {
    fn new() -> Self {
        Self(tempfile::tempdir().expect("temp dir"))
    }

    fn path(&self) -> std::path::PathBuf {
        self.0.path().join("store.db")
    }
}

impl Database for SqliteFile {
    async fn open(&self) -> Storage {
        Storage::new(SqliteStore::open(&self.path()).await.expect("open"))
    }
}

store_contract!(SqliteFile::new());
receipts_contract!(SqliteFile::new());
answers_contract!(SqliteFile::new());

/// A database as migrations up to `last` left it.
async fn migrated_through(database: &SqliteFile, last: &str) -> SqlitePool {
    let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/outbox/migrations/sqlite");
    let some = database.0.path().join("migrations");
    std::fs::create_dir(&some).expect("mkdir");
    for entry in std::fs::read_dir(all).expect("migrations") {
        let entry = entry.expect("entry");
        if entry.file_name().to_string_lossy().as_ref() <= last {
            std::fs::copy(entry.path(), some.join(entry.file_name())).expect("copy");
        }
    }
    let pool = SqlitePool::connect_with(
        SqliteConnectOptions::new()
            .filename(database.path())
            .create_if_missing(true),
    )
    .await
    .expect("connect");
    sqlx::migrate::Migrator::new(some.as_path())
        .await
        .expect("migrator")
        .run(&pool)
        .await
        .expect("migrate");
    pool
}

/// A crisis with one announcement in a database before migration 0007,
/// to which deliveries are added as that store wrote them.
struct BeforeCauses {
    pool: SqlitePool,
    crisis: String,
    announcement: String,
}

impl BeforeCauses {
    async fn new(database: &SqliteFile) -> Self {
        let pool = migrated_through(database, "0006_hooks.sql").await;
        let crisis = super::declared().id.to_string();
        sqlx::query(
            "INSERT INTO crises (id, kind, severity, title, summary, status, version, declared_at, updated_at) \
             VALUES (?, 'outage', 'major', 't', 's', 'declared', 1, 0, 0)",
        )
        .bind(&crisis)
        .execute(&pool)
        .await
        .expect("crisis");
        let announcement = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO announcements (id, crisis_id, kind, created_at) VALUES (?, ?, 'initial', 0)",
        )
        .bind(&announcement)
        .bind(&crisis)
        .execute(&pool)
        .await
        .expect("announcement");
        Self {
            pool,
            crisis,
            announcement,
        }
    }

    /// A delivery to `r{n}@example.com`, created at 10.
    async fn delivery(
        &self,
        n: usize,
        state: &str,
        last_error: Option<&str>,
        attempts: i64,
        finished_at: Option<i64>,
    ) -> DeliveryId {
        let id = DeliveryId::new();
        sqlx::query(
            "INSERT INTO deliveries (id, crisis_id, announcement_id, kind, channel, destination, locale, \
             content, state, attempts, available_at, last_error, created_at, finished_at) \
             VALUES (?, ?, ?, 'initial', 'email', ?, 'en', '{}', ?, ?, 10, ?, 10, ?)",
        )
        .bind(id.to_string())
        .bind(&self.crisis)
        .bind(&self.announcement)
        .bind(format!("r{n}@example.com"))
        .bind(state)
        .bind(attempts)
        .bind(last_error)
        .bind(finished_at)
        .execute(&self.pool)
        .await
        .expect("delivery");
        id
    }
}

#[tokio::test]
async fn dead_deliveries_stored_before_causes_were_get_theirs_from_the_old_rules() {
    let database = SqliteFile::new();
    let before = BeforeCauses::new(&database).await;
    // What the store wrote for each way into `dead`: last_error, attempts,
    // finished_at.
    let dead = [
        ("the recipient opted out", 0, 20, DeadCause::OptedOut),
        // Killed in the batch that planned it: finished when created.
        (
            "cancelled: the crisis was resolved",
            0,
            10,
            DeadCause::Cancelled,
        ),
        (
            "channel `sms` is not configured",
            1,
            30,
            DeadCause::Unroutable,
        ),
        ("message did not render: boom", 0, 10, DeadCause::Unfit),
        (
            "gave up after 5 attempts; last error: 421",
            5,
            40,
            DeadCause::AttemptsExhausted,
        ),
        ("550 rejected", 1, 50, DeadCause::Permanent),
    ];
    let mut expected = Vec::new();
    for (n, (last_error, attempts, finished_at, cause)) in dead.into_iter().enumerate() {
        let id = before
            .delivery(n, "dead", Some(last_error), attempts, Some(finished_at))
            .await;
        expected.push((id, cause));
    }
    before.delivery(dead.len(), "pending", None, 0, None).await;
    // The opted-out reader is still opted out, as it would be.
    sqlx::query(
        "INSERT INTO opt_outs (point, address, source, opted_out_at) VALUES ('email', 'r0@example.com', 'unsubscribe', 20)",
    )
    .execute(&before.pool)
    .await
    .expect("opt-out");
    before.pool.close().await;

    let storage = database.open().await;
    let mut causes: Vec<(DeliveryId, DeadCause)> = storage
        .dead_letters
        .list(DeadFilter::default(), 10)
        .await
        .expect("dead")
        .into_iter()
        .map(|letter| (letter.id, letter.cause))
        .collect();
    causes.sort_by_key(|(id, _)| id.to_string());
    expected.sort_by_key(|(id, _)| id.to_string());
    assert_eq!(causes, expected);
    assert_eq!(
        storage
            .dead_letters
            .count_requeueable(DeadFilter::default())
            .await
            .expect("count"),
        3,
        "as before: not the opted-out, cancelled and unrendered ones"
    );
}
