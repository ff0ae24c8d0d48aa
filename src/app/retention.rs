//! The retention task: every `[retention] every`, on the leader only, old
//! rows pruned kind by kind in batches, with a pause between batches so
//! the claims and outcomes of a fan-out in progress are not held up.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock::Clock;
use crate::config::RetentionSettings;
use crate::outbox::{Leadership, Prune, Storage};

/// The first prune waits this long after start, so a start is not slowed.
const FIRST_AFTER: Duration = Duration::from_secs(10);
/// Between two batches: other writers (on SQLite, the one writer's queue)
/// go first.
const PAUSE: Duration = Duration::from_millis(50);

/// The age that applies to each kind of row.
fn age(settings: &RetentionSettings, what: Prune) -> Duration {
    match what {
        Prune::Deliveries => settings.deliveries,
        Prune::EndedDeliveries
        | Prune::EndedFollowUps
        | Prune::EndedRenditions
        | Prune::EndedAnnouncements
        | Prune::EndedSourceLinks => settings.crises,
        Prune::CrisisEvents | Prune::AccountAudit => settings.audit,
        Prune::HookLog | Prune::HookDeliveries | Prune::HookPending => settings.hook_log,
    }
}

pub(super) async fn run(
    storage: Storage,
    settings: RetentionSettings,
    (leadership, clock): (Leadership, Arc<dyn Clock>),
    stop: CancellationToken,
) {
    let first = tokio::time::Instant::now() + FIRST_AFTER.min(settings.every);
    let mut every = tokio::time::interval_at(first, settings.every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        if leadership.is_leading() {
            prune_all(&storage, &settings, (&leadership, clock.as_ref()), &stop).await;
        }
    }
}

/// One round: each kind until no row of it is old enough, or this daemon
/// stops leading or stopping.
async fn prune_all(
    storage: &Storage,
    settings: &RetentionSettings,
    (leadership, clock): (&Leadership, &dyn Clock),
    stop: &CancellationToken,
) {
    for what in Prune::ALL {
        let Ok(age) = chrono::Duration::from_std(age(settings, what)) else {
            continue;
        };
        let mut pruned = 0;
        loop {
            if stop.is_cancelled() || !leadership.is_leading() {
                return;
            }
            let before = clock.now() - age;
            match storage.retention.prune(what, before, settings.batch).await {
                Ok(n) => {
                    pruned += n;
                    if n < u64::from(settings.batch) {
                        break;
                    }
                }
                Err(err) => {
                    warn!(error = %err, rows = what.as_str(), "Could not prune old rows; trying again at the next round.");
                    break;
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(PAUSE) => {}
            }
        }
        if pruned > 0 {
            info!(rows = what.as_str(), count = pruned, "Pruned old rows.");
            crate::telemetry::pruned(what.as_str(), pruned);
        }
    }
}
