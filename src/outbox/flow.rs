//! Flow control shared by the daemons on one store: a row per channel
//! holding its token bucket (the channel's rate limit across all daemons
//! together) and the time until which its provider or breaker paused it.
//! Each daemon leases a slice of tokens at a time and paces them with its
//! own limiter; a pause written by one daemon is read by the others when
//! they lease tokens, at their periodic look and, on PostgreSQL, at once
//! by NOTIFY.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::sync::lock;

/// A channel's limit as the bucket applies it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub per_second: f64,
    /// What the bucket holds at most: the most sent at once after a pause.
    pub burst: u32,
}

/// What a lease of tokens got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tokens {
    /// How many may be sent now (0 while paused).
    pub granted: u32,
    /// When the next token will be there, if none was granted.
    pub wait: Duration,
    /// The channel is paused on every daemon until then.
    pub paused_until: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait FlowStore: Send + Sync + 'static {
    /// Takes up to `want` tokens of `channel`'s bucket at `now` (refilled
    /// at `bucket.per_second` since it was last taken from, up to
    /// `bucket.burst`; a new bucket starts full). Nothing is granted while
    /// the channel is paused.
    async fn take_tokens(
        &self,
        channel: &str,
        now: DateTime<Utc>,
        bucket: Bucket,
        want: u32,
    ) -> Result<Tokens, StoreError>;
    /// Pauses `channel` on every daemon until `until`; a pause that ends
    /// later already stands.
    async fn pause(&self, channel: &str, until: DateTime<Utc>) -> Result<(), StoreError>;
    /// Every channel paused at `now`, with its end.
    async fn pauses(&self, now: DateTime<Utc>) -> Result<Vec<(String, DateTime<Utc>)>, StoreError>;
}

/// The bucket at `now`, from what it held (`tokens`) when last taken from
/// at `then`: refilled at the rate, never above the burst, then `want`
/// taken from what whole tokens it holds. Returns the grant, what is left,
/// and how long until the next whole token when nothing was granted.
pub(super) fn take(
    (tokens, then): (f64, DateTime<Utc>),
    now: DateTime<Utc>,
    bucket: Bucket,
    want: u32,
) -> (u32, f64, Duration) {
    let elapsed = (now - then).num_milliseconds().max(0) as f64 / 1000.0;
    let burst = f64::from(bucket.burst.max(1));
    let full = (tokens + elapsed * bucket.per_second).min(burst);
    // Whole tokens only; `want` and `burst` are u32, so this fits.
    let granted = full.floor().min(f64::from(want)).max(0.0) as u32;
    let left = full - f64::from(granted);
    let wait = if granted == 0 && bucket.per_second > 0.0 {
        Duration::from_secs_f64(((1.0 - left) / bucket.per_second).max(0.001))
    } else {
        Duration::ZERO
    };
    (granted, left, wait)
}

/// This daemon's view of the channels paused on every daemon, by channel,
/// as tokio instants: filled from the store's answers and notifications,
/// read by each channel's gate before it sends.
#[derive(Debug, Clone, Default)]
pub struct FlowPauses(Arc<Mutex<HashMap<String, tokio::time::Instant>>>);

impl FlowPauses {
    /// Notes that `channel` is paused until `until` (a store time, taken
    /// against `now`); a later pause already noted stands.
    pub fn note(&self, channel: &str, until: DateTime<Utc>, now: DateTime<Utc>) {
        let Ok(left) = (until - now).to_std() else {
            return;
        };
        let until = tokio::time::Instant::now() + left;
        let mut pauses = lock(&self.0);
        let entry = pauses.entry(channel.to_owned()).or_insert(until);
        if *entry < until {
            *entry = until;
        }
    }

    /// Until when `channel` is paused, if it still is.
    pub fn until(&self, channel: &str) -> Option<tokio::time::Instant> {
        let until = lock(&self.0).get(channel).copied()?;
        (until > tokio::time::Instant::now()).then_some(until)
    }
}

/// The shared flow control a daemon on a shared store uses: the store's
/// buckets and pauses, and what it has heard of pauses meanwhile.
#[derive(Clone)]
pub struct SharedFlow {
    pub store: Arc<dyn FlowStore>,
    pub pauses: FlowPauses,
}

impl SharedFlow {
    pub fn new(store: Arc<dyn FlowStore>) -> Self {
        Self {
            store,
            pauses: FlowPauses::default(),
        }
    }

    /// Reads every standing pause from the store (at start, at each
    /// resync, after notifications may have been lost).
    pub async fn refresh(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        for (channel, until) in self.store.pauses(now).await? {
            self.pauses.note(&channel, until, now);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).expect("time")
    }

    const BUCKET: Bucket = Bucket {
        per_second: 100.0,
        burst: 10,
    };

    #[test]
    fn a_bucket_refills_at_its_rate_up_to_its_burst_and_grants_whole_tokens() {
        assert_eq!(take((10.0, at(0)), at(0), BUCKET, 4).0, 4);
        // 35 ms at 100/s: 3.5 tokens, 3 granted, half a token left.
        let (granted, left, _) = take((0.0, at(0)), at(35), BUCKET, 8);
        assert_eq!(granted, 3);
        assert!((left - 0.5).abs() < 1e-9, "{left}");
        // An idle hour refills no more than the burst.
        assert_eq!(take((0.0, at(0)), at(3_600_000), BUCKET, 100).0, 10);
        let (granted, _, wait) = take((0.25, at(0)), at(0), BUCKET, 1);
        assert_eq!(granted, 0);
        assert_eq!(wait, Duration::from_micros(7_500));
    }
}
