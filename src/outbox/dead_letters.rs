//! Dead deliveries: why each died, listing them, and putting back those
//! whose cause allows another try.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::domain::{CrisisId, DeliveryId, DomainError, string_enum};

string_enum!(
    /// Why a delivery is dead. Stored beside the reason text
    /// (`last_error`), which is for people; what may be requeued is decided
    /// by this. `OptedOut`: the recipient opted out while it was queued or
    /// being retried. `Unroutable`: its channel is no longer configured
    /// (found at start). `Unfit`: planning could not render it, or not
    /// short enough for its channel; written dead, with nothing to send.
    /// `AttemptsExhausted`: transient failures until `max_attempts` ran
    /// out. `Permanent`: the provider refused it for good (a bad address,
    /// rejected content). `Cancelled`: a follow-up message the all-clear
    /// cancelled. `Corrected`: a message a correction stopped before it
    /// was sent. `Capped`: held back by `[fatigue] max_per_reader_per_hour`
    /// (the reader had their share of non-critical messages this hour).
    DeadCause {
        OptedOut => "opted_out",
        Unroutable => "unroutable",
        Unfit => "unfit",
        AttemptsExhausted => "attempts_exhausted",
        Permanent => "permanent",
        Cancelled => "cancelled",
        Corrected => "corrected",
        Capped => "capped",
    }
);

impl DeadCause {
    /// Whether another try may help. Not: it has nothing to send, or the
    /// all-clear cancelled it. (A requeue also leaves dead whatever goes to
    /// an address that is opted out now.)
    pub fn requeueable(self) -> bool {
        match self {
            // An opted-out reader's message may go again once they opt back
            // in: requeue skips every address that is opted out now.
            DeadCause::OptedOut
            | DeadCause::Unroutable
            | DeadCause::AttemptsExhausted
            | DeadCause::Permanent
            // Held back so as not to tire the reader: a person may still
            // decide it should go.
            | DeadCause::Capped => true,
            DeadCause::Unfit | DeadCause::Cancelled | DeadCause::Corrected => false,
        }
    }
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
    pub cause: DeadCause,
    pub reason: String,
}

/// Which dead deliveries: of one crisis and/or one channel, or all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeadFilter<'a> {
    pub crisis: Option<CrisisId>,
    pub channel: Option<&'a str>,
}

#[async_trait]
pub trait DeadLetterStore: Send + Sync + 'static {
    /// Newest first, at most `limit`.
    async fn list(&self, filter: DeadFilter<'_>, limit: u32)
    -> Result<Vec<DeadLetter>, StoreError>;
    /// How many `requeue` would requeue.
    async fn count_requeueable(&self, filter: DeadFilter<'_>) -> Result<u64, StoreError>;
    /// Puts the requeueable ones back to `pending`, due `now`, with their
    /// attempts reset to 0, in one statement; returns how many, and
    /// signals work due. Requeueable: a cause that allows it
    /// (`DeadCause::requeueable`), to an address not opted out now. The
    /// reason text is kept, so it stays visible until the next outcome
    /// replaces it (sent clears it). A resolved crisis's deliveries are
    /// requeued too: the dead one may be the all-clear.
    async fn requeue(&self, filter: DeadFilter<'_>, now: DateTime<Utc>) -> Result<u64, StoreError>;
}
