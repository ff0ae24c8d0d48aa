//! Fallback: per crisis severity, the order of contact points a reader is
//! tried on. A reader gets the first they have; the next only when that
//! one fails (dead, undelivered, hard-bounced) or has no receipt within
//! `no_receipt_after`. `[fallback]` in the config.

use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;

use super::Severity;
use super::consent::{ContactPoint, normalize};

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FallbackPolicy {
    /// Channel names, or `email` / `sms` (`phone`) for the first channel
    /// reaching that contact point. Empty: every channel at once.
    #[serde(default)]
    pub critical: Vec<String>,
    #[serde(default)]
    pub major: Vec<String>,
    #[serde(default)]
    pub minor: Vec<String>,
    /// A delivery with no receipt this long after it was sent counts as
    /// failed; none: only a failure releases the next point. Email rarely
    /// confirms delivery, so this suits orders that start with SMS.
    #[serde(default, with = "humantime_serde")]
    pub no_receipt_after: Option<Duration>,
    /// How often held fallbacks are checked.
    #[serde(default = "default_check_interval", with = "humantime_serde")]
    pub check_interval: Duration,
}

fn default_check_interval() -> Duration {
    Duration::from_secs(5)
}

impl Default for FallbackPolicy {
    fn default() -> Self {
        Self {
            critical: Vec::new(),
            major: Vec::new(),
            minor: Vec::new(),
            no_receipt_after: None,
            check_interval: default_check_interval(),
        }
    }
}

/// What an entry of an order names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackEntry<'a> {
    Point(ContactPoint),
    Channel(&'a str),
}

impl FallbackPolicy {
    /// The order for a crisis of `severity`.
    pub fn order(&self, severity: Severity) -> &[String] {
        match severity {
            Severity::Critical => &self.critical,
            Severity::Major => &self.major,
            Severity::Minor => &self.minor,
        }
    }

    /// Every order, with its severity, for checking.
    pub fn orders(&self) -> [(Severity, &[String]); 3] {
        [
            (Severity::Critical, &self.critical),
            (Severity::Major, &self.major),
            (Severity::Minor, &self.minor),
        ]
    }
}

/// Reads an entry: a contact point's name, else a channel's.
pub fn entry(text: &str) -> FallbackEntry<'_> {
    match text {
        "email" => FallbackEntry::Point(ContactPoint::Email),
        "sms" | "phone" => FallbackEntry::Point(ContactPoint::Phone),
        name => FallbackEntry::Channel(name),
    }
}

/// Destinations a hard bounce marked bad, loaded before planning: the
/// planner tries them last.
#[derive(Debug, Clone, Default)]
pub struct BadAddresses {
    pub emails: HashSet<String>,
    pub phones: HashSet<String>,
}

impl BadAddresses {
    pub fn contains(&self, point: ContactPoint, address: &str) -> bool {
        let address = normalize(point, address);
        match point {
            ContactPoint::Email => self.emails.contains(&address),
            ContactPoint::Phone => self.phones.contains(&address),
        }
    }

    pub fn insert(&mut self, point: ContactPoint, address: &str) {
        let address = normalize(point, address);
        match point {
            ContactPoint::Email => self.emails.insert(address),
            ContactPoint::Phone => self.phones.insert(address),
        };
    }
}
