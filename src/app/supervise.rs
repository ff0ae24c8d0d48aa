//! While the daemon runs: systemd's watchdog is pinged as long as the store
//! answers and every registered loop makes progress, and the status line
//! (`systemctl status`) is kept current.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::banner::Banner;
use crate::health;
use crate::http::AppState;
use crate::lifecycle::Notifier;
use crate::liveness::Liveness;
use crate::outbox::{ChannelStateCount, DeliveryState, Ledger};

/// How often the status line is refreshed.
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// How long the store's writes may keep failing (a full disk) before the
/// watchdog is no longer pinged: the daemon recovers by itself once space
/// returns, so a short fault is ridden out; a fault that lasts this long
/// may be one only a restart clears (systemd then restarts the daemon).
const WRITES_STUCK: Duration = Duration::from_secs(300);

/// Deliveries not yet sent or dead, every channel together.
fn pending(counts: &[ChannelStateCount]) -> u64 {
    counts
        .iter()
        .filter(|c| c.state != DeliveryState::Dead)
        .map(|c| c.count)
        .sum()
}

fn status(active: usize, pending: u64) -> String {
    format!("{active} active crisis(es); {pending} delivery(ies) pending.")
}

/// The one-line summary systemd shows in `systemctl status`.
pub(super) async fn status_line(state: &AppState, store: &dyn Ledger) -> String {
    let active = state.banner.active_count();
    match store.channel_counts().await {
        Ok(counts) => status(active, pending(&counts)),
        Err(_) => format!("{active} active crisis(es); store not answering."),
    }
}

/// The pending deliveries, or why the store cannot say.
async fn store_pending(store: &dyn Ledger) -> Result<u64, String> {
    match tokio::time::timeout(health::CHECK_TIMEOUT, store.channel_counts()).await {
        Ok(Ok(counts)) => Ok(pending(&counts)),
        Ok(Err(err)) => Err(format!("the store fails: {err}")),
        Err(_) => Err("the store does not answer".to_owned()),
    }
}

/// Pings the watchdog while the daemon makes progress and keeps the status
/// line current, until `stop`.
pub(super) async fn supervise(
    store: Arc<dyn Ledger>,
    banner: Arc<Banner>,
    liveness: Liveness,
    notifier: Notifier,
    stop: CancellationToken,
) {
    if !notifier.is_listening() {
        return;
    }
    let watchdog = notifier.watchdog_interval();
    let period = watchdog.map_or(STATUS_EVERY, |w| w.min(STATUS_EVERY));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_status = tokio::time::Instant::now();
    let mut healthy = true;
    let mut failing_since = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let mut problems: Vec<String> =
            liveness.stalled().iter().map(ToString::to_string).collect();
        match store.write_fault() {
            Some(why) => {
                let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() >= WRITES_STUCK {
                    problems.push(format!(
                        "the store's writes have failed for {}: {why}",
                        humantime::format_duration(WRITES_STUCK)
                    ));
                }
            }
            None => failing_since = None,
        }
        let pending = store_pending(store.as_ref())
            .await
            .map_err(|problem| problems.push(problem))
            .ok();
        if watchdog.is_some() {
            healthy = ping_if_healthy(&notifier, &problems, healthy);
        }
        if last_status.elapsed() >= STATUS_EVERY || watchdog.is_none() {
            last_status = tokio::time::Instant::now();
            let active = banner.active_count();
            notifier.status(&match pending {
                Some(pending) => status(active, pending),
                None => format!("{active} active crisis(es); {}.", problems.join("; ")),
            });
        }
    }
}

/// Pings the watchdog when nothing is wrong, logging once when that
/// changes; returns whether the daemon is healthy now.
fn ping_if_healthy(notifier: &Notifier, problems: &[String], was_healthy: bool) -> bool {
    if problems.is_empty() {
        notifier.watchdog();
        if !was_healthy {
            info!("The daemon makes progress again; watchdog pings resumed.");
        }
        return true;
    }
    if was_healthy {
        error!(problems = %problems.join("; "), "Not pinging the watchdog; systemd restarts the daemon if this lasts.");
    }
    false
}
