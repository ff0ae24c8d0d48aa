//! Opt-outs: contact points that asked not to be contacted, for everything
//! or for follow-ups only. They outlive audience reloads, and an opt-out
//! also ends the messages already queued for its address that it stops.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::consent::{ConsentScope, ContactPoint, OptOutRequest, OptOuts};

#[async_trait]
pub trait ConsentStore: Send + Sync + 'static {
    /// Records that `address` does not want the messages the request's
    /// scope covers on `point` (a wider opt-out already recorded stays
    /// unless the request is `Exactly`), and ends dead
    /// (`DeadCause::OptedOut`) its pending and retrying deliveries that the
    /// opt-out now stops, in one transaction; true when something changed.
    async fn opt_out(
        &self,
        point: ContactPoint,
        address: &str,
        request: OptOutRequest,
        source: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Takes an opt-out back (an SMS "START", a resubscribe); true when
    /// there was one.
    async fn opt_in(&self, point: ContactPoint, address: &str) -> Result<bool, StoreError>;
    /// What `address` opted out of on `point`, if anything.
    async fn opt_out_scope(
        &self,
        point: ContactPoint,
        address: &str,
    ) -> Result<Option<ConsentScope>, StoreError>;
    async fn opt_outs(&self) -> Result<OptOuts, StoreError>;
}
