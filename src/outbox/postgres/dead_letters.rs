//! Dead deliveries in PostgreSQL: listed newest first through the
//! `(state, finished_at)` index, and requeued by their cause.

use std::sync::LazyLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{PostgresStore, WORK_DUE, count, decode, millis, notify};
use crate::outbox::rows::{DeadLetterRow, requeueable};
use crate::outbox::{DeadFilter, DeadLetter, DeadLetterStore, StoreError};

/// `rows::requeueable` with `$1` the crisis and `$2` the channel.
static REQUEUEABLE: LazyLock<String> = LazyLock::new(|| requeueable("$1::text", "$2::text"));

#[async_trait]
impl DeadLetterStore for PostgresStore {
    async fn list(
        &self,
        filter: DeadFilter<'_>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        sqlx::query(
            "SELECT id, crisis_id, channel, destination, attempts, \
             COALESCE(finished_at, created_at) AS died_at, dead_cause, last_error FROM deliveries \
             WHERE state = 'dead' AND ($1::text IS NULL OR crisis_id = $1) AND ($2::text IS NULL OR channel = $2) \
             ORDER BY finished_at DESC, id DESC LIMIT $3",
        )
        .bind(filter.crisis.map(|id| id.to_string()))
        .bind(filter.channel)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(decode::<DeadLetterRow, _, _>)
        .collect()
    }

    async fn count_requeueable(&self, filter: DeadFilter<'_>) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM deliveries WHERE {}",
            *REQUEUEABLE
        ))
        .bind(filter.crisis.map(|id| id.to_string()))
        .bind(filter.channel)
        .fetch_one(&self.pool)
        .await?;
        Ok(count(n))
    }

    async fn requeue(&self, filter: DeadFilter<'_>, now: DateTime<Utc>) -> Result<u64, StoreError> {
        // As in SQLite: last_error stays until the next outcome replaces
        // it; finished_at and the cause are cleared.
        let mut tx = self.pool.begin().await?;
        let requeued = sqlx::query(&format!(
            "UPDATE deliveries SET state = 'pending', attempts = 0, available_at = $3, \
             finished_at = NULL, dead_cause = NULL, lease_owner = NULL, lease_until = NULL WHERE {}",
            *REQUEUEABLE
        ))
        .bind(filter.crisis.map(|id| id.to_string()))
        .bind(filter.channel)
        .bind(millis(now))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if requeued > 0 {
            notify(&mut tx, WORK_DUE, "").await?;
        }
        tx.commit().await?;
        if requeued > 0 {
            self.work_due.notify();
        }
        Ok(requeued)
    }
}
