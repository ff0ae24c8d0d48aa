//! What a person composes in the console before it is sent: a
//! declaration, an update or an all-clear, with its text in every locale.
//! Its content hash is what a second person's approval is bound to, so
//! any edit after an approval needs a new one.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    Crisis, CrisisId, CrisisUpdate, Declaration, DomainError, Kind, LocalizedText, Resolution,
    Selection, Severity, TextField, Translations, string_enum,
};

string_enum!(
    /// Which transition a draft asks for.
    DraftAction {
        Declare => "declare",
        Update => "update",
        Resolve => "resolve",
    }
);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draft {
    pub action: DraftAction,
    /// The crisis an update or all-clear is for; none for a declaration.
    pub crisis: Option<CrisisId>,
    pub kind: Kind,
    pub severity: Severity,
    /// In the default locale.
    pub title: String,
    pub summary: String,
    pub message: Option<String>,
    /// Title, summary and message in the other locales.
    pub localized: Translations,
    /// For an update or all-clear: locales with their own text for what
    /// changes, and no new text here, read the default language's.
    pub fall_back: bool,
    /// A declaration of a drill (an update or all-clear of a drill is one
    /// too: the crisis decides).
    pub drill: bool,
    /// Who it is for and on which channels; an all-clear goes to the
    /// crisis's own. `default`: a submission stored before it had none.
    #[serde(default, skip_serializing_if = "Selection::is_everything")]
    pub selection: Selection,
}

impl Draft {
    /// SHA-256 (hex) of the draft's canonical JSON: every field, the
    /// locales in order, so the same content always hashes the same.
    pub fn content_hash(&self) -> String {
        // A struct of strings, enums and a BTreeMap always serializes.
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(&json))
    }

    pub fn declaration(&self) -> Declaration {
        Declaration {
            kind: self.kind,
            severity: self.severity,
            title: self.title.clone(),
            summary: self.summary.clone(),
            localized: self.localized.clone(),
            message: self.message.clone(),
            // The duplicate guard holds for the console as for the API.
            separate: false,
            drill: self.drill,
            audience: self.selection.audience.clone(),
            channels: self.selection.channels.clone(),
        }
    }

    /// The update of `current` this draft asks for, as the API would take
    /// it. A locale's text is given only where it differs from what the
    /// locale has now, so a translation left as it was while the default
    /// text changed is what the domain calls stale (refused, naming the
    /// locale, unless `fall_back`).
    pub fn update(&self, current: &Crisis) -> CrisisUpdate {
        CrisisUpdate {
            message: self.message.clone(),
            kind: Some(self.kind),
            severity: Some(self.severity),
            title: Some(self.title.clone()),
            summary: Some(self.summary.clone()),
            localized: Some(changed_translations(&self.localized, &current.localized)),
            fall_back: self.fall_back,
            // Given only when it differs, so an update that keeps the
            // selection says so in the audit of its request.
            audience: (self.selection.audience != current.selection.audience)
                .then(|| self.selection.audience.clone()),
            channels: (self.selection.channels != current.selection.channels)
                .then(|| self.selection.channels.clone()),
        }
    }

    /// The all-clear with its message per locale.
    pub fn resolution(&self) -> Resolution {
        let localized = self
            .localized
            .iter()
            .filter_map(|(locale, text)| {
                text.message.clone().map(|message| {
                    let text = LocalizedText {
                        message: Some(message),
                        ..LocalizedText::default()
                    };
                    (locale.clone(), text)
                })
            })
            .collect();
        Resolution {
            message: self.message.clone(),
            localized,
            fall_back: self.fall_back,
        }
    }
}

/// The fields of `wanted` that differ from `current`; a message always
/// counts (it belongs to the announcement being made).
fn changed_translations(wanted: &Translations, current: &Translations) -> Translations {
    let mut changed = BTreeMap::new();
    for (locale, text) in wanted {
        let now = current.get(locale);
        let mut given = LocalizedText::default();
        for field in [TextField::Title, TextField::Summary] {
            let value = text.get(field);
            if value.is_some() && value != now.and_then(|n| n.get(field)) {
                match field {
                    TextField::Title => given.title = value.cloned(),
                    _ => given.summary = value.cloned(),
                }
            }
        }
        given.message = text.message.clone();
        if !given.is_empty() {
            changed.insert(locale.clone(), given);
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> Draft {
        Draft {
            action: DraftAction::Declare,
            crisis: None,
            kind: Kind::Outage,
            severity: Severity::Critical,
            title: "Payments are down".into(),
            summary: "Card payments fail.".into(),
            message: None,
            localized: BTreeMap::from([(
                "bn".to_owned(),
                LocalizedText {
                    title: Some("পেমেন্ট বন্ধ".into()),
                    summary: Some("কার্ড পেমেন্ট ব্যর্থ।".into()),
                    message: None,
                },
            )]),
            fall_back: false,
            drill: false,
            selection: Selection::default(),
        }
    }

    #[test]
    fn any_edit_changes_the_content_hash() {
        let original = draft();
        assert_eq!(original.content_hash(), draft().content_hash());
        assert_eq!(original.content_hash().len(), 64);
        let mut edited = draft();
        edited.summary.push(' ');
        assert_ne!(edited.content_hash(), original.content_hash());
        let mut translated = draft();
        translated.localized.get_mut("bn").expect("bn").title = Some("বন্ধ!".into());
        assert_ne!(translated.content_hash(), original.content_hash());
        let mut milder = draft();
        milder.severity = Severity::Major;
        assert_ne!(milder.content_hash(), original.content_hash());
    }

    #[test]
    fn an_update_gives_only_the_translations_that_changed() {
        let now = chrono::Utc::now();
        let crisis = Crisis::declare(draft().declaration(), now).expect("declared");
        let mut same = draft();
        same.action = DraftAction::Update;
        same.title = "Payments are still down".into();
        assert_eq!(
            same.update(&crisis).localized,
            Some(Translations::new()),
            "the Bengali text as it was is not given, so the domain sees it stale"
        );
        let mut translated = same.clone();
        translated.localized.get_mut("bn").expect("bn").title = Some("পেমেন্ট এখনো বন্ধ".into());
        let given = translated.update(&crisis).localized.expect("given");
        assert_eq!(given["bn"].title.as_deref(), Some("পেমেন্ট এখনো বন্ধ"));
        assert_eq!(given["bn"].summary, None, "the summary did not change");
    }
}
