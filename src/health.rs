//! Health: what `/readyz` reports. The store must answer, the listener
//! must be serving, and every channel's last healthcheck must have passed.
//! Channel healthchecks run at start and then every
//! `[health] check_interval`, each bounded by a timeout.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::channels::Channel;
use crate::clock::Clock;
use crate::outbox::Ledger;

/// A channel's last healthcheck.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelCheck {
    pub ok: bool,
    pub checked_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Shared by the health monitor, the HTTP handlers and the lifecycle.
#[derive(Debug, Default)]
pub struct Health {
    channels: Mutex<BTreeMap<String, Option<ChannelCheck>>>,
    serving: AtomicBool,
}

/// The body of `/readyz`.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    /// `ok` or `unavailable`.
    pub status: &'static str,
    pub store: Check,
    pub listener: Check,
    /// By channel name; `null` for a channel not checked yet.
    pub channels: BTreeMap<String, Option<ChannelCheck>>,
    /// What is wrong, one sentence each; empty when ready.
    pub problems: Vec<String>,
    /// What an operator must look at that does not keep the daemon from
    /// serving (a copy of the published files that cannot be written).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Longest a store ping or a healthcheck may take before it counts as a
/// failure.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

impl Health {
    fn channels(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Option<ChannelCheck>>> {
        crate::sync::lock(&self.channels)
    }

    /// The channels to report on; results of channels no longer configured
    /// are forgotten, those of channels kept are kept.
    pub fn set_channels(&self, names: impl IntoIterator<Item = String>) {
        let mut channels = self.channels();
        let mut next = BTreeMap::new();
        for name in names {
            let last = channels.remove(&name).flatten();
            next.insert(name, last);
        }
        *channels = next;
    }

    pub fn record(&self, channel: &str, check: ChannelCheck) {
        crate::telemetry::channel_health(channel, check.ok);
        if let Some(slot) = self.channels().get_mut(channel) {
            *slot = Some(check);
        }
    }

    /// The listener is accepting connections (set once serving starts,
    /// cleared when it stops).
    pub fn set_serving(&self, serving: bool) {
        self.serving.store(serving, Ordering::SeqCst);
    }

    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::SeqCst)
    }

    /// Pings the store and collects the rest; `waiting` are other
    /// problems the caller knows of (plans being retried), `warnings`
    /// what is reported without making the daemon unready.
    pub async fn readiness(
        &self,
        store: &dyn Ledger,
        waiting: Vec<String>,
        warnings: Vec<String>,
    ) -> Readiness {
        let store = match tokio::time::timeout(CHECK_TIMEOUT, store.ping()).await {
            Ok(Ok(())) => Check {
                ok: true,
                error: None,
            },
            Ok(Err(err)) => Check {
                ok: false,
                error: Some(err.to_string()),
            },
            Err(_) => Check {
                ok: false,
                error: Some(format!(
                    "no answer within {}",
                    humantime::format_duration(CHECK_TIMEOUT)
                )),
            },
        };
        let listener = if self.is_serving() {
            Check {
                ok: true,
                error: None,
            }
        } else {
            Check {
                ok: false,
                error: Some("not accepting connections (starting or stopping)".into()),
            }
        };
        let channels = self.channels().clone();
        let mut problems = waiting;
        if let Some(error) = &store.error {
            problems.push(format!("store: {error}"));
        }
        if let Some(error) = &listener.error {
            problems.push(format!("listener: {error}"));
        }
        for (name, check) in &channels {
            match check {
                None => problems.push(format!("channel `{name}`: not checked yet")),
                Some(check) if !check.ok => problems.push(format!(
                    "channel `{name}`: healthcheck failed: {}",
                    check.error.as_deref().unwrap_or("unknown error")
                )),
                Some(_) => {}
            }
        }
        Readiness {
            status: if problems.is_empty() {
                "ok"
            } else {
                "unavailable"
            },
            store,
            listener,
            channels,
            problems,
            warnings,
        }
    }
}

/// Runs every channel's healthcheck at once, each within `CHECK_TIMEOUT`,
/// and records the results.
pub async fn check_channels(health: &Health, channels: &[Arc<dyn Channel>], clock: &dyn Clock) {
    let checks = channels.iter().map(|channel| async move {
        let result = tokio::time::timeout(CHECK_TIMEOUT, channel.healthcheck()).await;
        (channel.name(), result)
    });
    for (name, result) in futures::future::join_all(checks).await {
        let error = match result {
            Ok(Ok(())) => None,
            Ok(Err(err)) => Some(err.to_string()),
            Err(_) => Some(format!(
                "no answer within {}",
                humantime::format_duration(CHECK_TIMEOUT)
            )),
        };
        let was_ok = health.channels().get(name).cloned().flatten().map(|c| c.ok);
        match (&error, was_ok) {
            (Some(error), Some(true) | None) => {
                warn!(channel = %name, %error, "Channel healthcheck failed; deliveries are retried.");
            }
            (None, Some(false)) => info!(channel = %name, "Channel healthcheck passes again."),
            _ => {}
        }
        health.record(
            name,
            ChannelCheck {
                ok: error.is_none(),
                checked_at: clock.now(),
                error,
            },
        );
    }
}

/// Re-checks the channels every `interval` until `stop`.
pub async fn monitor(
    health: Arc<Health>,
    channels: Vec<Arc<dyn Channel>>,
    clock: Arc<dyn Clock>,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; start-up has just checked.
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = check_channels(&health, &channels, clock.as_ref()) => {}
        }
    }
}
