//! The audience: subscribers loaded from a CSV file, checked row by row so
//! a bad address is found at load time, not during a crisis.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use serde::Deserialize;

use super::PhoneNumber;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub id: String,
    pub name: String,
    pub email: Option<lettre::Address>,
    /// E.164, e.g. `+8801712345678`.
    pub phone: Option<PhoneNumber>,
    pub locale: String,
    /// None when the row leaves it empty: such a reader sees times in
    /// UTC and the directory's hours in each entry's own zone.
    pub timezone: Option<Tz>,
    /// Optional `region` column: which follow-ups and resources apply.
    pub region: Option<String>,
}

/// The audience file, validated. Subscribers are streamed from it when a
/// crisis is planned, never all held in memory: an audience of millions
/// costs the daemon a file handle, not gigabytes.
#[derive(Debug, Clone, Default)]
pub struct Audience {
    path: PathBuf,
    default_locale: String,
    /// Subscribers in the file when it was validated.
    pub count: u64,
    /// The readers' locales (as written, lower case), for choosing an
    /// audience by locale.
    pub locales: BTreeSet<String>,
    /// The readers' regions, up to `MAX_REGIONS` of them.
    pub regions: BTreeSet<String>,
    /// More regions than `MAX_REGIONS`: any region may be chosen.
    pub regions_truncated: bool,
}

/// Regions remembered for choosing an audience: a region column of
/// postcodes would otherwise hold a set as large as the file.
pub const MAX_REGIONS: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum AudienceError {
    #[error("cannot read audience file {path}: {source}")]
    Read { path: PathBuf, source: csv::Error },
    #[error(
        "{path}: the header must name the columns id,name,email,phone,locale,timezone (and optionally region): {source}"
    )]
    Header { path: PathBuf, source: csv::Error },
    #[error("{path}: {} bad row(s):\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Rows {
        path: PathBuf,
        problems: Vec<String>,
    },
}

#[derive(Debug, Deserialize)]
struct Row {
    id: String,
    name: String,
    email: String,
    phone: String,
    locale: String,
    timezone: String,
    #[serde(default)]
    region: String,
}

/// `+` then 2 to 15 digits, the first not zero.
pub fn is_e164(phone: &str) -> bool {
    PhoneNumber::parse(phone).is_ok()
}

/// Reports at most this many bad rows: enough to fix a file, without
/// printing a million lines for a file in the wrong format.
const MAX_PROBLEMS: usize = 50;

/// Subscribers read one by one from the audience file.
pub struct Subscribers {
    records: csv::StringRecordsIntoIter<std::fs::File>,
    default_locale: String,
}

impl Iterator for Subscribers {
    /// A subscriber, or the line and problem of a row that is no longer
    /// valid (the file changed after it was checked).
    type Item = Result<Subscriber, String>;

    fn next(&mut self) -> Option<Self::Item> {
        let record = self.records.next()?;
        Some(match record {
            Ok(record) => {
                let line = record.position().map_or(0, |p| p.line());
                record
                    .deserialize::<Row>(None)
                    .map_err(|e| e.to_string())
                    .and_then(|row| check(row, &self.default_locale))
                    .map_err(|problem| format!("line {line}: {problem}"))
            }
            Err(err) => {
                let line = err.position().map_or(0, |p| p.line());
                Err(format!("line {line}: {err}"))
            }
        })
    }
}

