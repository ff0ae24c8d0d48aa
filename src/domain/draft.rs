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
    CrisisId, CrisisUpdate, Declaration, DomainError, Kind, LocalizedText, Severity, string_enum,
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
    /// Title and summary in the other locales.
    pub localized: BTreeMap<String, LocalizedText>,
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
        }
    }

    /// The update as the API would take it: every field given.
    pub fn update(&self) -> CrisisUpdate {
        CrisisUpdate {
            message: self.message.clone(),
            kind: Some(self.kind),
            severity: Some(self.severity),
            title: Some(self.title.clone()),
            summary: Some(self.summary.clone()),
            localized: Some(self.localized.clone()),
        }
    }
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
                    title: "পেমেন্ট বন্ধ".into(),
                    summary: "কার্ড পেমেন্ট ব্যর্থ।".into(),
                },
            )]),
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
        translated
            .localized
            .get_mut("bn")
            .expect("bn")
            .title
            .push('!');
        assert_ne!(translated.content_hash(), original.content_hash());
        let mut milder = draft();
        milder.severity = Severity::Major;
        assert_ne!(milder.content_hash(), original.content_hash());
    }
}
