//! Shared flow control in SQLite: one daemon uses it at a time, so the
//! buckets only matter to tests of the contract; the writer lock makes
//! each take one read and one write.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{SqliteStore, from_millis, millis};
use crate::outbox::flow::take;
use crate::outbox::{Bucket, FlowStore, StoreError, Tokens};

#[async_trait]
impl FlowStore for SqliteStore {
    async fn take_tokens(
        &self,
        channel: &str,
        now: DateTime<Utc>,
        bucket: Bucket,
        want: u32,
    ) -> Result<Tokens, StoreError> {
        let _writing = self.writer.lock().await;
        let mut tx = self.ledger.begin().await?;
        let row: Option<(f64, i64, i64)> =
            sqlx::query_as("SELECT tokens, refilled_at, paused_until FROM flow WHERE channel = ?1")
                .bind(channel)
                .fetch_optional(&mut *tx)
                .await?;
        let (tokens, refilled_at, paused_until) =
            row.unwrap_or((f64::from(bucket.burst), millis(now), 0));
        if paused_until > millis(now) {
            return Ok(Tokens {
                granted: 0,
                wait: std::time::Duration::ZERO,
                paused_until: Some(from_millis(paused_until)?),
            });
        }
        let (granted, left, wait) = take((tokens, from_millis(refilled_at)?), now, bucket, want);
        sqlx::query(
            "INSERT INTO flow (channel, tokens, refilled_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (channel) DO UPDATE SET tokens = excluded.tokens, \
               refilled_at = excluded.refilled_at",
        )
        .bind(channel)
        .bind(left)
        .bind(millis(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Tokens {
            granted,
            wait,
            paused_until: None,
        })
    }

    async fn pause(&self, channel: &str, until: DateTime<Utc>) -> Result<(), StoreError> {
        let _writing = self.writer.lock().await;
        // A channel first seen paused starts with an empty bucket after it.
        sqlx::query(
            "INSERT INTO flow (channel, tokens, refilled_at, paused_until) VALUES (?1, 0, ?2, ?2) \
             ON CONFLICT (channel) DO UPDATE SET \
               paused_until = max(flow.paused_until, excluded.paused_until)",
        )
        .bind(channel)
        .bind(millis(until))
        .execute(&self.ledger)
        .await?;
        Ok(())
    }

    async fn pauses(&self, now: DateTime<Utc>) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT channel, paused_until FROM flow WHERE paused_until > ?1")
                .bind(millis(now))
                .fetch_all(&self.ledger)
                .await?;
        rows.into_iter()
            .map(|(channel, until)| Ok((channel, from_millis(until)?)))
            .collect()
    }
}
