//! Corrections: what was sent of an announcement, stopping the rest of
//! it, and the correction's write.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Announcement, IdempotencyRecord, NewDelivery, NewRendition, StoreError};
use crate::domain::{AnnouncementId, AnnouncementKind, CrisisEvent, CrisisId};

/// The reason a stopped original carries, as `crisisd dead` shows it.
pub const CORRECTED: &str = "cancelled: a correction was sent before it";

/// An announcement of a crisis that reached someone, which a correction
/// may be of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correctable {
    pub id: AnnouncementId,
    pub kind: AnnouncementKind,
    pub created_at: DateTime<Utc>,
    /// Its deliveries sent so far, or being sent (which may have reached
    /// their readers: a correction must go to them too).
    pub sent: u64,
}

/// What became of one delivery of the original when it was corrected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginalState {
    /// Sent at that time.
    Sent(DateTime<Utc>),
    /// Being handed to its provider as it was corrected: counted as sent.
    InFlight,
    /// Still queued, and stopped by the correction (dead, `Corrected`).
    Stopped,
}

/// One delivery of the original, and where its correction goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalDelivery {
    pub channel: String,
    pub recipient_id: Option<String>,
    pub destination: String,
    pub locale: String,
    pub recipient_name: Option<String>,
    pub unsubscribe_url: Option<String>,
    pub state: OriginalState,
}

/// A correction and everything it causes, written in one transaction.
#[derive(Debug, Clone)]
pub struct CorrectionWrite {
    pub event: CrisisEvent,
    pub announcement: Announcement,
    pub renditions: Vec<NewRendition>,
    pub deliveries: Vec<NewDelivery>,
    pub idempotency: Option<IdempotencyRecord>,
    /// Refused with `CorrectedRecently` when a correction of the crisis
    /// was recorded at or after this time: two people correcting at once
    /// send one correction, not two. `None`: sent whatever came before.
    pub unless_corrected_since: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait CorrectionStore: Send + Sync + 'static {
    /// The crisis's announcements (corrections aside) that sent at least
    /// one message or are sending it, newest first.
    async fn correctable(&self, crisis: CrisisId) -> Result<Vec<Correctable>, StoreError>;
    /// Stops the announcement's queued deliveries (pending, retrying):
    /// dead with `Corrected` and `CORRECTED`, at `now`. Returns its
    /// deliveries that were sent or in flight, and the ones it stopped;
    /// nothing else (dead ones stay as they were).
    async fn stop_original(
        &self,
        original: AnnouncementId,
        now: DateTime<Utc>,
    ) -> Result<Vec<OriginalDelivery>, StoreError>;
    /// Writes the correction whole or not at all (its key refused with
    /// `IdempotencyKeyTaken` when stored already, the write with
    /// `CorrectedRecently` as `unless_corrected_since` says); signals work
    /// due. The check and the write are one transaction under the crisis's
    /// lock, so of two at the same instant one is refused.
    async fn record_correction(&self, write: CorrectionWrite) -> Result<(), StoreError>;
}
