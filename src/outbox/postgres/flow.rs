//! Shared flow control in PostgreSQL: each channel's bucket row is locked
//! while a daemon takes its slice of tokens, so the daemons together never
//! take more than the rate plus the burst; a pause is written with a
//! NOTIFY, so every daemon hears of it at once.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{FLOW_PAUSED, PostgresStore, from_millis, millis, notify};
use crate::outbox::flow::take;
use crate::outbox::{Bucket, FlowStore, StoreError, Tokens};

#[async_trait]
impl FlowStore for PostgresStore {
    async fn take_tokens(
        &self,
        channel: &str,
        now: DateTime<Utc>,
        bucket: Bucket,
        want: u32,
    ) -> Result<Tokens, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO flow (channel, tokens, refilled_at) VALUES ($1, $2, $3) \
             ON CONFLICT (channel) DO NOTHING",
        )
        .bind(channel)
        .bind(f64::from(bucket.burst))
        .bind(millis(now))
        .execute(&mut *tx)
        .await?;
        let (tokens, refilled_at, paused_until): (f64, i64, i64) = sqlx::query_as(
            "SELECT tokens, refilled_at, paused_until FROM flow WHERE channel = $1 FOR UPDATE",
        )
        .bind(channel)
        .fetch_one(&mut *tx)
        .await?;
        if paused_until > millis(now) {
            return Ok(Tokens {
                granted: 0,
                wait: std::time::Duration::ZERO,
                paused_until: Some(from_millis(paused_until)?),
            });
        }
        // Another daemon's clock may be a little ahead: time never runs
        // back for the bucket.
        let then = from_millis(refilled_at)?;
        let (granted, left, wait) = take((tokens, then), now.max(then), bucket, want);
        sqlx::query("UPDATE flow SET tokens = $2, refilled_at = $3 WHERE channel = $1")
            .bind(channel)
            .bind(left)
            .bind(millis(now.max(then)))
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
        let mut tx = self.pool.begin().await?;
        // A channel first seen paused starts with an empty bucket after it.
        sqlx::query(
            "INSERT INTO flow (channel, tokens, refilled_at, paused_until) VALUES ($1, 0, $2, $2) \
             ON CONFLICT (channel) DO UPDATE SET \
               paused_until = GREATEST(flow.paused_until, excluded.paused_until)",
        )
        .bind(channel)
        .bind(millis(until))
        .execute(&mut *tx)
        .await?;
        notify(
            &mut tx,
            FLOW_PAUSED,
            &format!("{} {channel}", millis(until)),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn pauses(&self, now: DateTime<Utc>) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT channel, paused_until FROM flow WHERE paused_until > $1")
                .bind(millis(now))
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(channel, until)| Ok((channel, from_millis(until)?)))
            .collect()
    }
}
