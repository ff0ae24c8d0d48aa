//! Corrections in SQLite: the one writer sees the original's deliveries
//! and stops the queued ones in one transaction, so none is both sent and
//! stopped.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{SqliteStore, crises, decode, idempotency, millis, plans};
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
impl CorrectionStore for SqliteStore {
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
        let result: Result<_, StoreError> = async {
            let _writing = self.writer.lock().await;
            let mut tx = self.pool.begin().await?;
            let originals = sqlx::query(ORIGINALS)
                .bind(original.to_string())
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(decode::<OriginalRow, _, _>)
                .collect::<Result<Vec<_>, _>>()?;
            sqlx::query(STOP_ORIGINALS)
                .bind(original.to_string())
                .bind(DeadCause::Corrected.as_str())
                .bind(CORRECTED)
                .bind(millis(now))
                .execute(&mut *tx)
                .await?;
            sqlx::query(MARK_CORRECTED)
                .bind(original.to_string())
                .bind(millis(now))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(originals)
        }
        .await;
        self.faults.note(&result);
        result
    }

    async fn record_correction(&self, write: CorrectionWrite) -> Result<(), StoreError> {
        let result: Result<_, StoreError> = async {
            let writing = self.writer.lock().await;
            let mut tx = self.pool.begin().await?;
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
            tx.commit().await?;
            drop(writing);
            self.work_due.notify();
            Ok(())
        }
        .await;
        self.faults.note(&result);
        result
    }
}
