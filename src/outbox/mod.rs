//! The outbox: the durable ledger of deliveries, and the crisis state it
//! belongs to, behind a `Store` trait.

mod sqlite;

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use sqlite::SqliteStore;

use crate::domain::consent::ContactPoint;
use crate::domain::follow_up::{
    FollowUp, FollowUpChange, FollowUpSpec, FollowUpState, NewFollowUp, Phase,
};
use crate::domain::{AnnouncementKind, Crisis, CrisisEvent, CrisisId, DeliveryId};
use crate::message::DeliveryContent;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Pending,
    InFlight,
    Retrying,
    Sent,
    Dead,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 5] = [
        DeliveryState::Pending,
        DeliveryState::InFlight,
        DeliveryState::Retrying,
        DeliveryState::Sent,
        DeliveryState::Dead,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::InFlight => "in_flight",
            DeliveryState::Retrying => "retrying",
            DeliveryState::Sent => "sent",
            DeliveryState::Dead => "dead",
        }
    }
}

impl FromStr for DeliveryState {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown delivery state `{s}`")))
    }
}

/// One announcement, planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub id: Uuid,
    pub crisis_id: CrisisId,
    pub kind: AnnouncementKind,
    pub message: Option<String>,
    pub created_at: DateTime<Utc>,
    /// For a follow-up: its step (topic, channels, audience).
    pub follow_up: Option<FollowUpSpec>,
}

/// A message rendered once for many readers (same channel, language, time
/// zone), stored once; deliveries refer to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRendition {
    pub id: Uuid,
    pub content: DeliveryContent,
}

/// What a delivery carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// The whole rendered message (broadcasts, and deliveries planned dead).
    Inline(DeliveryContent),
    /// A rendition, and what to fill in for this reader.
    Rendition {
        id: Uuid,
        recipient_name: Option<String>,
        unsubscribe_url: Option<String>,
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
    pub payload: Payload,
    /// Lower goes first.
    pub priority: u8,
    /// Set when planning already knows it cannot be sent (a template that
    /// did not render): it is written dead, with this reason.
    pub dead_reason: Option<String>,
    /// Not sent before this (quiet hours); `None`: at once.
    pub not_before: Option<DateTime<Utc>>,
}

/// A delivery as stored; everything a channel needs to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: DeliveryId,
    pub crisis_id: CrisisId,
    pub announcement_id: Uuid,
    pub kind: AnnouncementKind,
    pub channel: String,
    pub recipient_id: Option<String>,
    pub destination: String,
    pub locale: String,
    /// What to send: a message of its own, or a rendition shared by many
    /// readers, with marks where `personal` fills in this reader.
    pub content: Arc<DeliveryContent>,
    pub personal: Option<Personal>,
    pub state: DeliveryState,
    pub attempts: u32,
    pub available_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// This reader's part of a delivery whose content is a shared rendition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Personal {
    /// The rendition's id: channels may keep work done on it (an email's
    /// encoded body) for its other readers.
    pub rendition: Uuid,
    pub recipient_name: Option<String>,
    pub unsubscribe_url: Option<String>,
}

impl Delivery {
    /// The message as this reader gets it.
    pub fn personalized(&self) -> Cow<'_, DeliveryContent> {
        match &self.personal {
            None => Cow::Borrowed(&self.content),
            Some(personal) => Cow::Owned(self.content.personalize(
                personal.recipient_name.as_deref(),
                personal.unsubscribe_url.as_deref(),
            )),
        }
    }
}

/// A stored response to replay for a repeated Idempotency-Key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// Keys are per API token, so two clients cannot collide.
    pub scope: String,
    pub key: String,
    /// Hash of the request; a key reused for a different request is refused.
    pub fingerprint: String,
    pub status: u16,
    pub body: String,
}

/// An outside source's incident and the crisis it drives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLink {
    pub source: String,
    pub external_id: String,
    pub crisis_id: CrisisId,
    /// What the source last said, to notice a change.
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceLinkChange {
    Set(SourceLink),
    Remove { source: String, external_id: String },
}

/// A crisis transition and everything it causes, written in one
/// transaction: the crisis, its audit event, the announcement and its
/// deliveries, and optionally the idempotency record and source link.
#[derive(Debug, Clone)]
pub struct TransitionWrite {
    pub crisis: Crisis,
    /// The version the crisis had when the transition was computed; `None`
    /// for a declaration. The write is refused if it changed meanwhile.
    pub previous_version: Option<u32>,
    pub event: CrisisEvent,
    pub announcement: Announcement,
    /// Deliveries known at once (broadcasts); per-subscriber deliveries
    /// follow with `append_plan` when `planning` is set.
    pub deliveries: Vec<NewDelivery>,
    /// Subscribers are still to be planned: the announcement stays
    /// unfinished (resumed after a restart) until `finish_plan`.
    pub planning: bool,
    /// With `planning`, written as in progress (status 0) and completed by
    /// `finish_plan`.
    pub idempotency: Option<IdempotencyRecord>,
    pub source_link: Option<SourceLinkChange>,
    /// Follow-ups scheduled or cancelled with the transition. A resolution
    /// also cancels every pending follow-up of the crisis and kills its
    /// queued follow-up messages, whatever this says.
    pub follow_ups: FollowUpChange,
}

