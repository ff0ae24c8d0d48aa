//! Corrections: one person sends, to exactly the readers an announcement
//! reached, on the same channels, ahead of every other message, that what
//! they received was sent in error (or an edited text). What of it was
//! still queued is stopped, so nobody gets the original after the
//! correction.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use tracing::info;

use super::idempotency::IdempotencyRequest;
use super::{CrisisService, ServiceError, TransitionContext};
use crate::domain::audience::Audience;
use crate::domain::{AnnouncementId, AnnouncementKind, Crisis, CrisisEvent, CrisisId};
use crate::outbox::{
    Announcement, Correctable, CorrectionWrite, IdempotencyRecord, OriginalDelivery, OriginalState,
    StoreError,
};
use crate::plan::{CorrectionText, Zones};

/// Longest edited correction, per locale.
pub const MAX_CORRECTION_CHARS: usize = 2000;

/// What a correction is asked to do.
#[derive(Debug, Clone)]
pub struct CorrectionRequest {
    /// The announcement corrected; `None`: the newest that reached anyone.
    pub original: Option<AnnouncementId>,
    pub text: CorrectionText,
    /// Sent even though a correction of the crisis went out within
    /// `RECENT_CORRECTION` (otherwise refused: two people correcting at
    /// once would send everyone two corrections).
    pub again: bool,
}

/// How long after a correction another of the same crisis is refused
/// unless the request says it is meant: long enough to cover two people
/// reacting to the same mistake, short enough not to get in the way of a
/// second, different correction later.
pub const RECENT_CORRECTION: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// The answer to a correction; also the API's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorrectionOutcome {
    pub crisis_id: CrisisId,
    pub announcement_id: AnnouncementId,
    /// The announcement it corrects.
    pub original: AnnouncementId,
    /// Corrections queued, by channel.
    pub deliveries: BTreeMap<String, usize>,
    /// Deliveries of the original that were still queued and are not sent.
    pub stopped: usize,
}

/// A correction made now, or the stored answer to its Idempotency-Key.
#[derive(Debug, Clone)]
pub enum Corrected {
    New(CorrectionOutcome),
    Replayed { status: u16, body: String },
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CorrectionError {
    #[error("nothing of this crisis has been sent yet, so there is nothing to correct")]
    NothingSent,
    #[error("announcement {0} is not one of this crisis's that reached anyone")]
    NotCorrectable(AnnouncementId),
    #[error(
        "a correction of this crisis was sent at {} UTC, less than {} minutes ago; to send \
         another as well, say so (API: `\"again\": true`; console: \"Send another \
         correction\")",
        .0.format("%H:%M:%S"),
        RECENT_CORRECTION.num_minutes()
    )]
    CorrectedRecently(chrono::DateTime<chrono::Utc>),
    #[error("the edited correction is empty in every language")]
    Empty,
    #[error("the edited correction in `{0}` is longer than {MAX_CORRECTION_CHARS} characters")]
    TooLong(String),
}

impl CorrectionText {
    /// Refuses an edited text that says nothing or too much.
    fn check(&self) -> Result<(), CorrectionError> {
        let CorrectionText::Edited(texts) = self else {
            return Ok(());
        };
        if texts.values().all(|text| text.trim().is_empty()) {
            return Err(CorrectionError::Empty);
        }
        match texts
            .iter()
            .find(|(_, t)| t.chars().count() > MAX_CORRECTION_CHARS)
        {
            Some((locale, _)) => Err(CorrectionError::TooLong(locale.clone())),
            None => Ok(()),
        }
    }
}

impl CrisisService {
    /// The crisis's announcements a correction may be of, newest first.
    pub async fn correctable(&self, id: CrisisId) -> Result<Vec<Correctable>, ServiceError> {
        self.existing(id).await?;
        Ok(self.storage.corrections.correctable(id).await?)
    }

    /// Sends a correction (see the module): checked, the original's queue
    /// stopped, then the correction written whole with its audit event.
    pub async fn correct(
        self: &Arc<Self>,
        id: CrisisId,
        request: CorrectionRequest,
        ctx: TransitionContext,
    ) -> Result<Corrected, ServiceError> {
        if let Some(key) = &ctx.idempotency
            && let Some(replayed) = self.replay(key).await?
        {
            return Ok(match replayed {
                super::Applied::Replayed { status, body } => Corrected::Replayed { status, body },
                super::Applied::New(_) => unreachable!("a replay is never new"),
            });
        }
        if let Some(why) = self.storage.ledger.write_fault() {
            return Err(StoreError::WriteFailing(why).into());
        }
        request.text.check()?;
        let crisis = self.existing(id).await?;
        let original = self.original(id, request.original).await?;
        let now = self.now();
        let originals = self
            .storage
            .corrections
            .stop_original(original.id, now)
            .await?;
        let zones = self.zones(&crisis, &originals).await?;
        let announcement = Announcement {
            id: AnnouncementId::new(),
            crisis_id: id,
            kind: AnnouncementKind::Correction,
            message: None,
            created_at: now,
            follow_up: None,
            reached_only: false,
            // A correction asks nothing: it says the original was wrong.
            question: None,
        };
        let plan =
            self.planner()
                .correction(&crisis, &announcement, &request.text, &originals, &zones);
        let outcome = CorrectionOutcome {
            crisis_id: id,
            announcement_id: announcement.id,
            original: original.id,
            deliveries: plan
                .deliveries
                .iter()
                .fold(BTreeMap::new(), |mut counts, d| {
                    *counts.entry(d.channel.clone()).or_insert(0) += 1;
                    counts
                }),
            stopped: originals
                .iter()
                .filter(|o| o.state == OriginalState::Stopped)
                .count(),
        };
        let write = CorrectionWrite {
            event: audit(&crisis, &original, &request.text, &ctx, now),
            announcement,
            renditions: plan.renditions,
            deliveries: plan.deliveries,
            idempotency: ctx
                .idempotency
                .as_ref()
                .map(|r| record(r, &outcome))
                .transpose()?,
            unless_corrected_since: (!request.again).then(|| now - RECENT_CORRECTION),
        };
        if let Err(err) = self.storage.corrections.record_correction(write).await {
            return self.lost_race(err, &ctx).await;
        }
        info!(crisis_id = %id, actor = %ctx.actor, original = %original.id,
              stopped = outcome.stopped, "Correction sent.");
        Ok(Corrected::New(outcome))
    }

