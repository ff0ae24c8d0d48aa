//! The crisis service applies transitions: it checks them, plans the
//! announcement, writes everything in one transaction, then lights the
//! banner and wakes the dispatcher.

mod follow_ups;
mod scheduler;

pub use scheduler::Scheduler;

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::banner::Banner;
use crate::clock::Clock;
use crate::dispatch::Wake;
use crate::domain::follow_up::{FollowUpChange, FollowUps};
use crate::domain::{
    Actor, AnnouncementKind, Crisis, CrisisEvent, CrisisId, CrisisUpdate, Declaration, DomainError,
};
use crate::outbox::{
    Announcement, IdempotencyRecord, SourceLink, SourceLinkChange, Store, StoreError,
    TransitionWrite, UnfinishedPlan,
};
use crate::plan::{Planner, SharedInputs};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("no crisis with id {0}")]
    NotFound(CrisisId),
    #[error("this Idempotency-Key was already used for a different request; use a new key")]
    IdempotencyMismatch,
    #[error(
        "crisis {0} was changed by someone else at the same moment; look at it again and retry"
    )]
    Conflict(CrisisId),
    #[error("a request with this Idempotency-Key is still being carried out; retry in a moment")]
    InProgress,
    #[error(transparent)]
    Audience(#[from] crate::domain::audience::AudienceError),
    #[error("planning the deliveries failed: {0}")]
    Planning(String),
    #[error("the daemon is stopping; the rest of this fan-out resumes when it starts again")]
    Stopping,
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ServiceError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(id) => ServiceError::Conflict(id),
            other => ServiceError::Store(other),
        }
    }
}

/// An Idempotency-Key and what identifies the request it came with.
#[derive(Debug, Clone)]
pub struct IdempotencyRequest {
    pub scope: String,
    pub key: String,
    pub fingerprint: String,
}

/// An outside source's incident that a transition should be tied to.
#[derive(Debug, Clone)]
pub struct SourceRef {
    pub source: String,
    pub external_id: String,
    pub fingerprint: String,
}

/// Who asks, and what to record beside the transition.
#[derive(Debug, Clone)]
pub struct TransitionContext {
    pub actor: Actor,
    pub idempotency: Option<IdempotencyRequest>,
    /// Tie the crisis to this source incident (kept on declare and update,
    /// removed on resolve).
    pub source: Option<SourceRef>,
}

impl TransitionContext {
    pub fn by(actor: Actor) -> Self {
        Self {
            actor,
            idempotency: None,
            source: None,
        }
    }
}

/// The result of a transition; also the API's response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitionOutcome {
    pub crisis: Crisis,
    pub announcement: AnnouncementKind,
    /// Deliveries written to the outbox for this announcement.
    pub deliveries: usize,
}

/// A transition applied now, or the stored response of the first request
/// with the same Idempotency-Key.
#[derive(Debug, Clone)]
pub enum Applied {
    New(TransitionOutcome),
    Replayed { status: u16, body: String },
}

pub struct CrisisService {
    store: Arc<dyn Store>,
    /// What plans read; a reload swaps it, and each plan keeps the
    /// snapshot it started with.
    inputs: SharedInputs,
    banner: Arc<Banner>,
    wake: Wake,
    clock: Arc<dyn Clock>,
    /// Plans in progress, owned here so a stop can wait for them.
    tasks: TaskTracker,
    /// Where plans run: the fan-out runtime, when there is one.
    fanout: Option<tokio::runtime::Handle>,
    stopping: CancellationToken,
    /// Follow-up plans, when configured.
    follow_ups: Option<Arc<FollowUps>>,
    /// Wakes the scheduler when a transition stored new follow-ups.
    schedule_wake: Arc<tokio::sync::Notify>,
}

/// What to record when a streamed plan is complete: the answer to the
/// request that caused it, for its Idempotency-Key.
struct Completion {
    idempotency: Option<(String, String)>,
    status: u16,
    crisis: Crisis,
}

