//! The contact directory: how customers reach support, what each way is
//! best for, and when it is staffed ("open now" in the entry's own zone;
//! hours shown in the reader's zone when it is known, the entry's beside).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::RwLock;
use std::time::Duration;

use chrono::{DateTime, Datelike, Days, NaiveTime, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize};

use super::follow_up::local_instant;
use crate::sync::{read, write};

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
    /// A URL crisisd probes to mark the entry unavailable and available
    /// again by itself.
    #[serde(default)]
    pub health: Option<HealthProbe>,
}

/// `health = { url = "https://…/healthz", interval = "30s", timeout = "5s",
/// down_after = 3, up_after = 2 }`: a 2xx answer within the timeout is a
/// success, anything else a failure.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthProbe {
    pub url: String,
    #[serde(default = "default_probe_interval", with = "humantime_serde")]
    pub interval: Duration,
    #[serde(default = "default_probe_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Failures in a row that mark the entry unavailable.
    #[serde(default = "default_down_after")]
    pub down_after: u32,
    /// Successes in a row that mark it available again.
    #[serde(default = "default_up_after")]
    pub up_after: u32,
}

fn default_probe_interval() -> Duration {
    Duration::from_secs(30)
}

fn default_probe_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_down_after() -> u32 {
    3
}

fn default_up_after() -> u32 {
    2
}

/// An entry's availability as last changed, by a person or a probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryAvailability {
    pub entry: String,
    pub available: bool,
    pub reason: Option<String>,
    /// Who changed it: `cli:alice (token …)`, `probe`.
    pub changed_by: String,
    pub changed_at: DateTime<Utc>,
}

/// The entries marked unavailable now, by id: one per process, shared by
/// everything that shows the directory (messages, banner, status page)
/// and kept across reloads; the store's copy is the one that lasts.
#[derive(Debug, Default)]
pub struct Availability {
    down: RwLock<BTreeMap<String, EntryAvailability>>,
}

impl Availability {
    /// Takes the store's states as they are; returns whether anything
    /// shown changed.
    pub fn replace(&self, states: Vec<EntryAvailability>) -> bool {
        let down: BTreeMap<String, EntryAvailability> = states
            .into_iter()
            .filter(|state| !state.available)
            .map(|state| (state.entry.clone(), state))
            .collect();
        let mut current = write(&self.down);
        let changed = *current != down;
        *current = down;
        changed
    }

    /// Applies one change; returns whether anything shown changed.
    pub fn set(&self, state: EntryAvailability) -> bool {
        let mut current = write(&self.down);
        if state.available {
            current.remove(&state.entry).is_some()
        } else {
            current.insert(state.entry.clone(), state.clone()) != Some(state)
        }
    }

    /// The entry's state when it is marked unavailable.
    pub fn down(&self, entry: &str) -> Option<EntryAvailability> {
        read(&self.down).get(entry).cloned()
    }

    pub fn snapshot(&self) -> BTreeMap<String, EntryAvailability> {
        read(&self.down).clone()
    }
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
    /// Said of an entry marked unavailable.
    #[serde(default = "default_unavailable")]
    pub unavailable: String,
    /// Introduces the entry to use instead.
    #[serde(default = "default_instead")]
    pub instead: String,
}

