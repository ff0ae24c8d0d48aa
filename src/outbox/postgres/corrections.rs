//! Corrections in PostgreSQL. The original's queued deliveries are stopped
//! first, by one UPDATE that waits for any claim holding them, and only
//! then are the sent and in-flight ones read, so a delivery a claim took
//! meanwhile is counted in flight, never both stopped and sent.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{PostgresStore, WORK_DUE, crises, decode, idempotency, millis, notify, plans};
use crate::domain::{AnnouncementId, CrisisId};
use crate::outbox::rows::{
    CORRECTABLE, CorrectableRow, MARK_CORRECTED, ORIGINALS, OriginalRow, RECENT_CORRECTION,
    STOP_ORIGINALS, from_millis,
};
use crate::outbox::{
    CORRECTED, Correctable, CorrectionStore, CorrectionWrite, DeadCause, OriginalDelivery,
    StoreError,
};

#[async_trait]
impl CorrectionStore for PostgresStore {
    async fn correctable(&self, crisis: CrisisId) -> Result<Vec<Correctable>, StoreError> {
        sqlx::query(CORRECTABLE)
            .bind(crisis.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(decode::<CorrectableRow, _, _>)
            .collect()
    }

    async fn stop_original(
        &self,
        original: AnnouncementId,
        now: DateTime<Utc>,
    ) -> Result<Vec<OriginalDelivery>, StoreError> {
        // The mark is committed first: from then on every daemon's retry or
        // lease rescue of an in-flight original sees it and ends it dead.
        // A retry written before it commits is `retrying` by then, and the
        // stop below, a later statement, sees and stops it.
        sqlx::query(MARK_CORRECTED)
            .bind(original.to_string())
            .bind(millis(now))
            .execute(&self.pool)
            .await?;
        let mut tx = self.pool.begin().await?;
        let stopped = sqlx::query(&format!(
            "{STOP_ORIGINALS} RETURNING channel, recipient_id, destination, locale, \
             recipient_name, unsubscribe_url, 'pending' AS state, finished_at"
        ))
        .bind(original.to_string())
        .bind(DeadCause::Corrected.as_str())
        .bind(CORRECTED)
        .bind(millis(now))
        .fetch_all(&mut *tx)
        .await?;
        let reached = sqlx::query(ORIGINALS)
            .bind(original.to_string())
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        stopped
            .iter()
            .chain(&reached)
            .map(decode::<OriginalRow, _, _>)
            .collect()
    }

    async fn record_correction(&self, write: CorrectionWrite) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // Every writer of an announcement holds its crisis's row lock: the
        // announcement's place among the crisis's is taken under it.
        sqlx::query("SELECT id FROM crises WHERE id = $1 FOR UPDATE")
            .bind(write.announcement.crisis_id.to_string())
            .execute(&mut *tx)
            .await?;
        if let Some(record) = &write.idempotency {
            idempotency::take(&mut tx, record, write.event.at).await?;
        }
        if let Some(since) = write.unless_corrected_since {
            let newest: Option<i64> = sqlx::query_scalar(RECENT_CORRECTION)
                .bind(write.announcement.crisis_id.to_string())
                .bind(millis(since))
                .fetch_one(&mut *tx)
                .await?;
            if let Some(at) = newest {
                return Err(StoreError::CorrectedRecently(from_millis(at)?));
            }
        }
        crises::insert_event(&mut tx, &write.event).await?;
        plans::insert_announcement(&mut tx, &write.announcement, None, None).await?;
        plans::insert_renditions(&mut tx, &write.announcement, &write.renditions).await?;
        plans::insert_deliveries(&mut tx, &write.announcement, &write.deliveries).await?;
        notify(&mut tx, WORK_DUE, "").await?;
        tx.commit().await?;
        self.work_due.notify();
        self.wrote_deliveries(write.deliveries.len()).await;
        Ok(())
    }
}
