//! One path for every transition: declare, update and resolve are checked
//! by the domain, written with everything they cause in one transaction,
//! then shown on the banner and fanned out.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::idempotency::{self, IdempotencyRequest};
use super::planning::Completion;
use super::{CrisisService, ServiceError};
use crate::domain::{
    Actor, AnnouncementKind, AudienceSelection, Crisis, CrisisEvent, CrisisId, CrisisUpdate,
    Declaration, DomainError, Kind, Resolution,
};
use crate::outbox::{
    Announcement, DuplicateGuard, SourceLink, SourceLinkChange, StoreError, TransitionWrite,
};
use crate::plan::Planner;

/// What a flag source asks of a crisis.
#[derive(Debug, Clone)]
pub enum Transition {
    Declare(Declaration),
    /// A declaration under an id chosen before: a webhook's held or
    /// proposed crisis keeps the id it was shown with.
    DeclareAs(CrisisId, Declaration),
    Update(CrisisId, CrisisUpdate),
    /// The all-clear, with an optional closing message.
    Resolve(CrisisId, Resolution),
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
    /// Set when the subscribers could not be planned yet (the audience
    /// file unreadable, the store unable to write): why. The transition is
    /// stored and announced on the banner; planning is retried in the
    /// daemon with backoff until it succeeds, and `deliveries` counts only
    /// what was written so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planning_pending: Option<String>,
}

/// A transition applied now, or the stored answer to the first request
/// with the same Idempotency-Key, replayed as it was given.
#[derive(Debug, Clone)]
// One per transition, moved once to its answer: boxing the larger
// variant (a crisis with its selection) would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Applied {
    New(TransitionOutcome),
    Replayed { status: u16, body: String },
}

/// A crisis as a transition leaves it, and what it was before.
struct Change {
    crisis: Crisis,
    announcement: AnnouncementKind,
    /// The version and kind it had, for a crisis that existed before.
    before: Option<(u32, Kind)>,
    /// See `TransitionWrite::unless_duplicate`.
    unless_duplicate: Option<DuplicateGuard>,
}

impl CrisisService {
    pub async fn declare(
        self: &Arc<Self>,
        declaration: Declaration,
        ctx: TransitionContext,
    ) -> Result<Applied, ServiceError> {
        self.apply(Transition::Declare(declaration), ctx).await
    }

    pub async fn declare_as(
        self: &Arc<Self>,
        id: CrisisId,
        declaration: Declaration,
        ctx: TransitionContext,
    ) -> Result<Applied, ServiceError> {
        self.apply(Transition::DeclareAs(id, declaration), ctx)
            .await
    }

    pub async fn update(
        self: &Arc<Self>,
        id: CrisisId,
        update: CrisisUpdate,
        ctx: TransitionContext,
    ) -> Result<Applied, ServiceError> {
        self.apply(Transition::Update(id, update), ctx).await
    }

    /// An update that changes the stored crisis, the banner and the page
    /// but messages no one: a webhook's change its hook does not count as
    /// noteworthy (`notify_on`). The audit trail records it as any update.
    pub async fn update_quietly(
        self: &Arc<Self>,
        id: CrisisId,
        update: CrisisUpdate,
        ctx: TransitionContext,
    ) -> Result<Applied, ServiceError> {
        self.apply_sending(Transition::Update(id, update), ctx, false)
            .await
    }

    pub async fn resolve(
        self: &Arc<Self>,
        id: CrisisId,
        message: Option<String>,
        ctx: TransitionContext,
    ) -> Result<Applied, ServiceError> {
        self.resolve_with(id, Resolution::from(message), ctx).await
    }

    /// The all-clear with its message in other locales too.
    pub async fn resolve_with(
        self: &Arc<Self>,
        id: CrisisId,
        resolution: Resolution,
        ctx: TransitionContext,
    ) -> Result<Applied, ServiceError> {
        self.apply(Transition::Resolve(id, resolution), ctx).await
    }

    /// Applies a transition end to end: a repeated Idempotency-Key gets its
    /// stored answer; otherwise the domain checks the change, and it is
    /// written, shown and fanned out.
    pub async fn apply(
        self: &Arc<Self>,
        transition: Transition,
        ctx: TransitionContext,
    ) -> Result<Applied, ServiceError> {
        self.apply_sending(transition, ctx, true).await
    }

