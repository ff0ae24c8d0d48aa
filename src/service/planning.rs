//! Planning an announcement's subscribers in tasks the service owns, batch
//! by batch, and finishing what a previous run left half-planned.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::{CrisisService, ServiceError, TransitionOutcome, idempotency};
use crate::domain::{AnnouncementId, AnnouncementKind, Crisis, CrisisId};
use crate::outbox::{Announcement, UnfinishedPlan};
use crate::plan::Planner;

/// First wait before a plan that could not go on is tried again; it
/// doubles up to `PLAN_RETRY_MAX`.
const PLAN_RETRY_FIRST: Duration = Duration::from_secs(1);
const PLAN_RETRY_MAX: Duration = Duration::from_secs(30);

/// An announcement whose subscribers could not all be planned yet and
/// that this process keeps retrying: shown by `/readyz` and `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingPlan {
    pub crisis_id: CrisisId,
    pub announcement: AnnouncementKind,
    /// The last failure, as an operator can act on it.
    pub reason: String,
    pub since: DateTime<Utc>,
    /// Tries that failed so far.
    pub failures: u32,
}

/// The plans waiting to be retried, by announcement.
#[derive(Debug, Default)]
pub struct PendingPlans(Mutex<BTreeMap<AnnouncementId, PendingPlan>>);

impl PendingPlans {
    fn failed(&self, announcement: &Announcement, reason: String, at: DateTime<Utc>) {
        let mut plans = crate::sync::lock(&self.0);
        let plan = plans.entry(announcement.id).or_insert_with(|| PendingPlan {
            crisis_id: announcement.crisis_id,
            announcement: announcement.kind,
            reason: String::new(),
            since: at,
            failures: 0,
        });
        plan.reason = reason;
        plan.failures += 1;
    }

    fn done(&self, announcement: AnnouncementId) {
        crate::sync::lock(&self.0).remove(&announcement);
    }

    pub fn list(&self) -> Vec<PendingPlan> {
        crate::sync::lock(&self.0).values().cloned().collect()
    }
}

/// Whether a plan that failed so may succeed later without anyone
/// changing the daemon: the audience file being replaced (missing or
/// unreadable for a moment), the store unable to write (a full disk).
fn worth_retrying(err: &ServiceError) -> bool {
    match err {
        ServiceError::Audience(_) => true,
        ServiceError::Store(store) => store.unavailable().is_some(),
        _ => false,
    }
}

/// What to record when a streamed plan is complete: the answer to the
/// request that caused it, for its Idempotency-Key.
pub(super) struct Completion {
    pub idempotency: Option<(String, String)>,
    pub crisis: Crisis,
}

impl CrisisService {
    /// Plans an announcement's per-subscriber deliveries from subscriber
    /// `skip` on, batch by batch; each batch stored wakes the dispatcher, so
    /// the first messages go out while the rest are still being written.
    pub(super) fn spawn_plan(
        self: &Arc<Self>,
        planner: Planner,
        announcement: Announcement,
        skip: u64,
        completion: Completion,
        first_wait: Option<oneshot::Sender<String>>,
    ) -> tokio::task::JoinHandle<Result<usize, ServiceError>> {
        let this = self.clone();
        let plan = async move {
            this.plan_until_done(
                &planner,
                &announcement,
                &completion.crisis,
                skip,
                first_wait,
            )
            .await?;
            this.finish_plan(&announcement, &completion).await
        };
        match &self.fanout {
            Some(fanout) => self.tasks.spawn_on(plan, fanout),
            None => self.tasks.spawn(plan),
        }
    }