/// A due follow-up becoming its announcement: written only if the
/// follow-up is still pending (and, before the all-clear, its crisis still
/// active), so it is sent once, whatever restarts or resolves meanwhile.
#[derive(Debug, Clone)]
pub struct FollowUpStart {
    pub follow_up: Uuid,
    pub announcement: Announcement,
    /// Its broadcast deliveries.
    pub deliveries: Vec<NewDelivery>,
    /// Subscribers still to be planned, as for a transition.
    pub planning: bool,
}

/// An announcement whose per-subscriber deliveries were not all written
/// (the daemon stopped mid-plan): resumed at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnfinishedPlan {
    pub announcement: Announcement,
    /// Subscribers already planned.
    pub planned_through: u64,
    /// The Idempotency-Key of the request that caused it, to complete.
    pub idempotency: Option<(String, String)>,
}

/// A changed plan: the crisis's pending follow-ups of `phase` due after
/// `after` are cancelled with `reason` and `schedule` stored instead, in one
/// transaction (nothing before the all-clear is stored for a crisis
/// resolved meanwhile).
#[derive(Debug, Clone)]
pub struct FollowUpReplacement {
    pub crisis: CrisisId,
    pub phase: Phase,
    pub after: DateTime<Utc>,
    pub reason: String,
    pub schedule: Vec<NewFollowUp>,
}

/// What happened to one claimed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent { provider_ref: Option<String> },
    Retry { at: DateTime<Utc>, error: String },
    Dead { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryCount {
    pub crisis_id: CrisisId,
    pub channel: String,
    pub state: DeliveryState,
    pub count: u64,
}

/// Deliveries of one channel in one state, every crisis together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelStateCount {
    pub channel: String,
    pub state: DeliveryState,
    pub count: u64,
}

/// Deliveries of one crisis and channel that finished (sent or dead) in a
/// time window; the daemon's delivery rate is measured from these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FinishedCount {
    pub crisis_id: CrisisId,
    pub channel: String,
    pub count: u64,
}

/// A dead delivery as operators list it: where it was going, how often it
/// was tried, when it died and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: DeliveryId,
    pub crisis_id: CrisisId,
    pub channel: String,
    pub destination: String,
    pub attempts: u32,
    pub finished_at: DateTime<Utc>,
    pub reason: String,
}

/// Which crises a listing shows; `?status=` of the API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrisisFilter {
    Active,
    Resolved,
    #[default]
    All,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create the data directory {path}: {source}")]
    CreateDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("crisis {0} changed while this transition was being made; try again")]
    Conflict(CrisisId),
    #[error("the Idempotency-Key was used by a concurrent request")]
    IdempotencyKeyTaken,
    #[error("stored data is not readable: {0}")]
    Corrupt(String),
}

