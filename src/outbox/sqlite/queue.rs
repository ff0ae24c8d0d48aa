//! The delivery queue in SQLite, on the ledger pool: claims, outcomes and
//! releases, the hot path of a fan-out. Each claim and each outcome batch
//! is one transaction, with as few statements as it can be.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{ROWS_PER_INSERT, SqliteStore, Tx, follow_ups, millis, to_json};
use crate::domain::DeliveryId;
use crate::outbox::rows::{DELIVERY_COLUMNS, OPTED_OUT};
use crate::outbox::{DeadCause, Delivery, DeliveryQueue, Outcome, StoreError, WorkDue};

impl SqliteStore {
    /// The claimed rows as deliveries, each with its message.
    async fn claimed(&self, rows: &[sqlx::sqlite::SqliteRow]) -> Result<Vec<Delivery>, StoreError> {
        self.renditions
            .claimed(rows, |id| async move {
                let text: Option<String> =
                    sqlx::query_scalar("SELECT content FROM renditions WHERE id = ?")
                        .bind(id)
                        .fetch_optional(&self.ledger)
                        .await?;
                Ok(text)
            })
            .await
    }

    /// Sends, the bulk of outcomes, go in one statement per chunk: each
    /// statement is a round trip to SQLite's connection thread, and one per
    /// delivery was what bounded throughput (perf: most of the time in
    /// thread wake-ups, little in SQLite itself).
    async fn record_sent(
        tx: &mut Tx<'_>,
        owner: &str,
        now: i64,
        outcomes: &[(DeliveryId, Outcome)],
    ) -> Result<(), StoreError> {
        let sent: Vec<(String, Option<String>)> = outcomes
            .iter()
            .filter_map(|(id, outcome)| match outcome {
                Outcome::Sent { provider_ref } => Some((id.to_string(), provider_ref.clone())),
                _ => None,
            })
            .collect();
        for chunk in sent.chunks(ROWS_PER_INSERT) {
            let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "UPDATE deliveries SET state = 'sent', provider_ref = v.column2, finished_at = ",
            );
            query
                .push_bind(now)
                .push(", lease_owner = NULL, lease_until = NULL, last_error = NULL FROM (");
            query.push_values(chunk, |mut row, (id, provider_ref)| {
                row.push_bind(id.clone()).push_bind(provider_ref.clone());
            });
            query
                .push(") AS v WHERE deliveries.id = v.column1 AND deliveries.state = 'in_flight' AND deliveries.lease_owner = ")
                .push_bind(owner.to_owned());
            query.build().execute(&mut **tx).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl DeliveryQueue for SqliteStore {
    fn work_due(&self) -> &WorkDue {
        &self.work_due
    }

    async fn claim(
        &self,
        channel: &str,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let now_ms = millis(now);
        let lease_until =
            now_ms.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        let _writing = self.writer.lock().await;
        let mut tx = self.ledger.begin().await?;
        // A crashed sender's expired leases become claimable again; the
        // attempt they used stays counted.
        sqlx::query(
            "UPDATE deliveries SET state = 'retrying', available_at = ?2, lease_owner = NULL, lease_until = NULL \
             WHERE state = 'in_flight' AND channel = ?1 AND lease_until <= ?2",
        )
        .bind(channel)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        // New messages first, by priority (initial, updates and the
        // all-clear before follow-ups), then retries that are due. Each is
        // one range of the (channel, state, priority, available_at) index.
        let mut rows = Vec::new();
        for (state, order) in [
            ("pending", "priority, available_at"),
            ("retrying", "available_at"),
        ] {
            let wanted = i64::from(limit) - i64::try_from(rows.len()).unwrap_or(i64::MAX);
            if wanted <= 0 {
                break;
            }
            let sql = format!(
                "UPDATE deliveries SET state = 'in_flight', lease_owner = ?1, lease_until = ?2, attempts = attempts + 1 \
                 WHERE id IN (SELECT id FROM deliveries WHERE channel = ?3 AND state = ?4 AND available_at <= ?5 \
                   ORDER BY {order} LIMIT ?6) \
                 RETURNING {DELIVERY_COLUMNS}"
            );
            rows.extend(
                sqlx::query(&sql)
                    .bind(owner)
                    .bind(lease_until)
                    .bind(channel)
                    .bind(state)
                    .bind(now_ms)
                    .bind(wanted)
                    .fetch_all(&mut *tx)
                    .await?,
            );
        }
        tx.commit().await?;
        self.claimed(&rows).await
    }

    async fn record_outcomes(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        outcomes: &[(DeliveryId, Outcome)],
    ) -> Result<(), StoreError> {
        let now = millis(now);
        let _writing = self.writer.lock().await;
        let mut tx = self.ledger.begin().await?;
        Self::record_sent(&mut tx, owner, now, outcomes).await?;
        for (id, outcome) in outcomes {
            let query = match outcome {
                // Written above, in bulk.
                Outcome::Sent { .. } => continue,
                // A reader who opted out while this was in flight is not
                // tried again.
                Outcome::Retry { at, error } => sqlx::query(
                    "UPDATE deliveries SET available_at = ?1, lease_owner = NULL, lease_until = NULL, \
                     state = CASE WHEN lower(destination) IN (SELECT address FROM opt_outs) \
                       THEN 'dead' ELSE 'retrying' END, \
                     last_error = CASE WHEN lower(destination) IN (SELECT address FROM opt_outs) \
                       THEN ?6 ELSE ?2 END, \
                     dead_cause = CASE WHEN lower(destination) IN (SELECT address FROM opt_outs) \
                       THEN ?7 ELSE NULL END, \
                     finished_at = CASE WHEN lower(destination) IN (SELECT address FROM opt_outs) \
                       THEN ?5 ELSE finished_at END \
                     WHERE id = ?3 AND state = 'in_flight' AND lease_owner = ?4",
                )
                .bind(millis(*at))
                .bind(error.clone())
                .bind(id.to_string())
                .bind(owner)
                .bind(now)
                .bind(OPTED_OUT)
                .bind(DeadCause::OptedOut.as_str()),
                Outcome::Dead { cause, reason } => sqlx::query(
                    "UPDATE deliveries SET state = 'dead', finished_at = ?1, last_error = ?2, dead_cause = ?5, \
                     lease_owner = NULL, lease_until = NULL WHERE id = ?3 AND state = 'in_flight' AND lease_owner = ?4",
                )
                .bind(now)
                .bind(reason.clone())
                .bind(id.to_string())
                .bind(owner)
                .bind(cause.as_str()),
            };
            query.execute(&mut *tx).await?;
        }
        follow_ups::kill_retries_after_resolve(&mut tx, outcomes, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn release(&self, ids: &[DeliveryId], owner: &str) -> Result<(), StoreError> {
        let _writing = self.writer.lock().await;
        let mut tx = self.ledger.begin().await?;
        for id in ids {
            sqlx::query(
                "UPDATE deliveries SET state = CASE WHEN attempts > 1 THEN 'retrying' ELSE 'pending' END, \
                 attempts = attempts - 1, lease_owner = NULL, lease_until = NULL \
                 WHERE id = ? AND state = 'in_flight' AND lease_owner = ?",
            )
            .bind(id.to_string())
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn kill_unroutable(
        &self,
        known_channels: &[String],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let known = to_json(&known_channels)?;
        let _writing = self.writer.lock().await;
        let killed = sqlx::query(
            "UPDATE deliveries SET state = 'dead', finished_at = ?1, lease_owner = NULL, lease_until = NULL, \
             last_error = 'channel `' || channel || '` is not configured', dead_cause = ?3 \
             WHERE state IN ('pending', 'retrying', 'in_flight') \
               AND channel NOT IN (SELECT value FROM json_each(?2))",
        )
        .bind(millis(now))
        .bind(known)
        .bind(DeadCause::Unroutable.as_str())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(killed)
    }
}