    /// Writes the batches from subscriber `skip` on; a failure worth
    /// retrying is retried from the last batch written, with backoff, until
    /// the plan is written or the daemon stops (the plan then resumes at
    /// the next start). The first such failure is sent on `first_wait`, so
    /// the request that caused the plan can answer.
    async fn plan_until_done(
        &self,
        planner: &Planner,
        announcement: &Announcement,
        crisis: &Crisis,
        mut skip: u64,
        mut first_wait: Option<oneshot::Sender<String>>,
    ) -> Result<(), ServiceError> {
        let mut wait = PLAN_RETRY_FIRST;
        loop {
            let result = self
                .write_batches(planner, announcement, crisis, &mut skip)
                .await;
            let err = match result {
                Err(err) if worth_retrying(&err) => err,
                other => {
                    self.pending_plans.done(announcement.id);
                    return other;
                }
            };
            let reason = format!(
                "{err}; planning is retried every {} at most until it succeeds",
                humantime::format_duration(PLAN_RETRY_MAX)
            );
            warn!(crisis_id = %crisis.id, announcement = %announcement.kind, planned = skip,
                error = %err, "Cannot plan the subscribers now; retrying.");
            self.pending_plans
                .failed(announcement, reason.clone(), self.now());
            if let Some(waiting) = first_wait.take() {
                let _ = waiting.send(reason);
            }
            tokio::select! {
                () = self.stopping.cancelled() => return Err(ServiceError::Stopping),
                () = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(PLAN_RETRY_MAX);
        }
    }

    async fn write_batches(
        &self,
        planner: &Planner,
        announcement: &Announcement,
        crisis: &Crisis,
        skip: &mut u64,
    ) -> Result<(), ServiceError> {
        let opt_outs = self.storage.consent.opt_outs().await?;
        let bad = self.storage.receipts.bad_addresses().await?;
        let mut stream = planner
            .stream(
                crisis,
                announcement,
                announcement.created_at,
                &opt_outs,
                *skip,
            )?
            .with_bad_addresses(bad);
        let mut bad = (0, 0);
        while let Some(mut batch) = stream.next_batch() {
            bad = (bad.0 + batch.bad_held, bad.1 + batch.bad_only);
            // Before the batch: a fallback must exist whenever its first
            // delivery does.
            self.storage
                .fallbacks
                .hold_fallbacks(&batch.fallbacks, announcement.created_at)
                .await?;
            self.hold_back(crisis, announcement, &mut batch.deliveries)
                .await?;
            self.storage
                .plans
                .append_plan(
                    announcement,
                    &batch.renditions,
                    &batch.deliveries,
                    batch.through,
                )
                .await?;
            *skip = batch.through;
            // A stop leaves the plan unfinished; the next start resumes it
            // from the last batch written.
            if self.stopping.is_cancelled() {
                return Err(ServiceError::Stopping);
            }
            // Rendering and reading the audience is CPU work: let the
            // dispatcher and the API run between batches.
            tokio::task::yield_now().await;
        }
        self.note_bad_points(crisis, announcement, bad).await
    }

    /// The audit line saying how the plan treated contact points marked
    /// bad, when it met any: support staff see why a reader got SMS first,
    /// or a message to an address known to bounce.
    async fn note_bad_points(
        &self,
        crisis: &Crisis,
        announcement: &Announcement,
        (held, only): (u64, u64),
    ) -> Result<(), ServiceError> {
        if held + only == 0 {
            return Ok(());
        }
        let message = format!(
            "Planning the {} message: {held} contact point(s) marked bad by a hard bounce or a \
             permanent SMS failure held behind the reader's other one (sent only if that fails); \
             {only} sent anyway, being all the reader has.",
            announcement.kind
        );
        let event = crate::domain::CrisisEvent {
            crisis_id: crisis.id,
            status: crisis.status,
            actor: crate::domain::Actor::new(crate::domain::ActorSource::Daemon, "planner"),
            message: Some(message),
            at: self.now(),
        };
        self.storage.crises.note(&event).await?;
        Ok(())
    }

    /// Marks the plan complete with the answer for its key. The total is
    /// counted in the store, so a resumed plan reports its whole
    /// announcement, not only what this run wrote.
    async fn finish_plan(
        &self,
        announcement: &Announcement,
        completion: &Completion,
    ) -> Result<usize, ServiceError> {
        let total = usize::try_from(
            self.storage
                .plans
                .announcement_deliveries(announcement.id)
                .await?,
        )
        .unwrap_or(usize::MAX);
        let outcome = TransitionOutcome {
            crisis: completion.crisis.clone(),
            announcement: announcement.kind,
            deliveries: total,
            planning_pending: None,
        };
        let record = completion
            .idempotency
            .as_ref()
            .map(|key| idempotency::completion(key, &outcome))
            .transpose()?;
        self.storage
            .plans
            .finish_plan(announcement.id, record)
            .await?;
        Ok(total)
    }

    /// Finishes plans a previous run left half-written (it stopped or
    /// crashed mid-fan-out): `plans` as found at start, before anything
    /// new could begin. Returns how many were resumed.
    pub async fn resume_unfinished(
        self: &Arc<Self>,
        plans: Vec<UnfinishedPlan>,
    ) -> Result<usize, ServiceError> {
        for plan in &plans {
            let announcement = &plan.announcement;
            let Some(crisis) = self.storage.crises.crisis(announcement.crisis_id).await? else {
                continue;
            };
            info!(
                crisis_id = %crisis.id,
                announcement = %announcement.kind,
                planned = plan.planned_through,
                "Resuming an announcement that was not fully planned."
            );
            let completion = Completion {
                idempotency: plan.idempotency.clone(),
                crisis,
            };
            self.spawn_plan(
                self.planner(),
                announcement.clone(),
                plan.planned_through,
                completion,
                None,
            )
            .await
            .map_err(|e| ServiceError::Planning(e.to_string()))??;
        }
        Ok(plans.len())
    }
}
