//! The contact directory: how customers reach support, what each way is
//! best for, and when it is staffed ("open now" in the entry's own zone).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveTime, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize};

/// Localized text: locale -> text, with fallback to the default locale.
pub type Localized = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactKind {
    Phone,
    Chat,
    Portal,
    Sms,
    Email,
}

/// One way to reach support, as configured in `[[directory]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactEntry {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: ContactKind,
    /// What to dial, type or open.
    pub address: String,
    /// A link; when unset, derived from the address (`tel:`, `sms:`,
    /// `mailto:`, or the address itself when it is a web address).
    pub url: Option<String>,
    /// Localized name, e.g. `{ en = "Live chat", bn = "লাইভ চ্যাট" }`.
    pub label: Localized,
    /// Localized: which needs this way is best for.
    pub best_for: Localized,
    #[serde(default)]
    pub emergency: bool,
    pub hours: Hours,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hours {
    pub time_zone: Tz,
    #[serde(default)]
    pub always_open: bool,
    #[serde(default)]
    pub weekly: Vec<WeeklyWindow>,
    /// Localized text that replaces the generated description of the hours.
    #[serde(default)]
    pub text: Localized,
}

/// `{ days = "mon-fri", open = "08:00", close = "20:00" }`; a close at or
/// before the open time runs past midnight.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeeklyWindow {
    pub days: DaySpan,
    #[serde(deserialize_with = "de_time")]
    pub open: NaiveTime,
    #[serde(deserialize_with = "de_time")]
    pub close: NaiveTime,
}

fn de_time<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveTime, D::Error> {
    let text = String::deserialize(d)?;
    if text == "24:00" {
        return Ok(NaiveTime::MIN);
    }
    NaiveTime::parse_from_str(&text, "%H:%M")
        .map_err(|_| serde::de::Error::custom(format!("`{text}` is not a time of day (HH:MM)")))
}

/// A run of weekdays such as `mon-fri`, `sat` or `fri-mon`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaySpan {
    pub first: Weekday,
    pub last: Weekday,
}

impl DaySpan {
    pub fn contains(&self, day: Weekday) -> bool {
        let (first, last, day) = (
            self.first.num_days_from_monday(),
            self.last.num_days_from_monday(),
            day.num_days_from_monday(),
        );
        if first <= last {
            (first..=last).contains(&day)
        } else {
            day >= first || day <= last
        }
    }
}

impl FromStr for DaySpan {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parse = |d: &str| {
            d.trim()
                .parse::<Weekday>()
                .map_err(|_| format!("`{d}` is not a weekday (mon, tue, … sun)"))
        };
        match s.split_once('-') {
            Some((a, b)) => Ok(Self {
                first: parse(a)?,
                last: parse(b)?,
            }),
            None => {
                let day = parse(s)?;
                Ok(Self {
                    first: day,
                    last: day,
                })
            }
        }
    }
}

impl<'de> Deserialize<'de> for DaySpan {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for DaySpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

impl Hours {
    pub fn open_at(&self, at: DateTime<Utc>) -> bool {
        if self.always_open {
            return true;
        }
        let local = at.with_timezone(&self.time_zone);
        let (day, time) = (local.weekday(), local.time());
        let time = time.with_nanosecond(0).unwrap_or(time);
        self.weekly.iter().any(|w| {
            if w.open < w.close {
                w.days.contains(day) && time >= w.open && time < w.close
            } else {
                // Past midnight: open on the listed day from `open`, and on
                // the following morning until `close`.
                (w.days.contains(day) && time >= w.open)
                    || (w.days.contains(day.pred()) && time < w.close)
            }
        })
    }
}

/// Day names and the "always open" phrase per locale, from the templates'
/// `strings.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoursStrings {
    /// Monday first.
    pub days: [String; 7],
    pub always_open: String,
}

impl Hours {
    /// "Mon–Fri 08:00–20:00, Sat 10:00–16:00 (America/New_York)".
    pub fn describe(&self, locale: &str, default_locale: &str, strings: &HoursStrings) -> String {
        if let Some(text) = localized(&self.text, locale, default_locale) {
            return text.to_owned();
        }
        if self.always_open {
            return strings.always_open.clone();
        }
        let day = |d: Weekday| strings.days[d.num_days_from_monday() as usize].as_str();
        let windows: Vec<String> = self
            .weekly
            .iter()
            .map(|w| {
                let days = if w.days.first == w.days.last {
                    day(w.days.first).to_owned()
                } else {
                    format!("{}–{}", day(w.days.first), day(w.days.last))
                };
                let close = if w.close == NaiveTime::MIN {
                    "24:00".to_owned()
                } else {
                    w.close.format("%H:%M").to_string()
                };
                format!("{days} {}–{close}", w.open.format("%H:%M"))
            })
            .collect();
        format!("{} ({})", windows.join(", "), self.time_zone.name())
    }
}

/// Text for `locale`: the exact tag, then its language, then the default
/// locale.
pub fn localized<'a>(map: &'a Localized, locale: &str, default_locale: &str) -> Option<&'a str> {
    let language = locale.split('-').next().unwrap_or(locale);
    map.get(locale)
        .or_else(|| map.get(language))
        .or_else(|| map.get(default_locale))
        .map(String::as_str)
}

