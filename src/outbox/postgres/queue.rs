//! The delivery queue in PostgreSQL: claims, outcomes and releases, the hot
//! path of a fan-out, shared by every daemon on the database. A claim
//! locks the due rows it takes with `FOR UPDATE SKIP LOCKED`, so daemons
//! claiming together each get other rows and none waits for another; an
//! outcome counts only while its owner still holds the lease (fencing).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{PostgresStore, Tx, follow_ups, millis};
use crate::domain::DeliveryId;
use sqlx::Row;

use crate::outbox::rows::{
    DELIVERY_COLUMNS, HELD_BACK, MAX_CANCELLED_PER_CLAIM, OPTED_OUT, UNREACHED, opted_out_now,
};
use crate::outbox::{
    ALL_CLEAR_UNREACHED, DeadCause, Delivery, DeliveryQueue, Outcome, StoreError, WorkDue,
};

/// Takes up to `limit` due rows of one state for `owner`, in claim order,
/// not held back, each leased, or cancelled when it is an all-clear its
/// reader does not need (`state` then says `dead`). The state and its
/// order are inlined so the planner uses the state's partial index.
async fn claim_state(
    tx: &mut Tx<'_>,
    (state, order): (&str, &str),
    (channel, owner): (&str, &str),
    (now, lease_until): (i64, i64),
    limit: i64,
) -> Result<Vec<sqlx::postgres::PgRow>, StoreError> {
    let sql = format!(
        "WITH due AS (SELECT d.id, {UNREACHED} AS unreached FROM deliveries AS d \
           WHERE d.channel = $1 AND d.state = '{state}' AND d.available_at <= $2 AND NOT {HELD_BACK} \
           ORDER BY {order} LIMIT $3 FOR UPDATE OF d SKIP LOCKED), \
         claimed AS (UPDATE deliveries SET \
           state = CASE WHEN due.unreached THEN 'dead' ELSE 'in_flight' END, \
           lease_owner = CASE WHEN due.unreached THEN NULL ELSE $4 END, \
           lease_until = CASE WHEN due.unreached THEN NULL ELSE $5 END, \
           attempts = deliveries.attempts + CASE WHEN due.unreached THEN 0 ELSE 1 END, \
           last_error = CASE WHEN due.unreached THEN $6 ELSE deliveries.last_error END, \
           dead_cause = CASE WHEN due.unreached THEN $7 ELSE NULL END, \
           finished_at = CASE WHEN due.unreached THEN $2 ELSE deliveries.finished_at END \
           FROM due WHERE deliveries.id = due.id RETURNING deliveries.*) \
         SELECT {DELIVERY_COLUMNS} FROM claimed AS d ORDER BY {order}"
    );
    Ok(sqlx::query(&sql)
        .bind(channel)
        .bind(now)
        .bind(limit)
        .bind(owner)
        .bind(lease_until)
        .bind(ALL_CLEAR_UNREACHED)
        .bind(DeadCause::Cancelled.as_str())
        .fetch_all(&mut **tx)
        .await?)
}

/// Whether a row a claim returned was leased (not cancelled instead).
fn is_leased(row: &sqlx::postgres::PgRow) -> bool {
    row.try_get::<&str, _>("state")
        .is_ok_and(|state| state == "in_flight")
}

/// Sends, the bulk of outcomes, in one statement.
async fn record_sent(
    tx: &mut Tx<'_>,
    owner: &str,
    now: i64,
    outcomes: &[(DeliveryId, Outcome)],
) -> Result<(), StoreError> {
    let (ids, refs): (Vec<String>, Vec<Option<String>>) = outcomes
        .iter()
        .filter_map(|(id, outcome)| match outcome {
            Outcome::Sent { provider_ref } => Some((id.to_string(), provider_ref.clone())),
            _ => None,
        })
        .unzip();
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE deliveries SET state = 'sent', provider_ref = v.provider_ref, finished_at = $1, \
         lease_owner = NULL, lease_until = NULL, last_error = NULL \
         FROM UNNEST($2::text[], $3::text[]) AS v(id, provider_ref) \
         WHERE deliveries.id = v.id AND deliveries.state = 'in_flight' AND deliveries.lease_owner = $4",
    )
    .bind(now)
    .bind(ids)
    .bind(refs)
    .bind(owner)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Refusals and exhausted attempts, in one statement.
async fn record_dead(
    tx: &mut Tx<'_>,
    owner: &str,
    now: i64,
    outcomes: &[(DeliveryId, Outcome)],
) -> Result<(), StoreError> {
    let mut ids = Vec::new();
    let mut reasons = Vec::new();
    let mut causes = Vec::new();
    for (id, outcome) in outcomes {
        if let Outcome::Dead { cause, reason } = outcome {
            ids.push(id.to_string());
            reasons.push(reason.clone());
            causes.push(cause.as_str());
        }
    }
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE deliveries SET state = 'dead', finished_at = $1, last_error = v.reason, dead_cause = v.cause, \
         lease_owner = NULL, lease_until = NULL \
         FROM UNNEST($2::text[], $3::text[], $4::text[]) AS v(id, reason, cause) \
         WHERE deliveries.id = v.id AND deliveries.state = 'in_flight' AND deliveries.lease_owner = $5",
    )
    .bind(now)
    .bind(ids)
    .bind(reasons)
    .bind(causes)
    .bind(owner)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Retries, in one statement; a reader who opted out while theirs was in
