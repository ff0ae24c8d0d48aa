//! The live directory in PostgreSQL.

use async_trait::async_trait;

use super::{PostgresStore, decode, millis};
use crate::domain::directory::EntryAvailability;
use crate::outbox::rows::{AVAILABILITY_COLUMNS, AvailabilityRow};
use crate::outbox::{DirectoryStore, StoreError};

#[async_trait]
impl DirectoryStore for PostgresStore {
    async fn set_availability(&self, change: &EntryAvailability) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // A probe reports every round; only a change is written and logged.
        let upsert = format!(
            "INSERT INTO directory_availability ({AVAILABILITY_COLUMNS}) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (entry) DO UPDATE SET available = excluded.available, \
               reason = excluded.reason, changed_by = excluded.changed_by, \
               changed_at = excluded.changed_at \
             WHERE directory_availability.available <> excluded.available \
               OR directory_availability.reason IS DISTINCT FROM excluded.reason"
        );
        let changed = bind_change(sqlx::query(&upsert), change)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if changed {
            let insert = format!(
                "INSERT INTO directory_availability_log ({AVAILABILITY_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5)"
            );
            bind_change(sqlx::query(&insert), change)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    async fn availability(&self) -> Result<Vec<EntryAvailability>, StoreError> {
        sqlx::query(&format!(
            "SELECT {AVAILABILITY_COLUMNS} FROM directory_availability ORDER BY entry"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(decode::<AvailabilityRow, _, _>)
        .collect()
    }

    async fn availability_log(
        &self,
        entry: &str,
        limit: u32,
    ) -> Result<Vec<EntryAvailability>, StoreError> {
        sqlx::query(&format!(
            "SELECT {AVAILABILITY_COLUMNS} FROM directory_availability_log WHERE entry = $1 \
             ORDER BY id DESC LIMIT $2"
        ))
        .bind(entry)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(decode::<AvailabilityRow, _, _>)
        .collect()
    }
}

/// A change's five columns, in `AVAILABILITY_COLUMNS` order.
fn bind_change<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    change: &'q EntryAvailability,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(&change.entry)
        .bind(i64::from(change.available))
        .bind(&change.reason)
        .bind(&change.changed_by)
        .bind(millis(change.changed_at))
}
