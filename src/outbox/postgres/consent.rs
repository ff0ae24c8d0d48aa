//! Opt-outs in PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{PostgresStore, decode, millis};
use crate::domain::consent::{ContactPoint, OptOuts, normalize};
use crate::outbox::rows::{OPTED_OUT, OptOutRow};
use crate::outbox::{ConsentStore, DeadCause, StoreError};

#[async_trait]
impl ConsentStore for PostgresStore {
    async fn opt_out(
        &self,
        point: ContactPoint,
        address: &str,
        source: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO opt_outs (point, address, source, opted_out_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(point.as_str())
        .bind(normalize(point, address))
        .bind(source)
        .bind(millis(at))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // Messages already queued for them are not sent either; they end
        // dead with the reason, so the count stays honest. One in flight
        // on some daemon is caught when its outcome is a retry.
        sqlx::query(
            "UPDATE deliveries SET state = 'dead', last_error = $1, dead_cause = $2, finished_at = $3 \
             WHERE lower(destination) = lower($4) AND state IN ('pending', 'retrying')",
        )
        .bind(OPTED_OUT)
        .bind(DeadCause::OptedOut.as_str())
        .bind(millis(at))
        .bind(normalize(point, address))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(inserted > 0)
    }

    async fn opt_in(&self, point: ContactPoint, address: &str) -> Result<bool, StoreError> {
        let removed = sqlx::query("DELETE FROM opt_outs WHERE point = $1 AND address = $2")
            .bind(point.as_str())
            .bind(normalize(point, address))
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(removed > 0)
    }

    async fn opt_outs(&self) -> Result<OptOuts, StoreError> {
        let rows = sqlx::query("SELECT point, address FROM opt_outs")
            .fetch_all(&self.pool)
            .await?;
        let mut opt_outs = OptOuts::default();
        for row in &rows {
            match decode::<OptOutRow, _, _>(row)? {
                (ContactPoint::Email, address) => opt_outs.emails.insert(address),
                (ContactPoint::Phone, address) => opt_outs.phones.insert(address),
            };
        }
        Ok(opt_outs)
    }
}
