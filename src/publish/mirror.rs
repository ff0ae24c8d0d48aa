//! The static mirror: the banner JSON per language, `banner.js`, the crisis
//! page per language, the feeds and the CAP documents they list, written at
//! start, after every transition and once a minute (the contacts' "open
//! now") into a directory (`[publish] dir`) and an S3-compatible bucket
//! (`[publish.s3]`), so nginx or a CDN can serve them while the daemon is
//! down. In the directory each file is written beside its final name and
//! renamed over it: a reader sees the old file or the new one whole. A
//! target that fails is tried again with backoff and reported in
//! `/readyz`; transitions never wait for either.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::s3::{S3Error, S3Upload};
use super::status::Target;
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

/// The banner in the default language, for a page whose language has no
/// file of its own.
pub const DEFAULT_BANNER_FILE: &str = "banner.json";

pub fn banner_file(lang: &str) -> String {
    format!("banner-{lang}.json")
}

pub fn cap_file(id: CrisisId, version: u32) -> String {
    format!("cap/{id}-{version}.xml")
}

/// How often the files are written without a transition, so the page's
/// opening hours stay true.
const REFRESH: Duration = Duration::from_secs(60);

/// The first wait before a failed target is tried again; it doubles up to
/// `REFRESH`.
const FIRST_RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    S3(#[from] S3Error),
}

/// The files as they are now, by name, in the order they are put in place.
type Files = Vec<(String, Vec<u8>)>;

pub struct Mirror {
    publisher: Arc<Publisher>,
    site: Site,
    clock: Arc<dyn Clock>,
    dir: Option<PathBuf>,
    s3: Option<S3Upload>,
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
    /// A mirror with no target yet: see `with_dir` and `with_s3`.
    pub fn new(publisher: Arc<Publisher>, base: Option<String>, clock: Arc<dyn Clock>) -> Self {
        Self {
            publisher,
            site: Site::Mirror { base },
            clock,
            dir: None,
            s3: None,
        }
    }

    pub fn with_dir(mut self, dir: PathBuf) -> Self {
        self.publisher.status().expect(Target::Dir);
        self.dir = Some(dir);
        self
    }

    pub fn with_s3(mut self, upload: S3Upload) -> Self {
        self.publisher.status().expect(Target::S3);
        self.s3 = Some(upload);
        self
    }

    /// Every file, as things are now.
    async fn files(&self) -> Result<Files, MirrorError> {
        let now = self.clock.now();
        let publisher = &self.publisher;
        let mut files: Files = Vec::new();
        let default = publisher.resolve_locale("");
        for locale in publisher.locales() {
            let banner = publisher.banner.rendered(&locale, false, None, now);
            if locale == default {
                files.push((DEFAULT_BANNER_FILE.to_owned(), banner.json.to_vec()));
            }
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
        Ok(files)
    }

    async fn write_dir(dir: &Path, files: Arc<Files>) -> Result<(), MirrorError> {
        let target = dir.to_path_buf();
        tokio::task::spawn_blocking(move || {
            files
                .iter()
                .try_for_each(|(name, bytes)| write_atomically(&target, name, bytes))
        })
        .await
        .map_err(|e| MirrorError::Write {
            path: dir.to_path_buf(),
            source: std::io::Error::other(e),
        })?
    }

    /// Puts the files in every target; false when one failed.
    async fn publish(&mut self) -> bool {
        let files = match self.files().await {
            Ok(files) => Arc::new(files),
            Err(err) => {
                warn!(error = %err, "Could not render the files of the static mirror.");
                return false;
            }
        };
        let mut all_ok = true;
        if let Some(dir) = &self.dir {
            let written = Self::write_dir(dir, files.clone()).await;
            all_ok &= self.record(Target::Dir, written.map(|()| files.len()));
        }
        if let Some(s3) = &mut self.s3 {
            let uploaded = s3.upload(&files).await.map_err(MirrorError::from);
            all_ok &= self.record(Target::S3, uploaded);
        }
        all_ok
    }

    /// Notes a target's outcome; logs a failure, and the first success
    /// after failures.
    fn record(&self, target: Target, outcome: Result<usize, MirrorError>) -> bool {
        let status = self.publisher.status();
        let now = self.clock.now();
        match outcome {
            Ok(files) => {
                let recovered = status
                    .snapshot()
                    .get(&target)
                    .is_some_and(|s| s.failures > 0);
                status.succeeded(target, now);
                if recovered {
                    info!(
                        target = target.name(),
                        files, "The static mirror is written again."
                    );
                } else {
                    debug!(target = target.name(), files, "Static mirror written.");
                }
                true
            }
            Err(err) => {
                warn!(target = target.name(), error = %err, "Could not write the static mirror; trying again.");
                status.failed(target, now, err.to_string());
                false
            }
        }
    }

    /// Writes at start, after every transition and every minute, until
    /// `shutdown`; a target that failed is tried again after 1 s, doubling
    /// up to a minute. Transitions never wait for it.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut retry = FIRST_RETRY;
        loop {
            let wait = if self.publish().await {
                retry = FIRST_RETRY;
                REFRESH
            } else {
                let wait = retry;
                retry = (retry * 2).min(REFRESH);
                wait
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.publisher.changed.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}
