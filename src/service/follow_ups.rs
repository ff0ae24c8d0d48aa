//! The crisis service's follow-ups: what a transition schedules or
//! cancels, and sending those that are due as announcements through the
//! same planner and outbox as every other announcement.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use tracing::{info, warn};

use super::planning::Completion;
use super::{CrisisService, ServiceError};
use crate::domain::follow_up::{
    CANCELLED_BY_RESOLVE, FollowUp, FollowUpChange, FollowUpSpec, FollowUpState, FollowUps, Phase,
};
use crate::domain::{Crisis, CrisisId, Kind, Status};
use crate::outbox::{CrisisFilter, FollowUpReplacement, FollowUpStart};

/// Due follow-ups read per query.
const DUE_BATCH: u32 = 100;

impl CrisisService {
    /// Follow-ups scheduled from these plans; the scheduler is woken
    /// through `schedule_wake` when a transition stores new ones.
    pub fn with_follow_ups(mut self, follow_ups: Arc<FollowUps>) -> Self {
        self.follow_ups = Some(follow_ups);
        self
    }

    pub fn follow_up_plans(&self) -> Option<&Arc<FollowUps>> {
        self.follow_ups.as_ref()
    }

    pub fn schedule_wake(&self) -> Arc<tokio::sync::Notify> {
        self.schedule_wake.clone()
    }

    /// What a transition does to the crisis's follow-ups: a declaration
    /// schedules its plan; a change of kind replaces the plan (pending
    /// follow-ups cancelled, the new plan's still to come scheduled, counted
    /// from the declaration); the all-clear schedules the steps after
    /// resolution (the store cancels the pending ones in any case).
    pub(super) fn follow_up_change(
        &self,
        crisis: &Crisis,
        previous_kind: Option<Kind>,
    ) -> FollowUpChange {
        let Some(plans) = &self.follow_ups else {
            return FollowUpChange::default();
        };
        let now = crisis.updated_at;
        match (crisis.status, previous_kind) {
            (Status::Resolved, _) => FollowUpChange {
                cancel: Some(CANCELLED_BY_RESOLVE.to_owned()),
                schedule: plans.schedule(
                    crisis.id,
                    crisis.kind,
                    Phase::AfterResolution,
                    crisis.resolved_at.unwrap_or(now),
                    now,
                ),
            },
            (_, None) => FollowUpChange {
                cancel: None,
                schedule: plans.schedule(
                    crisis.id,
                    crisis.kind,
                    Phase::Active,
                    crisis.declared_at,
                    now,
                ),
            },
            (_, Some(previous)) if previous != crisis.kind => FollowUpChange {
                cancel: Some(format!(
                    "cancelled: the crisis kind changed from {previous} to {}, and with it the plan",
                    crisis.kind
                )),
                // Strictly after now: what the new plan had due before the
                // change is not sent late.
                schedule: plans.schedule(
                    crisis.id,
                    crisis.kind,
                    Phase::Active,
                    crisis.declared_at,
                    now + TimeDelta::milliseconds(1),
                ),
            },
            _ => FollowUpChange::default(),
        }
    }

    /// At start: brings the stored schedules of active crises (and the
    /// pending after-resolution steps of resolved ones) in line with the
    /// plans as configured now. Where the follow-ups still to come differ
    /// from what the plan would schedule, they are cancelled ("the
    /// follow-up plan changed") and the plan's stored instead; those already
    /// due are left to the lateness rule. Returns how many crises changed.
    pub async fn reconcile_follow_ups(self: &Arc<Self>) -> Result<usize, ServiceError> {
        let Some(plans) = self.follow_ups.clone() else {
            return Ok(0);
        };
        let now = self.now();
        let stored = self.storage.follow_ups.follow_ups(None).await?;
        let mut crises = self.storage.crises.crises(CrisisFilter::Active).await?;
        let waiting: BTreeSet<CrisisId> = stored
            .iter()
            .filter(|f| f.state == FollowUpState::Pending && f.spec.phase == Phase::AfterResolution)
            .map(|f| f.crisis_id)
            .collect();
        for id in waiting {
            if let Some(crisis) = self.storage.crises.crisis(id).await?
                && !crisis.is_active()
            {
                crises.push(crisis);
            }
        }
        let key = |spec: &FollowUpSpec, occurrence: u32, due: DateTime<Utc>| {
            (
                serde_json::to_string(spec).unwrap_or_default(),
                occurrence,
                due.timestamp_millis(),
            )
        };
        let mut changed = 0;
        for crisis in crises {
            let (phase, start) = match crisis.resolved_at {
                None => (Phase::Active, crisis.declared_at),
                Some(resolved) => (Phase::AfterResolution, resolved),
            };
            let after = now + TimeDelta::milliseconds(1);
            let wanted = plans.schedule(crisis.id, crisis.kind, phase, start, after);
            let want: BTreeSet<_> = wanted
                .iter()
                .map(|f| key(&f.spec, f.occurrence, f.due_at))
                .collect();
            let have: BTreeSet<_> = stored
                .iter()
                .filter(|f| {
                    f.crisis_id == crisis.id
                        && f.spec.phase == phase
                        && f.state == FollowUpState::Pending
                        && f.due_at >= after
                })
                .map(|f| key(&f.spec, f.occurrence, f.due_at))
                .collect();
            if want == have {
                continue;
            }
            let count = wanted.len();
            self.storage
                .follow_ups
                .replace_follow_ups(FollowUpReplacement {
                    crisis: crisis.id,
                    phase,
                    after: now,
                    reason: "cancelled: the follow-up plan changed".to_owned(),
                    schedule: wanted,
                })
                .await?;
            info!(crisis_id = %crisis.id, follow_ups = count, "Follow-ups rescheduled: the plan changed.");
            changed += 1;
        }
        Ok(changed)
    }

