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
            let encoding = match info.encoding {
                sms::SmsEncoding::Gsm7 => "GSM-7",
                sms::SmsEncoding::Ucs2 => "UCS-2",
            };
            write!(f, " ({encoding}, {} units)", info.units)?;
        }
        Ok(())
    }
}