    /// The announcement asked for, or the newest that reached anyone.
    async fn original(
        &self,
        id: CrisisId,
        wanted: Option<AnnouncementId>,
    ) -> Result<Correctable, ServiceError> {
        let correctable = self.storage.corrections.correctable(id).await?;
        let found = match wanted {
            None => correctable
                .into_iter()
                .next()
                .ok_or(CorrectionError::NothingSent),
            Some(wanted) => correctable
                .into_iter()
                .find(|a| a.id == wanted)
                .ok_or(CorrectionError::NotCorrectable(wanted)),
        };
        Ok(found?)
    }

    /// Each reader's zone, from the audience the crisis was sent to.
    async fn zones(
        &self,
        crisis: &Crisis,
        originals: &[OriginalDelivery],
    ) -> Result<Zones, ServiceError> {
        let fallback = self.follow_ups.as_ref().map_or(Tz::UTC, |f| f.zone);
        let wanted: HashSet<String> = originals
            .iter()
            .filter_map(|o| o.recipient_id.clone())
            .collect();
        if wanted.is_empty() {
            return Ok(Zones {
                readers: HashMap::new(),
                fallback,
            });
        }
        let audience = self.inputs.load().audience_for(crisis).clone();
        let readers = tokio::task::spawn_blocking(move || reader_zones(&audience, &wanted))
            .await
            .map_err(|e| ServiceError::Planning(e.to_string()))??;
        Ok(Zones { readers, fallback })
    }

    /// A concurrent request with the same key wrote first: its answer.
    async fn lost_race(
        &self,
        err: StoreError,
        ctx: &TransitionContext,
    ) -> Result<Corrected, ServiceError> {
        if let (Some(key), StoreError::IdempotencyKeyTaken) = (&ctx.idempotency, &err)
            && let Some(super::Applied::Replayed { status, body }) = self.replay(key).await?
        {
            return Ok(Corrected::Replayed { status, body });
        }
        Err(match err {
            StoreError::IdempotencyKeyTaken => ServiceError::IdempotencyMismatch,
            StoreError::CorrectedRecently(at) => {
                ServiceError::Correction(CorrectionError::CorrectedRecently(at))
            }
            other => other.into(),
        })
    }
}

fn reader_zones(
    audience: &Audience,
    wanted: &HashSet<String>,
) -> Result<HashMap<String, Tz>, crate::domain::audience::AudienceError> {
    let mut zones = HashMap::with_capacity(wanted.len());
    for subscriber in audience.subscribers(0)? {
        // A row that no longer reads is a reader whose zone is unknown.
        // So is one whose row names none.
        if let Ok(subscriber) = subscriber
            && wanted.contains(&subscriber.id)
            && let Some(zone) = subscriber.timezone
        {
            zones.insert(subscriber.id, zone);
        }
    }
    Ok(zones)
}

/// The audit trail's entry: who corrected which message, and how.
fn audit(
    crisis: &Crisis,
    original: &Correctable,
    text: &CorrectionText,
    ctx: &TransitionContext,
    at: chrono::DateTime<chrono::Utc>,
) -> CrisisEvent {
    let how = match text {
        CorrectionText::Prepared => "the prepared text (sent in error)".to_owned(),
        CorrectionText::Edited(texts) => {
            let locales: Vec<&str> = texts.keys().map(String::as_str).collect();
            format!("an edited text ({})", locales.join(", "))
        }
    };
    CrisisEvent {
        crisis_id: crisis.id,
        kind: crate::domain::EventKind::Corrected,
        status: crisis.status,
        actor: ctx.actor.clone(),
        message: Some(format!(
            "Correction of the {} announcement of {} with {how}",
            original.kind,
            original.created_at.format("%Y-%m-%d %H:%M UTC")
        )),
        at,
    }
}

fn record(
    request: &IdempotencyRequest,
    outcome: &CorrectionOutcome,
) -> Result<IdempotencyRecord, ServiceError> {
    Ok(IdempotencyRecord {
        scope: request.scope.clone(),
        key: request.key.clone(),
        fingerprint: request.fingerprint.clone(),
        status: 200,
        body: serde_json::to_string(outcome)
            .map_err(|e| ServiceError::Store(StoreError::Corrupt(e.to_string())))?,
    })
}

impl From<CorrectionError> for ServiceError {
    fn from(err: CorrectionError) -> Self {
        ServiceError::Correction(err)
    }
}
