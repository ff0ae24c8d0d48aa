//! Idempotency-Keys in SQLite: taken inside a transition's transaction,
//! completed inside `finish_plan`'s, read here.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{SqliteStore, Tx, decode, millis};
use crate::outbox::rows::IdempotencyRow;
use crate::outbox::{IdempotencyRecord, IdempotencyStore, StoreError};

/// Stores the key's record; refused when the key is stored already (by a
/// concurrent request).
pub(super) async fn take(
    tx: &mut Tx<'_>,
    record: &IdempotencyRecord,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, fingerprint, status, body, created_at) \
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
    )
    .bind(&record.scope)
    .bind(&record.key)
    .bind(&record.fingerprint)
    .bind(i64::from(record.status))
    .bind(&record.body)
    .bind(millis(at))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(StoreError::IdempotencyKeyTaken);
    }
    Ok(())
}

/// Stores the answer of a key held in progress.
pub(super) async fn complete(
    tx: &mut Tx<'_>,
    record: &IdempotencyRecord,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE idempotency_keys SET status = ?, body = ? WHERE scope = ? AND key = ?")
        .bind(i64::from(record.status))
        .bind(&record.body)
        .bind(&record.scope)
        .bind(&record.key)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn idempotent_response(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        sqlx::query("SELECT * FROM idempotency_keys WHERE scope = ? AND key = ?")
            .bind(scope)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(decode::<IdempotencyRow, _, _>)
            .transpose()
    }
}
