//! Storms: a monitor that fires thirty alerts at once must not open thirty
//! crises. A request may open `max_new_crises` of its hook's; all hooks
//! together `[fatigue] max_webhook_crises` within `storm_window`. Past
//! either, a new incident is proposed (a person confirms it, and it follows
//! the source meanwhile), and the webhook log says why.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::HookSettings;

#[derive(Debug)]
pub struct Storm {
    max: u32,
    window: Duration,
    /// When webhooks opened crises, newest last, within `window`.
    opened: Mutex<VecDeque<DateTime<Utc>>>,
}

impl Default for Storm {
    fn default() -> Self {
        let defaults = crate::config::FatigueSettings::default();
        Self::new(defaults.max_webhook_crises, defaults.storm_window)
    }
}

impl Storm {
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            opened: Mutex::new(VecDeque::new()),
        }
    }

    /// Why one more crisis may not be opened now, by a request of `hook`
    /// that opened `by_request` already; `None`: it may.
    pub fn refusal(
        &self,
        hook: &HookSettings,
        by_request: u32,
        now: DateTime<Utc>,
    ) -> Option<String> {
        if by_request >= hook.max_new_crises {
            return Some(format!(
                "storm: this request already opened {by_request} crises (max_new_crises = {})",
                hook.max_new_crises
            ));
        }
        let recent = self.recent(now);
        (recent >= self.max as usize).then(|| {
            format!(
                "storm: webhooks opened {recent} crises in the last {} ([fatigue] max_webhook_crises = {})",
                humantime::format_duration(self.window),
                self.max
            )
        })
    }

    /// Notes a crisis a webhook opened.
    pub fn opened(&self, now: DateTime<Utc>) {
        crate::sync::lock(&self.opened).push_back(now);
    }

    fn recent(&self, now: DateTime<Utc>) -> usize {
        let mut opened = crate::sync::lock(&self.opened);
        let window = chrono::TimeDelta::from_std(self.window).unwrap_or(chrono::TimeDelta::MAX);
        while opened.front().is_some_and(|at| *at + window <= now) {
            opened.pop_front();
        }
        opened.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_and_the_window_each_cap_new_crises() {
        let hook: HookSettings =
            toml::from_str("name = \"a\"\nsource = \"alertmanager\"\nmax_new_crises = 2\n")
                .unwrap();
        let storm = Storm::new(3, Duration::from_secs(600));
        let t0 = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        assert_eq!(storm.refusal(&hook, 1, t0), None);
        assert!(
            storm
                .refusal(&hook, 2, t0)
                .unwrap()
                .contains("max_new_crises = 2")
        );
        for _ in 0..3 {
            storm.opened(t0);
        }
        let refused = storm.refusal(&hook, 0, t0).unwrap();
        assert!(
            refused.contains("opened 3 crises in the last 10m"),
            "{refused}"
        );
        assert_eq!(
            storm.refusal(&hook, 0, t0 + chrono::TimeDelta::minutes(10)),
            None
        );
    }
}
