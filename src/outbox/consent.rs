//! Opt-outs: contact points that asked not to be contacted. They outlive
//! audience reloads, and an opt-out also ends the messages already queued
//! for its address.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::consent::{ContactPoint, OptOuts};

#[async_trait]
pub trait ConsentStore: Send + Sync + 'static {
    /// Records that `address` does not want messages on `point`, and ends
    /// its pending and retrying deliveries dead (`DeadCause::OptedOut`),
    /// in one transaction; true when it was not opted out already.
    async fn opt_out(
        &self,
        point: ContactPoint,
        address: &str,
        source: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Takes an opt-out back (an SMS "START"); true when there was one.
    async fn opt_in(&self, point: ContactPoint, address: &str) -> Result<bool, StoreError>;
    async fn opt_outs(&self) -> Result<OptOuts, StoreError>;
}
