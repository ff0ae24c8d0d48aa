//! Follow-ups in PostgreSQL: scheduled and cancelled inside a transition's
//! transaction, and each claimed with its announcement in one transaction,
//! so none is sent twice or after the all-clear. SQLite gets that from its
//! one writer; here a write that depends on the crisis's status first
//! locks the crisis's row (`FOR SHARE`), which the all-clear's update waits
//! for, and which waits for the all-clear.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::plans::{insert_announcement, insert_deliveries};
use super::{PostgresStore, Tx, WORK_DUE, decode, from_millis, millis, notify, to_json};
use crate::domain::follow_up::{
    CANCELLED_BY_RESOLVE, FollowUp, FollowUpChange, FollowUpState, NewFollowUp, Phase,
};
use crate::domain::{AnnouncementKind, Crisis, CrisisId, DeliveryId, Status};
use crate::outbox::rows::{FollowUpRow, made_before_the_all_clear};
use crate::outbox::{
    Announcement, DeadCause, FollowUpReplacement, FollowUpStart, FollowUpStore, Outcome, StoreError,
};

/// The crisis's status, its row locked until the transaction ends: the
/// all-clear cannot commit in between. `FOR UPDATE` when the transaction
/// adds an announcement (whose place in the crisis needs the crisis to
/// itself), `FOR SHARE` otherwise.
async fn lock_status(
    tx: &mut Tx<'_>,
    crisis: CrisisId,
    lock: &str,
) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar(&format!("SELECT status FROM crises WHERE id = $1 {lock}"))
            .bind(crisis.to_string())
            .fetch_optional(&mut **tx)
            .await?,
    )
}

