//! The watched flag file: config management flips crisis mode by writing,
//! changing or removing one TOML file.
//!
//! The file is polled rather than watched with inotify: it is one small
//! file, polling survives its directory being created, removed or
//! replaced by an atomic rename, and works on network filesystems, where
//! inotify is silent. Only a regular file of at most `max_bytes` is read,
//! only when its `stat` changed, and only once it has stayed the same for
//! `settle`: a half-written file is neither declared nor re-read every
//! poll.

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
        drill: false,
        audience: Default::default(),
        channels: Vec::new(),
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
    /// The last problem reported (a kind of file, too large, unreadable,
    /// invalid content by its hash), so each is logged once.
    reported: Option<String>,
    /// The file as last acted on: unchanged, it is not read again.
    acted: Option<Seen>,
    /// A change waiting to settle, and since when it has not changed.
    settling: Option<(Seen, std::time::Instant)>,
}

/// What `stat` says of the file: a change to any of these is a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Missing,
    File {
        dev: u64,
        ino: u64,
        len: u64,
        modified: Option<std::time::SystemTime>,
    },
}

impl Seen {
    fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Seen::File {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            modified: meta.modified().ok(),
        }
    }

    /// Unchanged for `settle` by its modification time: a file written
    /// long before the daemon started needs no waiting.
    fn settled_by_age(&self, settle: std::time::Duration) -> bool {
        match self {
            Seen::Missing => true,
            Seen::File { modified, .. } => modified
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age >= settle),
        }
    }
}

/// Why the file was not read.
#[derive(Debug, thiserror::Error)]
enum Unreadable {
    #[error("it is not a regular file but a {0}; only regular files are read")]
    NotAFile(&'static str),
    #[error("it is {0} bytes, more than flag_file.max_bytes ({1})")]
    TooLarge(u64, u64),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl Unreadable {
    /// The same problem, however often it is seen, is reported once.
    fn key(&self) -> String {
        match self {
            Unreadable::NotAFile(kind) => format!("kind:{kind}"),
            Unreadable::TooLarge(..) => "too large".to_owned(),
            Unreadable::Io(err) => format!("io:{}", err.kind()),
        }
    }
}

fn file_kind(meta: &std::fs::Metadata) -> Result<(), Unreadable> {
    use std::os::unix::fs::FileTypeExt;
    let kind = meta.file_type();
    let name = if kind.is_file() {
        return Ok(());
    } else if kind.is_dir() {
        "directory"
    } else if kind.is_fifo() {
        "FIFO"
    } else if kind.is_char_device() {
        "character device"
    } else if kind.is_block_device() {
        "block device"
    } else if kind.is_socket() {
        "socket"
    } else {
        "special file"
    };
    Err(Unreadable::NotAFile(name))
}

/// Reads a regular file of at most `max` bytes. Opened without blocking
/// (a FIFO swapped in after the check would otherwise wait for a writer
/// and hold up shutdown), then checked again on the open descriptor.
fn read_capped(path: &std::path::Path, max: u64) -> Result<String, Unreadable> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    file_kind(&meta)?;
    if meta.len() > max {
        return Err(Unreadable::TooLarge(meta.len(), max));
    }
    let mut text = String::new();
    file.take(max + 1).read_to_string(&mut text)?;
    if text.len() as u64 > max {
        return Err(Unreadable::TooLarge(text.len() as u64, max));
    }
    Ok(text)
}

impl FlagFileWatcher {
    pub fn new(settings: FlagFileSettings, service: Arc<CrisisService>, storage: &Storage) -> Self {
        Self {
            settings,
            service,
            links: storage.source_links.clone(),
            crises: storage.crises.clone(),
            reported: None,
            acted: None,
            settling: None,
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

    /// Logs `problem` unless it is the one reported last.
    fn report(&mut self, key: String, problem: &dyn std::fmt::Display, invalid: bool) {
        if self.reported.as_ref() == Some(&key) {
            return;
        }
        let path = self.path().display();
        if invalid {
            error!(path = %path, %problem, "The flag file is invalid; nothing was changed.");
        } else {
            warn!(path = %path, %problem, "Cannot read the flag file; nothing was changed.");
        }
        self.reported = Some(key);
    }

    /// What `stat` says now; `None` (reported) when the file is not one
    /// to read.
    fn look(&mut self) -> Option<Seen> {
        let seen = match std::fs::metadata(self.path()) {
            Ok(meta) => file_kind(&meta).and_then(|()| match meta.len() {
                len if len > self.settings.max_bytes => {
                    Err(Unreadable::TooLarge(len, self.settings.max_bytes))
                }
                _ => Ok(Seen::of(&meta)),
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Seen::Missing),
            Err(err) => Err(Unreadable::Io(err)),
        };
        seen.map_err(|problem| self.report(problem.key(), &problem, false))
            .ok()
    }

    /// Whether `seen` has stayed the same for the settle time.
    fn settled(&mut self, seen: Seen) -> bool {
        let now = std::time::Instant::now();
        match self.settling {
            Some((waiting, since)) if waiting == seen => {
                now.duration_since(since) >= self.settings.settle
                    || seen.settled_by_age(self.settings.settle)
            }
            _ => {
                self.settling = Some((seen, now));
                self.settings.settle.is_zero() || seen.settled_by_age(self.settings.settle)
            }
        }
    }

    /// The file's flag when it changed and settled since it was last acted
    /// on; none when it did not, or cannot be read or is invalid (logged
    /// once): then nothing changes.
    async fn read(&mut self) -> Option<(Flag, Seen)> {
        let seen = self.look()?;
        if self.acted == Some(seen) || !self.settled(seen) {
            return None;
        }
        let text = match seen {
            Seen::Missing => String::new(),
            Seen::File { .. } => {
                let path = self.path().clone();
                let max = self.settings.max_bytes;
                match tokio::task::spawn_blocking(move || read_capped(&path, max)).await {
                    Ok(Ok(text)) => text,
                    Ok(Err(problem)) => {
                        self.report(problem.key(), &problem, false);
                        return None;
                    }
                    Err(join) => {
                        warn!(error = %join, "Reading the flag file failed.");
                        return None;
                    }
                }
            }
        };
        let flag = if seen == Seen::Missing {
            Flag::Inactive {
                resolution: Resolution::default(),
            }
        } else {
            match parse(&text) {
                Ok(flag) => flag,
                Err(problem) => {
                    let hash = format!("{:x}", Sha256::digest(text.as_bytes()));
                    self.report(hash, &problem, true);
                    // Not read again until it changes.
                    self.acted = Some(seen);
                    return None;
                }
            }
        };
        self.reported = None;
        Some((flag, seen))
    }

    /// Reads the file once and makes the crisis match it.
    pub async fn poll(&mut self) -> Result<(), ServiceError> {
        let Some((flag, seen)) = self.read().await else {
            return Ok(());
        };
        self.apply(flag).await?;
        // Only once acted on: a failed transition is tried again.
        self.acted = Some(seen);
        Ok(())
    }

    async fn apply(&mut self, flag: Flag) -> Result<(), ServiceError> {
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
                            // The file says nothing of the audience: kept.
                            audience: None,
                            channels: None,
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
