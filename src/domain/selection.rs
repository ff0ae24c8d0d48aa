//! Who a crisis's announcements are for and on which channels: everyone
//! on every channel, or the readers of some locales and/or regions, on
//! some channels. Set when a crisis is declared, kept by its updates and
//! its all-clear unless an update changes it.

use serde::{Deserialize, Serialize};

/// The readers chosen: empty lists choose everyone. A reader is in it
/// when their locale is one of `locales` (if any are given) and their
/// region one of `regions` (if any are given).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudienceSelection {
    #[serde(default)]
    pub locales: Vec<String>,
    #[serde(default)]
    pub regions: Vec<String>,
}

impl AudienceSelection {
    pub fn is_everyone(&self) -> bool {
        self.locales.is_empty() && self.regions.is_empty()
    }

    /// Whether a chosen locale names `locale`: itself, or its language
    /// (`bn` chooses `bn-BD`), ignoring case.
    pub fn admits_locale(&self, locale: &str) -> bool {
        let language = locale.split('-').next().unwrap_or(locale);
        self.locales.is_empty()
            || self
                .locales
                .iter()
                .any(|l| l.eq_ignore_ascii_case(locale) || l.eq_ignore_ascii_case(language))
    }

    /// Whether a reader is chosen. `locales` are the reader's own tag and
    /// the language their messages are written in (a reader of `fr`
    /// without French templates reads the default language): either
    /// counts, so the confirmation's counts per language are who is sent.
    pub fn admits(&self, locales: &[&str], region: Option<&str>) -> bool {
        let locale_ok = self.locales.is_empty() || locales.iter().any(|l| self.admits_locale(l));
        let region_ok = self.regions.is_empty()
            || region.is_some_and(|r| self.regions.iter().any(|x| x.eq_ignore_ascii_case(r)));
        locale_ok && region_ok
    }

    /// Trimmed, without duplicates (case-insensitive), in the order given.
    pub fn normalized(mut self) -> Self {
        self.locales = dedup(self.locales);
        self.regions = dedup(self.regions);
        self
    }
}

/// The audience and channels of a crisis's announcements, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    #[serde(default)]
    pub audience: AudienceSelection,
    /// Channel names; empty: every configured channel.
    #[serde(default)]
    pub channels: Vec<String>,
}

impl Selection {
    pub fn new(audience: AudienceSelection, channels: Vec<String>) -> Self {
        Self {
            audience: audience.normalized(),
            channels: dedup(channels),
        }
    }

    /// Whether announcements go on the channel named `name`.
    pub fn uses_channel(&self, name: &str) -> bool {
        self.channels.is_empty() || self.channels.iter().any(|c| c == name)
    }

    /// Everyone, on every channel.
    pub fn is_everything(&self) -> bool {
        self.audience.is_everyone() && self.channels.is_empty()
    }
}

fn dedup(values: Vec<String>) -> Vec<String> {
    let mut kept: Vec<String> = Vec::with_capacity(values.len());
    for value in values {
        let value = value.trim().to_owned();
        if !value.is_empty() && !kept.iter().any(|k| k.eq_ignore_ascii_case(&value)) {
            kept.push(value);
        }
    }
    kept
}

/// What is wrong with a selection, naming what exists instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    #[error("unknown channel `{name}`: the configured channels are {known}")]
    UnknownChannel { name: String, known: String },
    #[error("unknown locale `{name}`: no template or reader has it; the locales are {known}")]
    UnknownLocale { name: String, known: String },
    #[error("unknown region `{name}`: no reader has it; the regions are {known}")]
    UnknownRegion { name: String, known: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audience(locales: &[&str], regions: &[&str]) -> AudienceSelection {
        AudienceSelection {
            locales: locales.iter().map(|s| s.to_string()).collect(),
            regions: regions.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn an_empty_selection_admits_everyone_and_a_locale_admits_its_regional_tags() {
        assert!(audience(&[], &[]).admits(&["eo"], None));
        let bn = audience(&["bn"], &[]);
        assert!(bn.admits(&["bn-BD"], None));
        assert!(!bn.admits(&["en"], Some("north")));
        // A reader of a language without templates reads the default.
        assert!(audience(&["en"], &[]).admits(&["fr", "en"], None));
    }

    #[test]
    fn locales_and_regions_must_both_match_when_both_are_given() {
        let both = audience(&["bn"], &["Sylhet"]);
        assert!(both.admits(&["bn"], Some("sylhet")));
        assert!(!both.admits(&["bn"], Some("dhaka")));
        assert!(!both.admits(&["bn"], None), "no region: not in a region");
        assert!(!both.admits(&["en"], Some("sylhet")));
    }

    #[test]
    fn a_selection_is_kept_trimmed_and_without_duplicates() {
        let selection = Selection::new(
            audience(&[" bn", "BN", ""], &["north"]),
            vec!["email".into(), "email".into()],
        );
        assert_eq!(selection.audience.locales, ["bn"]);
        assert_eq!(selection.channels, ["email"]);
        assert!(selection.uses_channel("email") && !selection.uses_channel("sms"));
        assert!(Selection::default().uses_channel("sms"));
    }
}
