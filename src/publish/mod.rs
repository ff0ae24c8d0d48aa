//! Publishing where people look: the public crisis page, CAP 1.2 alerts,
//! the Atom feeds and the static mirror of them all. Everything here is
//! read from the store's crisis versions and the plan inputs; nothing here
//! changes a crisis.

mod atom;
mod cap;
mod mirror;
mod page;
mod s3;
mod status;
mod xml;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

pub use atom::FEED_ENTRIES;
pub use cap::{CAP_NAMESPACE, cap_category, cap_ratings};
pub use mirror::{Mirror, MirrorError};
pub use page::{PageView, template_problems};
pub use s3::{S3Error, S3Options, S3Upload};
pub use status::{PublishStatus, Target, TargetState, warnings};

use crate::banner::Banner;
use crate::domain::CrisisId;
use crate::domain::follow_up::FollowUps;
use crate::outbox::{CrisisFilter, Storage, StoreError};
use crate::plan::SharedInputs;
use crate::render::RenderError;
use crate::sync::{read, write};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("cannot write the XML document: {0}")]
    Xml(#[from] std::io::Error),
    #[error("no crisis {0}")]
    NoCrisis(CrisisId),
    #[error("crisis {id} has no version {version}")]
    NoVersion { id: CrisisId, version: u32 },
}

/// A document as served: its bytes and a strong ETag, quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub body: Vec<u8>,
    pub etag: String,
}

impl Document {
    pub fn new(body: Vec<u8>) -> Self {
        let digest = Sha256::digest(&body);
        let etag = format!("\"{}\"", hex::encode(&digest[..16]));
        Self { body, etag }
    }
}

/// Where a published document's links point: at the daemon's own routes,
/// or at the files of the static mirror (under `base`, else relative to
/// each other, for a directory served as it is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Site {
    Daemon { base: String },
    Mirror { base: Option<String> },
}

impl Site {
    fn mirror_url(base: &Option<String>, file: &str) -> String {
        match base {
            Some(base) => format!("{}/{file}", base.trim_end_matches('/')),
            None => file.to_owned(),
        }
    }

    pub fn page(&self, lang: &str) -> String {
        match self {
            Site::Daemon { base } => format!("{base}/status/{lang}"),
            Site::Mirror { base } => Self::mirror_url(base, &mirror::page_file(lang)),
        }
    }

    pub fn feed(&self, lang: &str) -> String {
        match self {
            Site::Daemon { base } => format!("{base}/v1/feed.atom?lang={lang}"),
            Site::Mirror { base } => Self::mirror_url(base, &mirror::feed_file(lang)),
        }
    }

    pub fn cap_feed(&self) -> String {
        match self {
            Site::Daemon { base } => format!("{base}/v1/cap.atom"),
            Site::Mirror { base } => Self::mirror_url(base, mirror::CAP_FEED_FILE),
        }
    }

    pub fn cap(&self, id: CrisisId, version: u32) -> String {
        match self {
            Site::Daemon { base } => format!("{base}/v1/crises/{id}/cap.xml?version={version}"),
            Site::Mirror { base } => Self::mirror_url(base, &mirror::cap_file(id, version)),
        }
    }
}

/// What the publisher is configured with (`[publish]`).
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// The daemon's public URL, without a trailing slash.
    pub public_url: String,
    /// How long after it is sent a CAP document expires, and how long a
    /// resolved crisis's Cancel stays in the CAP feed.
    pub cap_expires: TimeDelta,
}

#[derive(Debug)]
struct CachedPage {
    built_at: DateTime<Utc>,
    generation: u64,
    page: Arc<Document>,
}

/// How long a rendered page is served before it is rendered again: the
/// contacts' "open now" stays current, and a crowd reading the page during
/// a crisis does not render it for every request.
const FRESH_FOR: TimeDelta = TimeDelta::seconds(1);

pub struct Publisher {
    storage: Storage,
    inputs: SharedInputs,
    banner: Arc<Banner>,
    follow_ups: Arc<FollowUps>,
    options: PublishOptions,
    /// Bumped by every transition, so no page rendered before it is served.
    generation: AtomicU64,
    pages: std::sync::RwLock<HashMap<String, CachedPage>>,
    /// Wakes the mirror.
    changed: Notify,
    /// How the mirror's targets fare.
    status: PublishStatus,
}

impl Publisher {
    pub fn new(
        storage: Storage,
        inputs: SharedInputs,
        banner: Arc<Banner>,
        follow_ups: Arc<FollowUps>,
        options: PublishOptions,
    ) -> Self {
        Self {
            storage,
            inputs,
            banner,
            follow_ups,
            options,
            generation: AtomicU64::new(0),
            pages: std::sync::RwLock::default(),
            changed: Notify::new(),
            status: PublishStatus::default(),
        }
    }

    /// The static mirror's targets, for `/readyz` and `/metrics`.
    pub fn status(&self) -> &PublishStatus {
        &self.status
    }

    /// A transition was written: pages are rendered afresh and the mirror
    /// rewrites its files. Never waits.
    pub fn changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        write(&self.pages).clear();
        self.changed.notify_one();
    }

    pub fn daemon_site(&self) -> Site {
        Site::Daemon {
            base: self.options.public_url.clone(),
        }
    }

    /// The locale whose templates serve `lang`.
    pub fn resolve_locale(&self, lang: &str) -> String {
        self.inputs.load().renderer.resolve_locale(lang).to_owned()
    }

    pub fn locales(&self) -> Vec<String> {
        self.inputs
            .load()
            .renderer
            .locales()
            .map(str::to_owned)
            .collect()
    }

    /// The crisis page in `lang` as the daemon serves it.
    pub async fn status_page(
        &self,
        lang: &str,
        now: DateTime<Utc>,
    ) -> Result<Arc<Document>, PublishError> {
        let locale = self.resolve_locale(lang);
        let generation = self.generation.load(Ordering::SeqCst);
        if let Some(cached) = read(&self.pages).get(&locale).filter(|cached| {
            cached.generation == generation
                && cached.built_at <= now
                && now - cached.built_at < FRESH_FOR
        }) {
            return Ok(cached.page.clone());
        }
        let page = Arc::new(self.render_page(&locale, &self.daemon_site(), now).await?);
        let mut pages = write(&self.pages);
        if self.generation.load(Ordering::SeqCst) == generation {
            pages.insert(
                locale,
                CachedPage {
                    built_at: now,
                    generation,
                    page: page.clone(),
                },
            );
        }
        Ok(page)
    }

    /// The live ones: a drill is for its drill audience, never for the
    /// public page (as the public banner leaves drills out).
    async fn active_crises(&self) -> Result<Vec<crate::domain::Crisis>, PublishError> {
        let mut crises = self.storage.crises.crises(CrisisFilter::Active).await?;
        crises.retain(|crisis| !crisis.drill);
        Ok(crises)
    }
}
