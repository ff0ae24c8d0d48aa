//! The intake's tables in the PostgreSQL store (migration 0006). A webhook
//! delivery id is the key of `hook_deliveries` and an open incident is
//! unique per (hook, external id), so daemons behind one load balancer see
//! one webhook once.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{PostgresStore, decode, from_millis, millis, to_json};
use crate::domain::CrisisId;
use crate::outbox::rows::{HookLogRow, PendingRow};
use crate::outbox::{HOOK_LOG_KEEP, HookLogEntry, HookStore, Pending, StoreError};

#[async_trait]
impl HookStore for PostgresStore {
    async fn record_hook(&self, entry: &HookLogEntry) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO hook_log (hook, source, received_at, status, verdict, transitions, error, delivery_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING seq",
        )
        .bind(&entry.hook)
        .bind(&entry.source)
        .bind(millis(entry.received_at))
        .bind(i64::from(entry.status))
        .bind(entry.verdict.as_str())
        .bind(to_json(&entry.transitions)?)
        .bind(&entry.error)
        .bind(&entry.delivery_id)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM hook_log WHERE seq <= $1")
            .bind(seq - HOOK_LOG_KEEP)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn hook_log(
        &self,
        hook: Option<&str>,
        limit: u32,
    ) -> Result<Vec<HookLogEntry>, StoreError> {
        sqlx::query(
            "SELECT * FROM hook_log WHERE ($1::text IS NULL OR hook = $1) ORDER BY seq DESC LIMIT $2",
        )
        .bind(hook)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(decode::<HookLogRow, _, _>)
        .collect()
    }

    async fn delivery_seen(&self, hook: &str, delivery_id: &str) -> Result<bool, StoreError> {
        let seen: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM hook_deliveries WHERE hook = $1 AND delivery_id = $2)",
        )
        .bind(hook)
        .bind(delivery_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(seen)
    }

    async fn remember_delivery(
        &self,
        hook: &str,
        delivery_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO hook_deliveries (hook, delivery_id, received_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(hook)
        .bind(delivery_id)
        .bind(millis(at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn open_pending(
        &self,
        hook: &str,
        external_id: &str,
    ) -> Result<Option<Pending>, StoreError> {
        sqlx::query(
            "SELECT * FROM hook_pending WHERE hook = $1 AND external_id = $2 AND state IN ('held', 'proposed')",
        )
        .bind(hook)
        .bind(external_id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(decode::<PendingRow, _, _>)
        .transpose()
    }

    async fn pending(&self, id: CrisisId) -> Result<Option<Pending>, StoreError> {
        sqlx::query("SELECT * FROM hook_pending WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(decode::<PendingRow, _, _>)
            .transpose()
    }

    async fn save_pending(&self, pending: &Pending) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO hook_pending (id, hook, external_id, state, declaration, due_at, created_at, updated_at, decided_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (id) DO UPDATE SET state = excluded.state, declaration = excluded.declaration, \
             due_at = excluded.due_at, updated_at = excluded.updated_at, decided_by = excluded.decided_by",
        )
        .bind(pending.id.to_string())
        .bind(&pending.hook)
        .bind(&pending.external_id)
        .bind(pending.state.as_str())
        .bind(to_json(&pending.declaration)?)
        .bind(pending.due_at.map(millis))
        .bind(millis(pending.created_at))
        .bind(millis(pending.updated_at))
        .bind(&pending.decided_by)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn due_holds(&self, now: DateTime<Utc>) -> Result<Vec<Pending>, StoreError> {
        sqlx::query(
            "SELECT * FROM hook_pending WHERE state = 'held' AND due_at <= $1 ORDER BY due_at",
        )
        .bind(millis(now))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(decode::<PendingRow, _, _>)
        .collect()
    }

    async fn next_hold(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let due: Option<i64> =
            sqlx::query_scalar("SELECT MIN(due_at) FROM hook_pending WHERE state = 'held'")
                .fetch_one(&self.pool)
                .await?;
        due.map(from_millis).transpose()
    }

    async fn open_pendings(&self) -> Result<Vec<Pending>, StoreError> {
        sqlx::query(
            "SELECT * FROM hook_pending WHERE state IN ('held', 'proposed') ORDER BY created_at",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(decode::<PendingRow, _, _>)
        .collect()
    }
}
