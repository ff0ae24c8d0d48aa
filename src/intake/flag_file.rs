//! The watched flag file: config management flips crisis mode by writing,
//! changing or removing one TOML file.
//!
//! The file is polled rather than watched with inotify: it is one small
//! file, polling survives its directory being created, removed or
//! replaced by an atomic rename, and works on network filesystems, where
//! inotify is silent. A half-written file fails to parse and is simply read
//! again on the next poll.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::FlagFileSettings;
use crate::domain::{
    Actor, ActorSource, CrisisUpdate, Declaration, Kind, LocalizedText, Resolution, Severity,
};
use crate::outbox::{CrisisStore, SourceLinkStore, Storage};
use crate::service::{CrisisService, ServiceError, SourceRef, TransitionContext};

pub const SOURCE: &str = "flag_file";

/// The file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagContent {
    pub active: bool,
    pub kind: Option<Kind>,
    pub severity: Option<Severity>,
    pub title: Option<String>,
    pub summary: Option<String>,
    pub message: Option<String>,
    #[serde(default)]
    pub localized: BTreeMap<String, LocalizedText>,
    /// When a change to the file's title, summary or message leaves a
    /// locale's own text behind: `true` lets that locale read the default
    /// language's; without it the change is refused (and logged) until the
    /// file gives the locale's new text too.
    #[serde(default)]
    pub fall_back: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Flag {
    /// Missing, or `active = false` (with its optional message).
    Inactive { resolution: Resolution },
    Active {
        declaration: Declaration,
        fall_back: bool,
        fingerprint: String,
    },
}

fn parse(text: &str) -> Result<Flag, String> {
    let content: FlagContent = toml::from_str(text).map_err(|e| e.message().to_owned())?;
    if !content.active {
        return Ok(Flag::Inactive {
            resolution: Resolution {
                message: content.message,
                localized: content.localized,
                fall_back: content.fall_back,
            },
        });
    }
    let fingerprint = serde_json::to_vec(&content)
        .map(|bytes| format!("{:x}", Sha256::digest(bytes)))
        .map_err(|e| e.to_string())?;
    let missing = |key: &str| format!("`active = true` needs `{key}`");
    let declaration = Declaration {
        kind: content.kind.ok_or_else(|| missing("kind"))?,
        severity: content.severity.ok_or_else(|| missing("severity"))?,
        title: content.title.ok_or_else(|| missing("title"))?,
        summary: content.summary.ok_or_else(|| missing("summary"))?,
        localized: content.localized,
        message: content.message,
        separate: false,
    };
    declaration.validate().map_err(|e| e.to_string())?;
    Ok(Flag::Active {
        declaration,
        fall_back: content.fall_back,
        fingerprint,
    })
}

pub struct FlagFileWatcher {
    settings: FlagFileSettings,
    service: Arc<CrisisService>,
    links: Arc<dyn SourceLinkStore>,
    crises: Arc<dyn CrisisStore>,
    /// Hash of the last invalid content reported, so it is logged once.
    reported: Option<String>,
}

impl FlagFileWatcher {
    pub fn new(settings: FlagFileSettings, service: Arc<CrisisService>, storage: &Storage) -> Self {
        Self {
            settings,
            service,
            links: storage.source_links.clone(),
            crises: storage.crises.clone(),
            reported: None,
        }
    }

