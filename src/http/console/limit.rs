//! Sign-in attempts, rate limited by account name and by client address
//! (governor's keyed limiters): five attempts for a name at once, then one
//! every 30 seconds; twenty from an address, then one every 6 seconds.
//! Every attempt counts, a right password too, so guessing cannot hide
//! among successes.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

/// Keys kept before forgetting those whose limits are whole again.
const TIDY_ABOVE: usize = 10_000;

pub struct SignInLimiter {
    by_name: Keyed<String>,
    by_address: Keyed<IpAddr>,
    clock: DefaultClock,
}

fn quota(burst: u32, every: Duration) -> Quota {
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(every)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

impl Default for SignInLimiter {
    fn default() -> Self {
        Self {
            by_name: RateLimiter::keyed(quota(5, Duration::from_secs(30))),
            by_address: RateLimiter::keyed(quota(20, Duration::from_secs(6))),
            clock: DefaultClock::default(),
        }
    }
}

impl SignInLimiter {
    /// Counts an attempt; `Some(wait)` when it is one too many and must be
    /// refused unread.
    pub fn attempt(&self, name: &str, address: Option<IpAddr>) -> Option<Duration> {
        if self.by_name.len() > TIDY_ABOVE {
            self.by_name.retain_recent();
        }
        if self.by_address.len() > TIDY_ABOVE {
            self.by_address.retain_recent();
        }
        let now = self.clock.now();
        if let Some(address) = address
            && let Err(not_until) = self.by_address.check_key(&address)
        {
            return Some(not_until.wait_time_from(now));
        }
        self.by_name
            .check_key(&name.trim().to_lowercase())
            .err()
            .map(|not_until| not_until.wait_time_from(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sixth_attempt_for_a_name_waits_and_other_names_do_not() {
        let limiter = SignInLimiter::default();
        let here = Some(IpAddr::from([127, 0, 0, 1]));
        for _ in 0..5 {
            assert_eq!(limiter.attempt("alice", here), None);
        }
        let wait = limiter.attempt("Alice", here).expect("limited");
        assert!(wait > Duration::from_secs(20), "{wait:?}");
        assert_eq!(limiter.attempt("bob", here), None);
    }
}