/// The status of an Idempotency-Key whose request is still being carried
/// out.
const IN_PROGRESS: u16 = 0;

pub const STATUS_CREATED: u16 = 201;
pub const STATUS_OK: u16 = 200;

impl CrisisService {
    pub fn new(
        store: Arc<dyn Store>,
        inputs: SharedInputs,
        banner: Arc<Banner>,
        wake: Wake,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            inputs,
            banner,
            wake,
            clock,
            tasks: TaskTracker::new(),
            fanout: None,
            stopping: CancellationToken::new(),
            follow_ups: None,
            schedule_wake: Arc::default(),
        }
    }

    /// Runs plans on `fanout` (see `crate::background`) rather than on the
    /// runtime of the request that caused them.
    pub fn plan_on(mut self, fanout: tokio::runtime::Handle) -> Self {
        self.fanout = Some(fanout);
        self
    }

    /// The store keeps milliseconds; so does every time this service hands
    /// out, so an answer reads the same before and after a restart.
    fn now(&self) -> DateTime<Utc> {
        self.clock.now().trunc_subsecs(3)
    }

    /// A planner on the inputs as they are now.
    fn planner(&self) -> Planner {
        let planner = Planner::new(self.inputs.load_full());
        match &self.follow_ups {
            Some(follow_ups) => planner.with_follow_ups(follow_ups.clone()),
            None => planner,
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    async fn replay(&self, request: &IdempotencyRequest) -> Result<Option<Applied>, ServiceError> {
        match self
            .store
            .idempotent_response(&request.scope, &request.key)
            .await?
        {
            Some(record)
                if record.fingerprint == request.fingerprint && record.status == IN_PROGRESS =>
            {
                Err(ServiceError::InProgress)
            }
            Some(record) if record.fingerprint == request.fingerprint => {
                Ok(Some(Applied::Replayed {
                    status: record.status,
                    body: record.body,
                }))
            }
            Some(_) => Err(ServiceError::IdempotencyMismatch),
            None => Ok(None),
        }
    }

    pub async fn declare(
        self: &Arc<Self>,
        declaration: Declaration,
        ctx: TransitionContext,
    ) -> Result<Applied, ServiceError> {
        if let Some(request) = &ctx.idempotency
            && let Some(replayed) = self.replay(request).await?
        {
            return Ok(replayed);
        }
        let crisis = Crisis::declare(declaration, self.now())?;
        self.commit_declaration(crisis, ctx).await
    }

    /// Declares with a given id: a webhook's held or proposed crisis keeps
    /// the id it was shown with.
    pub async fn declare_as(
        self: &Arc<Self>,
        id: CrisisId,
        declaration: Declaration,
        ctx: TransitionContext,
    ) -> Result<Applied, ServiceError> {
        let mut crisis = Crisis::declare(declaration, self.now())?;
        crisis.id = id;
        self.commit_declaration(crisis, ctx).await
    }

    async fn commit_declaration(
        self: &Arc<Self>,
        crisis: Crisis,
        ctx: TransitionContext,
    ) -> Result<Applied, ServiceError> {
        let follow_ups = self.follow_up_change(&crisis, None);
        self.commit(
            crisis,
            None,
            AnnouncementKind::Initial,
            STATUS_CREATED,
            ctx,
            follow_ups,
        )
        .await
    }

    pub async fn update(
        self: &Arc<Self>,
        id: CrisisId,
        update: CrisisUpdate,
        ctx: TransitionContext,
    ) -> Result<Applied, ServiceError> {
        if let Some(request) = &ctx.idempotency
            && let Some(replayed) = self.replay(request).await?
        {
            return Ok(replayed);
        }
        let mut crisis = self
            .store
            .crisis(id)
            .await?
            .ok_or(ServiceError::NotFound(id))?;
        let previous = crisis.version;
        let previous_kind = crisis.kind;
        crisis.apply_update(update, self.now())?;
        let follow_ups = self.follow_up_change(&crisis, Some(previous_kind));
        self.commit(
            crisis,
            Some(previous),
            AnnouncementKind::Update,
            STATUS_OK,
            ctx,
            follow_ups,
        )
        .await
    }

    pub async fn resolve(
        self: &Arc<Self>,
        id: CrisisId,
        message: Option<String>,
        ctx: TransitionContext,
    ) -> Result<Applied, ServiceError> {
        if let Some(request) = &ctx.idempotency
            && let Some(replayed) = self.replay(request).await?
        {
            return Ok(replayed);
        }
        let mut crisis = self
            .store
            .crisis(id)
            .await?
            .ok_or(ServiceError::NotFound(id))?;
        let previous = crisis.version;
        let previous_kind = crisis.kind;
        crisis.resolve(message, self.now())?;
        let follow_ups = self.follow_up_change(&crisis, Some(previous_kind));
        self.commit(
            crisis,
            Some(previous),
            AnnouncementKind::Resolved,
            STATUS_OK,
            ctx,
            follow_ups,
        )
        .await
    }

    async fn commit(
        self: &Arc<Self>,
        crisis: Crisis,
        previous_version: Option<u32>,
        kind: AnnouncementKind,
        status: u16,
        ctx: TransitionContext,
        follow_ups: FollowUpChange,
    ) -> Result<Applied, ServiceError> {
        let now = crisis.updated_at;
        let scheduled = !follow_ups.schedule.is_empty();
        let planner = self.planner();
        let (announcement, deliveries) = planner.start(&crisis, kind, now);
        let planning = planner.reaches_subscribers();
        let mut outcome = TransitionOutcome {
            crisis: crisis.clone(),
            announcement: kind,
            deliveries: deliveries.len(),
        };
        let record = |outcome: &TransitionOutcome,
                      status: u16|
         -> Result<Option<IdempotencyRecord>, ServiceError> {
            let Some(request) = &ctx.idempotency else {
                return Ok(None);
            };
            Ok(Some(IdempotencyRecord {
                scope: request.scope.clone(),
                key: request.key.clone(),
                fingerprint: request.fingerprint.clone(),
                status,
                body: if status == IN_PROGRESS {
                    String::new()
                } else {
                    serde_json::to_string(outcome)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?
                },
            }))
        };
        // While subscribers are still being planned the key is held "in
        // progress"; its answer is stored when the plan is complete.
        let idempotency = record(&outcome, if planning { IN_PROGRESS } else { status })?;
        let source_link = ctx.source.as_ref().map(|source| {
            if crisis.is_active() {
                SourceLinkChange::Set(SourceLink {
                    source: source.source.clone(),
                    external_id: source.external_id.clone(),
                    crisis_id: crisis.id,
                    fingerprint: source.fingerprint.clone(),
                })
            } else {
                SourceLinkChange::Remove {
                    source: source.source.clone(),
                    external_id: source.external_id.clone(),
                }
            }
        });
        let event = CrisisEvent {
            crisis_id: crisis.id,
            status: crisis.status,
            actor: ctx.actor.clone(),
            message: crisis.last_message.clone(),
            at: now,
        };
        let write = TransitionWrite {
            crisis: crisis.clone(),
            previous_version,
            event,
            announcement: announcement.clone(),
            deliveries,
            planning,
            idempotency,
            source_link,
            follow_ups,
        };
        if let Err(err) = self.store.record_transition(write).await {
            // A concurrent request with the same key may have won the race
            // (this write then fails on the key or on the crisis version):
            // answer as it did.
            if let Some(request) = &ctx.idempotency
                && matches!(
                    err,
                    StoreError::IdempotencyKeyTaken | StoreError::Conflict(_)
                )
                && let Some(replayed) = self.replay(request).await?
            {
                return Ok(replayed);
            }
            return Err(match err {
                StoreError::IdempotencyKeyTaken => ServiceError::IdempotencyMismatch,
                other => other.into(),
            });
        }
        self.banner.apply(&crisis);
        self.wake.notify();
        if scheduled {
            self.schedule_wake.notify_one();
        }
        if planning {
            // In its own task: a client that hangs up must not stop the
            // fan-out half-way, nor keep its Idempotency-Key open.
            let completion = Completion {
                idempotency: ctx
                    .idempotency
                    .as_ref()
                    .map(|r| (r.scope.clone(), r.key.clone())),
                status,
                crisis: crisis.clone(),
            };
            let plan = self.spawn_plan(planner, announcement.clone(), 0, completion);
            outcome.deliveries = plan
                .await
                .map_err(|e| ServiceError::Planning(e.to_string()))??;
        }
        info!(
            crisis_id = %crisis.id,
            status = %crisis.status,
            severity = %crisis.severity,
            actor = %ctx.actor,
            deliveries = outcome.deliveries,
            "Crisis {}.", crisis.status
        );
        Ok(Applied::New(outcome))
    }

    /// Plans an announcement's per-subscriber deliveries from subscriber
    /// `skip` on, batch by batch, waking the dispatcher after each so the
    /// first messages go out while the rest are still being written.
    fn spawn_plan(
        self: &Arc<Self>,
        planner: Planner,
        announcement: Announcement,
        skip: u64,
        completion: Completion,
    ) -> tokio::task::JoinHandle<Result<usize, ServiceError>> {
        let this = self.clone();
        let plan = async move {
            let crisis = &completion.crisis;
            let opt_outs = this.store.opt_outs().await?;
            let mut stream = planner.stream(
                crisis,
                &announcement,
                announcement.created_at,
                &opt_outs,
                skip,
            )?;
            while let Some(batch) = stream.next_batch() {
                this.store
                    .append_plan(
                        &announcement,
                        &batch.renditions,
                        &batch.deliveries,
                        batch.through,
                    )
                    .await?;
                this.wake.notify();
                // A stop leaves the plan unfinished; the next start resumes
                // it from the last batch written.
                if this.stopping.is_cancelled() {
                    return Err(ServiceError::Stopping);
                }
                // Rendering and reading the audience is CPU work: let the
                // dispatcher and the API run between batches.
                tokio::task::yield_now().await;
            }
            // Counted in the store, so a resumed plan reports its whole
            // announcement, not only what this run wrote.
            let total = usize::try_from(this.store.announcement_deliveries(announcement.id).await?)
                .unwrap_or(usize::MAX);
            let record = match &completion.idempotency {
                Some((scope, key)) => {
                    let outcome = TransitionOutcome {
                        crisis: crisis.clone(),
                        announcement: announcement.kind,
                        deliveries: total,
                    };
                    Some(IdempotencyRecord {
                        scope: scope.clone(),
                        key: key.clone(),
                        fingerprint: String::new(),
                        status: completion.status,
                        body: serde_json::to_string(&outcome)
                            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    })
                }
                None => None,
            };
            this.store.finish_plan(announcement.id, record).await?;
            Ok(total)
        };
        match &self.fanout {
            Some(fanout) => self.tasks.spawn_on(plan, fanout),
            None => self.tasks.spawn(plan),
        }
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
            let Some(crisis) = self.store.crisis(announcement.crisis_id).await? else {
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
                status: if announcement.kind == AnnouncementKind::Initial {
                    STATUS_CREATED
                } else {
                    STATUS_OK
                },
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

    /// The token that stops planning at the next batch; cancelled as soon
    /// as the daemon is asked to stop.
    pub fn stopping(&self) -> CancellationToken {
        self.stopping.clone()
    }

    /// Stops planning at the next batch and waits for plans in progress.
    pub async fn stop(&self) {
        self.stopping.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}
