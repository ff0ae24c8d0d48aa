//! Planning an announcement's subscribers in tasks the service owns, batch
//! by batch, and finishing what a previous run left half-planned.

use std::sync::Arc;

use tracing::info;

use super::{CrisisService, ServiceError, TransitionOutcome, idempotency};
use crate::domain::Crisis;
use crate::outbox::{Announcement, UnfinishedPlan};
use crate::plan::Planner;

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
    ) -> tokio::task::JoinHandle<Result<usize, ServiceError>> {
        let this = self.clone();
        let plan = async move {
            this.write_batches(&planner, &announcement, &completion.crisis, skip)
                .await?;
            this.finish_plan(&announcement, &completion).await
        };
        match &self.fanout {
            Some(fanout) => self.tasks.spawn_on(plan, fanout),
            None => self.tasks.spawn(plan),
        }
    }

    async fn write_batches(
        &self,
        planner: &Planner,
        announcement: &Announcement,
        crisis: &Crisis,
        skip: u64,
    ) -> Result<(), ServiceError> {
        let opt_outs = self.storage.consent.opt_outs().await?;
        let mut stream = planner.stream(
            crisis,
            announcement,
            announcement.created_at,
            &opt_outs,
            skip,
        )?;
        while let Some(batch) = stream.next_batch() {
            self.storage
                .plans
                .append_plan(
                    announcement,
                    &batch.renditions,
                    &batch.deliveries,
                    batch.through,
                )
                .await?;
            // A stop leaves the plan unfinished; the next start resumes it
            // from the last batch written.
            if self.stopping.is_cancelled() {
                return Err(ServiceError::Stopping);
            }
            // Rendering and reading the audience is CPU work: let the
            // dispatcher and the API run between batches.
            tokio::task::yield_now().await;
        }
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
            )
            .await
            .map_err(|e| ServiceError::Planning(e.to_string()))??;
        }
        Ok(plans.len())
    }
}
