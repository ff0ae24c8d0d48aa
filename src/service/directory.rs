//! The live directory: marking a contact entry unavailable or available
//! again (a person through the API, or its health probe), stored so every
//! daemon on the store and the next start see it, and shown at once on the
//! banner, the status page and every message planned from then on.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{CrisisService, ServiceError};
use crate::domain::directory::{ContactEntry, EntryAvailability};
use crate::outbox::StoreError;

/// One entry as `crisisd directory list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryEntryState {
    pub id: String,
    pub label: String,
    pub address: String,
    pub emergency: bool,
    pub available: bool,
    /// Whether a health probe watches it.
    pub probed: bool,
    /// The last change, if it was ever changed.
    pub last_change: Option<EntryAvailability>,
    /// The entry messages point to while this one is unavailable.
    pub instead: Option<String>,
}

impl CrisisService {
    /// Marks `entry` available or not; refused, changing nothing, for an
    /// entry the directory does not have. Returns whether it changed.
    pub async fn set_availability(
        &self,
        entry: &str,
        available: bool,
        reason: Option<String>,
        by: String,
    ) -> Result<bool, ServiceError> {
        let inputs = self.inputs.load();
        if !inputs.directory.iter().any(|e| e.id == entry) {
            return Err(ServiceError::UnknownEntry {
                entry: entry.to_owned(),
                known: inputs
                    .directory
                    .iter()
                    .map(|e| e.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let change = EntryAvailability {
            entry: entry.to_owned(),
            available,
            reason: reason.filter(|r| !r.trim().is_empty()),
            changed_by: by,
            changed_at: self.now(),
        };
        let changed = self.storage.directory.set_availability(&change).await?;
        if inputs.availability.set(change) {
            self.directory_shown_changed();
        }
        Ok(changed)
    }

    /// Takes the store's states (what another daemon or a previous run
    /// changed); returns whether anything shown changed.
    pub async fn refresh_availability(&self) -> Result<bool, StoreError> {
        let states = self.storage.directory.availability().await?;
        let changed = self.inputs.load().availability.replace(states);
        if changed {
            self.directory_shown_changed();
        }
        Ok(changed)
    }

    /// Every entry with its availability, as a reader in the default
    /// language sees it at `now`.
    pub async fn directory_states(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<DirectoryEntryState>, StoreError> {
        let stored = self.storage.directory.availability().await?;
        let inputs = self.inputs.load();
        let views = inputs.contacts(inputs.renderer.default_locale(), None, now);
        Ok(inputs
            .directory
            .iter()
            .filter_map(|entry| {
                let view = views.iter().find(|v| v.id == entry.id)?;
                Some(DirectoryEntryState {
                    id: entry.id.clone(),
                    label: view.label.clone(),
                    address: entry.address.clone(),
                    emergency: entry.emergency,
                    available: view.available,
                    probed: entry.health.is_some(),
                    last_change: stored.iter().find(|s| s.entry == entry.id).cloned(),
                    instead: view.instead.clone(),
                })
            })
            .collect())
    }

    /// The directory's entries as configured now.
    pub fn directory_entries(&self) -> Vec<ContactEntry> {
        self.inputs.load().directory.clone()
    }

    /// Whether `entry` is available now, as this daemon shows it.
    pub fn entry_available(&self, entry: &str) -> bool {
        self.inputs.load().availability.down(entry).is_none()
    }

    /// The banner and the crisis page show the directory: render them anew.
    fn directory_shown_changed(&self) {
        self.banner.invalidate();
        if let Some(publisher) = &self.publisher {
            publisher.changed();
        }
    }
}