    /// `apply`; with `send` false the announcement is recorded with no
    /// deliveries at all.
    async fn apply_sending(
        self: &Arc<Self>,
        transition: Transition,
        ctx: TransitionContext,
        send: bool,
    ) -> Result<Applied, ServiceError> {
        if let Some(request) = &ctx.idempotency
            && let Some(replayed) = self.replay(request).await?
        {
            return Ok(replayed);
        }
        // While the store's writes fail (a full disk), a transition is
        // refused before anything is written, at once, rather than after
        // a wait and half-way through its plan.
        if let Some(why) = self.storage.ledger.write_fault() {
            return Err(StoreError::WriteFailing(why).into());
        }
        let guard = ctx
            .source
            .is_none()
            .then(|| self.duplicate_guard(&transition))
            .flatten();
        let mut change = self.change(transition).await?;
        change.unless_duplicate = guard;
        self.commit(change, ctx, send).await
    }

    /// A person's declaration is refused, naming the crisis, when an
    /// active crisis of the same kind and title was declared within the
    /// window (two banners, everyone messaged twice); the store checks it
    /// inside the write. Sources (flag file, webhooks) are tied to their
    /// incident by a source link already.
    fn duplicate_guard(&self, transition: &Transition) -> Option<DuplicateGuard> {
        let Transition::Declare(declaration) = transition else {
            return None;
        };
        if declaration.separate || self.duplicate_window.is_zero() {
            return None;
        }
        let window =
            chrono::Duration::from_std(self.duplicate_window).unwrap_or(chrono::Duration::MAX);
        Some(DuplicateGuard {
            kind: declaration.kind,
            title: declaration.title.clone(),
            since: self
                .now()
                .checked_sub_signed(window)
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        })
    }

    /// The crisis after the transition, as the domain allows it.
    async fn change(&self, transition: Transition) -> Result<Change, ServiceError> {
        let now = self.now();
        let declared = |crisis| Change {
            crisis,
            announcement: AnnouncementKind::Initial,
            before: None,
            unless_duplicate: None,
        };
        if let Transition::Declare(declaration) | Transition::DeclareAs(_, declaration) =
            &transition
            && declaration.drill
            && self.inputs.load().drill_audience.count == 0
        {
            return Err(DomainError::NoDrillAudience.into());
        }
        self.check_selection(&transition).await?;
        Ok(match transition {
            Transition::Declare(declaration) => declared(Crisis::declare(declaration, now)?),
            Transition::DeclareAs(id, declaration) => {
                let mut crisis = Crisis::declare(declaration, now)?;
                crisis.id = id;
                declared(crisis)
            }
            Transition::Update(id, update) => {
                let mut crisis = self.existing(id).await?;
                let before = (crisis.version, crisis.kind);
                crisis.apply_update(update, now)?;
                Change {
                    crisis,
                    announcement: AnnouncementKind::Update,
                    before: Some(before),
                    unless_duplicate: None,
                }
            }
            Transition::Resolve(id, resolution) => {
                let mut crisis = self.existing(id).await?;
                let before = (crisis.version, crisis.kind);
                crisis.resolve_with(resolution, now)?;
                Change {
                    crisis,
                    announcement: AnnouncementKind::Resolved,
                    before: Some(before),
                    unless_duplicate: None,
                }
            }
        })
    }

    /// A declaration's or update's audience and channels, checked against
    /// the config and the audience file it would be planned from.
    async fn check_selection(&self, transition: &Transition) -> Result<(), ServiceError> {
        let inputs = self.inputs.load();
        let (drill, audience, channels) = match transition {
            Transition::Declare(d) | Transition::DeclareAs(_, d) => {
                (d.drill, Some(&d.audience), Some(&d.channels))
            }
            Transition::Update(id, update) => {
                if update.audience.is_none() && update.channels.is_none() {
                    return Ok(());
                }
                let drill = self.existing(*id).await?.drill;
                (drill, update.audience.as_ref(), update.channels.as_ref())
            }
            Transition::Resolve(..) => return Ok(()),
        };
        let readers = if drill {
            &inputs.drill_audience
        } else {
            &inputs.audience
        };
        inputs
            .check_selection(
                readers,
                audience.unwrap_or(&AudienceSelection::default()),
                channels.map_or(&[][..], Vec::as_slice),
            )
            .map_err(ServiceError::Selection)
    }

    pub(super) async fn existing(&self, id: CrisisId) -> Result<Crisis, ServiceError> {
        self.storage
            .crises
            .crisis(id)
            .await?
            .ok_or(ServiceError::NotFound(id))
    }

