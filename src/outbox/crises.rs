//! Crises and their audit trail, and the transition write that changes a
//! crisis together with everything the change causes.

use async_trait::async_trait;
use serde::Deserialize;

use super::{Announcement, IdempotencyRecord, NewDelivery, SourceLinkChange, StoreError};
use crate::domain::follow_up::FollowUpChange;
use crate::domain::{Crisis, CrisisEvent, CrisisId};

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
