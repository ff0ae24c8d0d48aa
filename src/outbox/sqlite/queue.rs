//! The delivery queue in SQLite, on the ledger pool: claims, outcomes and
//! releases, the hot path of a fan-out. Each claim and each outcome batch
//! is one transaction, with as few statements as it can be.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{ROWS_PER_INSERT, SqliteStore, Tx, follow_ups, millis, to_json};
use crate::domain::DeliveryId;
use crate::outbox::rows::{
    DELIVERY_COLUMNS, HELD_BACK, MAX_CANCELLED_PER_CLAIM, OPTED_OUT, UNREACHED, opted_out_now,
};
use crate::outbox::{
    ALL_CLEAR_UNREACHED, DeadCause, Delivery, DeliveryQueue, Outcome, StoreError, WorkDue,
};

/// One claim's transaction parameters.
struct Claim<'a> {
    channel: &'a str,
    owner: &'a str,
    now: i64,
    lease_until: i64,
}

impl Claim<'_> {
    /// Up to `wanted` due rows in `state`, in claim order and not held
    /// back, each leased, or cancelled when it is an all-clear its reader
    /// does not need (`state` then says `dead`).
    async fn take(
        &self,
        tx: &mut Tx<'_>,
        state: &str,
        wanted: usize,
    ) -> Result<Vec<sqlx::sqlite::SqliteRow>, StoreError> {
        // The state is written into the SQL, not bound: SQLite matches a
        // bound value against each partial index's WHERE (`state =
        // 'in_flight'`, ...), and such a statement is re-prepared every time
        // the value is bound again (13% of the SQLite thread in a fan-out's
        // profile). Two texts, each prepared once and cached.
        let (state, order) = match state {
            "pending" => ("'pending'", "d.priority, d.available_at"),
            _ => ("'retrying'", "d.available_at"),
        };
        let sql = format!(
            "UPDATE deliveries SET \
               state = CASE WHEN c.unreached THEN 'dead' ELSE 'in_flight' END, \
               lease_owner = CASE WHEN c.unreached THEN NULL ELSE ?1 END, \
               lease_until = CASE WHEN c.unreached THEN NULL ELSE ?2 END, \
               attempts = attempts + CASE WHEN c.unreached THEN 0 ELSE 1 END, \
               last_error = CASE WHEN c.unreached THEN ?6 ELSE last_error END, \
               dead_cause = CASE WHEN c.unreached THEN ?7 ELSE NULL END, \
               finished_at = CASE WHEN c.unreached THEN ?4 ELSE finished_at END \
             FROM (SELECT d.id, {UNREACHED} AS unreached FROM deliveries AS d \
               WHERE d.channel = ?3 AND d.state = {state} AND d.available_at <= ?4 AND NOT {HELD_BACK} \
               ORDER BY {order} LIMIT ?5) AS c \
             WHERE deliveries.id = c.id \
             RETURNING {DELIVERY_COLUMNS}"
        );
        Ok(sqlx::query(&sql)
            .bind(self.owner)
            .bind(self.lease_until)
            .bind(self.channel)
            .bind(self.now)
            .bind(i64::try_from(wanted).unwrap_or(i64::MAX))
            .bind(ALL_CLEAR_UNREACHED)
            .bind(DeadCause::Cancelled.as_str())
            .fetch_all(&mut **tx)
            .await?)
    }
}

/// Whether a row a claim returned was leased (not cancelled instead).
fn is_leased(row: &sqlx::sqlite::SqliteRow) -> bool {
    row.try_get::<&str, _>("state")
        .is_ok_and(|state| state == "in_flight")
}

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
        let result: Result<_, StoreError> = async {
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
        let claim = Claim {
            channel,
            owner,
            now: now_ms,
            lease_until,
        };
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut rows = Vec::new();
        let mut cancelled = 0;
        // New messages first, by priority (initial, updates and the
        // all-clear before follow-ups), then retries that are due. An
        // all-clear cancelled on the way makes room for another row, up to
        // a bound that keeps the transaction short.
        for state in ["pending", "retrying"] {
            while rows.len() < limit && cancelled < MAX_CANCELLED_PER_CLAIM {
                let wanted = limit - rows.len();
                let taken = claim.take(&mut tx, state, wanted).await?;
                let (leased, dropped): (Vec<_>, Vec<_>) = taken.into_iter().partition(is_leased);
                rows.extend(leased);
                cancelled += dropped.len();
                if dropped.is_empty() {
                    break;
                }
            }
        }
        tx.commit().await?;
        if cancelled >= MAX_CANCELLED_PER_CLAIM {
            // More may be waiting behind them: claim again at once.
            self.work_due.notify();
        }
        self.claimed(&rows).await
        }
        .await;
        self.faults.note(&result);
        result
    }

    async fn record_outcomes(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        outcomes: &[(DeliveryId, Outcome)],
    ) -> Result<(), StoreError> {
        let now = millis(now);
        let result: Result<_, StoreError> = async {
        let _writing = self.writer.lock().await;
        let mut tx = self.ledger.begin().await?;
        Self::record_sent(&mut tx, owner, now, outcomes).await?;
        // A reader who opted out while this was in flight is not tried
        // again (unless the opt-out is of follow-ups and this is not one).
        let opted_out = opted_out_now();
        let retry = format!(
            "UPDATE deliveries SET available_at = ?1, lease_owner = NULL, lease_until = NULL, \
             state = CASE WHEN {opted_out} THEN 'dead' ELSE 'retrying' END, \
             last_error = CASE WHEN {opted_out} THEN ?6 ELSE ?2 END, \
             dead_cause = CASE WHEN {opted_out} THEN ?7 ELSE NULL END, \
             finished_at = CASE WHEN {opted_out} THEN ?5 ELSE finished_at END \
             WHERE id = ?3 AND state = 'in_flight' AND lease_owner = ?4"
        );
        for (id, outcome) in outcomes {
            let query = match outcome {
                // Written above, in bulk.
                Outcome::Sent { .. } => continue,
                Outcome::Retry { at, error } => sqlx::query(&retry)
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
        .await;
        self.faults.note(&result);
        result
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
