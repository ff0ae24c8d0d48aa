//! Crises and their audit trail, and the transition write that changes a
//! crisis together with everything the change causes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{
    Announcement, IdempotencyRecord, NewDelivery, PlanLease, SourceLinkChange, StoreError,
};
use crate::domain::follow_up::FollowUpChange;
use crate::domain::{Crisis, CrisisEvent, CrisisId, Kind};

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
    /// Subscribers are still to be planned, by this lease's owner: the
    /// announcement stays unfinished (resumed after a restart, taken over
    /// once the lease runs out) until `finish_plan`.
    pub planning: Option<PlanLease>,
    /// With `planning`, written as in progress (status 0) and completed by
    /// `finish_plan`.
    pub idempotency: Option<IdempotencyRecord>,
    pub source_link: Option<SourceLinkChange>,
    /// Follow-ups scheduled or cancelled with the transition. A resolution
    /// also cancels every pending follow-up of the crisis and kills its
    /// queued follow-up messages, whatever this says.
    pub follow_ups: FollowUpChange,
    /// A declaration refused with `Duplicate` when an active crisis of
    /// this kind and title was declared since then. Checked inside the
    /// write, under a lock every daemon on the store shares, so two people
    /// declaring the same crisis at one instant, even on two daemons, make
    /// one crisis.
    pub unless_duplicate: Option<DuplicateGuard>,
}

/// What makes a declaration the duplicate of an active crisis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateGuard {
    pub kind: Kind,
    pub title: String,
    /// Only crises declared since then count.
    pub since: DateTime<Utc>,
}

impl DuplicateGuard {
    /// The statement both stores run inside the write: active crises of
    /// the guard's kind declared since `since` (`$1`, `$2`).
    pub const CANDIDATES: &'static str = "SELECT id, title FROM crises \
         WHERE status != 'resolved' AND kind = $1 AND declared_at >= $2";

    /// `Duplicate` naming the first of `candidates` (id, title) whose
    /// title matches. Titles are compared here, not in SQL: SQLite's
    /// `lower()` folds ASCII only.
    pub fn refuse(&self, candidates: Vec<(String, String)>) -> Result<(), StoreError> {
        let wanted = self.title.trim().to_lowercase();
        let Some((id, title)) = candidates
            .into_iter()
            .find(|(_, title)| title.trim().to_lowercase() == wanted)
        else {
            return Ok(());
        };
        let existing = id
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("crisis id {id:?}")))?;
        Err(StoreError::Duplicate { existing, title })
    }
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

#[async_trait]
pub trait CrisisStore: Send + Sync + 'static {
    /// Writes the transition whole or not at all; signals work due once
    /// it is committed. Refused with `Conflict` when the crisis changed
    /// since `previous_version`, and with `IdempotencyKeyTaken` when its
    /// key is stored already.
    async fn record_transition(&self, write: TransitionWrite) -> Result<(), StoreError>;
    async fn crisis(&self, id: CrisisId) -> Result<Option<Crisis>, StoreError>;
    /// Newest declaration first.
    async fn crises(&self, filter: CrisisFilter) -> Result<Vec<Crisis>, StoreError>;
    /// Adds a line to a crisis's audit trail that no transition made
    /// (what the daemon did on its own account).
    async fn note(&self, event: &CrisisEvent) -> Result<(), StoreError>;
    /// The audit trail, oldest first.
    async fn events(&self, id: CrisisId) -> Result<Vec<CrisisEvent>, StoreError>;
    /// The crisis as each of its transitions left it, oldest first (a
    /// crisis declared before versions were kept has its latest only).
    async fn versions(&self, id: CrisisId) -> Result<Vec<Crisis>, StoreError>;
    /// The newest transitions of every crisis, newest first, at most
    /// `limit`: what the feeds list.
    async fn recent_versions(&self, limit: u32) -> Result<Vec<Crisis>, StoreError>;
}
