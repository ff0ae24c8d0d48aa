//! The contact directory: how customers reach support, what each way is
//! best for, and when it is staffed ("open now" in the entry's own zone;
//! hours shown in the reader's zone when it is known, the entry's beside).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeDelta, TimeZone, Timelike, Utc, Weekday,
};
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
    /// After hours given in the reader's zone: "your time".
    pub your_time: String,
}

/// A weekly window as a reader elsewhere sees it: its days and times in
/// the reader's zone, in the week of the instant the view is for (so a
/// DST change in either zone is taken as it is that week).
struct Shifted {
    days: DaySpan,
    open: NaiveTime,
    close: NaiveTime,
}

/// When a wall-clock time happens in `zone`; a time the clocks jump over
/// is taken an hour later.
fn instant_in(zone: Tz, date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    let local = date.and_time(time);
    zone.from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            zone.from_local_datetime(&(local + TimeDelta::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
}

fn shift_day(day: Weekday, by: i64) -> Weekday {
    let n = (i64::from(day.num_days_from_monday()) + by).rem_euclid(7);
    Weekday::try_from(u8::try_from(n).unwrap_or(0)).unwrap_or(day)
}

impl WeeklyWindow {
    fn shifted(&self, entry: Tz, reader: Tz, at: DateTime<Utc>) -> Option<Shifted> {
        let today = at.with_timezone(&entry).date_naive();
        let monday =
            today.checked_sub_days(Days::new(u64::from(today.weekday().num_days_from_monday())))?;
        let first = monday
            .checked_add_days(Days::new(u64::from(self.days.first.num_days_from_monday())))?;
        let open = instant_in(entry, first, self.open)?.with_timezone(&reader);
        let close_day = if self.close <= self.open {
            first.checked_add_days(Days::new(1))?
        } else {
            first
        };
        let close = instant_in(entry, close_day, self.close)?.with_timezone(&reader);
        let by = (open.date_naive() - first).num_days();
        Some(Shifted {
            days: DaySpan {
                first: shift_day(self.days.first, by),
                last: shift_day(self.days.last, by),
            },
            open: open.time(),
            close: close.time(),
        })
    }
}

fn clock(time: NaiveTime) -> String {
    if time == NaiveTime::MIN {
        "24:00".to_owned()
    } else {
        time.format("%H:%M").to_string()
    }
}

impl Hours {
    /// "Mon–Fri 08:00–20:00, Sat 10:00–16:00 (America/New_York)"; for a
    /// reader in another zone, "Mon–Fri 19:00–03:00 your time (09:00–17:00
    /// America/New_York)" (the entry's days beside only where they differ),
    /// as the windows fall in the week of `at`.
    pub fn describe(
        &self,
        locale: &str,
        default_locale: &str,
        strings: &HoursStrings,
        reader: Option<(Tz, DateTime<Utc>)>,
    ) -> String {
        if let Some(text) = localized(&self.text, locale, default_locale) {
            return text.to_owned();
        }
        if self.always_open {
            return strings.always_open.clone();
        }
        let day = |d: Weekday| strings.days[d.num_days_from_monday() as usize].as_str();
        let days = |span: DaySpan| {
            if span.first == span.last {
                day(span.first).to_owned()
            } else {
                format!("{}–{}", day(span.first), day(span.last))
            }
        };
        let own =
            |w: &WeeklyWindow| format!("{} {}–{}", days(w.days), clock(w.open), clock(w.close));
        let zone = self.time_zone;
        let shifted: Option<Vec<Shifted>> = reader
            .filter(|(tz, _)| tz.name() != zone.name())
            .and_then(|(tz, at)| {
                self.weekly
                    .iter()
                    .map(|w| w.shifted(zone, tz, at))
                    .collect()
            });
        let Some(shifted) = shifted else {
            let windows: Vec<String> = self.weekly.iter().map(own).collect();
            return format!("{} ({})", windows.join(", "), zone.name());
        };
        let theirs: Vec<String> = shifted
            .iter()
            .map(|s| format!("{} {}–{}", days(s.days), clock(s.open), clock(s.close)))
            .collect();
        let entry: Vec<String> = self
            .weekly
            .iter()
            .zip(&shifted)
            .map(|(w, s)| {
                if s.days == w.days {
                    format!("{}–{}", clock(w.open), clock(w.close))
                } else {
                    own(w)
                }
            })
            .collect();
        format!(
            "{} {} ({} {})",
            theirs.join(", "),
            strings.your_time,
            entry.join(", "),
            zone.name()
        )
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

    /// The entry for a reader in `locale` at `at`; with the reader's zone,
    /// its hours are given in that zone too.
    pub fn view(
        &self,
        locale: &str,
        default_locale: &str,
        strings: &HoursStrings,
        reader_zone: Option<Tz>,
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
            hours: self.hours.describe(
                locale,
                default_locale,
                strings,
                reader_zone.map(|tz| (tz, at)),
            ),
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
    reader_zone: Option<Tz>,
    at: DateTime<Utc>,
) -> Vec<ContactView> {
    entries
        .iter()
        .map(|e| e.view(locale, default_locale, strings, reader_zone, at))
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
            your_time: "your time".into(),
        };
        assert_eq!(
            weekday_hours().describe("en", "en", &strings, None),
            "Mo–Fr 08:00–20:00, Sa 22:00–02:00 (America/New_York)"
        );
    }

    #[test]
    fn hours_are_given_in_the_readers_zone_with_the_entrys_beside() {
        let strings = HoursStrings {
            days: ["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"].map(String::from),
            always_open: "24/7".into(),
            your_time: "your time".into(),
        };
        let hours = weekday_hours();
        // Late November: New York is UTC-5, Dhaka UTC+6, eleven hours on.
        let at = Utc.with_ymd_and_hms(2026, 11, 25, 20, 0, 0).unwrap();
        assert_eq!(
            hours.describe("en", "en", &strings, Some((chrono_tz::Asia::Dhaka, at))),
            "Mo–Fr 19:00–07:00, Su 09:00–13:00 your time \
             (08:00–20:00, Sa 22:00–02:00 America/New_York)"
        );
        // In July New York is UTC-4: ten hours on.
        let july = Utc.with_ymd_and_hms(2026, 7, 15, 20, 0, 0).unwrap();
        assert!(
            hours
                .describe("en", "en", &strings, Some((chrono_tz::Asia::Dhaka, july)))
                .starts_with("Mo–Fr 18:00–06:00, Su 08:00–12:00 your time")
        );
        // A reader in the entry's own zone sees it as before.
        assert_eq!(
            hours.describe(
                "en",
                "en",
                &strings,
                Some((chrono_tz::America::New_York, at))
            ),
            hours.describe("en", "en", &strings, None)
        );
    }
}
