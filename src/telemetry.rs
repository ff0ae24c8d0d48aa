//! Metrics in the Prometheus text format, served at `GET /metrics`.
//!
//! Every metric crisisd exports is named and described here, with one
//! function per thing that happens, so the rest of the code says what
//! happened (`telemetry::delivery_finished(..)`) and the names, labels and
//! units stay in one place. Labels are low-cardinality on purpose: channel
//! names, outcomes, severities, sources; never a recipient, crisis id or
//! title.
//!
//! Gauges that describe the ledger (queue depth, dead deliveries, active
//! crises) are read from the store by one task every few seconds
//! (`http::ops::keep_gauges`), so they are right after a restart and with
//! several daemons on one store, and a scrape costs no query.

use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::channels::{DeliveryError, Receipt};
use crate::domain::{Crisis, Severity};
use crate::outbox::{ChannelStateCount, DeliveryState, Outcome};
use crate::publish::{Target, TargetState};

pub const DELIVERIES: &str = "crisisd_deliveries_total";
pub const DELIVERY_LATENCY: &str = "crisisd_delivery_latency_seconds";
pub const PROVIDER_ERRORS: &str = "crisisd_provider_errors_total";
pub const QUEUE_DEPTH: &str = "crisisd_queue_depth";
pub const DEAD_DELIVERIES: &str = "crisisd_dead_deliveries";
pub const ACTIVE_CRISES: &str = "crisisd_active_crises";
pub const CHANNEL_HEALTHY: &str = "crisisd_channel_healthy";
pub const RELOADS: &str = "crisisd_reloads_total";
pub const WEBHOOK_REQUESTS: &str = "crisisd_webhook_requests_total";
pub const WEBHOOK_REFUSALS: &str = "crisisd_webhook_refusals_total";
pub const FOLLOW_UPS_PENDING: &str = "crisisd_follow_ups_pending";
pub const LEADER: &str = "crisisd_leader";
pub const LEADER_TERM: &str = "crisisd_leader_term";
pub const RETENTION_PRUNED: &str = "crisisd_retention_pruned_total";
pub const PUBLISH_OK: &str = "crisisd_publish_ok";
pub const PUBLISH_FAILURES: &str = "crisisd_publish_failures";
pub const BUILD_INFO: &str = "crisisd_build_info";
pub const FALLBACKS: &str = "crisisd_fallbacks_total";
pub const REACH: &str = "crisisd_reach";

/// Planned → sent: seconds for a fast channel up to hours for a large
/// audience behind a strict rate limit.
const LATENCY_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0,
];

/// The process-wide recorder, installed on first use. One per process:
/// the `metrics` macros write to a global recorder, so several daemons in
/// one process (the integration tests) share it.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(DELIVERY_LATENCY.into()), LATENCY_BUCKETS)
            // The only failure is an empty bucket list, which this is not.
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        let handle = recorder.handle();
        // Fails only when another recorder is installed already; this
        // handle then renders nothing, which /metrics shows plainly.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    })
}

