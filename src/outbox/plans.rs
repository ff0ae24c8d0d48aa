//! Announcements and their plans: what planning writes to the outbox,
//! batch by batch, and what a restart resumes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{DeadCause, IdempotencyRecord, StoreError};
use crate::domain::follow_up::FollowUpSpec;
use crate::domain::{AnnouncementId, AnnouncementKind, CrisisId, DeliveryId, RenditionId};
use crate::message::DeliveryContent;

/// One announcement, planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub id: AnnouncementId,
    pub crisis_id: CrisisId,
    pub kind: AnnouncementKind,
    pub message: Option<String>,
    pub created_at: DateTime<Utc>,
    /// For a follow-up: its step (topic, channels, audience).
    pub follow_up: Option<FollowUpSpec>,
    /// Sent only to destinations an earlier message of the crisis reached
    /// on the same channel (the all-clear, unless configured otherwise);
    /// to any other, its delivery ends `cancelled` when its turn comes.
    pub reached_only: bool,
    /// The key of the question its SMS end with (`[answers.questions]`),
    /// which replies from its readers answer.
    pub question: Option<String>,
}

/// A message rendered once for many readers (same channel, language, time
/// zone), stored once; deliveries refer to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRendition {
    pub id: RenditionId,
    pub content: DeliveryContent,
}

/// What a queued delivery carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// The whole rendered message (broadcasts).
    Inline(DeliveryContent),
    /// A rendition, and what to fill in for this reader.
    Rendition {
        id: RenditionId,
        recipient_name: Option<String>,
        unsubscribe_url: Option<String>,
    },
}

/// What planning made of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Planned {
    /// To be sent.
    Queued {
        payload: Payload,
        /// Not sent before this (quiet hours); `None`: at once.
        not_before: Option<DateTime<Utc>>,
    },
    /// Planning already knows it cannot be sent (a template that did not
    /// render, a text too long for the channel): written dead, with no
    /// content.
    Dead {
        cause: DeadCause,
        /// For people: what `crisisd dead` shows.
        reason: String,
    },
}

/// A delivery to be written to the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub id: DeliveryId,
    pub channel: String,
    pub recipient_id: Option<String>,
    pub destination: String,
    pub locale: String,
    /// Lower goes first.
    pub priority: u8,
    pub planned: Planned,
}

/// An announcement whose per-subscriber deliveries are not all written
/// yet: being planned, or left half-planned by a daemon that stopped or
/// died (resumed at start, or taken over once its lease runs out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnfinishedPlan {
    pub announcement: Announcement,
    /// Subscribers already planned.
    pub planned_through: u64,
    /// The Idempotency-Key of the request that caused it, to complete.
    pub idempotency: Option<(String, String)>,
    /// Who plans it, until when; `None`: nobody yet (written before
    /// planning leases existed).
    pub lease: Option<PlanLease>,
}

/// Who writes an announcement's deliveries, and until when unless
/// renewed: once it runs out, another daemon may take the plan over.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlanLease {
    pub owner: String,
    pub until: DateTime<Utc>,
}

/// One batch's place in its plan. It is written only while `lease.owner`
/// still holds the plan and the plan is still planned through `from`
/// (fencing: a daemon that lost the plan, or two writing the same batch,
/// cannot plan a reader twice); writing it renews the lease to
/// `lease.until`.
#[derive(Debug, Clone, Copy)]
pub struct PlanStep<'a> {
    pub lease: &'a PlanLease,
    pub from: u64,
    pub through: u64,
}

#[async_trait]
pub trait PlanStore: Send + Sync + 'static {
    /// Writes one batch of a streamed plan: its renditions, its deliveries,
    /// and how far the plan got, in one transaction; signals work due once
    /// it is committed. `PlanTaken`, writing nothing, unless `step.lease`'s
    /// owner holds the plan and it is planned through `step.from`.
    async fn append_plan(
        &self,
        announcement: &Announcement,
        renditions: &[NewRendition],
        deliveries: &[NewDelivery],
        step: PlanStep<'_>,
    ) -> Result<(), StoreError>;
    /// Marks a streamed plan complete and stores the response for its
    /// Idempotency-Key; `PlanTaken`, changing nothing, unless `owner`
    /// holds the plan.
    async fn finish_plan(
        &self,
        announcement_id: AnnouncementId,
        owner: &str,
        idempotency: Option<IdempotencyRecord>,
    ) -> Result<(), StoreError>;
    /// Every plan not finished yet, with its lease; oldest first.
    async fn unfinished_plans(&self) -> Result<Vec<UnfinishedPlan>, StoreError>;
    /// Takes for `lease` every unfinished plan whose lease ran out before
    /// `expired_before` (or that has none), in one statement, so two
    /// daemons taking over at once never take the same plan; oldest first.
    async fn take_plans(
        &self,
        lease: &PlanLease,
        expired_before: DateTime<Utc>,
    ) -> Result<Vec<UnfinishedPlan>, StoreError>;
    /// Extends `lease` on an unfinished plan its owner still holds; `false`
    /// when it does not (finished, or taken over).
    async fn renew_plan(
        &self,
        announcement_id: AnnouncementId,
        lease: &PlanLease,
    ) -> Result<bool, StoreError>;
    /// Deliveries written for an announcement so far.
    async fn announcement_deliveries(
        &self,
        announcement_id: AnnouncementId,
    ) -> Result<u64, StoreError>;
    /// For each of `readers` (recipient ids) who had any: how many
    /// announcements other than `except` were planned to them since
    /// `since` that count against `[fatigue] max_per_reader_per_hour`: not
    /// a correction, not of a crisis that is critical, and not written dead
    /// without a try (held back, opted out, unfit, cancelled).
    async fn recent_messages(
        &self,
        readers: &[String],
        since: DateTime<Utc>,
        except: AnnouncementId,
    ) -> Result<Vec<(String, u32)>, StoreError>;
}

/// The condition `recent_messages` counts by, on `deliveries d` joined to
/// `crises c`; both backends share it.
pub const COUNTS_AGAINST_CAP: &str = "d.kind <> 'correction' AND c.severity <> 'critical' \
     AND (d.state <> 'dead' OR d.attempts > 0)";
