//! When to try a failed delivery again.

use std::time::Duration;

use rand::Rng;

use crate::config::DispatchSettings;

/// The longest a provider's `Retry-After` is followed for one delivery.
pub const MAX_PROVIDER_WAIT: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl From<&DispatchSettings> for RetryPolicy {
    fn from(settings: &DispatchSettings) -> Self {
        Self {
            max_attempts: settings.max_attempts.max(1),
            base: settings.retry_base,
            max: settings.retry_max,
        }
    }
}

impl RetryPolicy {
    /// Exponential backoff with jitter after `attempt` attempts; the
    /// provider's `retry_after`, when it gave one, wins.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let ceiling = self.base.saturating_mul(1 << exponent).min(self.max);
        // Half fixed, half random: spreads a burst of retries without ever
        // retrying at once.
        let half = ceiling / 2;
        let jitter = rand::rng().random_range(Duration::ZERO..=half);
        let backoff = half + jitter;
        // A provider's wait is honoured, up to a bound: a crisis message
        // parked for a day by a misbehaving provider helps no one.
        retry_after.map_or(backoff, |wait| wait.min(MAX_PROVIDER_WAIT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            base: Duration::from_secs(2),
            max: Duration::from_secs(60),
        }
    }

    #[test]
    fn backoff_grows_exponentially_within_jitter_bounds() {
        for attempt in 1..=4 {
            let ceiling = Duration::from_secs(2 << (attempt - 1));
            let delay = policy().delay(attempt, None);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "attempt {attempt}: {delay:?}"
            );
        }
    }

    #[test]
    fn backoff_is_capped() {
        assert!(policy().delay(30, None) <= Duration::from_secs(60));
    }

    #[test]
    fn the_providers_retry_after_is_honoured() {
        assert_eq!(
            policy().delay(1, Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
    }
}
