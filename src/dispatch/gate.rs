//! A channel's flow control: its rate limit, the pause a provider asks for
//! (`Retry-After` applies to the channel, not only to one delivery), and a
//! circuit breaker that stops sending to a provider that keeps failing and
//! probes it with its healthcheck. On a store several daemons share, the
//! rate limit and the pauses hold across all of them: each permit also
//! spends a token leased, a slice at a time, from the channel's shared
//! bucket, and a pause is written to the store for every daemon to keep.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;
use tracing::warn;

use crate::channels::RateLimit;
use crate::clock::Clock;
use crate::config::DispatchSettings;
use crate::outbox::{Bucket, SharedFlow};

/// May the channel send now?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Open,
    /// Paused by the provider or by the breaker until then.
    PausedUntil(Instant),
    /// The breaker's cooldown is over: run the healthcheck before sending.
    Probe,
}

#[derive(Debug, Clone, Copy)]
struct Breaker {
    threshold: u32,
    cooldown: Duration,
    max_cooldown: Duration,
}

#[derive(Debug, Default)]
struct State {
    paused_until: Option<Instant>,
    consecutive_failures: u32,
    /// When the breaker is open: until when, and the cooldown that got it
    /// there (doubled on each failed probe).
    open: Option<(Instant, Duration)>,
}

pub struct Gate {
    limiter: Option<DefaultDirectRateLimiter>,
    burst: usize,
    breaker: Breaker,
    state: Mutex<State>,
    shared: Option<Shared>,
}

/// The part of a channel's flow control kept in a store several daemons
/// share.
struct Shared {
    flow: SharedFlow,
    channel: String,
    /// The channel's rate limit, if it has one.
    bucket: Option<Bucket>,
    /// Tokens leased from the shared bucket and not spent yet.
    slice: Mutex<u32>,
    clock: Arc<dyn Clock>,
}

/// How much of the rate one lease takes at most: a tenth of a second's
/// worth, so a daemon never sits on tokens the others could use.
const SLICE: Duration = Duration::from_millis(100);
/// How long a lease of tokens may take before it is tried again.
const LEASE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to wait after the store failed to lease tokens: the channel
/// does not send past the shared limit because the store is slow.
const LEASE_RETRY: Duration = Duration::from_millis(500);

/// What happened to the breaker after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tripped {
    No,
    /// The channel is paused for this long.
    Yes(Duration),
}

impl Gate {
    pub fn new(rate: Option<RateLimit>, settings: &DispatchSettings) -> Self {
        let limiter = rate.and_then(|rate| {
            let period = Duration::from_secs_f64(1.0 / rate.per_second);
            let burst = NonZeroU32::new(rate.burst)?;
            Some(RateLimiter::direct(
                Quota::with_period(period)?.allow_burst(burst),
            ))
        });
        Self {
            limiter,
            burst: rate.map_or(usize::MAX, |r| r.burst as usize),
            breaker: Breaker {
                threshold: settings.breaker_threshold.max(1),
                cooldown: settings.breaker_cooldown,
                max_cooldown: settings.breaker_max_cooldown.max(settings.breaker_cooldown),
            },
            state: Mutex::new(State::default()),
            shared: None,
        }
    }

