//! `[fatigue]`: limits that keep a flapping monitor from burying readers
//! in messages (issue 16). Per hook, `[[hooks]]` has its own keys
//! (`max_new_crises`, `group_by`, `notify_on`); these are daemon-wide.

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FatigueSettings {
    /// Crises all webhooks together may open within `storm_window`; past
    /// it, a new incident is proposed (a person confirms it) instead.
    pub max_webhook_crises: u32,
    #[serde(with = "humantime_serde")]
    pub storm_window: Duration,
    /// Non-critical announcements one reader may be sent in an hour,
    /// across all crises; past it, the reader's delivery is written dead
    /// with cause `capped` and why. Critical crises and corrections are
    /// never held. 0: no cap.
    pub max_per_reader_per_hour: u32,
}

impl Default for FatigueSettings {
    fn default() -> Self {
        Self {
            max_webhook_crises: 10,
            storm_window: Duration::from_secs(600),
            max_per_reader_per_hour: 0,
        }
    }
}

impl FatigueSettings {
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.max_webhook_crises == 0 {
            problems.push(
                "fatigue.max_webhook_crises must be at least 1 (every webhook incident would only be proposed)"
                    .into(),
            );
        }
        if self.storm_window < Duration::from_secs(1) {
            problems.push("fatigue.storm_window must be at least 1s".into());
        }
        problems
    }
}
