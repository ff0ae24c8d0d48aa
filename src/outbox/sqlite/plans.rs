//! Plans in SQLite: announcements and their deliveries, written with
//! multi-row INSERTs inside the caller's transaction (a transition, a plan
//! batch, a follow-up starting), and the plans a restart resumes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    ROWS_PER_INSERT, SqliteStore, Tx, count, decode, follow_ups, idempotency, millis, to_json,
};
use crate::domain::AnnouncementId;
use crate::outbox::rows::{INSERT_COLUMNS, RowValues, UnfinishedPlanRow};
use crate::outbox::{
    Announcement, COUNTS_AGAINST_CAP, IdempotencyRecord, NewDelivery, NewRendition, PlanLease,
    PlanStep, PlanStore, StoreError, UnfinishedPlan,
};

/// Writes deliveries with multi-row INSERTs inside the caller's transaction.
pub(super) async fn insert_deliveries(
    tx: &mut Tx<'_>,
    announcement: &Announcement,
    deliveries: &[NewDelivery],
) -> Result<(), StoreError> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let now = millis(announcement.created_at);
    let crisis_id = announcement.crisis_id.to_string();
    let announcement_id = announcement.id.to_string();
    // Each row carries its announcement's place, which the claim orders a
    // reader's messages by.
    let ordinal: i64 = sqlx::query_scalar("SELECT ordinal FROM announcements WHERE id = ?")
        .bind(&announcement_id)
        .fetch_one(&mut **tx)
        .await?;
    for chunk in deliveries.chunks(ROWS_PER_INSERT) {
        let rows = chunk
            .iter()
            .map(|delivery| RowValues::of(delivery, now))
            .collect::<Result<Vec<_>, _>>()?;
        let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(INSERT_COLUMNS);
        query.push_values(&rows, |mut row, values| {
            let delivery = values.delivery;
            let rendition = values.rendition.as_ref();
            row.push_bind(delivery.id.to_string())
                .push_bind(crisis_id.as_str())
                .push_bind(announcement_id.as_str())
                .push_bind(announcement.kind.as_str())
                .push_bind(delivery.channel.as_str())
                .push_bind(delivery.recipient_id.as_deref())
                .push_bind(delivery.destination.as_str())
                .push_bind(delivery.locale.as_str())
                .push_bind(values.content.as_str())
                .push_bind(i64::from(delivery.priority))
                .push_bind(values.state.as_str())
                .push_bind(0_i64)
                .push_bind(values.available_at)
                .push_bind(values.dead.map(|(_, reason)| reason))
                .push_bind(values.dead.map(|(cause, _)| cause))
                .push_bind(now)
                .push_bind(values.finished_at)
                .push_bind(rendition.map(|(id, _, _)| id.as_str()))
                .push_bind(rendition.and_then(|(_, name, _)| *name))
                .push_bind(rendition.and_then(|(_, _, url)| *url))
                .push_bind(ordinal)
                .push_bind(announcement.reached_only);
        });
        query.build().execute(&mut **tx).await?;
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
        sqlx::query("INSERT INTO renditions (id, announcement_id, content) VALUES (?, ?, ?)")
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
    // Its place among the crisis's announcements: the one writer (or, in a
    // backend with concurrent writers, the unique index) keeps it unique.
    sqlx::query(
        "INSERT INTO announcements (id, crisis_id, kind, message, created_at, planning, \
         idempotency_scope, idempotency_key, follow_up, reached_only, plan_owner, plan_lease_until, \
         question, ordinal) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, \
         (SELECT COALESCE(MAX(ordinal), 0) + 1 FROM announcements WHERE crisis_id = ?2))",
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
/// `?1` and renews its lease to `?2` only while owner `?4` holds it at `?5`.
const ADVANCE: &str = "UPDATE announcements SET planned_through = ?1, plan_lease_until = ?2 \
     WHERE id = ?3 AND planning = 1 AND plan_owner = ?4 AND planned_through = ?5";

#[async_trait]
impl PlanStore for SqliteStore {
    async fn append_plan(
        &self,
        announcement: &Announcement,
        renditions: &[NewRendition],
        deliveries: &[NewDelivery],
        step: PlanStep<'_>,
    ) -> Result<(), StoreError> {
        let result: Result<_, StoreError> = async {
            let writing = self.writer.lock().await;
            let mut tx = self.ledger.begin().await?;
            // The fence first: nothing of the batch is written unless this
            // owner still holds the plan where it expects it to be.
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
            tx.commit().await?;
            drop(writing);
            self.work_due.notify();
            Ok(())
        }
        .await;
        self.faults.note(&result);
        result
    }

    async fn finish_plan(
        &self,
        announcement_id: AnnouncementId,
        owner: &str,
        idempotency: Option<IdempotencyRecord>,
    ) -> Result<(), StoreError> {
        let _writing = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        let finished = sqlx::query(
            "UPDATE announcements SET planning = 0, plan_lease_until = NULL \
             WHERE id = ? AND planning = 1 AND plan_owner = ?",
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
        sqlx::query("SELECT * FROM announcements WHERE planning = 1 ORDER BY created_at")
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
        let _writing = self.writer.lock().await;
        let mut plans = sqlx::query(
            "UPDATE announcements SET plan_owner = ?, plan_lease_until = ? \
             WHERE planning = 1 AND (plan_lease_until IS NULL OR plan_lease_until < ?) \
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
        let _writing = self.writer.lock().await;
        let renewed = sqlx::query(
            "UPDATE announcements SET plan_lease_until = ? \
             WHERE id = ? AND planning = 1 AND plan_owner = ?",
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
            sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE announcement_id = ?")
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
        let mut counts = Vec::new();
        // Within SQLite's limit on bound parameters.
        for chunk in readers.chunks(ROWS_PER_INSERT) {
            let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "SELECT d.recipient_id, COUNT(DISTINCT d.announcement_id) FROM deliveries d \
                 JOIN crises c ON c.id = d.crisis_id WHERE d.created_at >= ",
            );
            query
                .push_bind(millis(since))
                .push(" AND d.announcement_id <> ")
                .push_bind(except.to_string())
                .push(format!(" AND {COUNTS_AGAINST_CAP} AND d.recipient_id IN ("));
            let mut list = query.separated(", ");
            for reader in chunk {
                list.push_bind(reader.as_str());
            }
            query.push(") GROUP BY d.recipient_id");
            let rows: Vec<(String, i64)> = query.build_query_as().fetch_all(&self.pool).await?;
            counts.extend(
                rows.into_iter()
                    .map(|(reader, n)| (reader, u32::try_from(n).unwrap_or(u32::MAX))),
            );
        }
        Ok(counts)
    }
}
