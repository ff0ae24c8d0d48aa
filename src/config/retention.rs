//! `[retention]`: how long finished rows are kept before the leader prunes
//! them (see `outbox::Prune` for exactly which rows each age covers).

use std::time::Duration;

use serde::Deserialize;

const DAY: u64 = 24 * 60 * 60;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSettings {
    /// Sent and dead deliveries of ended crises, after they finished.
    #[serde(with = "humantime_serde")]
    pub deliveries: Duration,
    /// An ended crisis's announcements, renditions, follow-ups, source
    /// links and any deliveries left, after its resolution. The crisis and
    /// its versions stay.
    #[serde(with = "humantime_serde")]
    pub crises: Duration,
    /// Ended crises' audit events and the console's account audit trail.
    #[serde(with = "humantime_serde")]
    pub audit: Duration,
    /// The webhook log, seen webhook delivery ids and decided incidents.
    #[serde(with = "humantime_serde")]
    pub hook_log: Duration,
    /// How often the leader prunes.
    #[serde(with = "humantime_serde")]
    pub every: Duration,
    /// Rows per statement; the leader pauses between statements.
    pub batch: u32,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            deliveries: Duration::from_secs(30 * DAY),
            crises: Duration::from_secs(400 * DAY),
            audit: Duration::from_secs(400 * DAY),
            hook_log: Duration::from_secs(30 * DAY),
            every: Duration::from_secs(60 * 60),
            batch: 1000,
        }
    }
}

impl RetentionSettings {
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(1..=10_000).contains(&self.batch) {
            problems.push(format!(
                "retention.batch: {} is outside 1..=10000",
                self.batch
            ));
        }
        if self.every < Duration::from_secs(1) {
            problems.push("retention.every: must be at least 1s".into());
        }
        problems
    }
}
