//! Plans in PostgreSQL: announcements and their deliveries, written inside
//! the caller's transaction (a transition, a plan batch, a follow-up
//! starting), and the plans a restart resumes. Deliveries go in one
//! `INSERT … SELECT FROM UNNEST` per chunk: one array per column, so a
//! batch is one statement of a fixed shape, whatever its size.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    PostgresStore, Tx, WORK_DUE, count, decode, follow_ups, idempotency, millis, notify, to_json,
};
use crate::domain::AnnouncementId;
use crate::outbox::rows::{RowValues, UnfinishedPlanRow};
use crate::outbox::{
    Announcement, COUNTS_AGAINST_CAP, IdempotencyRecord, NewDelivery, NewRendition, PlanLease,
    PlanStep, PlanStore, StoreError, UnfinishedPlan,
};

/// Rows per statement: large enough that a plan batch is one or two
/// statements, small enough that one statement's arrays stay a few MB.
const ROWS_PER_INSERT: usize = 5000;

const INSERT_DELIVERIES: &str = "INSERT INTO deliveries (id, crisis_id, announcement_id, kind, channel, \
     recipient_id, destination, locale, content, priority, state, attempts, available_at, last_error, \
     dead_cause, created_at, finished_at, rendition_id, recipient_name, unsubscribe_url, ordinal, reached_only) \
     SELECT v.id, $1, $2, $3, v.channel, v.recipient_id, v.destination, v.locale, v.content, v.priority, \
     v.state, 0, v.available_at, v.last_error, v.dead_cause, $4, v.finished_at, v.rendition_id, \
     v.recipient_name, v.unsubscribe_url, $20, $21 \
     FROM UNNEST($5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::bigint[], \
     $12::text[], $13::bigint[], $14::text[], $15::text[], $16::bigint[], $17::text[], $18::text[], $19::text[]) \
     AS v(id, channel, recipient_id, destination, locale, content, priority, state, available_at, \
     last_error, dead_cause, finished_at, rendition_id, recipient_name, unsubscribe_url)";

/// A chunk of deliveries as one array per column, in `INSERT_DELIVERIES`'s
/// order.
#[derive(Default)]
struct Columns {
    id: Vec<String>,
    channel: Vec<String>,
    recipient_id: Vec<Option<String>>,
    destination: Vec<String>,
    locale: Vec<String>,
    content: Vec<String>,
    priority: Vec<i64>,
    state: Vec<String>,
    available_at: Vec<i64>,
    last_error: Vec<Option<String>>,
    dead_cause: Vec<Option<String>>,
    finished_at: Vec<Option<i64>>,
    rendition_id: Vec<Option<String>>,
    recipient_name: Vec<Option<String>>,
    unsubscribe_url: Vec<Option<String>>,
}

impl Columns {
    fn push(&mut self, values: RowValues<'_>) {
        let delivery = values.delivery;
        self.id.push(delivery.id.to_string());
        self.channel.push(delivery.channel.clone());
        self.recipient_id.push(delivery.recipient_id.clone());
        self.destination.push(delivery.destination.clone());
        self.locale.push(delivery.locale.clone());
        self.content.push(values.content);
        self.priority.push(i64::from(delivery.priority));
        self.state.push(values.state.as_str().to_owned());
        self.available_at.push(values.available_at);
        self.last_error
            .push(values.dead.map(|(_, reason)| reason.to_owned()));
        self.dead_cause
            .push(values.dead.map(|(cause, _)| cause.to_owned()));
        self.finished_at.push(values.finished_at);
        let (id, name, url) = match values.rendition {
            Some((id, name, url)) => (Some(id), name, url),
            None => (None, None, None),
        };
        self.rendition_id.push(id);
        self.recipient_name.push(name.map(str::to_owned));
        self.unsubscribe_url.push(url.map(str::to_owned));
    }
}