    /// Sends every follow-up due now: each becomes a `follow_up`
    /// announcement, claimed in the store with it in one transaction, so a
    /// restart or a concurrent resolve cannot send it twice or after the
    /// all-clear. One found due later than `max_lateness` (the daemon was
    /// down) is skipped with the reason. Returns when the next one is due.
    pub async fn send_due_follow_ups(
        self: &Arc<Self>,
    ) -> Result<Option<DateTime<Utc>>, ServiceError> {
        let Some(plans) = self.follow_ups.clone() else {
            return Ok(None);
        };
        let now = self.now();
        let max_lateness = TimeDelta::from_std(plans.max_lateness).unwrap_or(TimeDelta::MAX);
        loop {
            let due = self
                .storage
                .follow_ups
                .due_follow_ups(now, DUE_BATCH)
                .await?;
            for follow_up in &due {
                if self.stopping.is_cancelled() {
                    return Err(ServiceError::Stopping);
                }
                self.send_follow_up(follow_up, now, max_lateness, &plans)
                    .await?;
            }
            if due.len() < DUE_BATCH as usize {
                break;
            }
        }
        Ok(self.storage.follow_ups.next_follow_up_at().await?)
    }

    async fn send_follow_up(
        self: &Arc<Self>,
        follow_up: &FollowUp,
        now: DateTime<Utc>,
        max_lateness: TimeDelta,
        plans: &FollowUps,
    ) -> Result<(), ServiceError> {
        let spec = &follow_up.spec;
        let Some(crisis) = self.storage.crises.crisis(follow_up.crisis_id).await? else {
            self.storage
                .follow_ups
                .settle_follow_up(
                    follow_up.id,
                    FollowUpState::Skipped,
                    "skipped: its crisis is not in the store",
                    now,
                )
                .await?;
            return Ok(());
        };
        if spec.phase == Phase::Active && !crisis.is_active() {
            self.storage
                .follow_ups
                .settle_follow_up(
                    follow_up.id,
                    FollowUpState::Cancelled,
                    CANCELLED_BY_RESOLVE,
                    now,
                )
                .await?;
            return Ok(());
        }
        let late = now - follow_up.due_at;
        if late > max_lateness {
            let reason = format!(
                "skipped: due at {}, it could only be sent {} later, more than max_lateness {}",
                follow_up.due_at.with_timezone(&plans.zone).to_rfc3339(),
                humantime::format_duration(late.to_std().unwrap_or_default()),
                humantime::format_duration(plans.max_lateness),
            );
            warn!(crisis_id = %crisis.id, step = %spec.step, occurrence = follow_up.occurrence, %reason, "Follow-up skipped.");
            self.storage
                .follow_ups
                .settle_follow_up(follow_up.id, FollowUpState::Skipped, &reason, now)
                .await?;
            return Ok(());
        }
        let planner = self.planner();
        let (announcement, deliveries) = planner.start_follow_up(&crisis, spec, now);
        let planning = planner.follow_up_reaches_subscribers(&crisis, spec);
        let started = self
            .storage
            .follow_ups
            .start_follow_up(FollowUpStart {
                follow_up: follow_up.id,
                announcement: announcement.clone(),
                deliveries,
                planning: planning.then(|| self.plan_lease()),
            })
            .await?;
        if !started {
            // Resolved or settled meanwhile: nothing was written.
            return Ok(());
        }
        info!(
            crisis_id = %crisis.id,
            plan = %spec.plan,
            step = %spec.step,
            occurrence = follow_up.occurrence,
            topic = %spec.topic,
            "Follow-up sent."
        );
        if planning {
            // Owned by the service's tracker like any plan; a stop leaves
            // it unfinished and the next start resumes it.
            let completion = Completion {
                idempotency: None,
                crisis,
            };
            drop(self.spawn_plan(planner, announcement, 0, completion, None));
        }
        Ok(())
    }
}