    fn path(&self) -> &PathBuf {
        &self.settings.path
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        info!(path = %self.path().display(), "Watching the crisis flag file.");
        let mut interval = tokio::time::interval(self.settings.poll_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = interval.tick() => {}
            }
            if let Err(err) = self.poll().await {
                warn!(path = %self.path().display(), error = %err, "Could not act on the flag file; will try again.");
            }
        }
    }

    /// The file's flag, or none (logged) when it cannot be read or is
    /// invalid: then nothing changes.
    async fn read(&mut self) -> Option<Flag> {
        let flag = match tokio::fs::read_to_string(self.path()).await {
            Ok(text) => match parse(&text) {
                Ok(flag) => flag,
                Err(problem) => {
                    let hash = format!("{:x}", Sha256::digest(text.as_bytes()));
                    if self.reported.as_ref() != Some(&hash) {
                        error!(path = %self.path().display(), %problem, "The flag file is invalid; nothing was changed.");
                        self.reported = Some(hash);
                    }
                    return None;
                }
            },
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Flag::Inactive {
                resolution: Resolution::default(),
            },
            Err(err) => {
                warn!(path = %self.path().display(), error = %err, "Cannot read the flag file; nothing was changed.");
                return None;
            }
        };
        self.reported = None;
        Some(flag)
    }

    /// Reads the file once and makes the crisis match it.
    pub async fn poll(&mut self) -> Result<(), ServiceError> {
        let Some(flag) = self.read().await else {
            return Ok(());
        };
        let external_id = self.path().display().to_string();
        let link = self.links.source_link(SOURCE, &external_id).await?;
        let linked = match &link {
            Some(link) => self.crises.crisis(link.crisis_id).await?,
            None => None,
        };
        let actor = Actor::new(ActorSource::FlagFile, external_id.clone());
        let source_ref = |fingerprint: String| SourceRef {
            source: SOURCE.to_owned(),
            external_id: external_id.clone(),
            fingerprint,
        };
        match flag {
            Flag::Inactive { resolution } => match (&link, &linked) {
                (Some(link), Some(crisis)) if crisis.is_active() => {
                    let ctx = TransitionContext {
                        source: Some(source_ref(link.fingerprint.clone())),
                        ..TransitionContext::by(actor)
                    };
                    self.service
                        .resolve_with(crisis.id, resolution, ctx)
                        .await?;
                }
                // Resolved by hand while the file still said active: now
                // that the file agrees, forget the link, so the same content
                // written again declares a new crisis.
                (Some(_), _) => self.links.unlink_source(SOURCE, &external_id).await?,
                (None, _) => {}
            },
            Flag::Active {
                declaration,
                fall_back,
                fingerprint,
            } => {
                let unchanged = link.as_ref().is_some_and(|l| l.fingerprint == fingerprint);
                if unchanged {
                    // Also when the linked crisis was resolved by hand: a
                    // stale file does not declare it again.
                    return Ok(());
                }
                let ctx = TransitionContext {
                    source: Some(source_ref(fingerprint)),
                    ..TransitionContext::by(actor)
                };
                match linked.filter(|c| c.is_active()) {
                    Some(crisis) => {
                        let update = CrisisUpdate {
                            message: declaration.message,
                            kind: Some(declaration.kind),
                            severity: Some(declaration.severity),
                            title: Some(declaration.title),
                            summary: Some(declaration.summary),
                            localized: Some(declaration.localized),
                            fall_back,
                        };
                        self.service.update(crisis.id, update, ctx).await?;
                    }
                    None => {
                        self.service.declare(declaration, ctx).await?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_active_flag_needs_every_field() {
        let err =
            parse("active = true\nkind = \"outage\"\nseverity = \"major\"\ntitle = \"Down\"\n")
                .unwrap_err();
        assert!(err.contains("summary"), "{err}");
    }

    #[test]
    fn an_inactive_flag_carries_its_message() {
        assert_eq!(
            parse("active = false\nmessage = \"All good\"\n"),
            Ok(Flag::Inactive {
                resolution: Resolution::from(Some("All good".to_owned()))
            })
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(parse("active = false\nactiv = true\n").is_err());
    }

    #[test]
    fn formatting_does_not_change_the_fingerprint() {
        let a = parse(
            "active = true\nkind = \"outage\"\nseverity = \"major\"\ntitle = \"Down\"\nsummary = \"S\"\n",
        );
        let b = parse(
            "active=true\n\n# note\nkind=\"outage\"\nseverity=\"major\"\ntitle=\"Down\"\nsummary=\"S\"",
        );
        assert_eq!(a, b);
    }
}
