//! The fallback task: every `[fallback] check_interval`, on the leader
//! only, held fallbacks whose first delivery failed (dead, undelivered,
//! hard-bounced) or stayed unconfirmed past `no_receipt_after` become
//! deliveries of their own (`FallbackStore::release_fallbacks`, which
//! also writes the audit line). Releasing is safe on any node, since each
//! fallback is settled once in a transaction; the leader alone sweeps so
//! that several daemons do not race for the same rows.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock::Clock;
use crate::outbox::{FallbackOutcome, FallbackStore, Leadership};

/// Fallbacks settled per transaction: a bounce storm is released in
/// rounds, other writers going between them.
const ROUND: u32 = 500;

pub(super) async fn run(
    fallbacks: Arc<dyn FallbackStore>,
    every: Duration,
    (leadership, clock): (Leadership, Arc<dyn Clock>),
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if leadership.is_leading() {
            sweep(fallbacks.as_ref(), &leadership, clock.as_ref(), &stop).await;
        }
    }
}

/// Releases every fallback due now, round after round, until a round
/// finds fewer than it may take; a store error waits for the next tick.
async fn sweep(
    fallbacks: &dyn FallbackStore,
    leadership: &Leadership,
    clock: &dyn Clock,
    stop: &CancellationToken,
) {
    loop {
        if stop.is_cancelled() || !leadership.is_leading() {
            return;
        }
        match fallbacks.release_fallbacks(clock.now(), ROUND).await {
            Ok(outcomes) => {
                report(&outcomes);
                if outcomes.len() < ROUND as usize {
                    return;
                }
            }
            Err(err) => {
                warn!(error = %err, "Could not release held fallbacks; trying again shortly.");
                return;
            }
        }
        tokio::task::yield_now().await;
    }
}

fn report(outcomes: &[FallbackOutcome]) {
    for outcome in outcomes {
        if outcome.released {
            info!(crisis_id = %outcome.crisis_id, delivery = %outcome.delivery, after = %outcome.after,
                channel = %outcome.channel, why = %outcome.outcome, "Released a fallback: the reader's first message did not reach them.");
        } else {
            info!(crisis_id = %outcome.crisis_id, delivery = %outcome.delivery, after = %outcome.after,
                channel = %outcome.channel, why = %outcome.outcome, "Skipped a fallback.");
        }
        crate::telemetry::fallback(&outcome.channel, outcome.released);
    }
}
