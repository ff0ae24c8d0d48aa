//! The audience: subscribers loaded from a CSV file, checked row by row so
//! a bad address is found at load time, not during a crisis.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub id: String,
    pub name: String,
    pub email: Option<lettre::Address>,
    /// E.164, e.g. `+8801712345678`.
    pub phone: Option<String>,
    pub locale: String,
    pub timezone: Tz,
}

#[derive(Debug, Clone, Default)]
pub struct Audience {
    pub subscribers: Vec<Subscriber>,
}

#[derive(Debug, thiserror::Error)]
pub enum AudienceError {
    #[error("cannot read audience file {path}: {source}")]
    Read { path: PathBuf, source: csv::Error },
    #[error(
        "{path}: the header must name the columns id,name,email,phone,locale,timezone: {source}"
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
}

/// `+` then 2 to 15 digits, the first not zero.
pub fn is_e164(phone: &str) -> bool {
    let Some(digits) = phone.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0')
}

impl Audience {
    pub fn load(path: &Path, default_locale: &str) -> Result<Self, AudienceError> {
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
        let mut subscribers = Vec::new();
        let mut problems = Vec::new();
        let mut seen = HashSet::new();
        for record in reader.records() {
            let record = match record {
                Ok(record) => record,
                Err(err) => {
                    let line = err.position().map_or(0, |p| p.line());
                    problems.push(format!("line {line}: {err}"));
                    continue;
                }
            };
            let line = record.position().map_or(0, |p| p.line());
            match record.deserialize::<Row>(None) {
                Ok(row) => match Self::check(row, default_locale, &mut seen) {
                    Ok(subscriber) => subscribers.push(subscriber),
                    Err(problem) => problems.push(format!("line {line}: {problem}")),
                },
                Err(err) => problems.push(format!("line {line}: {err}")),
            }
        }
        if !problems.is_empty() {
            return Err(AudienceError::Rows {
                path: path.to_path_buf(),
                problems,
            });
        }
        Ok(Self { subscribers })
    }

    fn check(
        row: Row,
        default_locale: &str,
        seen: &mut HashSet<String>,
    ) -> Result<Subscriber, String> {
        if row.id.is_empty() {
            return Err("id is empty".into());
        }
        if !seen.insert(row.id.clone()) {
            return Err(format!("id `{}` appears more than once", row.id));
        }
        let email = match row.email.as_str() {
            "" => None,
            text => Some(
                text.parse::<lettre::Address>()
                    .map_err(|e| format!("email `{text}` is not a valid address: {e}"))?,
            ),
        };
        let phone = match row.phone.as_str() {
            "" => None,
            text if is_e164(text) => Some(text.to_owned()),
            text => {
                return Err(format!(
                    "phone `{text}` is not in E.164 form (+ and country code, digits only)"
                ));
            }
        };
        if email.is_none() && phone.is_none() {
            return Err(format!(
                "subscriber `{}` has neither email nor phone",
                row.id
            ));
        }
        let timezone = match row.timezone.as_str() {
            "" => Tz::UTC,
            text => text.parse::<Tz>().map_err(|_| {
                format!("timezone `{text}` is not an IANA time zone (e.g. Asia/Dhaka)")
            })?,
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn load(text: &str) -> Result<Audience, AudienceError> {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(text.as_bytes()).expect("write");
        Audience::load(file.path(), "en")
    }

    #[test]
    fn a_valid_file_loads_every_subscriber() {
        let audience = load(
            "id,name,email,phone,locale,timezone\n\
             1,Ada,ada@example.com,,en,Europe/London\n\
             2,Rahim,rahim@example.com,+8801712345678,bn,Asia/Dhaka\n",
        )
        .expect("loads");
        assert_eq!(audience.subscribers.len(), 2);
        assert_eq!(audience.subscribers[1].timezone, chrono_tz::Asia::Dhaka);
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