async fn cancel_pending(
    tx: &mut Tx<'_>,
    crisis_id: CrisisId,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE follow_ups SET state = 'cancelled', reason = $1, settled_at = $2 \
         WHERE crisis_id = $3 AND state = 'pending'",
    )
    .bind(reason)
    .bind(millis(at))
    .bind(crisis_id.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The crisis's messages still queued (the initial announcement, updates
/// and follow-ups the all-clear overtakes) end dead; those in flight
/// finish, and the all-clear waits for them.
async fn kill_queued(
    tx: &mut Tx<'_>,
    crisis_id: CrisisId,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE deliveries SET state = 'dead', last_error = $1, dead_cause = $2, finished_at = $3, \
         lease_owner = NULL, lease_until = NULL \
         WHERE crisis_id = $4 AND kind IN ($5, $6, $7) AND state IN ('pending', 'retrying')",
    )
    .bind(CANCELLED_BY_RESOLVE)
    .bind(DeadCause::Cancelled.as_str())
    .bind(millis(at))
    .bind(crisis_id.to_string())
    .bind(AnnouncementKind::Initial.as_str())
    .bind(AnnouncementKind::Update.as_str())
    .bind(AnnouncementKind::FollowUp.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert(
    tx: &mut Tx<'_>,
    follow_up: &NewFollowUp,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO follow_ups (id, crisis_id, occurrence, phase, spec, due_at, state, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7)",
    )
    .bind(follow_up.id.to_string())
    .bind(follow_up.crisis_id.to_string())
    .bind(i64::from(follow_up.occurrence))
    .bind(follow_up.spec.phase.as_str())
    .bind(to_json(&follow_up.spec)?)
    .bind(millis(follow_up.due_at))
    .bind(millis(at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A transition's follow-ups, in its transaction (which holds the
/// crisis's row lock from its own insert or update).
pub(super) async fn apply_change(
    tx: &mut Tx<'_>,
    crisis: &Crisis,
    change: &FollowUpChange,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    if crisis.status == Status::Resolved {
        cancel_pending(tx, crisis.id, CANCELLED_BY_RESOLVE, at).await?;
        kill_queued(tx, crisis.id, at).await?;
    } else if let Some(reason) = &change.cancel {
        cancel_pending(tx, crisis.id, reason, at).await?;
    }
    for follow_up in &change.schedule {
        insert(tx, follow_up, at).await?;
    }
    Ok(())
}

/// A batch of an announcement made before the all-clear written after its
/// crisis was resolved (its plan was still streaming when the all-clear
/// came) is killed at once, in the batch's own transaction.
pub(super) async fn kill_if_resolved(
    tx: &mut Tx<'_>,
    announcement: &Announcement,
) -> Result<(), StoreError> {
    if !made_before_the_all_clear(announcement) {
        return Ok(());
    }
    if lock_status(tx, announcement.crisis_id, "FOR SHARE")
        .await?
        .as_deref()
        != Some(Status::Resolved.as_str())
    {
        return Ok(());
    }
    sqlx::query(
        "UPDATE deliveries SET state = 'dead', last_error = $1, dead_cause = $3, finished_at = created_at \
         WHERE announcement_id = $2 AND state = 'pending'",
    )
    .bind(CANCELLED_BY_RESOLVE)
    .bind(announcement.id.to_string())
    .bind(DeadCause::Cancelled.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A message of the crisis that was being sent when the all-clear came and
/// failed transiently (the initial one, an update, a follow-up of the
/// active phase) is not tried again after it.
pub(super) async fn kill_retries_after_resolve(
    tx: &mut Tx<'_>,
    outcomes: &[(DeliveryId, Outcome)],
    now: i64,
) -> Result<(), StoreError> {
    let retried: Vec<String> = outcomes
        .iter()
        .filter(|(_, outcome)| matches!(outcome, Outcome::Retry { .. }))
        .map(|(id, _)| id.to_string())
        .collect();
    if retried.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE deliveries SET state = 'dead', last_error = $1, dead_cause = $2, finished_at = $3 \
         WHERE state = 'retrying' AND kind != 'resolved' AND id = ANY($4) \
         AND EXISTS (SELECT 1 FROM crises WHERE crises.id = deliveries.crisis_id \
         AND crises.status = 'resolved') \
         AND (kind != 'follow_up' OR EXISTS (SELECT 1 FROM announcements a \
         WHERE a.id = deliveries.announcement_id AND a.follow_up::jsonb ->> 'phase' = 'active'))",
    )
    .bind(CANCELLED_BY_RESOLVE)
    .bind(DeadCause::Cancelled.as_str())
    .bind(now)
    .bind(retried)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[async_trait]
impl FollowUpStore for PostgresStore {
    async fn follow_ups(&self, crisis: Option<CrisisId>) -> Result<Vec<FollowUp>, StoreError> {
        sqlx::query(
            "SELECT * FROM follow_ups WHERE ($1::text IS NULL OR crisis_id = $1) ORDER BY due_at, seq",
        )
        .bind(crisis.map(|id| id.to_string()))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(decode::<FollowUpRow, _, _>)
        .collect()
    }

    async fn due_follow_ups(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<FollowUp>, StoreError> {
        sqlx::query(
            "SELECT * FROM follow_ups WHERE state = 'pending' AND due_at <= $1 \
             ORDER BY due_at, seq LIMIT $2",
        )
        .bind(millis(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(decode::<FollowUpRow, _, _>)
        .collect()
    }

    async fn next_follow_up_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let at: Option<i64> =
            sqlx::query_scalar("SELECT MIN(due_at) FROM follow_ups WHERE state = 'pending'")
                .fetch_one(&self.pool)
                .await?;
        at.map(from_millis).transpose()
    }

    async fn settle_follow_up(
        &self,
        id: Uuid,
        state: FollowUpState,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE follow_ups SET state = $1, reason = $2, settled_at = $3 \
             WHERE id = $4 AND state = 'pending'",
        )
        .bind(state.as_str())
        .bind(reason)
        .bind(millis(at))
        .bind(id.to_string())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn replace_follow_ups(&self, replacement: FollowUpReplacement) -> Result<(), StoreError> {
        let FollowUpReplacement {
            crisis,
            phase,
            after,
            reason,
            schedule,
        } = replacement;
        let mut tx = self.pool.begin().await?;
        let status = lock_status(&mut tx, crisis, "FOR SHARE").await?;
        if phase == Phase::Active
            && status.as_deref() != Some(Status::Declared.as_str())
            && status.as_deref() != Some(Status::Updated.as_str())
        {
            // Resolved meanwhile (or gone): the all-clear settled them.
            tx.rollback().await?;
            return Ok(());
        }
        sqlx::query(
            "UPDATE follow_ups SET state = 'cancelled', reason = $1, settled_at = $2 \
             WHERE crisis_id = $3 AND phase = $4 AND state = 'pending' AND due_at > $2",
        )
        .bind(reason)
        .bind(millis(after))
        .bind(crisis.to_string())
        .bind(phase.as_str())
        .execute(&mut *tx)
        .await?;
        for follow_up in &schedule {
            insert(&mut tx, follow_up, after).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn start_follow_up(&self, start: FollowUpStart) -> Result<bool, StoreError> {
        let FollowUpStart {
            follow_up,
            announcement,
            deliveries,
            planning,
        } = start;
        let mut tx = self.pool.begin().await?;
        // The crisis's row first: a resolve either committed before (and
        // the status says so) or waits for this transaction (and kills
        // what it writes).
        let status = lock_status(&mut tx, announcement.crisis_id, "FOR UPDATE").await?;
        let resolved = status.as_deref() == Some(Status::Resolved.as_str());
        insert_announcement(&mut tx, &announcement, planning.as_ref(), None).await?;
        // The claim: still pending (two daemons starting the same one: the
        // second waits on the row and then finds it sent), and before the
        // all-clear only while the crisis is not resolved.
        let claimed = sqlx::query(
            "UPDATE follow_ups SET state = 'sent', announcement_id = $1, settled_at = $2 \
             WHERE id = $3 AND state = 'pending' AND (phase = 'after_resolution' OR NOT $4)",
        )
        .bind(announcement.id.to_string())
        .bind(millis(announcement.created_at))
        .bind(follow_up.to_string())
        .bind(resolved)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_deliveries(&mut tx, &announcement, &deliveries).await?;
        notify(&mut tx, WORK_DUE, "").await?;
        tx.commit().await?;
        self.work_due.notify();
        Ok(true)
    }
}
