//! Delivery receipts: what a provider said after it accepted a delivery
//! (delivered, undelivered, bounced), found by our delivery id or the
//! provider's id for the message, and the addresses a hard bounce marked
//! bad.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreError;
use super::rows::parse;
use crate::domain::consent::ContactPoint;
pub use crate::domain::fallback::BadAddresses;
use crate::domain::{CrisisId, DeliveryId, DomainError, string_enum};

string_enum!(
    /// What a receipt says became of a sent delivery. `Delivered` and
    /// `Undelivered` are final; `Bounced` is final when hard (a 5.x.x
    /// status), and a soft one (4.x.x) may still be replaced by a later
    /// receipt.
    ReceiptState {
        Delivered => "delivered",
        Undelivered => "undelivered",
        Bounced => "bounced",
    }
);

/// How a receipt names its delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptKey {
    /// Our id, which the receipt carries back (a signed dlr URL, a VERP
    /// return path, Vonage's `client-ref`).
    Delivery(DeliveryId),
    /// The provider's id for the message, stored when it was sent.
    ProviderRef { channel: String, reference: String },
}

impl fmt::Display for ReceiptKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReceiptKey::Delivery(id) => write!(f, "delivery {id}"),
            ReceiptKey::ProviderRef { channel, reference } => {
                write!(f, "{channel} message {reference}")
            }
        }
    }
}

/// One receipt, checked and read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReceipt {
    pub key: ReceiptKey,
    pub state: ReceiptState,
    /// For a bounce: hard (the address is bad) or soft.
    pub hard: bool,
    /// The provider's words or code, for people.
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
    /// Mark the destination bad on this contact point when the receipt is
    /// a hard bounce (`[receipts] mark_bad_on_hard_bounce`).
    pub mark_bad: Option<ContactPoint>,
}

/// What recording a receipt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The delivery took the receipt's state.
    Changed {
        delivery: DeliveryId,
        crisis: CrisisId,
        channel: String,
    },
    /// The delivery exists but already has a final receipt: a late or
    /// repeated one changes nothing.
    Unchanged { delivery: DeliveryId },
    /// No delivery has that id.
    Unknown,
}

/// Who a channel reached, by what the receipts say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReachCounts {
    /// A receipt said delivered.
    pub delivered: u64,
    /// Sent, and no receipt (yet): the provider accepted it.
    pub unconfirmed: u64,
    pub undelivered: u64,
    pub bounced_hard: u64,
    pub bounced_soft: u64,
    /// Never sent.
    pub dead: u64,
    /// Deliveries that stood in for a failed one on another channel.
    pub fallbacks: u64,
}

impl ReachCounts {
    /// Confirmed reached: a receipt said so.
    pub fn reached(&self) -> u64 {
        self.delivered
    }

    /// Known not reached: undelivered, hard-bounced or dead.
    pub fn not_reached(&self) -> u64 {
        self.undelivered + self.bounced_hard + self.dead
    }
}

/// One row of `ReceiptStore::reach`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelReach {
    pub crisis_id: CrisisId,
    pub channel: String,
    pub counts: ReachCounts,
}

#[async_trait]
pub trait ReceiptStore: Send + Sync + 'static {
    /// Gives the delivery the receipt names its state, unless it already
    /// has a final one (delivered, undelivered, a hard bounce): a late
    /// `delivered` after a hard bounce, or any repeat, changes nothing. A
    /// hard bounce with `mark_bad` marks the destination bad in the same
    /// transaction.
    async fn record_receipt(&self, receipt: &DeliveryReceipt) -> Result<Recorded, StoreError>;
    /// Marked by a hard bounce, or by hand.
    async fn bad_addresses(&self) -> Result<BadAddresses, StoreError>;
    /// Per crisis and channel, who was reached (`None`: every crisis).
    async fn reach(&self, crisis: Option<CrisisId>) -> Result<Vec<ChannelReach>, StoreError>;
}

