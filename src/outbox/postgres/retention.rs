//! Retention in PostgreSQL: each batch is one short statement on rows no
//! claim selects (finished deliveries, ended crises), so claims go on
//! while it runs; only the leader prunes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{PostgresStore, millis};
use crate::outbox::{Prune, RetentionStore, StoreError};

#[async_trait]
impl RetentionStore for PostgresStore {
    async fn prune(
        &self,
        what: Prune,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        Ok(sqlx::query(&what.sql())
            .bind(millis(before))
            .bind(i64::from(limit))
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}
