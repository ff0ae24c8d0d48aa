//! What the intake keeps: the log of every webhook received, the delivery
//! ids already seen, and source incidents waiting to become crises (held
//! by `declare_after`, or proposed for a person to confirm).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{CrisisId, Declaration};
use crate::outbox::StoreError;

/// One webhook received, whatever became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookLogEntry {
    /// Assigned by the store; 0 before it is written.
    #[serde(default)]
    pub seq: i64,
    pub hook: String,
    pub source: String,
    pub received_at: DateTime<Utc>,
    /// The HTTP status it was answered with.
    pub status: u16,
    /// `applied`, `ignored`, `duplicate`, `unauthorized`, `malformed`,
    /// `too_large`, `unknown_hook`, `failed`.
    pub verdict: String,
    /// What it did, one line per source incident (`declared <id>`, `held
    /// <id> until ...`, `unchanged <id>`, `filtered: ...`).
    #[serde(default)]
    pub transitions: Vec<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub delivery_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PendingState {
    /// Waiting out `declare_after`.
    Held,
    /// Waiting for a person: `crisisd confirm` or `crisisd discard`.
    Proposed,
    /// The hold ran out and the crisis was declared.
    Declared,
    /// Confirmed and declared.
    Confirmed,
    /// Discarded by a person.
    Discarded,
    /// The source resolved it before it was declared.
    Withdrawn,
}

impl PendingState {
    pub fn as_str(&self) -> &'static str {
        match self {
            PendingState::Held => "held",
            PendingState::Proposed => "proposed",
            PendingState::Declared => "declared",
            PendingState::Confirmed => "confirmed",
            PendingState::Discarded => "discarded",
            PendingState::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            PendingState::Held,
            PendingState::Proposed,
            PendingState::Declared,
            PendingState::Confirmed,
            PendingState::Discarded,
            PendingState::Withdrawn,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    pub fn is_open(&self) -> bool {
        matches!(self, PendingState::Held | PendingState::Proposed)
    }
}

/// A source incident that is not (yet) a crisis. Its id becomes the
/// crisis's id when it is declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub id: CrisisId,
    pub hook: String,
    pub external_id: String,
    pub state: PendingState,
    /// What would be declared, kept current as the source updates it.
    pub declaration: Declaration,
    /// For a hold: when it is declared (or proposed).
    #[serde(default)]
    pub due_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Who confirmed or discarded it.
    #[serde(default)]
    pub decided_by: Option<String>,
}

#[async_trait]
pub trait HookStore: Send + Sync + 'static {
    /// Appends to the webhook log (the oldest entries beyond
    /// `HOOK_LOG_KEEP` are dropped).
    async fn record_hook(&self, entry: &HookLogEntry) -> Result<(), StoreError>;
    /// Newest first, optionally of one hook.
    async fn hook_log(
        &self,
        hook: Option<&str>,
        limit: u32,
    ) -> Result<Vec<HookLogEntry>, StoreError>;
    async fn delivery_seen(&self, hook: &str, delivery_id: &str) -> Result<bool, StoreError>;
    async fn remember_delivery(
        &self,
        hook: &str,
        delivery_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// The held or proposed entry for a source incident, if any.
    async fn open_pending(
        &self,
        hook: &str,
        external_id: &str,
    ) -> Result<Option<Pending>, StoreError>;
    async fn pending(&self, id: CrisisId) -> Result<Option<Pending>, StoreError>;
    /// Inserts or replaces by id.
    async fn save_pending(&self, pending: &Pending) -> Result<(), StoreError>;
    /// Holds due at `now`, oldest first.
    async fn due_holds(&self, now: DateTime<Utc>) -> Result<Vec<Pending>, StoreError>;
    /// When the next hold is due.
    async fn next_hold(&self) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// Every held and proposed entry, oldest first.
    async fn open_pendings(&self) -> Result<Vec<Pending>, StoreError>;
}

/// Webhook log entries kept; older ones are dropped as new ones arrive.
pub const HOOK_LOG_KEEP: i64 = 10_000;
