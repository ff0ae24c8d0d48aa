//! The static mirror (`[publish] dir`): the banner JSON per language,
//! `banner.js`, the crisis page per language, the feeds and the CAP
//! documents they list, written at start, after every transition and once
//! a minute (the contacts' "open now"), so nginx or a CDN can serve them
//! while the daemon is down. Each file is written beside its final name
//! and renamed over it: a reader sees the old file or the new one whole.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{PublishError, Publisher, Site};
use crate::banner::SCRIPT;
use crate::clock::Clock;
use crate::domain::CrisisId;

pub const CAP_FEED_FILE: &str = "cap.atom";
pub const SCRIPT_FILE: &str = "banner.js";
pub const INDEX_FILE: &str = "index.html";

pub fn page_file(lang: &str) -> String {
    format!("status-{lang}.html")
}

pub fn feed_file(lang: &str) -> String {
    format!("feed-{lang}.atom")
}

pub fn banner_file(lang: &str) -> String {
    format!("banner-{lang}.json")
}

pub fn cap_file(id: CrisisId, version: u32) -> String {
    format!("cap/{id}-{version}.xml")
}

/// How often the files are written without a transition, so the page's
/// opening hours stay true.
const REFRESH: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Publish(#[from] PublishError),
}

pub struct Mirror {
    publisher: Arc<Publisher>,
    dir: PathBuf,
    site: Site,
    clock: Arc<dyn Clock>,
}

/// Writes `bytes` to `dir/name` by way of a temporary file in the same
/// directory, flushed to disk, then renamed over the old one.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), MirrorError> {
    let path = dir.join(name);
    let failed = |source| MirrorError::Write {
        path: path.clone(),
        source,
    };
    let parent = path.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent).map_err(failed)?;
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    // A dot file, which the example nginx config does not serve.
    let temporary = parent.join(format!(
        ".{}.{}.tmp",
        file_name.unwrap_or_default(),
        std::process::id()
    ));
    let written = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        #[cfg(unix)]
        {
            // Readable by the web server, as any published file.
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        }
        std::fs::rename(&temporary, &path)
    })();
    if let Err(err) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(failed(err));
    }
    Ok(())
}

impl Mirror {
    pub fn new(
        publisher: Arc<Publisher>,
        dir: PathBuf,
        base: Option<String>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            publisher,
            dir,
            site: Site::Mirror { base },
            clock,
        }
    }

    /// Every file, as things are now.
    pub async fn write_all(&self) -> Result<usize, MirrorError> {
        let now = self.clock.now();
        let publisher = &self.publisher;
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let default = publisher.resolve_locale("");
        for locale in publisher.locales() {
            let banner = publisher.banner.rendered(&locale, false, None, now);
            files.push((banner_file(&locale), banner.json.to_vec()));
            let page = publisher.render_page(&locale, &self.site, now).await?;
            if locale == default {
                files.push((INDEX_FILE.to_owned(), page.body.clone()));
            }
            files.push((page_file(&locale), page.body));
            let feed = publisher.feed(&locale, &self.site).await?;
            files.push((feed_file(&locale), feed.body));
        }
        for crisis in publisher.cap_feed_crises(now).await? {
            let cap = publisher
                .cap(crisis.id, Some(crisis.version), &self.site)
                .await?;
            files.push((cap_file(crisis.id, crisis.version), cap.body));
        }
        // The feed last: an alerting system following it finds every
        // document it lists.
        let cap_feed = publisher.cap_feed(&self.site, now).await?;
        files.push((CAP_FEED_FILE.to_owned(), cap_feed.body));
        files.push((SCRIPT_FILE.to_owned(), SCRIPT.as_bytes().to_vec()));
        let dir = self.dir.clone();
        let count = files.len();
        tokio::task::spawn_blocking(move || {
            files
                .iter()
                .try_for_each(|(name, bytes)| write_atomically(&dir, name, bytes))
        })
        .await
        .map_err(|e| MirrorError::Write {
            path: self.dir.clone(),
            source: std::io::Error::other(e),
        })??;
        Ok(count)
    }

    /// Writes at start, after every transition and every minute, until
    /// `shutdown`. A failed write is logged and tried again at the next
    /// occasion; transitions never wait for it.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            match self.write_all().await {
                Ok(files) => debug!(files, dir = %self.dir.display(), "Static mirror written."),
                Err(err) => {
                    warn!(error = %err, "Could not write the static mirror; trying again at the next change.")
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.publisher.changed.notified() => {}
                () = tokio::time::sleep(REFRESH) => {}
            }
        }
    }
}
