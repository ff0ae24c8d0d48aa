//! A crisis's text in other languages: title, summary and the staff's
//! message per locale, looked up with fallback to the language and then
//! to the default text, and kept from going stale: a change to a field
//! that a locale has its own text for must say what that locale gets.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Title, summary and message in one locale. Any of them may be left out:
/// readers of that locale then read the default language's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalizedText {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The latest announcement's message in this locale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Locale tag -> its text.
pub type Translations = BTreeMap<String, LocalizedText>;

/// One of the texts a crisis has per locale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TextField {
    Title,
    Summary,
    Message,
}

impl TextField {
    pub const ALL: [TextField; 3] = [TextField::Title, TextField::Summary, TextField::Message];

    pub fn as_str(&self) -> &'static str {
        match self {
            TextField::Title => "title",
            TextField::Summary => "summary",
            TextField::Message => "message",
        }
    }
}

impl fmt::Display for TextField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl LocalizedText {
    pub fn get(&self, field: TextField) -> Option<&String> {
        match field {
            TextField::Title => self.title.as_ref(),
            TextField::Summary => self.summary.as_ref(),
            TextField::Message => self.message.as_ref(),
        }
    }

    fn slot(&mut self, field: TextField) -> &mut Option<String> {
        match field {
            TextField::Title => &mut self.title,
            TextField::Summary => &mut self.summary,
            TextField::Message => &mut self.message,
        }
    }

    pub fn is_empty(&self) -> bool {
        TextField::ALL
            .iter()
            .all(|field| self.get(*field).is_none())
    }
}

/// The text of `field` for `locale`: the exact tag, then its language.
pub fn lookup<'a>(
    translations: &'a Translations,
    locale: &str,
    field: TextField,
) -> Option<&'a str> {
    let language = locale.split('-').next().unwrap_or(locale);
    [locale, language]
        .into_iter()
        .find_map(|tag| translations.get(tag).and_then(|text| text.get(field)))
        .map(String::as_str)
}

/// Locales that have their own text for a field a change replaces, and
/// which the change gives no new text: they would go on reading the old
/// text (or, for a message, an older announcement's), unless told to fall
/// back to the default language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleLocales {
    pub locales: Vec<String>,
    pub fields: Vec<TextField>,
}

impl fmt::Display for StaleLocales {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields: Vec<&str> = self.fields.iter().map(TextField::as_str).collect();
        let example = format!("{}.{}", self.locales[0], fields[0]);
        write!(
            f,
            "this change replaces the {fields} that {locales} {have} in {their} own language; say what \
             {they} should read: the new text in {their} language (API: `localized.{example}`; CLI: \
             `--localized {example}=TEXT`, or a `--texts` file), or the default language's (API: \
             `\"fall_back\": true`; CLI: `--fall-back`)",
            fields = fields.join(" and "),
            locales = self.locales.join(", "),
            have = if self.locales.len() == 1 {
                "has"
            } else {
                "have"
            },
            their = if self.locales.len() == 1 {
                "its"
            } else {
                "their"
            },
            they = if self.locales.len() == 1 {
                "it"
            } else {
                "they"
            },
        )
    }
}

/// Applies a change to a crisis's translations. `changed` are the fields
/// whose default-language text the change replaces; `given` is the change's
/// own translations. A locale with its own text for a changed field must
/// get new text in `given`, or, with `fall_back`, lose its own (and read
/// the default language's); otherwise nothing changes and the locales are
/// named. A message belongs to one announcement: every locale's message is
/// replaced by the one given, or none.
pub fn apply_change(
    current: &mut Translations,
    changed: &[TextField],
    given: &Translations,
    fall_back: bool,
) -> Result<(), StaleLocales> {
    let mut stale = StaleLocales {
        locales: Vec::new(),
        fields: Vec::new(),
    };
    for (locale, text) in current.iter() {
        for field in changed {
            let replaced = given.get(locale).and_then(|g| g.get(*field)).is_some();
            if text.get(*field).is_some() && !replaced {
                if !stale.locales.contains(locale) {
                    stale.locales.push(locale.clone());
                }
                if !stale.fields.contains(field) {
                    stale.fields.push(*field);
                }
            }
        }
    }
    if !stale.locales.is_empty() && !fall_back {
        stale.fields.sort();
        return Err(stale);
    }
    for text in current.values_mut() {
        for field in changed {
            *text.slot(*field) = None;
        }
        // The message is always that of the announcement being made.
        text.message = None;
    }
    for (locale, text) in given {
        let entry = current.entry(locale.clone()).or_default();
        for field in TextField::ALL {
            if let Some(value) = text.get(field) {
                *entry.slot(field) = Some(value.trim().to_owned());
            }
        }
    }
    current.retain(|_, text| !text.is_empty());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(title: Option<&str>, summary: Option<&str>, message: Option<&str>) -> LocalizedText {
        LocalizedText {
            title: title.map(str::to_owned),
            summary: summary.map(str::to_owned),
            message: message.map(str::to_owned),
        }
    }

    fn bengali() -> Translations {
        Translations::from([(
            "bn".to_owned(),
            text(
                Some("পেমেন্ট বন্ধ"),
                Some("কার্ড পেমেন্ট ব্যর্থ।"),
                Some("আমরা কাজ করছি।"),
            ),
        )])
    }

    #[test]
    fn a_changed_field_a_locale_has_its_own_text_for_is_refused_naming_the_locale() {
        let mut current = bengali();
        let err = apply_change(
            &mut current,
            &[TextField::Title, TextField::Summary],
            &Translations::new(),
            false,
        )
        .unwrap_err();
        assert_eq!(err.locales, ["bn"]);
        assert_eq!(err.fields, [TextField::Title, TextField::Summary]);
        assert!(
            err.to_string().contains("`--localized bn.title=TEXT`"),
            "{err}"
        );
        assert_eq!(current, bengali(), "nothing changed");
    }

    #[test]
    fn new_text_for_the_locale_replaces_its_own_and_an_older_message_goes() {
        let mut current = bengali();
        let given = Translations::from([("bn".to_owned(), text(Some("পেমেন্ট চালু"), None, None))]);
        apply_change(&mut current, &[TextField::Title], &given, false).unwrap();
        assert_eq!(
            current["bn"],
            text(Some("পেমেন্ট চালু"), Some("কার্ড পেমেন্ট ব্যর্থ।"), None)
        );
    }

    #[test]
    fn falling_back_drops_the_locales_own_text_for_the_changed_fields_only() {
        let mut current = bengali();
        apply_change(
            &mut current,
            &[TextField::Summary],
            &Translations::new(),
            true,
        )
        .unwrap();
        assert_eq!(current["bn"], text(Some("পেমেন্ট বন্ধ"), None, None));
        apply_change(
            &mut current,
            &[TextField::Title],
            &Translations::new(),
            true,
        )
        .unwrap();
        assert!(current.is_empty(), "{current:?}");
    }

    #[test]
    fn text_is_found_for_the_tag_then_its_language() {
        let current = bengali();
        assert_eq!(
            lookup(&current, "bn-BD", TextField::Title),
            Some("পেমেন্ট বন্ধ")
        );
        assert_eq!(lookup(&current, "eo", TextField::Title), None);
    }
}