/// The receipt's state, unless the delivery already has a final one. Both
/// backends bind `$1`.. in the order they first appear.
pub(super) const RECORD: &str = "UPDATE deliveries SET receipt = $1, receipt_hard = $2, \
     receipt_reason = $3, receipt_at = $4 \
     WHERE state <> 'pending' AND (receipt IS NULL OR (receipt = 'bounced' AND NOT receipt_hard)) AND ";
pub(super) const BY_ID: &str = "id = $5";
pub(super) const BY_REF: &str = "channel = $5 AND provider_ref = $6";
/// The key's condition alone, its parameters numbered from 1.
pub(super) fn key_only(key: &ReceiptKey) -> &'static str {
    match key {
        ReceiptKey::Delivery(_) => "id = $1",
        ReceiptKey::ProviderRef { .. } => "channel = $1 AND provider_ref = $2",
    }
}
pub(super) const RETURNING: &str = " RETURNING id, crisis_id, channel, destination";

pub(super) const MARK_BAD: &str = "INSERT INTO bad_addresses (point, address, reason, marked_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (point, address) DO UPDATE SET \
     reason = excluded.reason, marked_at = excluded.marked_at";

/// Who each channel of each crisis reached; `$1` is the crisis when the
/// query ends with `REACH_OF`.
pub(super) const REACH: &str = "SELECT crisis_id, channel, \
     SUM(CASE WHEN receipt = 'delivered' THEN 1 ELSE 0 END) AS delivered, \
     SUM(CASE WHEN state = 'sent' AND receipt IS NULL THEN 1 ELSE 0 END) AS unconfirmed, \
     SUM(CASE WHEN receipt = 'undelivered' THEN 1 ELSE 0 END) AS undelivered, \
     SUM(CASE WHEN receipt = 'bounced' AND receipt_hard THEN 1 ELSE 0 END) AS bounced_hard, \
     SUM(CASE WHEN receipt = 'bounced' AND NOT receipt_hard THEN 1 ELSE 0 END) AS bounced_soft, \
     SUM(CASE WHEN state = 'dead' AND dead_cause NOT IN ('cancelled', 'corrected') \
         THEN 1 ELSE 0 END) AS dead, \
     SUM(CASE WHEN fallback_of IS NOT NULL THEN 1 ELSE 0 END) AS fallbacks \
     FROM deliveries ";
pub(super) const REACH_OF: &str = "WHERE crisis_id = $1 ";
pub(super) const REACH_END: &str = "GROUP BY crisis_id, channel ORDER BY crisis_id, channel";

/// A row of `REACH`.
#[derive(sqlx::FromRow)]
pub(super) struct ReachRow {
    crisis_id: String,
    channel: String,
    delivered: Option<i64>,
    unconfirmed: Option<i64>,
    undelivered: Option<i64>,
    bounced_hard: Option<i64>,
    bounced_soft: Option<i64>,
    dead: Option<i64>,
    fallbacks: Option<i64>,
}

impl TryFrom<ReachRow> for ChannelReach {
    type Error = StoreError;

    fn try_from(row: ReachRow) -> Result<Self, StoreError> {
        let n = |v: Option<i64>| u64::try_from(v.unwrap_or(0)).unwrap_or(0);
        Ok(ChannelReach {
            crisis_id: parse(&row.crisis_id, "crisis id")?,
            channel: row.channel,
            counts: ReachCounts {
                delivered: n(row.delivered),
                unconfirmed: n(row.unconfirmed),
                undelivered: n(row.undelivered),
                bounced_hard: n(row.bounced_hard),
                bounced_soft: n(row.bounced_soft),
                dead: n(row.dead),
                fallbacks: n(row.fallbacks),
            },
        })
    }
}

/// What `RECORD ... RETURNING` gives back.
#[derive(sqlx::FromRow)]
pub(super) struct RecordedRow {
    pub(super) id: String,
    pub(super) crisis_id: String,
    pub(super) channel: String,
    pub(super) destination: String,
}

impl RecordedRow {
    pub(super) fn recorded(&self) -> Result<Recorded, StoreError> {
        Ok(Recorded::Changed {
            delivery: parse(&self.id, "delivery id")?,
            crisis: parse(&self.crisis_id, "crisis id")?,
            channel: self.channel.clone(),
        })
    }
}
