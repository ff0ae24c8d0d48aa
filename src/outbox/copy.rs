//! Moving up: a SQLite store copied whole into PostgreSQL (`crisisd store
//! copy`). Both stores keep the same tables and columns (each PostgreSQL
//! migration is its SQLite twin), so each table is copied column by column
//! as PostgreSQL types it, in an order that satisfies the foreign keys:
//! crises with their versions and audit trail, announcements, renditions,
//! deliveries (finished ones too: an all-clear goes only where an earlier
//! message reached), Idempotency-Keys, source links, opt-outs, follow-ups,
//! the webhooks' state, console accounts, sessions, audit and submissions.
//! What belongs to running daemons (the lead, the flow buckets, the probe
//! row) is not copied.
//!
//! It is safe to try: the source is held with the daemon's own lock
//! (`InUse`) and read in one transaction, the target is written in one
//! transaction, so a failed copy leaves the target as it was; a target
//! that holds data is refused unless `force`, and even then while a
//! daemon leads on it.

use std::path::Path;

use futures::TryStreamExt;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteRow};
use sqlx::{Postgres, QueryBuilder, Row};

use super::{InUse, PostgresStore, SqliteStore, StoreError};

/// Copied in this order; every table's foreign keys point to one before it.
pub const TABLES: &[&str] = &[
    "crises",
    "crisis_versions",
    "crisis_events",
    "announcements",
    "renditions",
    "deliveries",
    "idempotency_keys",
    "source_links",
    "opt_outs",
    "follow_ups",
    "hook_log",
    "hook_deliveries",
    "hook_pending",
    "console_users",
    "console_sessions",
    "console_audit",
    "console_submissions",
];

/// Rows per INSERT: PostgreSQL takes up to 65,535 parameters a statement.
const ROWS_PER_INSERT: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("there is no SQLite store at {0}")]
    NoSource(std::path::PathBuf),
    #[error(
        "the target already holds data ({0}); nothing was copied. It may be an earlier copy: \
         --force replaces everything in it"
    )]
    TargetHoldsData(String),
    #[error(
        "a daemon runs on the target (node {0} leads); nothing was copied. Stop every daemon on \
         it first"
    )]
    TargetInUse(String),
    #[error("the stores' tables differ: {0}")]
    Schema(String),
}

impl From<sqlx::Error> for CopyError {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(err))
    }
}

/// Where a copy stands: a table, rows copied of how many.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    pub table: &'a str,
    pub copied: u64,
    pub total: u64,
}

/// What a column is on PostgreSQL, which decides how it is read from SQLite.
#[derive(Debug, Clone, Copy)]
enum Type {
    Text,
    Integer,
    Boolean,
    Float,
    Bytes,
}

struct Column {
    name: String,
    ty: Type,
}

/// Copies the SQLite store at `source` into the PostgreSQL database at
/// `target`, telling `progress` as it goes; returns the rows copied per
/// table. Both are migrated to this binary's schema first.
pub async fn sqlite_to_postgres(
    source: &Path,
    target: &str,
    force: bool,
    mut progress: impl FnMut(Progress<'_>),
) -> Result<Vec<(&'static str, u64)>, CopyError> {
    if !source.is_file() {
        return Err(CopyError::NoSource(source.to_path_buf()));
    }
    let _held = InUse::take(source)?;
    drop(SqliteStore::open(source).await?);
    drop(PostgresStore::open(target).await?);
    let from = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().filename(source).read_only(true))
        .await?;
    let to = PostgresStore::connect(target, 1).await?;
    let mut reading = from.begin().await?;
    let mut writing = to.begin().await?;
    check_target(&mut writing, force).await?;
    let mut copied = Vec::new();
    for table in TABLES {
        let columns =
            shared_columns(&mut reading, columns(&mut writing, table).await?, table).await?;
        let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&mut *reading)
            .await?;
        let total = u64::try_from(total).unwrap_or(0);
        progress(Progress {
            table,
            copied: 0,
            total,
        });
        let rows = copy_table(&mut reading, &mut writing, table, &columns, |copied| {
            progress(Progress {
                table,
                copied,
                total,
            });
        })
        .await?;
        copied.push((*table, rows));
    }
    restart_identities(&mut writing).await?;
    writing.commit().await?;
    reading.rollback().await?;
    Ok(copied)
}

/// Refuses a target a daemon leads on, and one holding data unless
/// `force`, which empties every table copied into.
async fn check_target(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    force: bool,
) -> Result<(), CopyError> {
    let now = chrono::Utc::now().timestamp_millis();
    let leader: Option<String> =
        sqlx::query_scalar("SELECT node FROM leader WHERE expires_at > $1")
            .bind(now)
            .fetch_optional(&mut **tx)
            .await?;
    if let Some(node) = leader {
        return Err(CopyError::TargetInUse(node));
    }
    let mut held = Vec::new();
    for table in TABLES {
        let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&mut **tx)
            .await?;
        if rows > 0 {
            held.push(format!("{rows} rows in {table}"));
        }
    }
    if held.is_empty() {
        return Ok(());
    }
    if !force {
        return Err(CopyError::TargetHoldsData(held.join(", ")));
    }
    sqlx::query(&format!(
        "TRUNCATE {} RESTART IDENTITY CASCADE",
        TABLES.join(", ")
    ))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A table's columns as PostgreSQL has them, in order, each with whether