    /// Writes the change with its announcement (the store wakes the
    /// dispatcher), then lights the banner, wakes the scheduler, and plans
    /// the subscribers.
    async fn commit(
        self: &Arc<Self>,
        change: Change,
        ctx: TransitionContext,
        send: bool,
    ) -> Result<Applied, ServiceError> {
        let crisis = change.crisis.clone();
        let follow_ups = self.follow_up_change(&crisis, change.before.map(|(_, kind)| kind));
        let scheduled = !follow_ups.schedule.is_empty();
        let planner = self.planner();
        let (announcement, mut deliveries) =
            planner.start(&crisis, change.announcement, crisis.updated_at);
        if !send {
            deliveries.clear();
        }
        let planning = send && planner.reaches_subscribers(&crisis);
        let mut outcome = TransitionOutcome {
            crisis: crisis.clone(),
            announcement: change.announcement,
            deliveries: deliveries.len(),
            planning_pending: None,
        };
        let write = TransitionWrite {
            crisis: crisis.clone(),
            previous_version: change.before.map(|(version, _)| version),
            event: event(&crisis, &ctx.actor),
            announcement: announcement.clone(),
            deliveries,
            planning: planning.then(|| self.plan_lease()),
            // While subscribers are still being planned the key is held "in
            // progress"; its answer is stored when the plan is complete.
            idempotency: ctx
                .idempotency
                .as_ref()
                .map(|request| idempotency::record(request, &outcome, planning))
                .transpose()?,
            source_link: ctx
                .source
                .as_ref()
                .map(|source| source_link(source, &crisis)),
            follow_ups,
            unless_duplicate: change.unless_duplicate,
        };
        if let Some(replayed) = self.write(write, &ctx).await? {
            return Ok(replayed);
        }
        self.banner.apply(&crisis);
        if let Some(publisher) = &self.publisher {
            publisher.changed();
        }
        if scheduled {
            self.schedule_wake.notify_one();
        }
        if planning {
            match self
                .plan_subscribers(planner, announcement, crisis.clone(), &ctx)
                .await?
            {
                PlanProgress::Done(total) => outcome.deliveries = total,
                PlanProgress::Pending(why) => outcome.planning_pending = Some(why),
            }
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

    /// Records the transition. A concurrent request with the same key may
    /// have won the race (this write then fails on the key or on the crisis
    /// version): the answer is then the one it got.
    async fn write(
        &self,
        write: TransitionWrite,
        ctx: &TransitionContext,
    ) -> Result<Option<Applied>, ServiceError> {
        let Err(err) = self.storage.crises.record_transition(write).await else {
            return Ok(None);
        };
        if let Some(request) = &ctx.idempotency
            && matches!(
                err,
                StoreError::IdempotencyKeyTaken | StoreError::Conflict(_)
            )
            && let Some(replayed) = self.replay(request).await?
        {
            return Ok(Some(replayed));
        }
        Err(match err {
            StoreError::IdempotencyKeyTaken => ServiceError::IdempotencyMismatch,
            StoreError::Duplicate { existing, title } => {
                ServiceError::Duplicate { existing, title }
            }
            other => other.into(),
        })
    }

    /// Plans the subscribers in a task the service owns: a client that
    /// hangs up must not stop the fan-out half-way, nor keep its
    /// Idempotency-Key open. Returns the announcement's deliveries, or,
    /// when planning has to wait (see `PendingPlans`), why: the task goes
    /// on retrying after the answer.
    async fn plan_subscribers(
        self: &Arc<Self>,
        planner: Planner,
        announcement: Announcement,
        crisis: Crisis,
        ctx: &TransitionContext,
    ) -> Result<PlanProgress, ServiceError> {
        let completion = Completion {
            idempotency: ctx
                .idempotency
                .as_ref()
                .map(|r| (r.scope.clone(), r.key.clone())),
            crisis,
        };
        let (first_wait, waiting) = tokio::sync::oneshot::channel();
        let plan = self.spawn_plan(planner, announcement, 0, completion, Some(first_wait));
        tokio::select! {
            done = plan => match done.map_err(|e| ServiceError::Planning(e.to_string()))? {
                // Only when this daemon stalled past its planning lease.
                Err(ServiceError::Store(StoreError::PlanTaken)) => Ok(PlanProgress::Pending(
                    StoreError::PlanTaken.to_string(),
                )),
                done => done.map(PlanProgress::Done),
            },
            Ok(why) = waiting => Ok(PlanProgress::Pending(why)),
        }
    }
}

/// How far a transition's plan got before its answer.
enum PlanProgress {
    /// Complete, with the announcement's deliveries.
    Done(usize),
    /// Waiting to be retried, and why.
    Pending(String),
}

/// The audit trail's entry for a transition.
fn event(crisis: &Crisis, actor: &Actor) -> CrisisEvent {
    CrisisEvent {
        crisis_id: crisis.id,
        kind: crate::domain::EventKind::of(crisis.status),
        status: crisis.status,
        actor: actor.clone(),
        message: crisis.last_message.clone(),
        at: crisis.updated_at,
    }
}

/// Ties an active crisis to its source incident; the all-clear unties it.
fn source_link(source: &SourceRef, crisis: &Crisis) -> SourceLinkChange {
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
}
