//! Follow-ups in SQLite: scheduled and cancelled inside a transition's
//! transaction, and each claimed with its announcement in one transaction,
//! so none is sent twice or after the all-clear.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::plans::{insert_announcement, insert_deliveries};
use super::{ROWS_PER_INSERT, SqliteStore, Tx, decode, from_millis, millis, to_json};
use crate::domain::follow_up::{
    CANCELLED_BY_RESOLVE, FollowUp, FollowUpChange, FollowUpState, NewFollowUp, Phase,
};
use crate::domain::{AnnouncementKind, Crisis, CrisisId, DeliveryId, Status};
use crate::outbox::rows::{FollowUpRow, made_before_the_all_clear};
use crate::outbox::{
    Announcement, DeadCause, FollowUpReplacement, FollowUpStart, FollowUpStore, Outcome, StoreError,
};

async fn cancel_pending(
    tx: &mut Tx<'_>,
    crisis_id: CrisisId,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE follow_ups SET state = 'cancelled', reason = ?, settled_at = ? \
         WHERE crisis_id = ? AND state = 'pending'",
    )
    .bind(reason)
    .bind(millis(at))
    .bind(crisis_id.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The crisis's messages still queued (waiting to be claimed or retried,
/// or held by quiet hours) end dead: the initial announcement, updates and
/// follow-ups the all-clear overtakes are not sent after it; the all-clear
/// says what they needed to know. Messages in flight finish, and the
/// all-clear waits for them. `retry-dead` leaves them dead.
async fn kill_queued(
    tx: &mut Tx<'_>,
    crisis_id: CrisisId,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE deliveries SET state = 'dead', last_error = ?, dead_cause = ?, finished_at = ?, \
         lease_owner = NULL, lease_until = NULL \
         WHERE crisis_id = ? AND kind IN (?, ?, ?) AND state IN ('pending', 'retrying')",
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
         VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
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

/// A transition's follow-ups, in its transaction.
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

/// A batch of an announcement made before the all-clear (the initial one,
/// an update, a follow-up of the active phase) written after its crisis
/// was resolved (its plan was still streaming when the all-clear came) is
/// killed at once, in the batch's own transaction.
pub(super) async fn kill_if_resolved(
    tx: &mut Tx<'_>,
    announcement: &Announcement,
) -> Result<(), StoreError> {
    if !made_before_the_all_clear(announcement) {
        return Ok(());
    }
    sqlx::query(
        "UPDATE deliveries SET state = 'dead', last_error = ?1, dead_cause = ?4, finished_at = created_at \
         WHERE announcement_id = ?2 AND state = 'pending' \
         AND EXISTS (SELECT 1 FROM crises WHERE id = ?3 AND status = 'resolved')",
    )
    .bind(CANCELLED_BY_RESOLVE)
    .bind(announcement.id.to_string())
    .bind(announcement.crisis_id.to_string())
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
    for chunk in retried.chunks(ROWS_PER_INSERT) {
        let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "UPDATE deliveries SET state = 'dead', last_error = ",
        );
        query
            .push_bind(CANCELLED_BY_RESOLVE)
            .push(", dead_cause = ")
            .push_bind(DeadCause::Cancelled.as_str())
            .push(", finished_at = ")
            .push_bind(now)
            .push(" WHERE state = 'retrying' AND kind != 'resolved' AND id IN (");
        let mut ids = query.separated(", ");
        for id in chunk {
            ids.push_bind(id.clone());
        }
        query.push(
            ") AND EXISTS (SELECT 1 FROM crises WHERE crises.id = deliveries.crisis_id \
             AND crises.status = 'resolved') \
             AND (kind != 'follow_up' OR EXISTS (SELECT 1 FROM announcements a \
             WHERE a.id = deliveries.announcement_id \
             AND json_extract(a.follow_up, '$.phase') = 'active'))",
        );
        query.build().execute(&mut **tx).await?;
    }
    Ok(())
}

#[async_trait]
impl FollowUpStore for SqliteStore {
    async fn follow_ups(&self, crisis: Option<CrisisId>) -> Result<Vec<FollowUp>, StoreError> {
        sqlx::query(
            "SELECT * FROM follow_ups WHERE (?1 IS NULL OR crisis_id = ?1) ORDER BY due_at, rowid",
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
            "SELECT * FROM follow_ups WHERE state = 'pending' AND due_at <= ? \
             ORDER BY due_at, rowid LIMIT ?",
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
            "UPDATE follow_ups SET state = ?, reason = ?, settled_at = ? \
             WHERE id = ? AND state = 'pending'",
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
        let status: Option<String> = sqlx::query_scalar("SELECT status FROM crises WHERE id = ?")
            .bind(crisis.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        if phase == Phase::Active
            && status.as_deref() != Some(Status::Declared.as_str())
            && status.as_deref() != Some(Status::Updated.as_str())
        {
            // Resolved meanwhile (or gone): the all-clear settled them.
            tx.rollback().await?;
            return Ok(());
        }
        sqlx::query(
            "UPDATE follow_ups SET state = 'cancelled', reason = ?, settled_at = ? \
             WHERE crisis_id = ? AND phase = ? AND state = 'pending' AND due_at > ?",
        )
        .bind(reason)
        .bind(millis(after))
        .bind(crisis.to_string())
        .bind(phase.as_str())
        .bind(millis(after))
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
        // The announcement first: the follow-up row refers to it.
        insert_announcement(&mut tx, &announcement, planning.as_ref(), None).await?;
        // The claim: still pending, and (before the all-clear) its crisis
        // not resolved. SQLite runs one writer at a time, so a resolve
        // either came first (nothing is claimed) or comes after (and kills
        // what this writes).
        let claimed = sqlx::query(
            "UPDATE follow_ups SET state = 'sent', announcement_id = ?1, settled_at = ?2 \
             WHERE id = ?3 AND state = 'pending' AND (phase = 'after_resolution' OR EXISTS \
             (SELECT 1 FROM crises WHERE crises.id = follow_ups.crisis_id AND status != 'resolved'))",
        )
        .bind(announcement.id.to_string())
        .bind(millis(announcement.created_at))
        .bind(follow_up.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_deliveries(&mut tx, &announcement, &deliveries).await?;
        tx.commit().await?;
        self.work_due.notify();
        Ok(true)
    }
}