/// A directory entry as templates and the banner see it, in one locale at
/// one instant.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContactView {
    pub id: String,
    pub kind: ContactKind,
    pub label: String,
    pub address: String,
    pub url: Option<String>,
    pub best_for: String,
    pub hours: String,
    pub always_open: bool,
    pub open_now: bool,
    pub emergency: bool,
}

impl ContactEntry {
    pub fn link(&self) -> Option<String> {
        if let Some(url) = &self.url {
            return Some(url.clone());
        }
        let compact: String = self
            .address
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '+')
            .collect();
        match self.kind {
            ContactKind::Phone => Some(format!("tel:{compact}")),
            ContactKind::Sms => Some(format!("sms:{compact}")),
            ContactKind::Email => Some(format!("mailto:{}", self.address)),
            ContactKind::Chat | ContactKind::Portal => {
                let web =
                    self.address.starts_with("https://") || self.address.starts_with("http://");
                web.then(|| self.address.clone())
            }
        }
    }

    pub fn view(
        &self,
        locale: &str,
        default_locale: &str,
        strings: &HoursStrings,
        at: DateTime<Utc>,
    ) -> ContactView {
        ContactView {
            id: self.id.clone(),
            kind: self.kind,
            label: localized(&self.label, locale, default_locale)
                .unwrap_or(&self.id)
                .to_owned(),
            address: self.address.clone(),
            url: self.link(),
            best_for: localized(&self.best_for, locale, default_locale)
                .unwrap_or_default()
                .to_owned(),
            hours: self.hours.describe(locale, default_locale, strings),
            always_open: self.hours.always_open,
            open_now: self.hours.open_at(at),
            emergency: self.emergency,
        }
    }

    /// Problems a person must fix in the config; empty when fine.
    pub fn problems(&self, default_locale: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let at = format!("directory entry `{}`", self.id);
        if self.address.trim().is_empty() {
            problems.push(format!("{at}: address is empty"));
        }
        if !self.label.contains_key(default_locale) {
            problems.push(format!(
                "{at}: label has no text for the default locale `{default_locale}`"
            ));
        }
        if !self.best_for.contains_key(default_locale) {
            problems.push(format!(
                "{at}: best_for has no text for the default locale `{default_locale}`"
            ));
        }
        if !self.hours.always_open && self.hours.weekly.is_empty() {
            problems.push(format!(
                "{at}: hours need `always_open = true` or at least one `weekly` window"
            ));
        }
        if let Some(url) = &self.url
            && !(url.starts_with("https://")
                || url.starts_with("http://")
                || url.starts_with("tel:")
                || url.starts_with("sms:")
                || url.starts_with("mailto:"))
        {
            problems.push(format!(
                "{at}: url `{url}` must be http(s), tel:, sms: or mailto:"
            ));
        }
        problems
    }
}

/// Views of every entry, in configured order.
pub fn views(
    entries: &[ContactEntry],
    locale: &str,
    default_locale: &str,
    strings: &HoursStrings,
    at: DateTime<Utc>,
) -> Vec<ContactView> {
    entries
        .iter()
        .map(|e| e.view(locale, default_locale, strings, at))
        .collect()
}

pub type LocalizedHoursStrings = BTreeMap<String, HoursStrings>;

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn weekday_hours() -> Hours {
        Hours {
            time_zone: chrono_tz::America::New_York,
            always_open: false,
            weekly: vec![
                WeeklyWindow {
                    days: "mon-fri".parse().expect("span"),
                    open: NaiveTime::from_hms_opt(8, 0, 0).expect("time"),
                    close: NaiveTime::from_hms_opt(20, 0, 0).expect("time"),
                },
                WeeklyWindow {
                    days: "sat".parse().expect("span"),
                    open: NaiveTime::from_hms_opt(22, 0, 0).expect("time"),
                    close: NaiveTime::from_hms_opt(2, 0, 0).expect("time"),
                },
            ],
            text: Localized::new(),
        }
    }

    #[test]
    fn open_now_is_computed_in_the_entrys_own_time_zone() {
        let hours = weekday_hours();
        // Monday 2026-11-23 12:30 UTC is 07:30 in New York: closed.
        assert!(!hours.open_at(Utc.with_ymd_and_hms(2026, 11, 23, 12, 30, 0).unwrap()));
        // 13:30 UTC is 08:30 in New York: open.
        assert!(hours.open_at(Utc.with_ymd_and_hms(2026, 11, 23, 13, 30, 0).unwrap()));
    }

    #[test]
    fn a_window_past_midnight_stays_open_into_the_next_day() {
        let hours = weekday_hours();
        // Sunday 2026-11-29 01:00 in New York is 06:00 UTC.
        assert!(hours.open_at(Utc.with_ymd_and_hms(2026, 11, 29, 6, 0, 0).unwrap()));
        // Sunday 03:00 New York: closed.
        assert!(!hours.open_at(Utc.with_ymd_and_hms(2026, 11, 29, 8, 0, 0).unwrap()));
    }

    #[test]
    fn hours_are_described_with_localized_day_names() {
        let strings = HoursStrings {
            days: ["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"].map(String::from),
            always_open: "24/7".into(),
        };
        assert_eq!(
            weekday_hours().describe("en", "en", &strings),
            "Mo–Fr 08:00–20:00, Sa 22:00–02:00 (America/New_York)"
        );
    }
}
