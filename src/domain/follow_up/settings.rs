//! `[follow_ups]`: the resource library, the follow-up plans per crisis
//! kind, and quiet hours. Checked in `follow_up::FollowUps::build`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveTime;
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer};

use crate::domain::Kind;
use crate::domain::follow_up::{Category, Topic};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FollowUpSettings {
    /// The zone cron steps are read in, and the default for showing due
    /// times.
    pub time_zone: Tz,
    /// A follow-up found due later than this (the daemon was down) is
    /// skipped, with the reason, instead of sent.
    #[serde(with = "humantime_serde")]
    pub max_lateness: Duration,
    /// How often the scheduler looks for due follow-ups when nothing wakes
    /// it earlier.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How long a cron step without `until` or `count` keeps going.
    #[serde(with = "humantime_serde")]
    pub horizon: Duration,
    pub quiet_hours: QuietHoursSettings,
    /// A TOML file with more `[[resources]]`, read at start.
    pub resources_file: Option<PathBuf>,
    pub resources: Vec<ResourceSettings>,
    pub plans: Vec<PlanSettings>,
}

impl Default for FollowUpSettings {
    fn default() -> Self {
        Self {
            time_zone: Tz::UTC,
            max_lateness: Duration::from_secs(3600),
            poll_interval: Duration::from_secs(15),
            horizon: Duration::from_secs(14 * 24 * 3600),
            quiet_hours: QuietHoursSettings::default(),
            resources_file: None,
            resources: Vec::new(),
            plans: Vec::new(),
        }
    }
}

/// Non-critical SMS follow-ups due between `start` and `end` in the
/// reader's own time zone wait until `end`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuietHoursSettings {
    pub enabled: bool,
    #[serde(deserialize_with = "de_time")]
    pub start: NaiveTime,
    #[serde(deserialize_with = "de_time")]
    pub end: NaiveTime,
}

impl Default for QuietHoursSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            start: NaiveTime::from_hms_opt(21, 0, 0).unwrap_or(NaiveTime::MIN),
            end: NaiveTime::from_hms_opt(8, 0, 0).unwrap_or(NaiveTime::MIN),
        }
    }
}

fn de_time<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveTime, D::Error> {
    let text = String::deserialize(d)?;
    NaiveTime::parse_from_str(&text, "%H:%M")
        .map_err(|_| serde::de::Error::custom(format!("`{text}` is not a time like \"08:00\"")))
}

fn de_opt_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveTime>, D::Error> {
    de_time(d).map(Some)
}

/// The resources file: `[[resources]]` entries, as in the config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourcesFile {
    #[serde(default)]
    pub resources: Vec<ResourceSettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSettings {
    pub id: String,
    pub url: String,
    pub category: Category,
    /// The crisis kinds it helps with; empty: every kind.
    #[serde(default)]
    pub kinds: Vec<Kind>,
    /// The regions it serves; empty: everywhere.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Title and description per locale; the default locale's is the
    /// fallback.
    pub text: BTreeMap<String, ResourceText>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceText {
    pub title: String,
    pub description: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSettings {
    pub name: String,
    /// The crisis kinds that follow this plan; empty: the default plan,
    /// for every kind no other plan names.
    #[serde(default)]
    pub kinds: Vec<Kind>,
    /// While the crisis lasts; cancelled by the all-clear.
    #[serde(default)]
    pub steps: Vec<StepSettings>,
    /// Scheduled when the crisis is resolved, from the all-clear.
    #[serde(default)]
    pub after_resolution: Vec<StepSettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSettings {
    pub name: String,
    /// Once, this long after the declaration (or the all-clear).
    #[serde(default, with = "humantime_serde::option")]
    pub after: Option<Duration>,
    /// Five-field cron (minute hour day-of-month month day-of-week) in
    /// `[follow_ups] time_zone`.
    pub cron: Option<String>,
    /// Reader-local: "09:00" sends the step to each reader at the first
    /// 09:00 in the reader's own zone at or after its due time (`after`,
    /// default at once), like quiet hours hold a text; with `count`, once
    /// a day that many times.
    #[serde(default, deserialize_with = "de_opt_time")]
    pub at: Option<NaiveTime>,
    /// A cron step ends this long after the declaration (or all-clear).
    #[serde(default, with = "humantime_serde::option")]
    pub until: Option<Duration>,
    /// A cron step ends after this many messages; an `at` step is sent
    /// on this many days (default 1).
    pub count: Option<u32>,
    pub template: Topic,
    /// For `template = "resources"`: which categories; empty: all.
    #[serde(default)]
    pub categories: Vec<Category>,
    /// Channel names; empty: every configured channel.
    #[serde(default)]
    pub channels: Vec<String>,
    /// Only subscribers with one of these locales; empty: all.
    #[serde(default)]
    pub locales: Vec<String>,
    /// Only subscribers in one of these regions; empty: all.
    #[serde(default)]
    pub regions: Vec<String>,
}
