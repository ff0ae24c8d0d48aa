//! Whether a message fits its channel, counted the way the channel counts.

use serde::{Deserialize, Serialize};

use super::post::{self, LengthRule};
use super::sms::{self, SmsInfo};

/// A channel's limit on one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TextLimit {
    /// No practical limit (email).
    Unlimited,
    /// At most this many SMS segments.
    SmsSegments { max: usize },
    /// At most `max`, counted by `rule`.
    Length { rule: LengthRule, max: usize },
}

/// A message measured against its limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measurement {
    pub length: usize,
    pub limit: Option<usize>,
    /// What `length` and `limit` count: segments, graphemes, characters…
    pub unit: String,
    pub fits: bool,
    /// Encoding and segments, for SMS.
    pub sms: Option<SmsInfo>,
}

impl TextLimit {
    pub fn measure(&self, text: &str) -> Measurement {
        match *self {
            TextLimit::Unlimited => Measurement {
                length: text.chars().count(),
                limit: None,
                unit: "characters".into(),
                fits: true,
                sms: None,
            },
            TextLimit::SmsSegments { max } => {
                let info = sms::analyze(text);
                Measurement {
                    length: info.segments,
                    limit: Some(max),
                    unit: "segments".into(),
                    fits: info.segments <= max,
                    sms: Some(info),
                }
            }
            TextLimit::Length { rule, max } => {
                let length = post::length(rule, text);
                Measurement {
                    length,
                    limit: Some(max),
                    unit: match rule {
                        LengthRule::Mastodon => "characters (URLs count 23)",
                        LengthRule::Graphemes => "graphemes",
                        LengthRule::Chars => "characters",
                        LengthRule::Utf16 => "UTF-16 units",
                    }
                    .into(),
                    fits: length <= max,
                    sms: None,
                }
            }
        }
    }
}

impl std::fmt::Display for Measurement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.limit {
            Some(limit) => write!(f, "{} of {limit} {}", self.length, self.unit)?,
            None => write!(f, "{} {}", self.length, self.unit)?,
        }
        if let Some(info) = &self.sms {
            write!(f, " ({}, {} units)", info.encoding.name(), info.units)?;
        }
        Ok(())
    }
}

impl Measurement {
    /// The measure as staff read it in a preview: "SMS: GSM-7, 2 segments
    /// of 3 allowed, 287/459", "287 of 300 graphemes", "1204 characters, no
    /// limit".
    pub fn summary(&self) -> String {
        match (&self.sms, self.limit) {
            (Some(info), Some(max)) => format!(
                "SMS: {}, {} segment{} of {max} allowed, {}/{}",
                info.encoding.name(),
                info.segments,
                if info.segments == 1 { "" } else { "s" },
                info.units,
                info.encoding.capacity(max)
            ),
            (_, Some(limit)) => format!("{} of {limit} {}", self.length, self.unit),
            (_, None) => format!("{} {}, no limit", self.length, self.unit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_the_encoding_segments_and_units_of_the_limit() {
        let sms = TextLimit::SmsSegments { max: 3 }.measure(&"a".repeat(287));
        assert_eq!(
            sms.summary(),
            "SMS: GSM-7, 2 segments of 3 allowed, 287/459"
        );
        let one = TextLimit::SmsSegments { max: 1 }.measure("পেমেন্ট");
        assert_eq!(one.summary(), "SMS: UCS-2, 1 segment of 1 allowed, 7/70");
        let post = TextLimit::Length {
            rule: LengthRule::Graphemes,
            max: 300,
        };
        assert_eq!(post.measure("hello").summary(), "5 of 300 graphemes");
        assert_eq!(
            TextLimit::Unlimited.measure("hello").summary(),
            "5 characters, no limit"
        );
    }
}
