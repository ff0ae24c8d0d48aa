//! The crisis service applies transitions: it checks them, plans the
//! announcement, writes everything in one transaction, then lights the
//! banner and wakes the dispatcher.

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::{
    Actor, AnnouncementKind, Crisis, CrisisEvent, CrisisId, CrisisUpdate, Declaration, DomainError,
};
use crate::banner::Banner;
use crate::clock::Clock;
use crate::dispatch::Wake;
use crate::outbox::{
    IdempotencyRecord, SourceLink, SourceLinkChange, Store, StoreError, TransitionWrite,
};
use crate::plan::Planner;

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
    planner: Planner,
    banner: Arc<Banner>,
    wake: Wake,
    clock: Arc<dyn Clock>,
}

pub const STATUS_CREATED: u16 = 201;
pub const STATUS_OK: u16 = 200;

impl CrisisService {
    pub fn new(
        store: Arc<dyn Store>,
        planner: Planner,
        banner: Arc<Banner>,
        wake: Wake,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            planner,
            banner,
            wake,
            clock,
        }
    }

    /// The store keeps milliseconds; so does every time this service hands
    /// out, so an answer reads the same before and after a restart.
    fn now(&self) -> DateTime<Utc> {
        self.clock.now().trunc_subsecs(3)
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
        &self,
        declaration: Declaration,
        ctx: TransitionContext,
    ) -> Result<Applied, ServiceError> {
        if let Some(request) = &ctx.idempotency
            && let Some(replayed) = self.replay(request).await?
        {
            return Ok(replayed);
        }
        let crisis = Crisis::declare(declaration, self.now())?;
        self.commit(crisis, None, AnnouncementKind::Initial, STATUS_CREATED, ctx)
            .await
    }

    pub async fn update(
        &self,
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
        crisis.apply_update(update, self.now())?;
        self.commit(
            crisis,
            Some(previous),
            AnnouncementKind::Update,
            STATUS_OK,
            ctx,
        )
        .await
    }

    pub async fn resolve(
        &self,
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
        crisis.resolve(message, self.now())?;
        self.commit(
            crisis,
            Some(previous),
            AnnouncementKind::Resolved,
            STATUS_OK,
            ctx,
        )
        .await
    }

    async fn commit(
        &self,
        crisis: Crisis,
        previous_version: Option<u32>,
        kind: AnnouncementKind,
        status: u16,
        ctx: TransitionContext,
    ) -> Result<Applied, ServiceError> {
        let now = crisis.updated_at;
        let opt_outs = self.store.opt_outs().await?;
        let (announcement, deliveries) = self.planner.plan(&crisis, kind, now, &opt_outs);
        let outcome = TransitionOutcome {
            crisis: crisis.clone(),
            announcement: kind,
            deliveries: deliveries.len(),
        };
        let idempotency = match &ctx.idempotency {
            Some(request) => Some(IdempotencyRecord {
                scope: request.scope.clone(),
                key: request.key.clone(),
                fingerprint: request.fingerprint.clone(),
                status,
                body: serde_json::to_string(&outcome)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            }),
            None => None,
        };
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
            announcement,
            deliveries,
            idempotency,
            source_link,
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
}