/// Writes deliveries inside the caller's transaction.
pub(super) async fn insert_deliveries(
    tx: &mut Tx<'_>,
    announcement: &Announcement,
    deliveries: &[NewDelivery],
) -> Result<(), StoreError> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let now = millis(announcement.created_at);
    // Each row carries its announcement's place, which the claim orders a
    // reader's messages by.
    let ordinal: i64 = sqlx::query_scalar("SELECT ordinal FROM announcements WHERE id = $1")
        .bind(announcement.id.to_string())
        .fetch_one(&mut **tx)
        .await?;
    for chunk in deliveries.chunks(ROWS_PER_INSERT) {
        let mut columns = Columns::default();
        for delivery in chunk {
            columns.push(RowValues::of(delivery, now)?);
        }
        sqlx::query(INSERT_DELIVERIES)
            .bind(announcement.crisis_id.to_string())
            .bind(announcement.id.to_string())
            .bind(announcement.kind.as_str())
            .bind(now)
            .bind(columns.id)
            .bind(columns.channel)
            .bind(columns.recipient_id)
            .bind(columns.destination)
            .bind(columns.locale)
            .bind(columns.content)
            .bind(columns.priority)
            .bind(columns.state)
            .bind(columns.available_at)
            .bind(columns.last_error)
            .bind(columns.dead_cause)
            .bind(columns.finished_at)
            .bind(columns.rendition_id)
            .bind(columns.recipient_name)
            .bind(columns.unsubscribe_url)
            .bind(ordinal)
            .bind(announcement.reached_only)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Writes renditions inside the caller's transaction.
pub(super) async fn insert_renditions(
    tx: &mut Tx<'_>,
    announcement: &Announcement,
    renditions: &[NewRendition],
) -> Result<(), StoreError> {
    for rendition in renditions {
        sqlx::query("INSERT INTO renditions (id, announcement_id, content) VALUES ($1, $2, $3)")
            .bind(rendition.id.to_string())
            .bind(announcement.id.to_string())
            .bind(to_json(&rendition.content)?)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Writes an announcement row inside the caller's transaction.
pub(super) async fn insert_announcement(
    tx: &mut Tx<'_>,
    announcement: &Announcement,
    planning: Option<&PlanLease>,
    idempotency: Option<&IdempotencyRecord>,
) -> Result<(), StoreError> {
    // Its place among the crisis's announcements. Every writer of an
    // announcement holds its crisis's row lock (a transition updates the
    // row, a follow-up starting locks it), so none computes the same
    // place; the unique index would refuse it if one did.
    sqlx::query(
        "INSERT INTO announcements (id, crisis_id, kind, message, created_at, planning, \
         idempotency_scope, idempotency_key, follow_up, reached_only, plan_owner, plan_lease_until, \
         question, ordinal) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
         (SELECT COALESCE(MAX(ordinal), 0) + 1 FROM announcements WHERE crisis_id = $2))",
    )
    .bind(announcement.id.to_string())
    .bind(announcement.crisis_id.to_string())
    .bind(announcement.kind.as_str())
    .bind(&announcement.message)
    .bind(millis(announcement.created_at))
    .bind(planning.is_some())
    .bind(idempotency.map(|r| r.scope.clone()))
    .bind(idempotency.map(|r| r.key.clone()))
    .bind(announcement.follow_up.as_ref().map(to_json).transpose()?)
    .bind(announcement.reached_only)
    .bind(planning.map(|lease| lease.owner.clone()))
    .bind(planning.map(|lease| millis(lease.until)))
    .bind(&announcement.question)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A batch's fence and its progress in one statement: moves the plan on to
/// `$1` and renews its lease to `$2` only while owner `$4` holds it at `$5`.
const ADVANCE: &str = "UPDATE announcements SET planned_through = $1, plan_lease_until = $2 \
     WHERE id = $3 AND planning AND plan_owner = $4 AND planned_through = $5";

#[async_trait]
impl PlanStore for PostgresStore {
    async fn append_plan(
        &self,
        announcement: &Announcement,
        renditions: &[NewRendition],
        deliveries: &[NewDelivery],
        step: PlanStep<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // The fence first, holding the announcement's row to the commit: a
        // second writer of the same batch waits, then finds the plan moved
        // on (or owned by another) and writes nothing.
        let moved = sqlx::query(ADVANCE)
            .bind(i64::try_from(step.through).unwrap_or(i64::MAX))
            .bind(millis(step.lease.until))
            .bind(announcement.id.to_string())
            .bind(&step.lease.owner)
            .bind(i64::try_from(step.from).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        if moved.rows_affected() == 0 {
            return Err(StoreError::PlanTaken);
        }
        insert_renditions(&mut tx, announcement, renditions).await?;
        insert_deliveries(&mut tx, announcement, deliveries).await?;
        follow_ups::kill_if_resolved(&mut tx, announcement).await?;
        notify(&mut tx, WORK_DUE, "").await?;
        tx.commit().await?;
        self.work_due.notify();
        self.wrote_deliveries(deliveries.len()).await;
        Ok(())
    }

    async fn finish_plan(
        &self,
        announcement_id: AnnouncementId,
        owner: &str,
        idempotency: Option<IdempotencyRecord>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let finished = sqlx::query(
            "UPDATE announcements SET planning = false, plan_lease_until = NULL \
             WHERE id = $1 AND planning AND plan_owner = $2",
        )
        .bind(announcement_id.to_string())
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if finished.rows_affected() == 0 {
            return Err(StoreError::PlanTaken);
        }
        if let Some(record) = idempotency {
            idempotency::complete(&mut tx, &record).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn unfinished_plans(&self) -> Result<Vec<UnfinishedPlan>, StoreError> {
        sqlx::query("SELECT * FROM announcements WHERE planning ORDER BY created_at")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(decode::<UnfinishedPlanRow, _, _>)
            .collect()
    }

    async fn take_plans(
        &self,
        lease: &PlanLease,
        expired_before: DateTime<Utc>,
    ) -> Result<Vec<UnfinishedPlan>, StoreError> {
        // One statement: a daemon taking over at the same moment waits on
        // the rows, then finds their leases renewed and leaves them.
        let mut plans = sqlx::query(
            "UPDATE announcements SET plan_owner = $1, plan_lease_until = $2 \
             WHERE planning AND (plan_lease_until IS NULL OR plan_lease_until < $3) \
             RETURNING *",
        )
        .bind(&lease.owner)
        .bind(millis(lease.until))
        .bind(millis(expired_before))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(decode::<UnfinishedPlanRow, _, _>)
        .collect::<Result<Vec<UnfinishedPlan>, _>>()?;
        plans.sort_by_key(|plan| plan.announcement.created_at);
        Ok(plans)
    }

    async fn renew_plan(
        &self,
        announcement_id: AnnouncementId,
        lease: &PlanLease,
    ) -> Result<bool, StoreError> {
        let renewed = sqlx::query(
            "UPDATE announcements SET plan_lease_until = $1 \
             WHERE id = $2 AND planning AND plan_owner = $3",
        )
        .bind(millis(lease.until))
        .bind(announcement_id.to_string())
        .bind(&lease.owner)
        .execute(&self.pool)
        .await?;
        Ok(renewed.rows_affected() > 0)
    }

    async fn announcement_deliveries(
        &self,
        announcement_id: AnnouncementId,
    ) -> Result<u64, StoreError> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE announcement_id = $1")
                .bind(announcement_id.to_string())
                .fetch_one(&self.pool)
                .await?;
        Ok(count(n))
    }

    async fn recent_messages(
        &self,
        readers: &[String],
        since: chrono::DateTime<chrono::Utc>,
        except: AnnouncementId,
    ) -> Result<Vec<(String, u32)>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(&format!(
            "SELECT d.recipient_id, COUNT(DISTINCT d.announcement_id) FROM deliveries d \
             JOIN crises c ON c.id = d.crisis_id \
             WHERE d.recipient_id = ANY($1) AND d.created_at >= $2 AND d.announcement_id <> $3 \
             AND {COUNTS_AGAINST_CAP} GROUP BY d.recipient_id"
        ))
        .bind(readers)
        .bind(millis(since))
        .bind(except.to_string())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(reader, n)| (reader, u32::try_from(n).unwrap_or(u32::MAX)))
            .collect())
    }
}
