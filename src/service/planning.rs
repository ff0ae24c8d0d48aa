//! Planning an announcement's subscribers in tasks the service owns, batch
//! by batch, and finishing what a previous run left half-planned. Each
//! plan is held by a lease its daemon renews while it writes; a plan
//! whose daemon died is taken over by another once the lease runs out,
//! and resumed from its last batch (each batch is fenced by owner and
//! place, so no reader is planned twice).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{CrisisService, ServiceError, TransitionOutcome, idempotency};
use crate::domain::{AnnouncementId, AnnouncementKind, Crisis, CrisisId};
use crate::outbox::{Announcement, PlanLease, PlanStep, StoreError, UnfinishedPlan};
use crate::plan::Planner;

/// How long a plan stays with its daemon unless renewed: the longest a
/// fan-out waits for another daemon when the one planning it dies.
pub const PLAN_LEASE: Duration = Duration::from_secs(15);
/// How often a planning daemon renews its lease (besides each batch
/// written), well within it.
const PLAN_RENEW_EVERY: Duration = Duration::from_secs(5);
/// How often a daemon on a shared store looks for plans whose lease ran out.
pub const PLAN_TAKEOVER_EVERY: Duration = Duration::from_secs(5);
/// How long a lease renewal may take before it is tried again.
const RENEW_TIMEOUT: Duration = Duration::from_secs(5);

/// A planning lease for `owner` from `now`.
pub fn plan_lease(owner: &str, now: DateTime<Utc>) -> PlanLease {
    PlanLease {
        owner: owner.to_owned(),
        until: now + PLAN_LEASE,
    }
}

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
            let planned = async {
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
            // Whichever ends first: the plan, or the lease found lost (the
            // plan is then dropped at its next await; its batch in progress
            // rolls back, and the fence refuses it had it not).
            let result = tokio::select! {
                result = planned => result,
                lost = this.keep_lease(announcement.id) => Err(lost),
            };
            this.after_plan(&announcement, &result).await;
            result
        };
        match &self.fanout {
            Some(fanout) => self.tasks.spawn_on(plan, fanout),
            None => self.tasks.spawn(plan),
        }
    }

    /// The lease of a plan this daemon writes, from now.
    pub(super) fn plan_lease(&self) -> PlanLease {
        plan_lease(&self.node, self.now())
    }

    /// Renews the plan's lease every `PLAN_RENEW_EVERY` while it is held;
    /// returns once another daemon holds it. A renewal that fails is tried
    /// again: the lease lasts three renewals.
    async fn keep_lease(&self, announcement: AnnouncementId) -> ServiceError {
        loop {
            tokio::time::sleep(PLAN_RENEW_EVERY).await;
            let lease = self.plan_lease();
            let renew = self.storage.plans.renew_plan(announcement, &lease);
            match tokio::time::timeout(RENEW_TIMEOUT, renew).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => return ServiceError::Store(StoreError::PlanTaken),
                Ok(Err(err)) => {
                    warn!(error = %err, "Could not renew a planning lease; trying again.");
                }
                Err(_) => warn!("Renewing a planning lease timed out; trying again."),
            }
        }
    }

    /// What follows a plan's end: a plan another daemon took over is left
    /// to it; one stopped by a stop is handed over at once (its lease
    /// ended), so another daemon on the store need not wait it out.
    async fn after_plan(&self, announcement: &Announcement, result: &Result<usize, ServiceError>) {
        match result {
            Err(ServiceError::Store(StoreError::PlanTaken)) => {
                self.pending_plans.done(announcement.id);
                info!(crisis_id = %announcement.crisis_id, announcement = %announcement.kind,
                    "Another daemon took this plan over; it finishes it.");
            }
            Err(ServiceError::Stopping) => {
                let ended = PlanLease {
                    owner: self.node.clone(),
                    until: DateTime::UNIX_EPOCH,
                };
                let release = self.storage.plans.renew_plan(announcement.id, &ended);
                if !matches!(
                    tokio::time::timeout(RENEW_TIMEOUT, release).await,
                    Ok(Ok(_))
                ) {
                    warn!(crisis_id = %announcement.crisis_id,
                        "Could not hand an unfinished plan over; another daemon takes it once its lease runs out.");
                }
            }
            _ => {}
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
            let lease = self.plan_lease();
            let step = PlanStep {
                lease: &lease,
                from: *skip,
                through: batch.through,
            };
            self.storage
                .plans
                .append_plan(announcement, &batch.renditions, &batch.deliveries, step)
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
            kind: crate::domain::EventKind::Noted,
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
            .finish_plan(announcement.id, &self.node, record)
            .await?;
        Ok(total)
    }

    /// Finishes plans a previous run, or a daemon that died, left
    /// half-written: `plans` as taken for this daemon (at start, before
    /// anything new could begin, or by `take_over_plans`). They run side by
    /// side, each renewing its own lease. Returns how many were resumed.
    pub async fn resume_unfinished(
        self: &Arc<Self>,
        plans: Vec<UnfinishedPlan>,
    ) -> Result<usize, ServiceError> {
        let mut running = Vec::new();
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
            running.push(self.spawn_plan(
                self.planner(),
                announcement.clone(),
                plan.planned_through,
                completion,
                None,
            ));
        }
        let mut first_error = None;
        for plan in running {
            match plan.await {
                Ok(Ok(_) | Err(ServiceError::Store(StoreError::PlanTaken))) => {}
                Ok(Err(err)) => {
                    first_error.get_or_insert(err);
                }
                Err(err) => {
                    first_error.get_or_insert(ServiceError::Planning(err.to_string()));
                }
            }
        }
        first_error.map_or(Ok(plans.len()), Err)
    }

    /// On a store shared with other daemons: every `PLAN_TAKEOVER_EVERY`,
    /// takes the plans whose daemon stopped renewing their lease (it died,
    /// or lost the store) and finishes them, until `stop`.
    pub async fn take_over_plans(self: Arc<Self>, stop: CancellationToken) {
        let mut every = tokio::time::interval(PLAN_TAKEOVER_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = every.tick() => {}
            }
            let now = self.now();
            let lease = self.plan_lease();
            let taking = self.storage.plans.take_plans(&lease, now);
            let plans = match tokio::time::timeout(RENEW_TIMEOUT, taking).await {
                Ok(Ok(plans)) => plans,
                Ok(Err(err)) => {
                    warn!(error = %err, "Could not look for plans to take over.");
                    continue;
                }
                Err(_) => continue,
            };
            if plans.is_empty() {
                continue;
            }
            for plan in &plans {
                warn!(crisis_id = %plan.announcement.crisis_id, announcement = %plan.announcement.kind,
                    planned = plan.planned_through,
                    previous_owner = plan.lease.as_ref().map_or("none", |l| l.owner.as_str()),
                    "Taking over a plan whose daemon stopped renewing its lease.");
            }
            // Plans stop at their next batch on a stop (the service's
            // token), so this wait ends with the daemon.
            match self.resume_unfinished(plans).await {
                Ok(n) => info!(count = n, "Finished plans taken over from another daemon."),
                Err(ServiceError::Stopping) => return,
                Err(err) => warn!(error = %err, "A plan taken over could not be finished."),
            }
        }
    }
}
