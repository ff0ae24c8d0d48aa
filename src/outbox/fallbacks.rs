//! Fallbacks: a reader's message on their next contact point, planned with
//! the first and held until that one fails or stays unconfirmed too long;
//! then it becomes a delivery of its own, at most once per channel.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use std::collections::BTreeMap;

use super::rows::parse;
use super::{NewDelivery, StoreError};
use crate::domain::consent::ContactPoint;
use crate::domain::{Actor, ActorSource, CrisisEvent, CrisisId, DeliveryId, EventKind, Status};

/// A fallback as planned: the delivery it will become (queued, its
/// rendition written with the plan batch) and the one it waits on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldFallback {
    pub after: DeliveryId,
    pub point: ContactPoint,
    pub delivery: NewDelivery,
    /// Released when `after` has no receipt this long after it was sent;
    /// `None`: only when it fails.
    pub no_receipt_after: Option<Duration>,
}

/// A fallback released (now a pending delivery) or skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackOutcome {
    pub crisis_id: CrisisId,
    /// The fallback's delivery id.
    pub delivery: DeliveryId,
    /// The delivery it stands in for.
    pub after: DeliveryId,
    pub channel: String,
    /// Released: why (`undelivered`, `bounced`, `dead`, `no receipt`);
    /// skipped: `skipped: ...`.
    pub outcome: String,
    pub released: bool,
}

#[async_trait]
pub trait FallbackStore: Send + Sync + 'static {
    /// Keeps the fallbacks of a plan batch; write them before the batch,
    /// so a fallback exists whenever its first delivery does (one whose
    /// batch never got written waits on a delivery that does not exist,
    /// and is never released).
    async fn hold_fallbacks(
        &self,
        fallbacks: &[HeldFallback],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Releases up to `limit` held fallbacks whose delivery ended dead,
    /// undelivered or hard-bounced, or has had no receipt for its wait:
    /// each becomes a pending delivery, unless its destination opted out
    /// or already has this announcement on that channel (then it is
    /// skipped, and the fallback after it waits on the same failure), or
    /// the failed delivery was cancelled, corrected or opted out (then the
    /// reader is not chased). Signals work due when it released any.
    async fn release_fallbacks(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<FallbackOutcome>, StoreError>;
}

pub(super) const HOLD: &str = "INSERT INTO fallbacks (id, after_id, channel, point, destination, \
     content, rendition_id, recipient_name, unsubscribe_url, wait_ms, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING";

/// Held fallbacks whose first delivery failed or waited too long for a
/// receipt (`$1` now, `$2` the limit). A soft bounce is no failure yet,
/// but it is no receipt either.
pub(super) const DUE: &str = "SELECT f.id, f.after_id, f.channel, f.point, f.destination, \
     d.crisis_id, d.announcement_id, d.state, d.dead_cause, d.receipt, c.status, d.kind, \
     d.channel AS after_channel \
     FROM fallbacks f JOIN deliveries d ON d.id = f.after_id JOIN crises c ON c.id = d.crisis_id \
     WHERE f.released_at IS NULL AND (d.state = 'dead' OR d.receipt = 'undelivered' \
       OR (d.receipt = 'bounced' AND d.receipt_hard) \
       OR (d.state = 'sent' AND (d.receipt IS NULL OR d.receipt = 'bounced') \
           AND f.wait_ms IS NOT NULL AND d.finished_at + f.wait_ms <= $1)) \
     ORDER BY f.created_at LIMIT $2";

/// A row of `DUE`.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct DueRow {
    pub(super) id: String,
    pub(super) after_id: String,
    pub(super) channel: String,
    pub(super) point: String,
    pub(super) destination: String,
    pub(super) crisis_id: String,
    pub(super) announcement_id: String,
    pub(super) state: String,
    pub(super) dead_cause: Option<String>,
    pub(super) receipt: Option<String>,
    pub(super) status: String,
    pub(super) kind: String,
    /// The channel of the delivery it stands in for.
    pub(super) after_channel: String,
}

