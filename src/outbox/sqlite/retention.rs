//! Retention in SQLite: each batch is its own short write, so claims and
//! outcomes queue behind one batch at most, never behind the whole prune.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{SqliteStore, millis};
use crate::outbox::{Prune, RetentionStore, StoreError};

#[async_trait]
impl RetentionStore for SqliteStore {
    async fn prune(
        &self,
        what: Prune,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        // SQLite's `?n` are positional, whatever order they appear in.
        let sql = what.sql().replace('$', "?");
        let result: Result<_, StoreError> = async {
            let _writing = self.writer.lock().await;
            Ok(sqlx::query(&sql)
                .bind(millis(before))
                .bind(i64::from(limit))
                .execute(&self.ledger)
                .await?
                .rows_affected())
        }
        .await;
        self.faults.note(&result);
        result
    }
}