fn describe() {
    describe_counter!(
        DELIVERIES,
        "Delivery attempts finished, by channel and outcome (sent, retry, dead)."
    );
    describe_histogram!(
        DELIVERY_LATENCY,
        metrics::Unit::Seconds,
        "Time from planning a delivery to its being sent, by channel."
    );
    describe_counter!(
        PROVIDER_ERRORS,
        "Errors from providers, by channel and class (transient, rate_limited, permanent)."
    );
    describe_gauge!(
        QUEUE_DEPTH,
        "Deliveries not yet finished, by channel and state (pending, in_flight, retrying)."
    );
    describe_gauge!(
        DEAD_DELIVERIES,
        "Dead deliveries in the outbox, by channel (retry-dead lowers it)."
    );
    describe_gauge!(ACTIVE_CRISES, "Active crises, by severity.");
    describe_gauge!(
        CHANNEL_HEALTHY,
        "1 when the channel's last healthcheck passed, 0 when it failed."
    );
    describe_counter!(
        RELOADS,
        "Configuration reloads, by result (applied, refused)."
    );
    describe_counter!(
        WEBHOOK_REQUESTS,
        "Inbound webhook requests, by source and verdict (accepted, rejected, ignored)."
    );
    describe_counter!(
        WEBHOOK_REFUSALS,
        "Webhooks refused before their sender was authenticated (not in the webhook log), by hook (`unknown` for names not configured) and reason (unknown_hook, unauthorized, too_large, malformed)."
    );
    describe_gauge!(
        FOLLOW_UPS_PENDING,
        "Follow-up announcements scheduled and not yet sent."
    );
    describe_gauge!(
        LEADER,
        "1 while this daemon leads the daemons sharing its store (follow-ups, webhook holds), else 0."
    );
    describe_gauge!(
        LEADER_TERM,
        "The lead's term while this daemon holds it; it grows each time the lead changes hands."
    );
    describe_counter!(
        RETENTION_PRUNED,
        "Rows this daemon pruned while leading, by kind ([retention])."
    );
    describe_gauge!(
        PUBLISH_OK,
        "1 when the static mirror's last write to the target (dir, s3) succeeded, else 0."
    );
    describe_gauge!(
        PUBLISH_FAILURES,
        "Failed writes in a row of the static mirror to the target (dir, s3)."
    );
    describe_gauge!(
        REACH,
        "Readers the active crises' messages reached, per channel and state (reached: a receipt said delivered; not_reached: undelivered, hard-bounced or dead; unconfirmed: sent, no receipt yet; fallback: sent on another contact point)."
    );
    describe_counter!(
        FALLBACKS,
        "Held fallbacks this daemon settled, by the fallback's channel and outcome (released, skipped)."
    );
    describe_gauge!(BUILD_INFO, "Always 1; the version is a label.");
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// The exposition, with histograms' windows maintained first.
pub fn render() -> String {
    let handle = handle();
    handle.run_upkeep();
    handle.render()
}

/// What a provider answered a send, classed for `crisisd_provider_errors_total`.
pub fn provider_answered(channel: &str, result: &Result<Receipt, DeliveryError>) {
    let class = match result {
        Ok(_) => return,
        Err(DeliveryError::Permanent { .. }) => "permanent",
        Err(DeliveryError::Transient {
            retry_after: Some(_),
            ..
        }) => "rate_limited",
        Err(DeliveryError::Transient { .. }) => "transient",
    };
    counter!(PROVIDER_ERRORS, "channel" => channel.to_owned(), "class" => class).increment(1);
}

/// A claimed delivery's outcome; `planned_at` starts its latency.
pub fn delivery_finished(
    channel: &str,
    outcome: &Outcome,
    planned_at: DateTime<Utc>,
    now: DateTime<Utc>,
) {
    let label = match outcome {
        Outcome::Sent { .. } => "sent",
        Outcome::Retry { .. } => "retry",
        Outcome::Dead { .. } => "dead",
    };
    counter!(DELIVERIES, "channel" => channel.to_owned(), "outcome" => label).increment(1);
    if matches!(outcome, Outcome::Sent { .. }) {
        let latency = (now - planned_at).to_std().unwrap_or(Duration::ZERO);
        histogram!(DELIVERY_LATENCY, "channel" => channel.to_owned()).record(latency.as_secs_f64());
    }
}

/// The ledger's unfinished and dead deliveries per channel. Channels
/// missing from `counts` read 0 for every state, so a drained queue shows
/// as 0 rather than as its last value.
pub fn ledger(channels: &[String], counts: &[ChannelStateCount]) {
    let count = |channel: &str, state: DeliveryState| {
        counts
            .iter()
            .filter(|c| c.channel == channel && c.state == state)
            .map(|c| c.count)
            .sum::<u64>() as f64
    };
    let mut names: Vec<&str> = channels.iter().map(String::as_str).collect();
    names.extend(counts.iter().map(|c| c.channel.as_str()));
    names.sort_unstable();
    names.dedup();
    for channel in names {
        for state in [
            DeliveryState::Pending,
            DeliveryState::InFlight,
            DeliveryState::Retrying,
        ] {
            gauge!(QUEUE_DEPTH, "channel" => channel.to_owned(), "state" => state.as_str())
                .set(count(channel, state));
        }
        gauge!(DEAD_DELIVERIES, "channel" => channel.to_owned())
            .set(count(channel, DeliveryState::Dead));
    }
}

pub fn active_crises(active: &[Crisis]) {
    for severity in Severity::ALL {
        let n = active.iter().filter(|c| c.severity == *severity).count();
        gauge!(ACTIVE_CRISES, "severity" => severity.as_str()).set(n as f64);
    }
}

pub fn channel_health(channel: &str, healthy: bool) {
    gauge!(CHANNEL_HEALTHY, "channel" => channel.to_owned()).set(if healthy { 1.0 } else { 0.0 });
}

pub fn reloaded(applied: bool) {
    let result = if applied { "applied" } else { "refused" };
    counter!(RELOADS, "result" => result).increment(1);
}

/// For inbound webhooks: one call per request, `source` the configured
/// source's type or name, `verdict` one of `accepted`, `rejected` (bad
/// signature or body) or `ignored` (valid, nothing to do).
pub fn webhook_received(source: &str, verdict: &'static str) {
    counter!(WEBHOOK_REQUESTS, "source" => source.to_owned(), "verdict" => verdict).increment(1);
}

/// A webhook refused before authentication; `hook` is a configured name
/// or `unknown`.
pub fn webhook_refused(hook: &str, reason: &'static str) {
    counter!(WEBHOOK_REFUSALS, "hook" => hook.to_owned(), "reason" => reason).increment(1);
}

/// For the follow-up scheduler: the number of follow-ups due and not yet
/// sent, set whenever it changes.
pub fn follow_ups_pending(count: u64) {
    gauge!(FOLLOW_UPS_PENDING).set(count as f64);
}

/// For the election among daemons sharing a store: whether this one leads,
/// and its term when it does.
pub fn leader(leading: bool, term: u64) {
    gauge!(LEADER).set(if leading { 1.0 } else { 0.0 });
    gauge!(LEADER_TERM).set(term as f64);
}

/// Rows this daemon pruned as leader, by kind (`outbox::Prune`).
pub fn pruned(rows: &'static str, count: u64) {
    counter!(RETENTION_PRUNED, "rows" => rows).increment(count);
}

/// Who the active crises reached, per channel: `reached` (a receipt
/// said delivered), `not_reached` (undelivered, hard-bounced, dead),
/// `unconfirmed` (sent, no receipt yet), `fallback` (sent another way).
pub fn reach(per_channel: &std::collections::BTreeMap<String, crate::outbox::ReachCounts>) {
    for (channel, c) in per_channel {
        for (state, n) in [
            ("reached", c.reached()),
            ("not_reached", c.not_reached()),
            ("unconfirmed", c.unconfirmed),
            ("fallback", c.fallbacks),
        ] {
            gauge!(REACH, "channel" => channel.clone(), "state" => state).set(n as f64);
        }
    }
}

/// A held fallback settled: released as a delivery, or skipped.
pub fn fallback(channel: &str, released: bool) {
    let outcome = if released { "released" } else { "skipped" };
    counter!(FALLBACKS, "channel" => channel.to_owned(), "outcome" => outcome).increment(1);
}

/// The static mirror's targets, set at each scrape.
pub fn published(targets: &std::collections::BTreeMap<Target, TargetState>) {
    for (target, state) in targets {
        gauge!(PUBLISH_OK, "target" => target.name()).set(if state.ok { 1.0 } else { 0.0 });
        gauge!(PUBLISH_FAILURES, "target" => target.name()).set(f64::from(state.failures));
    }
}

/// At most one log line per key and interval, for events an outsider can
/// cause at will (refused webhooks, a full listener): a flood costs a
/// counter, not a line per request. `allow` says how many were suppressed
/// since the last line that was let through.
pub struct LogThrottle {
    interval: Duration,
    keys: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, u64)>>,
}

/// Keys remembered at most: lines for more keys are suppressed until old
/// ones expire, so made-up hook names cannot grow the map.
const THROTTLE_KEYS: usize = 1024;

impl LogThrottle {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            keys: std::sync::Mutex::default(),
        }
    }

    /// `Some(suppressed)` when a line for `key` may be written now.
    pub fn allow(&self, key: &str) -> Option<u64> {
        let now = std::time::Instant::now();
        let mut keys = self
            .keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((last, suppressed)) = keys.get_mut(key) {
            if now.duration_since(*last) < self.interval {
                *suppressed += 1;
                return None;
            }
            let count = *suppressed;
            *last = now;
            *suppressed = 0;
            return Some(count);
        }
        if keys.len() >= THROTTLE_KEYS {
            keys.retain(|_, (last, _)| now.duration_since(*last) < self.interval);
        }
        if keys.len() >= THROTTLE_KEYS {
            return None;
        }
        keys.insert(key.to_owned(), (now, 0));
        Some(0)
    }
}
