//! The ledger seen whole: counts by crisis, channel and state, the
//! delivery rate's raw figures, and whether the store answers at all.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{DeliveryState, StoreError};
use crate::domain::CrisisId;

/// How long after the last failed write the store still counts as unable
/// to write: a small write (the health probe, a claim of a few rows) may
/// get through while the fan-out's batches keep failing, so one success
/// does not clear it.
pub const WRITE_FAULT_QUIET: std::time::Duration = std::time::Duration::from_secs(5);

/// The store's recent write failures that are its own (a full disk, an
/// I/O error, a lost lock), not a request's: kept in memory, read by
/// `/readyz`, the watchdog, and declarations, which are refused at once
/// while it lasts.
#[derive(Debug, Default)]
pub struct WriteFaults {
    last: std::sync::Mutex<Option<(&'static str, std::time::Instant)>>,
}

impl WriteFaults {
    /// Remembers a write's failure when it is the store's.
    pub fn note<T>(&self, result: &Result<T, StoreError>) {
        if let Err(why) = result.as_ref().map_err(StoreError::unavailable)
            && let Some(why) = why
        {
            *crate::sync::lock(&self.last) = Some((why, std::time::Instant::now()));
        }
    }

    /// Why writes fail, if one failed within `WRITE_FAULT_QUIET`.
    pub fn current(&self) -> Option<&'static str> {
        crate::sync::lock(&self.last)
            .filter(|(_, at)| at.elapsed() < WRITE_FAULT_QUIET)
            .map(|(why, _)| why)
    }
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

#[async_trait]
pub trait Ledger: Send + Sync + 'static {
    /// Answers when the database does: for `/readyz` and the watchdog.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Why the store's writes fail right now (see `WriteFaults`), without
    /// asking the database: a declaration checks it before it writes.
    fn write_fault(&self) -> Option<&'static str>;
    /// Unfinished (pending, in flight, retrying) and dead deliveries by
    /// channel and state, every crisis together: the queue depth. Sent
    /// ones, the bulk of the ledger, are not counted.
    async fn channel_counts(&self) -> Result<Vec<ChannelStateCount>, StoreError>;
    /// Counts by crisis, channel and state; for one crisis or all.
    async fn delivery_counts(
        &self,
        crisis: Option<CrisisId>,
    ) -> Result<Vec<DeliveryCount>, StoreError>;
    /// Sent and dead deliveries with `finished_at >= since`, counted by
    /// crisis and channel; for one crisis or all.
    async fn finished_since(
        &self,
        crisis: Option<CrisisId>,
        since: DateTime<Utc>,
    ) -> Result<Vec<FinishedCount>, StoreError>;
}
