//! The delivery queue the dispatcher works from: claims under a lease,
//! outcomes recorded while the lease is held, leases given back, and the
//! signal that new work is due.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::sync::futures::Notified;

use super::{DeadCause, StoreError};
use crate::domain::{
    AnnouncementId, AnnouncementKind, CrisisId, DeliveryId, DomainError, RenditionId, string_enum,
};
use crate::message::DeliveryContent;

string_enum!(
    /// Where a delivery is in the outbox.
    DeliveryState {
        Pending => "pending",
        InFlight => "in_flight",
        Retrying => "retrying",
        Sent => "sent",
        Dead => "dead",
    }
);

/// A delivery as stored; everything a channel needs to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: DeliveryId,
    pub crisis_id: CrisisId,
    pub announcement_id: AnnouncementId,
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
    pub rendition: RenditionId,
    pub recipient_name: Option<String>,
    pub unsubscribe_url: Option<String>,
    /// Where this reader's answer links start: not stored, but made from
    /// the delivery's id by the dispatcher when it hands an email over.
    pub answer_url: Option<String>,
}

impl Personal {
    /// The fields that replace the rendition's marks.
    pub fn fields(&self) -> crate::message::ReaderFields<'_> {
        crate::message::ReaderFields {
            name: self.recipient_name.as_deref(),
            unsubscribe_url: self.unsubscribe_url.as_deref(),
            answer_url: self.answer_url.as_deref(),
        }
    }
}

impl Delivery {
    /// The message as this reader gets it.
    pub fn personalized(&self) -> Cow<'_, DeliveryContent> {
        match &self.personal {
            None => Cow::Borrowed(&self.content),
            Some(personal) => Cow::Owned(self.content.personalize(personal.fields())),
        }
    }
}

/// Why an all-clear was not sent: its reader got no earlier message of the
/// crisis on that channel (the announcement was cancelled by the all-clear,
/// or failed), so there is nothing to clear. Its cause is `Cancelled`.
pub const ALL_CLEAR_UNREACHED: &str =
    "cancelled: no earlier message of this crisis reached this destination, so no all-clear";

/// What happened to one claimed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent {
        provider_ref: Option<String>,
    },
    Retry {
        at: DateTime<Utc>,
        error: String,
    },
    /// The dispatcher decides the cause: the provider refused for good, or
    /// the attempts ran out.
    Dead {
        cause: DeadCause,
        reason: String,
    },
}

/// Signalled by the store after each commit that may have made deliveries
/// due (a transition, a plan batch, a follow-up started, a requeue), so the
/// first message of a crisis does not wait for the next poll. Only waiters
/// already registered are woken: register (`enable` the `Notified`) before
/// claiming, and a wake between the claim and the wait is not lost.
#[derive(Debug, Default, Clone)]
pub struct WorkDue(Arc<Notify>);

impl WorkDue {
    pub fn notify(&self) {
        self.0.notify_waiters();
    }

    pub fn notified(&self) -> Notified<'_> {
        self.0.notified()
    }
}

#[async_trait]
pub trait DeliveryQueue: Send + Sync + 'static {
    /// The signal that work is due.
    fn work_due(&self) -> &WorkDue;
    /// Leases up to `limit` due deliveries of `channel` to `owner` until
    /// `now + lease`, counting an attempt for each: expired leases of the
    /// channel are put back first; then pending ones by priority, oldest
    /// first; then due retries. A delivery is held back while an earlier
    /// announcement of its crisis to the same destination on the same
    /// channel is pending, in flight or retrying (a follow-up holds back
    /// only later follow-ups). One whose announcement is `reached_only`
    /// and whose destination no earlier message of the crisis reached on
    /// the channel ends dead instead, `Cancelled` with
    /// `ALL_CLEAR_UNREACHED`, and is not returned.
    async fn claim(
        &self,
        channel: &str,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError>;
    /// Records many outcomes in one transaction; each takes effect only if
    /// `owner` still holds that delivery's lease, so a late or repeated
    /// outcome changes nothing.
    async fn record_outcomes(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        outcomes: &[(DeliveryId, Outcome)],
    ) -> Result<(), StoreError>;
    /// Gives back leases that were never sent on, and the attempt with them.
    async fn release(&self, ids: &[DeliveryId], owner: &str) -> Result<(), StoreError>;
    /// Deliveries for channels that no longer exist end dead
    /// (`DeadCause::Unroutable`) instead of waiting forever. Returns how
    /// many.
    async fn kill_unroutable(
        &self,
        known_channels: &[String],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
}