    /// The same gate, its rate limit and pauses shared with the other
    /// daemons on `flow`'s store.
    pub fn shared(
        mut self,
        flow: SharedFlow,
        channel: &str,
        rate: Option<RateLimit>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        self.shared = Some(Shared {
            flow,
            channel: channel.to_owned(),
            bucket: rate.map(|rate| Bucket {
                per_second: rate.per_second,
                burst: rate.burst,
            }),
            slice: Mutex::new(0),
            clock,
        });
        self
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    /// How many deliveries to claim at once: never more than can be sent
    /// straight away, so leases are not held while waiting for the rate.
    pub fn batch(&self, free: usize) -> usize {
        free.min(self.burst)
    }

    /// Waits for the rate limit to allow one more message, of `wanted`
    /// waiting; on a shared store, also for a token of the shared bucket
    /// (or a pause, which the caller then sees in `is_paused`).
    pub async fn permit(&self, wanted: usize) {
        if let Some(limiter) = &self.limiter {
            limiter.until_ready().await;
        }
        if let Some(shared) = &self.shared {
            shared.token(wanted).await;
        }
    }

    pub fn admission(&self) -> Admission {
        let now = Instant::now();
        let state = self.state();
        if let Some((until, _)) = state.open {
            return if now < until {
                Admission::PausedUntil(until)
            } else {
                Admission::Probe
            };
        }
        let elsewhere = self
            .shared
            .as_ref()
            .and_then(|shared| shared.flow.pauses.until(&shared.channel));
        match state.paused_until.max(elsewhere) {
            Some(until) if now < until => Admission::PausedUntil(until),
            _ => Admission::Open,
        }
    }

    /// Pauses the channel on every daemon sharing the store for `wait`
    /// (nothing more on a store of its own). A failure only leaves the
    /// pause to this daemon.
    pub async fn share_pause(&self, wait: Duration) {
        let Some(shared) = &self.shared else {
            return;
        };
        let now = shared.clock.now();
        let wait = wait.min(super::retry::MAX_PROVIDER_WAIT);
        let Some(until) = chrono::Duration::from_std(wait)
            .ok()
            .and_then(|wait| now.checked_add_signed(wait))
        else {
            return;
        };
        shared.flow.pauses.note(&shared.channel, until, now);
        let paused = tokio::time::timeout(
            LEASE_TIMEOUT,
            shared.flow.store.pause(&shared.channel, until),
        )
        .await;
        if !matches!(paused, Ok(Ok(()))) {
            warn!(channel = %shared.channel, "Could not tell the other daemons of the pause; it holds on this one.");
        }
    }

    pub fn is_paused(&self) -> bool {
        self.admission() != Admission::Open
    }

    /// The provider asked the channel to wait; a later, longer request wins.
    /// Capped like a delivery's retry: no provider parks a channel for days.
    pub fn pause_for(&self, wait: Duration) {
        let wait = wait.min(super::retry::MAX_PROVIDER_WAIT);
        let until = Instant::now() + wait;
        let mut state = self.state();
        if state.paused_until.is_none_or(|current| current < until) {
            state.paused_until = Some(until);
        }
    }

    pub fn record_success(&self) {
        self.state().consecutive_failures = 0;
    }

    /// Counts a transient failure; trips the breaker at the threshold.
    pub fn record_failure(&self) -> Tripped {
        let mut state = self.state();
        state.consecutive_failures += 1;
        if state.open.is_none() && state.consecutive_failures >= self.breaker.threshold {
            let cooldown = self.breaker.cooldown;
            state.open = Some((Instant::now() + cooldown, cooldown));
            return Tripped::Yes(cooldown);
        }
        Tripped::No
    }

    /// The healthcheck after a cooldown: a pass closes the breaker, a
    /// failure keeps it open twice as long (up to the maximum). Returns the
    /// new pause, if any.
    pub fn probe_result(&self, healthy: bool) -> Option<Duration> {
        let mut state = self.state();
        if healthy {
            state.open = None;
            state.consecutive_failures = 0;
            return None;
        }
        let previous = state
            .open
            .map_or(self.breaker.cooldown, |(_, cooldown)| cooldown);
        let cooldown = (previous * 2).min(self.breaker.max_cooldown);
        state.open = Some((Instant::now() + cooldown, cooldown));
        Some(cooldown)
    }
}

impl Shared {
    /// One token of the shared bucket: from the slice leased before, or
    /// from a new lease of up to `wanted` (a slice's worth at most),
    /// waiting for the bucket to refill when the daemons have emptied it.
    /// Returns at once while the channel is paused elsewhere.
    async fn token(&self, wanted: usize) {
        let Some(bucket) = self.bucket else {
            return;
        };
        let slice = (bucket.per_second * SLICE.as_secs_f64()).ceil().max(1.0);
        // Both bounded by u32 values, so the casts cannot truncate.
        let want = (wanted.max(1) as f64)
            .min(slice)
            .min(f64::from(bucket.burst.max(1))) as u32;
        loop {
            {
                let mut left = crate::sync::lock(&self.slice);
                if *left > 0 {
                    *left -= 1;
                    return;
                }
            }
            let now = self.clock.now();
            let leased = tokio::time::timeout(
                LEASE_TIMEOUT,
                self.flow
                    .store
                    .take_tokens(&self.channel, now, bucket, want),
            )
            .await;
            match leased {
                Ok(Ok(tokens)) => {
                    if let Some(until) = tokens.paused_until {
                        self.flow.pauses.note(&self.channel, until, now);
                        return;
                    }
                    if tokens.granted > 0 {
                        *crate::sync::lock(&self.slice) = tokens.granted;
                        continue;
                    }
                    tokio::time::sleep(tokens.wait).await;
                }
                Ok(Err(err)) => {
                    warn!(channel = %self.channel, error = %err, "Could not lease tokens of the shared rate limit; trying again.");
                    tokio::time::sleep(LEASE_RETRY).await;
                }
                Err(_) => {
                    warn!(channel = %self.channel, "Leasing tokens of the shared rate limit took too long; trying again.");
                    tokio::time::sleep(LEASE_RETRY).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(threshold: u32) -> DispatchSettings {
        DispatchSettings {
            breaker_threshold: threshold,
            breaker_cooldown: Duration::from_millis(50),
            breaker_max_cooldown: Duration::from_millis(120),
            ..DispatchSettings::default()
        }
    }

    #[tokio::test]
    async fn the_breaker_trips_at_the_threshold_and_a_passing_probe_closes_it() {
        let gate = Gate::new(None, &settings(3));
        assert_eq!(gate.record_failure(), Tripped::No);
        assert_eq!(gate.record_failure(), Tripped::No);
        assert_eq!(
            gate.record_failure(),
            Tripped::Yes(Duration::from_millis(50))
        );
        assert!(matches!(gate.admission(), Admission::PausedUntil(_)));
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(gate.admission(), Admission::Probe);
        assert_eq!(gate.probe_result(false), Some(Duration::from_millis(100)));
        assert_eq!(
            gate.probe_result(false),
            Some(Duration::from_millis(120)),
            "capped"
        );
        assert_eq!(gate.probe_result(true), None);
        assert_eq!(gate.admission(), Admission::Open);
    }

    #[tokio::test]
    async fn a_success_resets_the_failure_count() {
        let gate = Gate::new(None, &settings(2));
        gate.record_failure();
        gate.record_success();
        assert_eq!(gate.record_failure(), Tripped::No);
    }

    #[tokio::test]
    async fn a_provider_pause_holds_the_channel_and_a_shorter_one_does_not_cut_it() {
        let gate = Gate::new(None, &settings(5));
        gate.pause_for(Duration::from_millis(80));
        gate.pause_for(Duration::from_millis(10));
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(gate.is_paused());
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(!gate.is_paused());
    }

    #[tokio::test]
    async fn the_rate_limit_spaces_messages_after_the_burst() {
        let gate = Gate::new(
            Some(RateLimit {
                per_second: 20.0,
                burst: 2,
            }),
            &settings(5),
        );
        assert_eq!(gate.batch(10), 2);
        let started = std::time::Instant::now();
        for _ in 0..6 {
            gate.permit(1).await;
        }
        // Two at once, then four at 50 ms intervals.
        assert!(
            started.elapsed() >= Duration::from_millis(190),
            "{:?}",
            started.elapsed()
        );
    }
}
