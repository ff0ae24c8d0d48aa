//! A channel's flow control: its rate limit, the pause a provider asks for
//! (`Retry-After` applies to the channel, not only to one delivery), and a
//! circuit breaker that stops sending to a provider that keeps failing and
//! probes it with its healthcheck.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

use crate::channels::RateLimit;
use crate::config::DispatchSettings;

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
}

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
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    /// How many deliveries to claim at once: never more than can be sent
    /// straight away, so leases are not held while waiting for the rate.
    pub fn batch(&self, free: usize) -> usize {
        free.min(self.burst)
    }

    /// Waits for the rate limit to allow one more message.
    pub async fn permit(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.until_ready().await;
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
        match state.paused_until {
            Some(until) if now < until => Admission::PausedUntil(until),
            _ => Admission::Open,
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
            gate.permit().await;
        }
        // Two at once, then four at 50 ms intervals.
        assert!(
            started.elapsed() >= Duration::from_millis(190),
            "{:?}",
            started.elapsed()
        );
    }
}
