//! Counts over the SQLite ledger, and its ping.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{SqliteStore, decode, millis};
use crate::domain::CrisisId;
use crate::outbox::rows::{ChannelStateCountRow, DeliveryCountRow, FinishedCountRow};
use crate::outbox::{ChannelStateCount, DeliveryCount, FinishedCount, Ledger, StoreError};

#[async_trait]
impl Ledger for SqliteStore {
    fn write_fault(&self) -> Option<&'static str> {
        let replaced = self.file.check().err();
        replaced
            .as_ref()
            .and_then(StoreError::unavailable)
            .or_else(|| self.faults.current())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.file.check()?;
        if let Some(why) = self.faults.current() {
            return Err(StoreError::WriteFailing(why));
        }
        // A write, not only a read: a full disk or a lost lock lets reads
        // through while every write fails. One row, rewritten in place, on
        // the ledger's connections (no fsync of its own in WAL mode).
        let _writing = self.writer.lock().await;
        let mut tx = self.ledger.begin().await?;
        sqlx::query("INSERT OR REPLACE INTO store_probe (id, probed_at) VALUES (1, ?)")
            .bind(chrono::Utc::now().timestamp_millis())
            .execute(&mut *tx)
            .await?;
        let result = tx.commit().await.map_err(StoreError::from);
        self.faults.note(&result);
        result
    }

    async fn channel_counts(&self) -> Result<Vec<ChannelStateCount>, StoreError> {
        // By state first: the (state, finished_at) index skips sent rows.
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
        let rows = match crisis {
            Some(id) => {
                sqlx::query(
                    "SELECT crisis_id, channel, state, COUNT(*) AS n FROM deliveries WHERE crisis_id = ? \
                     GROUP BY crisis_id, channel, state ORDER BY channel, state",
                )
                .bind(id.to_string())
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(
                    "SELECT crisis_id, channel, state, COUNT(*) AS n FROM deliveries \
                     GROUP BY crisis_id, channel, state ORDER BY crisis_id, channel, state",
                )
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(decode::<DeliveryCountRow, _, _>).collect()
    }

    async fn finished_since(
        &self,
        crisis: Option<CrisisId>,
        since: DateTime<Utc>,
    ) -> Result<Vec<FinishedCount>, StoreError> {
        sqlx::query(
            "SELECT crisis_id, channel, COUNT(*) AS n FROM deliveries \
             WHERE state IN ('sent', 'dead') AND finished_at >= ?1 AND (?2 IS NULL OR crisis_id = ?2) \
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
