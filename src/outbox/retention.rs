//! Retention: old rows pruned in small batches, so the tables (the
//! deliveries above all) stop growing and a claim never waits long behind
//! a delete. Only rows nobody acts on are pruned: never a row of a crisis
//! that is still active or still has anything to send, never an unfinished
//! delivery, never a held or proposed incident. The crisis row itself and
//! its versions (the public record, CAP and the feeds) are kept.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;

/// One kind of row retention prunes; each is deleted by one statement of
/// at most a batch of rows, the same on both SQL backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prune {
    /// Sent and dead deliveries finished before the cutoff, of ended crises.
    Deliveries,
    /// Every delivery of a crisis ended before the cutoff (all finished).
    EndedDeliveries,
    /// Settled follow-ups of a crisis ended before the cutoff.
    EndedFollowUps,
    /// Renditions of such a crisis, once no delivery refers to them.
    EndedRenditions,
    /// Announcements of such a crisis, once nothing refers to them.
    EndedAnnouncements,
    /// Source links of such a crisis.
    EndedSourceLinks,
    /// A crisis's audit events before the cutoff, once it has ended.
    CrisisEvents,
    /// The console's account audit trail before the cutoff.
    AccountAudit,
    /// The webhook log before the cutoff.
    HookLog,
    /// Webhook delivery ids seen before the cutoff.
    HookDeliveries,
    /// Incidents decided (declared, confirmed, discarded, withdrawn) before
    /// the cutoff.
    HookPending,
}

/// A crisis that has ended: resolved, with nothing left to send, plan or
/// follow up. (Correlated on `c`.)
const ENDED: &str = "c.status = 'resolved' \
     AND NOT EXISTS (SELECT 1 FROM deliveries u WHERE u.crisis_id = c.id \
         AND u.state IN ('pending', 'in_flight', 'retrying')) \
     AND NOT EXISTS (SELECT 1 FROM follow_ups f WHERE f.crisis_id = c.id AND f.state = 'pending') \
     AND NOT EXISTS (SELECT 1 FROM announcements p WHERE p.crisis_id = c.id AND p.planning)";

impl Prune {
    /// Every kind, in the order that keeps references whole (deliveries
    /// before the renditions and announcements they name).
    pub const ALL: [Prune; 11] = [
        Prune::Deliveries,
        Prune::EndedDeliveries,
        Prune::EndedFollowUps,
        Prune::EndedRenditions,
        Prune::EndedAnnouncements,
        Prune::EndedSourceLinks,
        Prune::CrisisEvents,
        Prune::AccountAudit,
        Prune::HookLog,
        Prune::HookDeliveries,
        Prune::HookPending,
    ];

    /// Its name in logs and `/metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            Prune::Deliveries => "deliveries",
            Prune::EndedDeliveries => "ended_deliveries",
            Prune::EndedFollowUps => "ended_follow_ups",
            Prune::EndedRenditions => "ended_renditions",
            Prune::EndedAnnouncements => "ended_announcements",
            Prune::EndedSourceLinks => "ended_source_links",
            Prune::CrisisEvents => "crisis_events",
            Prune::AccountAudit => "account_audit",
            Prune::HookLog => "hook_log",
            Prune::HookDeliveries => "hook_deliveries",
            Prune::HookPending => "hook_pending",
        }
    }

    /// The statement: `$1` the cutoff (Unix ms), `$2` the batch size. Both
    /// backends run it as it is (SQLite numbers `$n` in order of first use,
    /// so `$1` comes first in each).
    pub(super) fn sql(self) -> String {
        let ended_before =
            format!("SELECT c.id FROM crises c WHERE c.resolved_at < $1 AND {ENDED}");
        match self {
            Prune::Deliveries => format!(
                "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries \
                 WHERE state IN ('sent', 'dead') AND finished_at < $1 \
                 AND crisis_id IN (SELECT c.id FROM crises c WHERE {ENDED}) LIMIT $2)"
            ),
            Prune::EndedDeliveries => format!(
                "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries \
                 WHERE crisis_id IN ({ended_before}) LIMIT $2)"
            ),
            Prune::EndedFollowUps => format!(
                "DELETE FROM follow_ups WHERE id IN (SELECT id FROM follow_ups \
                 WHERE crisis_id IN ({ended_before}) LIMIT $2)"
            ),
            Prune::EndedRenditions => format!(
                "DELETE FROM renditions WHERE id IN (SELECT r.id FROM renditions r \
                 JOIN announcements a ON a.id = r.announcement_id \
                 WHERE a.crisis_id IN ({ended_before}) \
                 AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.announcement_id = a.id) LIMIT $2)"
            ),
            Prune::EndedAnnouncements => format!(
                "DELETE FROM announcements WHERE id IN (SELECT a.id FROM announcements a \
                 WHERE a.crisis_id IN ({ended_before}) \
                 AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.announcement_id = a.id) \
                 AND NOT EXISTS (SELECT 1 FROM renditions r WHERE r.announcement_id = a.id) \
                 AND NOT EXISTS (SELECT 1 FROM follow_ups f WHERE f.crisis_id = a.crisis_id) LIMIT $2)"
            ),
            Prune::EndedSourceLinks => format!(
                "DELETE FROM source_links WHERE (source, external_id) IN (SELECT source, external_id \
                 FROM source_links WHERE crisis_id IN ({ended_before}) LIMIT $2)"
            ),
            Prune::CrisisEvents => format!(
                "DELETE FROM crisis_events WHERE seq IN (SELECT seq FROM crisis_events \
                 WHERE at < $1 AND crisis_id IN (SELECT c.id FROM crises c WHERE {ENDED}) LIMIT $2)"
            ),
            Prune::AccountAudit => "DELETE FROM console_audit WHERE seq IN \
                 (SELECT seq FROM console_audit WHERE at < $1 LIMIT $2)"
                .to_owned(),
            Prune::HookLog => "DELETE FROM hook_log WHERE seq IN \
                 (SELECT seq FROM hook_log WHERE received_at < $1 LIMIT $2)"
                .to_owned(),
            Prune::HookDeliveries => "DELETE FROM hook_deliveries WHERE (hook, delivery_id) IN \
                 (SELECT hook, delivery_id FROM hook_deliveries WHERE received_at < $1 LIMIT $2)"
                .to_owned(),
            Prune::HookPending => {
                "DELETE FROM hook_pending WHERE id IN (SELECT id FROM hook_pending \
                 WHERE updated_at < $1 AND state NOT IN ('held', 'proposed') LIMIT $2)"
                    .to_owned()
            }
        }
    }
}

#[async_trait]
pub trait RetentionStore: Send + Sync + 'static {
    /// Deletes at most `limit` rows of `what` older than `before` (each
    /// kind's own rule), in one short transaction; returns how many. A
    /// result below `limit` means none is left.
    async fn prune(
        &self,
        what: Prune,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError>;
}
