//! Follow-ups: scheduled and cancelled with transitions, each started
//! (becoming its announcement) at most once, never after the all-clear.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Announcement, NewDelivery, StoreError};
use crate::domain::CrisisId;
use crate::domain::follow_up::{FollowUp, FollowUpState, NewFollowUp, Phase};

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
    pub planning: Option<super::PlanLease>,
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

#[async_trait]
pub trait FollowUpStore: Send + Sync + 'static {
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
    /// transaction, and signals work due; false (and nothing written) when
    /// it was no longer pending or its crisis was resolved meanwhile.
    async fn start_follow_up(&self, start: FollowUpStart) -> Result<bool, StoreError>;
    /// The plan changed: see `FollowUpReplacement`.
    async fn replace_follow_ups(&self, replacement: FollowUpReplacement) -> Result<(), StoreError>;
}