/// What to do with a due fallback before looking at its destination.
pub(super) enum Verdict {
    /// Release it, for this reason.
    Release(&'static str),
    /// Leave the reader be: the first message was stopped on purpose.
    Skip(String),
}

impl DueRow {
    pub(super) fn verdict(&self) -> Verdict {
        if self.state == "dead" {
            return match self.dead_cause.as_deref() {
                Some(cause @ ("cancelled" | "corrected" | "opted_out")) => {
                    Verdict::Skip(format!("skipped: the first message was {cause}"))
                }
                _ => Verdict::Release("dead"),
            };
        }
        if self.status == "resolved" && self.kind != "resolved" {
            return Verdict::Skip("skipped: the crisis was resolved".into());
        }
        match self.receipt.as_deref() {
            Some("undelivered") => Verdict::Release("undelivered"),
            Some("bounced") if self.state == "sent" => Verdict::Release("bounced"),
            _ => Verdict::Release("no receipt"),
        }
    }

    pub(super) fn outcome(
        &self,
        outcome: String,
        released: bool,
    ) -> Result<FallbackOutcome, StoreError> {
        Ok(FallbackOutcome {
            crisis_id: parse(&self.crisis_id, "crisis id")?,
            delivery: parse(&self.id, "delivery id")?,
            after: parse(&self.after_id, "delivery id")?,
            channel: self.channel.clone(),
            outcome,
            released,
        })
    }
}

/// Whether the fallback's destination opted out on its point.
pub(super) const OPTED_OUT: &str =
    "SELECT count(*) FROM opt_outs WHERE point = $1 AND address = $2";
/// Whether the destination already has this announcement on the channel.
pub(super) const ALREADY: &str = "SELECT count(*) FROM deliveries \
     WHERE announcement_id = $1 AND channel = $2 AND lower(destination) = lower($3)";
/// A skipped fallback's successor waits on the same failure.
pub(super) const REPOINT: &str =
    "UPDATE fallbacks SET after_id = $1 WHERE after_id = $2 AND released_at IS NULL";
pub(super) const SETTLE: &str = "UPDATE fallbacks SET released_at = $1, outcome = $2 WHERE id = $3";
/// The fallback as a pending delivery of the first one's announcement.
pub(super) const RELEASE: &str = "INSERT INTO deliveries (id, crisis_id, announcement_id, kind, \
     channel, recipient_id, destination, locale, content, priority, state, attempts, available_at, \
     created_at, rendition_id, recipient_name, unsubscribe_url, ordinal, reached_only, fallback_of) \
     SELECT f.id, d.crisis_id, d.announcement_id, d.kind, f.channel, d.recipient_id, f.destination, \
     d.locale, f.content, d.priority, 'pending', 0, $1, $1, f.rendition_id, f.recipient_name, \
     f.unsubscribe_url, d.ordinal, d.reached_only, d.id \
     FROM fallbacks f JOIN deliveries d ON d.id = f.after_id WHERE f.id = $2";

/// A wait as the milliseconds `wait_ms` stores.
pub(super) fn wait_ms(wait: Duration) -> i64 {
    i64::try_from(wait.as_millis()).unwrap_or(i64::MAX)
}

/// Who the audit trail says released a fallback: the daemon itself.
pub const FALLBACK_ACTOR: &str = "fallback";

/// The audit events one round of releases leaves, one per crisis in the
/// round: how many messages went on which channel after which failure,
/// and how many were skipped and why. `due` and `outcomes` pair up.
pub(super) fn audit_events(
    due: &[DueRow],
    outcomes: &[FallbackOutcome],
    now: DateTime<Utc>,
) -> Result<Vec<CrisisEvent>, StoreError> {
    // Per crisis: its status, then counts per line of the message.
    let mut per_crisis: BTreeMap<&str, (&str, BTreeMap<String, u64>)> = BTreeMap::new();
    for (row, outcome) in due.iter().zip(outcomes) {
        let line = if outcome.released {
            format!(
                "sent on {} after {} ({})",
                row.channel, row.after_channel, outcome.outcome
            )
        } else {
            format!("not sent on {}: {}", row.channel, outcome.outcome)
        };
        let entry = per_crisis
            .entry(row.crisis_id.as_str())
            .or_insert((row.status.as_str(), BTreeMap::new()));
        *entry.1.entry(line).or_default() += 1;
    }
    per_crisis
        .into_iter()
        .map(|(crisis, (status, lines))| {
            let text = lines
                .into_iter()
                .map(|(line, n)| format!("{n} {line}"))
                .collect::<Vec<_>>()
                .join("; ");
            Ok(CrisisEvent {
                crisis_id: parse(crisis, "crisis id")?,
                kind: EventKind::Noted,
                status: parse::<Status>(status, "crisis status")?,
                actor: Actor::new(ActorSource::Daemon, FALLBACK_ACTOR),
                message: Some(format!("Fallback: {text}.")),
                at: now,
            })
        })
        .collect()
}