/// A weekly window as a reader elsewhere sees it: its days and times in
/// the reader's zone, in the week of the instant the view is for (so a
/// DST change in either zone is taken as it is that week).
struct Shifted {
    days: DaySpan,
    open: NaiveTime,
    close: NaiveTime,
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
        let open = local_instant(entry, first.and_time(self.open))?.with_timezone(&reader);
        let close_day = if self.close <= self.open {
            first.checked_add_days(Days::new(1))?
        } else {
            first
        };
        let close = local_instant(entry, close_day.and_time(self.close))?.with_timezone(&reader);
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

fn default_unavailable() -> String {
    "Unavailable now".to_owned()
}

fn default_instead() -> String {
    "use instead".to_owned()
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
    /// False while the entry is marked unavailable: then `best_for` also
    /// says so and names `instead`.
    #[serde(default = "available_by_default")]
    pub available: bool,
    /// Why it is unavailable, as staff or its probe said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable_reason: Option<String>,
    /// The id of the entry to use instead, while this one is unavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instead: Option<String>,
}

fn available_by_default() -> bool {
    true
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
            available: true,
            unavailable_reason: None,
            instead: None,
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
        if let Some(probe) = &self.health {
            if !(probe.url.starts_with("https://") || probe.url.starts_with("http://")) {
                problems.push(format!("{at}: health.url `{}` must be http(s)", probe.url));
            }
            if probe.timeout.is_zero() || probe.timeout > probe.interval {
                problems.push(format!(
                    "{at}: health.timeout must be above zero and at most health.interval"
                ));
            }
            if probe.down_after == 0 || probe.up_after == 0 {
                problems.push(format!(
                    "{at}: health.down_after and up_after must be at least 1"
                ));
            }
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

/// Views of every entry, in configured order, those marked unavailable
/// (in `down`) last, each saying so and naming the entry to use instead.
pub fn views(
    entries: &[ContactEntry],
    locale: &str,
    default_locale: &str,
    strings: &HoursStrings,
    reader_zone: Option<Tz>,
    at: DateTime<Utc>,
    down: &BTreeMap<String, EntryAvailability>,
) -> Vec<ContactView> {
    let mut views: Vec<ContactView> = entries
        .iter()
        .map(|e| e.view(locale, default_locale, strings, reader_zone, at))
        .collect();
    if down.is_empty() {
        return views;
    }
    let up: Vec<ContactView> = views
        .iter()
        .filter(|v| !down.contains_key(&v.id))
        .cloned()
        .collect();
    for view in views.iter_mut() {
        if let Some(state) = down.get(&view.id) {
            mark_unavailable(view, state, next_best(view, &up), strings);
        }
    }
    // Stable: the available ones keep their order, and a short form that
    // has room for a few entries names available ones.
    views.sort_by_key(|v| !v.available);
    views
}

/// The entry to use instead of `down`: another emergency line for an
/// emergency line, else one that is open now before one that is not, and
/// an emergency line only when nothing else is left (it is kept free).
fn next_best<'a>(down: &ContactView, up: &'a [ContactView]) -> Option<&'a ContactView> {
    up.iter().min_by_key(|candidate| {
        let open = candidate.always_open || candidate.open_now;
        (candidate.emergency != down.emergency, !open)
    })
}

/// Every template shows `best_for`, so the pointer is written there: each
/// form of each locale says it without a template of its own knowing.
fn mark_unavailable(
    view: &mut ContactView,
    state: &EntryAvailability,
    instead: Option<&ContactView>,
    strings: &HoursStrings,
) {
    view.available = false;
    view.open_now = false;
    view.always_open = false;
    view.unavailable_reason = state.reason.clone();
    view.instead = instead.map(|i| i.id.clone());
    view.best_for = match instead {
        Some(i) => format!(
            "{}. {}; {}: {} {}",
            view.best_for, strings.unavailable, strings.instead, i.label, i.address
        ),
        None => format!("{}. {}", view.best_for, strings.unavailable),
    };
}

/// The emergency route a message shows: the emergency lines available
/// now, or, when every one is marked unavailable, all of them (marked so).
pub fn emergency_route(contacts: &[ContactView]) -> Vec<ContactView> {
    let emergency = contacts.iter().filter(|c| c.emergency);
    let available: Vec<ContactView> = emergency.clone().filter(|c| c.available).cloned().collect();
    if available.is_empty() {
        emergency.cloned().collect()
    } else {
        available
    }
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
            unavailable: "Unavailable now".into(),
            instead: "use instead".into(),
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
            unavailable: "Unavailable now".into(),
            instead: "use instead".into(),
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

    fn entry(id: &str, emergency: bool) -> ContactEntry {
        ContactEntry {
            id: id.into(),
            kind: ContactKind::Phone,
            address: format!("+1 555 {id}"),
            url: None,
            label: Localized::from([("en".into(), id.to_uppercase())]),
            best_for: Localized::from([("en".into(), format!("{id} needs"))]),
            emergency,
            hours: weekday_hours(),
            health: None,
        }
    }

    fn strings() -> HoursStrings {
        HoursStrings {
            days: ["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"].map(String::from),
            always_open: "24/7".into(),
            your_time: "your time".into(),
            unavailable: "Unavailable now".into(),
            instead: "use instead".into(),
        }
    }

    fn down(ids: &[&str]) -> BTreeMap<String, EntryAvailability> {
        ids.iter()
            .map(|id| {
                let state = EntryAvailability {
                    entry: (*id).into(),
                    available: false,
                    reason: None,
                    changed_by: "tests".into(),
                    changed_at: Utc::now(),
                };
                ((*id).to_owned(), state)
            })
            .collect()
    }

    #[test]
    fn a_down_emergency_line_points_to_another_and_leaves_the_route_while_one_is_up() {
        let entries = [
            entry("ambulance", true),
            entry("chat", false),
            entry("hotline", true),
        ];
        // Monday 13:30 UTC: open in New York.
        let at = Utc.with_ymd_and_hms(2026, 11, 23, 13, 30, 0).unwrap();
        let shown = views(
            &entries,
            "en",
            "en",
            &strings(),
            None,
            at,
            &down(&["ambulance"]),
        );
        let ids: Vec<&str> = shown.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(ids, ["chat", "hotline", "ambulance"]);
        let ambulance = &shown[2];
        assert!(!ambulance.available && !ambulance.open_now);
        assert_eq!(ambulance.instead.as_deref(), Some("hotline"));
        assert_eq!(
            ambulance.best_for,
            "ambulance needs. Unavailable now; use instead: HOTLINE +1 555 hotline"
        );
        let route: Vec<String> = emergency_route(&shown).into_iter().map(|v| v.id).collect();
        assert_eq!(route, ["hotline"], "never the line that is down");

        let all_down = views_of_all_down(&entries, at);
        let route: Vec<String> = emergency_route(&all_down)
            .into_iter()
            .map(|v| v.id)
            .collect();
        assert_eq!(
            route,
            ["ambulance", "hotline"],
            "both shown, marked, when none is up"
        );
        let chat_down = views(&entries, "en", "en", &strings(), None, at, &down(&["chat"]));
        let chat = chat_down.iter().find(|v| v.id == "chat").unwrap();
        assert_eq!(
            chat.instead.as_deref(),
            Some("ambulance"),
            "only emergency lines are left"
        );
    }

    fn views_of_all_down(entries: &[ContactEntry], at: DateTime<Utc>) -> Vec<ContactView> {
        views(
            entries,
            "en",
            "en",
            &strings(),
            None,
            at,
            &down(&["ambulance", "hotline"]),
        )
    }
}
