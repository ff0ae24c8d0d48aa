//! The delivery queue in SQLite, on the ledger pool: claims, outcomes and
//! releases, the hot path of a fan-out. Each claim and each outcome batch
//! is one transaction, with as few statements as it can be.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::consent::OPTED_OUT;
use super::{
    ROWS_PER_INSERT, SqliteStore, Tx, follow_ups, from_millis, json, millis, parse, to_json,
};
use crate::domain::DeliveryId;
use crate::message::DeliveryContent;
use crate::outbox::{DeadCause, Delivery, DeliveryQueue, Outcome, Personal, StoreError, WorkDue};
use crate::sync::lock;

/// What a claim returns of each row: `DeliveryRow`'s columns.
const DELIVERY_COLUMNS: &str = "id, crisis_id, announcement_id, kind, channel, recipient_id, destination, \
     locale, content, state, attempts, available_at, last_error, created_at, rendition_id, recipient_name, \
     unsubscribe_url";

/// Renditions kept decoded in memory; a crisis has a few dozen.
const RENDITION_CACHE: usize = 4096;

/// A claimed delivery as stored: its own message (`content`), or empty and
/// a rendition shared with other readers.
#[derive(FromRow)]
struct DeliveryRow<'r> {
    id: &'r str,
    crisis_id: &'r str,
    announcement_id: &'r str,
    kind: &'r str,
    channel: String,
    recipient_id: Option<String>,
    destination: String,
    locale: String,
    content: &'r str,
    state: &'r str,
    attempts: i64,
    available_at: i64,
    last_error: Option<String>,
    created_at: i64,
    rendition_id: Option<&'r str>,
    recipient_name: Option<String>,
    unsubscribe_url: Option<String>,
}

/// A row and the message it sends (its own, or its rendition's, decoded
/// once for all its readers).
impl TryFrom<(DeliveryRow<'_>, Arc<DeliveryContent>)> for Delivery {
    type Error = StoreError;

    fn try_from(
        (row, content): (DeliveryRow<'_>, Arc<DeliveryContent>),
    ) -> Result<Self, StoreError> {
        let personal = match row.rendition_id {
            Some(rendition) => Some(Personal {
                rendition: parse(rendition, "rendition id")?,
                recipient_name: row.recipient_name,
                unsubscribe_url: row.unsubscribe_url,
            }),
            None => None,
        };
        Ok(Delivery {
            id: parse(row.id, "delivery id")?,
            crisis_id: parse(row.crisis_id, "crisis id")?,
            announcement_id: parse(row.announcement_id, "announcement id")?,
            kind: parse(row.kind, "announcement kind")?,
            channel: row.channel,
            recipient_id: row.recipient_id,
            destination: row.destination,
            locale: row.locale,
            content,
            personal,
            state: parse(row.state, "delivery state")?,
            attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
            available_at: from_millis(row.available_at)?,
            last_error: row.last_error,
            created_at: from_millis(row.created_at)?,
        })
    }
}

impl SqliteStore {
    /// A rendition, decoded once.
    async fn rendition(&self, id: &str) -> Result<Arc<DeliveryContent>, StoreError> {
        if let Some(content) = lock(&self.renditions).get(id) {
            return Ok(content.clone());
        }
        let text: String = sqlx::query_scalar("SELECT content FROM renditions WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.ledger)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("rendition {id} is missing")))?;
        let content: Arc<DeliveryContent> = Arc::new(json(&text, "rendition")?);
        let mut cache = lock(&self.renditions);
        if cache.len() >= RENDITION_CACHE {
            cache.clear();
        }
        cache.insert(id.to_owned(), content.clone());
        Ok(content)
    }

    /// The claimed rows as deliveries, each with its message.
    async fn claimed(&self, rows: &[sqlx::sqlite::SqliteRow]) -> Result<Vec<Delivery>, StoreError> {
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let row = DeliveryRow::from_row(row)?;
            let content = match row.rendition_id {
                Some(rendition) => self.rendition(rendition).await?,
                None => Arc::new(json(row.content, "delivery content")?),
            };
            claimed.push(Delivery::try_from((row, content))?);
        }
        Ok(claimed)
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
