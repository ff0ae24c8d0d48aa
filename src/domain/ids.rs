//! Identifiers and small values with rules of their own, each checked once
//! by `parse` so that code holding one never checks it again.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

/// An id made at the moment something happens: a UUIDv7, so ids sort by
/// the time they were made.
macro_rules! time_ordered_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

time_ordered_id!(
    /// One announcement: an initial message, an update, a follow-up or the
    /// all-clear.
    AnnouncementId
);
time_ordered_id!(
    /// A message rendered once for many readers.
    RenditionId
);
time_ordered_id!(
    /// One delivery of the outbox.
    DeliveryId
);

/// A value that did not pass its `parse`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("a channel name must not be empty")]
    EmptyChannelName,
    #[error("phone `{0}` is not in E.164 form (+ and country code, digits only)")]
    PhoneNumber(String),
    #[error("`{0}` is not a locale tag such as `en`, `bn` or `pt-BR`")]
    Locale(String),
}

/// Implements the string plumbing of a newtype over `String` whose only
/// constructor is `parse`.
macro_rules! checked_string {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = ValueError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A configured channel's name, as in `[[channels.<type>]] name = "..."`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelName(String);

impl ChannelName {
    pub fn parse(text: &str) -> Result<Self, ValueError> {
        if text.trim().is_empty() {
            return Err(ValueError::EmptyChannelName);
        }
        Ok(Self(text.to_owned()))
    }
}

checked_string!(ChannelName);

/// A phone number in E.164 form: `+`, a country code that does not start
/// with 0, and at most 15 digits in all.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(text: &str) -> Result<Self, ValueError> {
        let digits = text
            .strip_prefix('+')
            .ok_or_else(|| ValueError::PhoneNumber(text.to_owned()))?;
        let valid = (2..=15).contains(&digits.len())
            && digits.chars().all(|c| c.is_ascii_digit())
            && !digits.starts_with('0');
        if !valid {
            return Err(ValueError::PhoneNumber(text.to_owned()));
        }
        Ok(Self(text.to_owned()))
    }
}

checked_string!(PhoneNumber);

/// A BCP 47 style locale tag: letters and digits in parts joined by `-`,
/// at most 35 characters (`en`, `bn`, `pt-BR`, `zh-Hant-TW`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Locale(String);

impl Locale {
    pub fn parse(text: &str) -> Result<Self, ValueError> {
        let valid = !text.is_empty()
            && text.len() <= 35
            && text
                .split('-')
                .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()));
        if !valid {
            return Err(ValueError::Locale(text.to_owned()));
        }
        Ok(Self(text.to_owned()))
    }

    /// The language alone: `pt` of `pt-BR`.
    pub fn language(&self) -> &str {
        self.0.split('-').next().unwrap_or(&self.0)
    }
}

checked_string!(Locale);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_are_e164_or_refused() {
        assert!(PhoneNumber::parse("+8801712345678").is_ok());
        for bad in [
            "01712345678",
            "+0123",
            "+1",
            "+1234567890123456",
            "+1 555 0100",
        ] {
            assert_eq!(
                PhoneNumber::parse(bad),
                Err(ValueError::PhoneNumber(bad.to_owned())),
                "{bad}"
            );
        }
    }

    #[test]
    fn locales_are_tags_and_know_their_language() {
        let locale = Locale::parse("pt-BR").unwrap();
        assert_eq!(locale.language(), "pt");
        assert_eq!(Locale::parse("bn").unwrap().language(), "bn");
        for bad in ["", "en_US", "en-", "-en", "e n", &"x".repeat(36)] {
            assert!(Locale::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_channel_name_must_say_something() {
        assert_eq!(ChannelName::parse(" "), Err(ValueError::EmptyChannelName));
        assert_eq!(ChannelName::parse("email").unwrap(), "email");
    }

    #[test]
    fn checked_strings_refuse_bad_values_when_deserialized() {
        let phone: Result<PhoneNumber, _> = serde_json::from_str("\"0171\"");
        assert!(phone.is_err());
        let locale: Locale = serde_json::from_str("\"eo\"").unwrap();
        assert_eq!(locale.as_str(), "eo");
    }

    #[test]
    fn ids_round_trip_through_text() {
        let id = AnnouncementId::new();
        assert_eq!(id.to_string().parse::<AnnouncementId>().unwrap(), id);
    }
}
