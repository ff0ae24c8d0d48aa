//! The ledger seen whole: counts by crisis, channel and state, the
//! delivery rate's raw figures, and whether the store answers at all.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{DeliveryState, StoreError};
use crate::domain::CrisisId;

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