fn open(path: &Path) -> Result<csv::Reader<std::fs::File>, AudienceError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_path(path)
        .map_err(|source| AudienceError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    reader.headers().map_err(|source| AudienceError::Header {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(reader)
}

impl Audience {
    /// Checks every row (reporting each bad one with its line) and
    /// remembers the file.
    pub fn load(path: &Path, default_locale: &str) -> Result<Self, AudienceError> {
        let mut subscribers = Subscribers {
            records: open(path)?.into_records(),
            default_locale: default_locale.to_owned(),
        };
        let mut problems = Vec::new();
        let mut seen = HashSet::new();
        let mut count = 0;
        let mut locales = BTreeSet::new();
        let mut regions = BTreeSet::new();
        let mut regions_truncated = false;
        for subscriber in &mut subscribers {
            match subscriber {
                Ok(subscriber) if !seen.insert(subscriber.id.clone()) => {
                    problems.push(format!("id `{}` appears more than once", subscriber.id));
                }
                Ok(subscriber) => {
                    count += 1;
                    locales.insert(subscriber.locale.to_lowercase());
                    if let Some(region) = subscriber.region {
                        if regions.len() < MAX_REGIONS || regions.contains(&region) {
                            regions.insert(region);
                        } else {
                            regions_truncated = true;
                        }
                    }
                }
                Err(problem) => problems.push(problem),
            }
            if problems.len() >= MAX_PROBLEMS {
                problems.push(format!("(stopped after {MAX_PROBLEMS} problems)"));
                break;
            }
        }
        if !problems.is_empty() {
            return Err(AudienceError::Rows {
                path: path.to_path_buf(),
                problems,
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            default_locale: default_locale.to_owned(),
            count,
            locales,
            regions,
            regions_truncated,
        })
    }

    /// The subscribers, from the first; `skip` passes over rows already
    /// planned (resuming after a restart).
    pub fn subscribers(&self, skip: u64) -> Result<std::iter::Skip<Subscribers>, AudienceError> {
        let subscribers = Subscribers {
            records: open(&self.path)?.into_records(),
            default_locale: self.default_locale.clone(),
        };
        Ok(subscribers.skip(usize::try_from(skip).unwrap_or(usize::MAX)))
    }
}

/// An address as sending will take it: lettre's `Address` accepts some
/// quoted local parts (`"x\"y"@example.com`) that its `Mailbox`, which
/// the email channel addresses the message with, refuses; such a row
/// would pass the check and every message to it end dead.
fn sendable_address(text: &str) -> Result<lettre::Address, String> {
    let address = text
        .parse::<lettre::Address>()
        .map_err(|e| format!("email `{text}` is not a valid address: {e}"))?;
    address
        .to_string()
        .parse::<lettre::message::Mailbox>()
        .map_err(|e| format!("email `{text}` cannot be sent to: {e}"))?;
    Ok(address)
}

/// A name or id with ESC or NUL in it would reach terminals and logs as a
/// command, and an email header as a broken line.
fn refuse_controls(row: &Row) -> Result<(), String> {
    let fields = [
        ("id", &row.id),
        ("name", &row.name),
        ("email", &row.email),
        ("phone", &row.phone),
        ("locale", &row.locale),
        ("timezone", &row.timezone),
        ("region", &row.region),
    ];
    for (field, text) in fields {
        if let Some(c) = text.chars().find(|c| c.is_control()) {
            return Err(format!(
                "{field} contains the control character U+{:04X}; remove it",
                u32::from(c)
            ));
        }
    }
    Ok(())
}

fn check(row: Row, default_locale: &str) -> Result<Subscriber, String> {
    if row.id.is_empty() {
        return Err("id is empty".into());
    }
    refuse_controls(&row)?;
    let email = match row.email.as_str() {
        "" => None,
        text => Some(sendable_address(text)?),
    };
    let phone = match row.phone.as_str() {
        "" => None,
        text => Some(PhoneNumber::parse(text).map_err(|e| e.to_string())?),
    };
    if email.is_none() && phone.is_none() {
        return Err(format!(
            "subscriber `{}` has neither email nor phone",
            row.id
        ));
    }
    let timezone = match row.timezone.as_str() {
        "" => None,
        text => Some(text.parse::<Tz>().map_err(|_| {
            format!("timezone `{text}` is not an IANA time zone (e.g. Asia/Dhaka)")
        })?),
    };
    let locale = if row.locale.is_empty() {
        default_locale.to_owned()
    } else {
        row.locale
    };
    Ok(Subscriber {
        id: row.id,
        name: row.name,
        email,
        phone,
        locale,
        timezone,
        region: Some(row.region).filter(|r| !r.is_empty()),
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_control_character_in_any_field_is_refused_with_its_row() {
        let err = load(
            "id,name,email,phone,locale,timezone\nr1,Eve \u{1b}[31mINFO,eve@example.com,,en,UTC\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("name contains the control character U+001B"),
            "{err}"
        );
    }
    use super::*;
    use std::io::Write;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(text.as_bytes()).expect("write");
        file
    }

    fn load(text: &str) -> Result<Audience, AudienceError> {
        Audience::load(write(text).path(), "en")
    }

    #[test]
    fn an_optional_region_column_is_read_when_present() {
        let file = write(
            "id,name,email,phone,locale,timezone,region\n\
             1,Ada,ada@example.com,,en,Europe/London,north\n\
             2,Rahim,rahim@example.com,,bn,Asia/Dhaka,\n",
        );
        let audience = Audience::load(file.path(), "en").expect("loads");
        let regions: Vec<Option<String>> = audience
            .subscribers(0)
            .expect("opens")
            .map(|s| s.expect("valid").region)
            .collect();
        assert_eq!(regions, [Some("north".to_owned()), None]);
        assert_eq!(audience.regions, BTreeSet::from(["north".to_owned()]));
        assert_eq!(
            audience.locales,
            BTreeSet::from(["bn".to_owned(), "en".to_owned()])
        );
    }

    #[test]
    fn a_valid_file_loads_every_subscriber() {
        // The file must outlive the audience: it is read again to plan.
        let file = write(
            "id,name,email,phone,locale,timezone\n\
             1,Ada,ada@example.com,,en,Europe/London\n\
             2,Rahim,rahim@example.com,+8801712345678,bn,Asia/Dhaka\n",
        );
        let audience = Audience::load(file.path(), "en").expect("loads");
        assert_eq!(audience.count, 2);
        let subscribers: Vec<Subscriber> = audience
            .subscribers(0)
            .expect("open")
            .map(|s| s.expect("valid"))
            .collect();
        assert_eq!(subscribers[1].timezone, Some(chrono_tz::Asia::Dhaka));
        let resumed: Vec<Subscriber> = audience
            .subscribers(1)
            .expect("open")
            .map(|s| s.expect("valid"))
            .collect();
        assert_eq!(resumed.len(), 1);
        assert_eq!(resumed[0].id, "2");
    }

    #[test]
    fn a_malformed_row_is_reported_with_its_line_number() {
        let err = load(
            "id,name,email,phone,locale,timezone\n\
             1,Ada,ada@example.com,,en,Europe/London\n\
             2,Bad,not-an-address,,en,UTC\n\
             3,Tz,t@example.com,,en,Mars/Olympus\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("line 3: email `not-an-address`"), "{err}");
        assert!(err.contains("line 4: timezone `Mars/Olympus`"), "{err}");
    }

    #[test]
    fn phone_numbers_must_be_e164() {
        assert!(is_e164("+8801712345678"));
        assert!(!is_e164("01712345678"));
        assert!(!is_e164("+0123"));
    }
}