/// it fills itself (an identity or a default).
async fn columns(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    table: &str,
) -> Result<Vec<(Column, bool)>, CopyError> {
    let rows: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text, \
           (is_identity = 'YES' OR column_default IS NOT NULL) \
         FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(&mut **tx)
    .await?;
    rows.into_iter()
        .map(|(name, data_type, fills_itself)| {
            let ty = match data_type.as_str() {
                "text" | "character varying" => Type::Text,
                "bigint" | "integer" | "smallint" => Type::Integer,
                "boolean" => Type::Boolean,
                "double precision" | "real" => Type::Float,
                "bytea" => Type::Bytes,
                other => {
                    return Err(CopyError::Schema(format!(
                        "{table}.{name} is {other}, which the copy does not know"
                    )));
                }
            };
            Ok((Column { name, ty }, fills_itself))
        })
        .collect()
}

/// The target's columns the source has too. One only PostgreSQL has must
/// fill itself: an identity (numbered in the source's row order) or a
/// default.
async fn shared_columns(
    reading: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    columns: Vec<(Column, bool)>,
    table: &str,
) -> Result<Vec<Column>, CopyError> {
    let present: Vec<String> =
        sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .fetch_all(&mut **reading)
            .await?;
    let mut shared = Vec::new();
    for (column, fills_itself) in columns {
        if present.contains(&column.name) {
            shared.push(column);
        } else if !fills_itself {
            return Err(CopyError::Schema(format!(
                "{table}.{} is not in the SQLite store",
                column.name
            )));
        }
    }
    Ok(shared)
}

/// Copies one table in batches; returns its rows.
async fn copy_table(
    reading: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    writing: &mut sqlx::Transaction<'_, Postgres>,
    table: &str,
    columns: &[Column],
    mut copied: impl FnMut(u64),
) -> Result<u64, CopyError> {
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    // In the order SQLite wrote them, which numbers what PostgreSQL numbers.
    let select = format!("SELECT {} FROM {table} ORDER BY rowid", names.join(", "));
    let mut rows = sqlx::query(&select).fetch(&mut **reading);
    let (mut batch, mut done) = (Vec::with_capacity(ROWS_PER_INSERT), 0u64);
    while let Some(row) = rows
        .try_next()
        .await
        .map_err(|e| CopyError::Schema(format!("{table} cannot be read: {e}")))?
    {
        batch.push(row);
        if batch.len() == ROWS_PER_INSERT {
            done += insert(writing, table, columns, &batch).await?;
            batch.clear();
            copied(done);
        }
    }
    if !batch.is_empty() {
        done += insert(writing, table, columns, &batch).await?;
        copied(done);
    }
    Ok(done)
}

async fn insert(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    table: &str,
    columns: &[Column],
    rows: &[SqliteRow],
) -> Result<u64, CopyError> {
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    // Identity columns keep their numbers: the audit trail's order.
    let mut query = QueryBuilder::<Postgres>::new(format!(
        "INSERT INTO {table} ({}) OVERRIDING SYSTEM VALUE ",
        names.join(", ")
    ));
    let mut failed = None;
    query.push_values(rows, |mut values, row| {
        for (i, column) in columns.iter().enumerate() {
            let bound = match column.ty {
                Type::Text => row.try_get::<Option<String>, _>(i).map(|v| {
                    values.push_bind(v);
                }),
                Type::Integer => row.try_get::<Option<i64>, _>(i).map(|v| {
                    values.push_bind(v);
                }),
                Type::Boolean => row.try_get::<Option<bool>, _>(i).map(|v| {
                    values.push_bind(v);
                }),
                Type::Float => row.try_get::<Option<f64>, _>(i).map(|v| {
                    values.push_bind(v);
                }),
                Type::Bytes => row.try_get::<Option<Vec<u8>>, _>(i).map(|v| {
                    values.push_bind(v);
                }),
            };
            if let Err(err) = bound {
                failed.get_or_insert(format!("{table}.{}: {err}", column.name));
                values.push_bind(None::<String>);
            }
        }
    });
    if let Some(problem) = failed {
        return Err(CopyError::Schema(problem));
    }
    let result = query.build().execute(&mut **tx).await?;
    Ok(result.rows_affected())
}

/// Each identity column goes on after the highest number copied.
async fn restart_identities(tx: &mut sqlx::Transaction<'_, Postgres>) -> Result<(), CopyError> {
    let identities: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND is_identity = 'YES'",
    )
    .fetch_all(&mut **tx)
    .await?;
    for (table, column) in identities {
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), \
             COALESCE((SELECT max({column}) FROM {table}), 0) + 1, false)"
        ))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
