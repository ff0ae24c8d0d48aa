//! What the intake keeps: the log of every webhook received, the delivery
//! ids already seen, and source incidents waiting to become crises (held
//! by `declare_after`, or proposed for a person to confirm).

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::domain::{CrisisId, Declaration, DomainError, string_enum};

string_enum!(
    /// What became of a webhook: the `verdict` of its answer and of its log
    /// entry. `Applied`: something changed; `Ignored`: understood, nothing
    /// to change; `Duplicate`: its delivery id was received before;
    /// `Failed`: applying it failed, and the source may send it again; the
    /// others say why it was refused.
    Verdict {
        Applied => "applied",
        Ignored => "ignored",
        Duplicate => "duplicate",
        Unauthorized => "unauthorized",
        Malformed => "malformed",
        TooLarge => "too_large",
        UnknownHook => "unknown_hook",
        Failed => "failed",
    }
);

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
    pub verdict: Verdict,
    /// What it did, one line per source incident (`declared <id>`, `held
    /// <id> until ...`, `unchanged <id>`, `filtered: ...`).
    #[serde(default)]
    pub transitions: Vec<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub delivery_id: Option<String>,
}

string_enum!(
    /// Where a source incident is: `Held` waits out `declare_after`;
    /// `Proposed` waits for a person (`crisisd confirm` or `crisisd
    /// discard`); `Declared` when the hold ran out and the crisis was
    /// declared; `Confirmed` and declared; `Discarded` by a person;
    /// `Withdrawn` when the source resolved it before it was declared.
    PendingState {
        Held => "held",
        Proposed => "proposed",
        Declared => "declared",
        Confirmed => "confirmed",
        Discarded => "discarded",
        Withdrawn => "withdrawn",
    }
);

impl PendingState {
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
