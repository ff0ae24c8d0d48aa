//! Opt-outs in PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{PostgresStore, decode, millis};
use crate::domain::consent::{ConsentScope, ContactPoint, OptOutRequest, OptOuts, normalize};
use crate::outbox::rows::{OPTED_OUT, OptOutRow, end_opted_out, opt_out_scope, record_opt_out};
use crate::outbox::{ConsentStore, DeadCause, StoreError};

#[async_trait]
impl ConsentStore for PostgresStore {
    async fn opt_out(
        &self,
        point: ContactPoint,
        address: &str,
        request: OptOutRequest,
        source: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let address = normalize(point, address);
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(&record_opt_out(request, '$'))
            .bind(point.as_str())
            .bind(&address)
            .bind(request.scope().as_str())
            .bind(source)
            .bind(millis(at))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // Messages already queued for them are not sent either; they end
        // dead with the reason, so the count stays honest. One in flight
        // on some daemon is caught when its outcome is a retry.
        sqlx::query(&end_opted_out('$'))
            .bind(OPTED_OUT)
            .bind(DeadCause::OptedOut.as_str())
            .bind(millis(at))
            .bind(point.as_str())
            .bind(&address)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(changed > 0)
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

    async fn opt_out_scope(
        &self,
        point: ContactPoint,
        address: &str,
    ) -> Result<Option<ConsentScope>, StoreError> {
        let scope: Option<String> =
            sqlx::query_scalar("SELECT scope FROM opt_outs WHERE point = $1 AND address = $2")
                .bind(point.as_str())
                .bind(normalize(point, address))
                .fetch_optional(&self.pool)
                .await?;
        scope.as_deref().map(opt_out_scope).transpose()
    }

    async fn opt_outs(&self) -> Result<OptOuts, StoreError> {
        let rows = sqlx::query("SELECT point, address, scope FROM opt_outs")
            .fetch_all(&self.pool)
            .await?;
        let mut opt_outs = OptOuts::default();
        for row in &rows {
            let (point, address, scope) = decode::<OptOutRow, _, _>(row)?;
            opt_outs.insert(point, address, scope);
        }
        Ok(opt_outs)
    }
}
