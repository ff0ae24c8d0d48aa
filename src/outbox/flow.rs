//! Flow control shared by every daemon on one store: a channel's rate
//! limit as one token bucket (nodes take slices of it and pace them
//! locally), and a channel's pause (a provider's `Retry-After`, an open
//! circuit breaker), which every node honours.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::domain::{DomainError, string_enum};

string_enum!(
    /// Why a channel is paused: its provider asked (`Retry-After` and
    /// kin), or its circuit breaker opened.
    PauseCause {
        Provider => "provider",
        Breaker => "breaker",
    }
);

/// A channel paused on every node until `until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelPause {
    pub until: DateTime<Utc>,
    pub cause: PauseCause,
    /// The node that paused it.
    pub by: String,
}

/// A channel's rate: `per_second` on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

#[async_trait]
pub trait FlowStore: Send + Sync + 'static {
    /// Takes up to `want` sends of `channel`'s shared bucket at `now`;
    /// returns how many it may make. The bucket holds at most `burst` and
    /// refills at `per_second`, across every node together.
    async fn take_tokens(
        &self,
        channel: &str,
        rate: Rate,
        want: u32,
        now: DateTime<Utc>,
    ) -> Result<u32, StoreError>;
    /// Pauses `channel` on every node until `until`; a pause that ends
    /// later wins, a shorter one does not cut it.
    async fn pause_channel(
        &self,
        channel: &str,
        pause: &ChannelPause,
    ) -> Result<(), StoreError>;
    /// Ends a breaker's pause early: its probe passed.
    async fn resume_channel(&self, channel: &str, now: DateTime<Utc>) -> Result<(), StoreError>;
    /// The pause in force at `now`, if any.
    async fn channel_pause(
        &self,
        channel: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ChannelPause>, StoreError>;
}

/// A token bucket's state as stored: what both backends compute, SQLite in
/// memory and PostgreSQL in the row it updates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub tokens: f64,
    pub refilled_at: DateTime<Utc>,
}

impl Bucket {
    pub fn full(rate: Rate, now: DateTime<Utc>) -> Self {
        Self {
            tokens: f64::from(rate.burst),
            refilled_at: now,
        }
    }

    /// Refills for the time since the last take (never backwards: another
    /// node's clock may be a little ahead), then takes what it can of
    /// `want`.
    pub fn take(&mut self, rate: Rate, want: u32, now: DateTime<Utc>) -> u32 {
        let elapsed = (now - self.refilled_at)
            .to_std()
            .map_or(0.0, |d| d.as_secs_f64());
        self.tokens = (self.tokens + elapsed * rate.per_second).min(f64::from(rate.burst));
        if now > self.refilled_at {
            self.refilled_at = now;
        }
        let granted = self.tokens.floor().clamp(0.0, f64::from(want));
        self.tokens -= granted;
        // Whole tokens only, between 0 and `want`.
        granted as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_000_000 + ms).expect("time")
    }

    #[test]
    fn a_bucket_gives_its_burst_then_its_rate_and_never_more() {
        let rate = Rate {
            per_second: 10.0,
            burst: 5,
        };
        let mut bucket = Bucket::full(rate, at(0));
        assert_eq!(bucket.take(rate, 100, at(0)), 5);
        assert_eq!(bucket.take(rate, 100, at(50)), 0);
        assert_eq!(bucket.take(rate, 100, at(350)), 3);
        assert_eq!(bucket.take(rate, 1, at(10_000)), 1, "no more than asked");
        assert_eq!(bucket.take(rate, 100, at(10_000)), 4, "at most the burst");
        assert_eq!(
            bucket.take(rate, 100, at(9_000)),
            0,
            "a clock behind adds nothing"
        );
    }
}