/// flight is not tried again.
async fn record_retries(
    tx: &mut Tx<'_>,
    owner: &str,
    now: i64,
    outcomes: &[(DeliveryId, Outcome)],
) -> Result<(), StoreError> {
    let mut ids = Vec::new();
    let mut ats = Vec::new();
    let mut errors = Vec::new();
    for (id, outcome) in outcomes {
        if let Outcome::Retry { at, error } = outcome {
            ids.push(id.to_string());
            ats.push(millis(*at));
            errors.push(error.clone());
        }
    }
    if ids.is_empty() {
        return Ok(());
    }
    // The opt-out check, on the row being updated.
    let opted_out = opted_out_now();
    let sql = format!(
        "UPDATE deliveries SET available_at = v.at, lease_owner = NULL, lease_until = NULL, \
         state = CASE WHEN {opted_out} THEN 'dead' ELSE 'retrying' END, \
         last_error = CASE WHEN {opted_out} THEN $5 ELSE v.error END, \
         dead_cause = CASE WHEN {opted_out} THEN $6 ELSE NULL END, \
         finished_at = CASE WHEN {opted_out} THEN $1 ELSE deliveries.finished_at END \
         FROM UNNEST($2::text[], $3::bigint[], $4::text[]) AS v(id, at, error) \
         WHERE deliveries.id = v.id AND deliveries.state = 'in_flight' AND deliveries.lease_owner = $7"
    );
    sqlx::query(&sql)
        .bind(now)
        .bind(ids)
        .bind(ats)
        .bind(errors)
        .bind(OPTED_OUT)
        .bind(DeadCause::OptedOut.as_str())
        .bind(owner)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[async_trait]
impl DeliveryQueue for PostgresStore {
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
        let mut tx = self.pool.begin().await?;
        // Leases of a daemon that died or stalled become claimable again;
        // the attempt they used stays counted. Rows another daemon is
        // rescuing or finishing right now are skipped, not waited for.
        sqlx::query(
            "UPDATE deliveries SET state = 'retrying', available_at = $2, lease_owner = NULL, lease_until = NULL \
             WHERE id IN (SELECT id FROM deliveries WHERE state = 'in_flight' AND channel = $1 \
               AND lease_until <= $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(channel)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        // New messages first, by priority (initial, updates and the
        // all-clear before follow-ups), then retries that are due. An
        // all-clear cancelled on the way makes room for another row, up to
        // a bound that keeps the transaction short.
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut rows = Vec::new();
        let mut cancelled = 0;
        for state in [
            ("pending", "d.priority, d.available_at"),
            ("retrying", "d.available_at"),
        ] {
            while rows.len() < limit && cancelled < MAX_CANCELLED_PER_CLAIM {
                let wanted = i64::try_from(limit - rows.len()).unwrap_or(i64::MAX);
                let taken = claim_state(
                    &mut tx,
                    state,
                    (channel, owner),
                    (now_ms, lease_until),
                    wanted,
                )
                .await?;
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
        self.renditions
            .claimed(&rows, |id| async move {
                let text: Option<String> =
                    sqlx::query_scalar("SELECT content FROM renditions WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(text)
            })
            .await
    }

    async fn record_outcomes(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        outcomes: &[(DeliveryId, Outcome)],
    ) -> Result<(), StoreError> {
        let now = millis(now);
        let mut tx = self.pool.begin().await?;
        record_sent(&mut tx, owner, now, outcomes).await?;
        record_dead(&mut tx, owner, now, outcomes).await?;
        record_retries(&mut tx, owner, now, outcomes).await?;
        follow_ups::kill_retries_after_resolve(&mut tx, outcomes, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn release(&self, ids: &[DeliveryId], owner: &str) -> Result<(), StoreError> {
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        sqlx::query(
            "UPDATE deliveries SET state = CASE WHEN attempts > 1 THEN 'retrying' ELSE 'pending' END, \
             attempts = attempts - 1, lease_owner = NULL, lease_until = NULL \
             WHERE id = ANY($1) AND state = 'in_flight' AND lease_owner = $2",
        )
        .bind(ids)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn kill_unroutable(
        &self,
        known_channels: &[String],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let killed = sqlx::query(
            "UPDATE deliveries SET state = 'dead', finished_at = $1, lease_owner = NULL, lease_until = NULL, \
             last_error = 'channel `' || channel || '` is not configured', dead_cause = $3 \
             WHERE state IN ('pending', 'retrying', 'in_flight') AND channel <> ALL($2)",
        )
        .bind(millis(now))
        .bind(known_channels)
        .bind(DeadCause::Unroutable.as_str())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(killed)
    }
}