/// Durable crisis state and the outbox. Every method is safe to call again
/// after a failure: completing a delivery whose lease was lost changes
/// nothing.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn record_transition(&self, write: TransitionWrite) -> Result<(), StoreError>;
    async fn crisis(&self, id: CrisisId) -> Result<Option<Crisis>, StoreError>;
    async fn crises(&self, filter: CrisisFilter) -> Result<Vec<Crisis>, StoreError>;
    async fn events(&self, id: CrisisId) -> Result<Vec<CrisisEvent>, StoreError>;
    async fn idempotent_response(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;
    async fn source_link(
        &self,
        source: &str,
        external_id: &str,
    ) -> Result<Option<SourceLink>, StoreError>;

    /// Records that `address` does not want messages on `point`; true when
    /// it was not opted out already.
    async fn opt_out(
        &self,
        point: ContactPoint,
        address: &str,
        source: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Takes an opt-out back (an SMS "START"); true when there was one.
    async fn opt_in(&self, point: ContactPoint, address: &str) -> Result<bool, StoreError>;
    async fn opt_outs(&self) -> Result<crate::domain::consent::OptOuts, StoreError>;

    /// Writes one batch of a streamed plan: its renditions, its deliveries,
    /// and how far the plan got, in one transaction.
    async fn append_plan(
        &self,
        announcement: &Announcement,
        renditions: &[NewRendition],
        deliveries: &[NewDelivery],
        planned_through: u64,
    ) -> Result<(), StoreError>;
    /// Marks a streamed plan complete and stores the response for its
    /// Idempotency-Key.
    async fn finish_plan(
        &self,
        announcement_id: Uuid,
        idempotency: Option<IdempotencyRecord>,
    ) -> Result<(), StoreError>;
    async fn unfinished_plans(&self) -> Result<Vec<UnfinishedPlan>, StoreError>;
    /// Deliveries written for an announcement so far.
    async fn announcement_deliveries(&self, announcement_id: Uuid) -> Result<u64, StoreError>;
    /// Records many outcomes in one transaction; each takes effect only if
    /// `owner` still holds that delivery's lease.
    async fn record_outcomes(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        outcomes: &[(DeliveryId, Outcome)],
    ) -> Result<(), StoreError>;

    /// Forgets a source's link, when its crisis was resolved another way.
    async fn unlink_source(&self, source: &str, external_id: &str) -> Result<(), StoreError>;

    /// Answers when the database does: for `/readyz` and the watchdog.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Unfinished (pending, in flight, retrying) and dead deliveries by
    /// channel and state, every crisis together: the queue depth. Sent
    /// ones, the bulk of the ledger, are not counted.
    async fn channel_counts(&self) -> Result<Vec<ChannelStateCount>, StoreError>;

    /// Counts by crisis, channel and state; for one crisis or all.
    async fn delivery_counts(
        &self,
        crisis: Option<CrisisId>,
    ) -> Result<Vec<DeliveryCount>, StoreError>;
    async fn dead_deliveries(
        &self,
        crisis: Option<CrisisId>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Leases up to `limit` due deliveries of `channel` to `owner` until
    /// `now + lease`, counting an attempt for each. Expired leases are
    /// taken over.
    async fn claim(
        &self,
        channel: &str,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError>;
    async fn mark_sent(
        &self,
        id: DeliveryId,
        owner: &str,
        now: DateTime<Utc>,
        provider_ref: Option<&str>,
    ) -> Result<(), StoreError>;
    async fn mark_retry(
        &self,
        id: DeliveryId,
        owner: &str,
        at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError>;
    async fn mark_dead(
        &self,
        id: DeliveryId,
        owner: &str,
        now: DateTime<Utc>,
        reason: &str,
    ) -> Result<(), StoreError>;
    /// Gives back leases that were never sent on, and the attempt with them.
    async fn release(&self, ids: &[DeliveryId], owner: &str) -> Result<(), StoreError>;
    /// Deliveries for channels that no longer exist end dead with a reason
    /// instead of waiting forever. Returns how many.
    async fn kill_unroutable(
        &self,
        known_channels: &[String],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// Sent and dead deliveries with `finished_at >= since`, counted by
    /// crisis and channel; for one crisis or all.
    async fn finished_since(
        &self,
        crisis: Option<CrisisId>,
        since: DateTime<Utc>,
    ) -> Result<Vec<FinishedCount>, StoreError>;
    /// Dead deliveries, newest first, optionally of one crisis and/or one
    /// channel.
    async fn dead_letters(
        &self,
        crisis: Option<CrisisId>,
        channel: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, StoreError>;
    /// How many dead deliveries `requeue_dead` would requeue with the same
    /// filters.
    async fn requeueable_dead(
        &self,
        crisis: Option<CrisisId>,
        channel: Option<&str>,
    ) -> Result<u64, StoreError>;
    /// Puts dead deliveries back to `pending`, due `now`, with their
    /// attempts reset to 0, in one statement; returns how many. `last_error`
    /// is kept, so the reason stays visible until the next outcome replaces
    /// it (sent clears it). Left dead: deliveries written dead at planning
    /// (a template that did not render: attempts 0 and finished when
    /// created), which carry no content to send, and deliveries to an
    /// address that is opted out, and follow-up messages the all-clear
    /// cancelled. A resolved crisis's deliveries are requeued too: the dead
    /// one may be the all-clear.
    async fn requeue_dead(
        &self,
        crisis: Option<CrisisId>,
        channel: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// Follow-ups by due time, of one crisis or all.
    async fn follow_ups(&self, crisis: Option<CrisisId>) -> Result<Vec<FollowUp>, StoreError>;
    /// Pending follow-ups due at `now` or before, earliest first.
    async fn due_follow_ups(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<FollowUp>, StoreError>;
    /// When the next pending follow-up is due.
    async fn next_follow_up_at(&self) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// Ends a pending follow-up unsent (`cancelled` or `skipped`) with the
    /// reason; false when it was no longer pending.
    async fn settle_follow_up(
        &self,
        id: Uuid,
        state: FollowUpState,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Marks a follow-up sent and writes its announcement, in one
    /// transaction; false (and nothing written) when it was no longer
    /// pending or its crisis was resolved meanwhile.
    async fn start_follow_up(&self, start: FollowUpStart) -> Result<bool, StoreError>;
    /// The plan changed: see `FollowUpReplacement`.
    async fn replace_follow_ups(&self, replacement: FollowUpReplacement) -> Result<(), StoreError>;
}
