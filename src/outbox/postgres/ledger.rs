//! Counts over the PostgreSQL ledger, and its ping.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{PostgresStore, decode, millis};
use crate::domain::CrisisId;
use crate::outbox::rows::{ChannelStateCountRow, DeliveryCountRow, FinishedCountRow};
use crate::outbox::{ChannelStateCount, DeliveryCount, FinishedCount, Ledger, StoreError};

#[async_trait]
impl Ledger for PostgresStore {
    fn write_fault(&self) -> Option<&'static str> {
        // The server owns its disk and files; a failing write answers 503
        // by its SQLSTATE (`StoreError::unavailable`) and `ping` fails
        // when the server does not answer.
        None
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn channel_counts(&self) -> Result<Vec<ChannelStateCount>, StoreError> {
        sqlx::query(
            "SELECT channel, state, COUNT(*) AS n FROM deliveries \
             WHERE state IN ('pending', 'in_flight', 'retrying', 'dead') \
             GROUP BY channel, state ORDER BY channel, state",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(decode::<ChannelStateCountRow, _, _>)
        .collect()
    }

    async fn delivery_counts(
        &self,
        crisis: Option<CrisisId>,
    ) -> Result<Vec<DeliveryCount>, StoreError> {
        sqlx::query(
            "SELECT crisis_id, channel, state, COUNT(*) AS n FROM deliveries \
             WHERE ($1::text IS NULL OR crisis_id = $1) \
             GROUP BY crisis_id, channel, state ORDER BY crisis_id, channel, state",
        )
        .bind(crisis.map(|id| id.to_string()))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(decode::<DeliveryCountRow, _, _>)
        .collect()
    }

    async fn finished_since(
        &self,
        crisis: Option<CrisisId>,
        since: DateTime<Utc>,
    ) -> Result<Vec<FinishedCount>, StoreError> {
        sqlx::query(
            "SELECT crisis_id, channel, COUNT(*) AS n FROM deliveries \
             WHERE state IN ('sent', 'dead') AND finished_at >= $1 AND ($2::text IS NULL OR crisis_id = $2) \
             GROUP BY crisis_id, channel ORDER BY crisis_id, channel",
        )
        .bind(millis(since))
        .bind(crisis.map(|id| id.to_string()))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(decode::<FinishedCountRow, _, _>)
        .collect()
    }
}
