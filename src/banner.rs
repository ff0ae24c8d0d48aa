//! The website banner: the active crises, kept in memory (rebuilt from the
//! store at start) and rendered per language, at most once a second.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use sha2::{Digest, Sha256};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::domain::directory::ContactView;
use crate::domain::{AnnouncementKind, Crisis, CrisisId, Kind, Severity, Status};
use crate::plan::{PlanInputs, SharedInputs};
use crate::render::{BannerLabels, RenderContext};
use crate::sync::{read, write};

/// The script a website embeds to show the banner (`GET /banner.js`, and
/// in the static mirror).
pub const SCRIPT: &str = include_str!("http/banner.js");

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BannerCrisis {
    pub id: CrisisId,
    pub kind: Kind,
    pub severity: Severity,
    pub title: String,
    pub summary: String,
    /// The rendered headline (`banner/message.j2`).
    pub headline: String,
    /// The staff's latest message, in the reader's language where it has
    /// one.
    pub message: Option<String>,
    pub status: Status,
    pub updated_at: DateTime<Utc>,
    /// ARIA role for the notice: `alert` for critical, else `status`.
    pub role: Cow<'static, str>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BannerView {
    pub lang: String,
    pub crises: Vec<BannerCrisis>,
    pub contacts: Vec<ContactView>,
    pub labels: BannerLabels,
    /// Where the full, current text is.
    pub status_url: String,
}

/// The banner for one language, as served.
#[derive(Debug)]
pub struct RenderedBanner {
    pub json: Bytes,
    /// A strong ETag, quoted.
    pub etag: String,
}

#[derive(Debug)]
struct Cached {
    built_at: DateTime<Utc>,
    inputs: Arc<PlanInputs>,
    banner: Arc<RenderedBanner>,
}

/// How long a rendered banner is served before it is rendered again.
const FRESH_FOR: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

#[derive(Debug)]
pub struct Banner {
    active: RwLock<Vec<Crisis>>,
    /// Bumped by every change to `active`, so a rendering of the old list
    /// finished after a change is not kept.
    generation: AtomicU64,
    /// The banner as served, by resolved locale (a bounded set: the
    /// configured languages). A crisis is the busiest time for the banner,
    /// and rendering templates and contact hours for every request made
    /// its speed fall with each active crisis.
    rendered: RwLock<HashMap<String, Cached>>,
    /// The newest version applied per crisis (resolved ones included), so
    /// two transitions finishing out of order cannot bring back a stale one.
    seen: RwLock<HashMap<CrisisId, u32>>,
    /// Read at each view, so a reload's templates and directory show at
    /// once.
    inputs: SharedInputs,
}

impl Banner {
    pub fn new(inputs: SharedInputs, active: Vec<Crisis>) -> Self {
        let banner = Self {
            active: RwLock::new(Vec::new()),
            generation: AtomicU64::new(0),
            rendered: RwLock::new(HashMap::new()),
            seen: RwLock::new(HashMap::new()),
            inputs,
        };
        for crisis in active {
            banner.apply(&crisis);
        }
        banner
    }

    /// Shows, refreshes or (when resolved) removes a crisis.
    pub fn apply(&self, crisis: &Crisis) {
        {
            let mut seen = write(&self.seen);
            let newest = seen.entry(crisis.id).or_insert(0);
            if *newest >= crisis.version {
                return;
            }
            *newest = crisis.version;
        }
        let mut active = write(&self.active);
        self.generation.fetch_add(1, Ordering::SeqCst);
        write(&self.rendered).clear();
        active.retain(|c| c.id != crisis.id);
        if crisis.is_active() {
            active.push(crisis.clone());
            active.sort_by(|a, b| {
                b.severity
                    .rank()
                    .cmp(&a.severity.rank())
                    .then(b.declared_at.cmp(&a.declared_at))
            });
        }
    }

    /// Renders every language anew at the next request: what it shows
    /// beside the crises (the directory's availability) changed.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        write(&self.rendered).clear();
    }

    /// The crises shown now.
    pub fn shown(&self) -> Vec<CrisisId> {
        read(&self.active).iter().map(|c| c.id).collect()
    }

    pub fn active_count(&self) -> usize {
        read(&self.active).len()
    }

    /// The JSON body of `GET /v1/banner` for a reader of `lang`, and its
    /// ETag: rendered afresh when the active crises change, and otherwise
    /// at most once a second, so the contacts' opening hours stay current.
    pub fn rendered(
        &self,
        lang: &str,
        drills: bool,
        zone: Option<Tz>,
        now: DateTime<Utc>,
    ) -> Arc<RenderedBanner> {
        // A reload brings new templates and contacts: what was rendered
        // with the old ones is not served.
        let inputs = self.inputs.load_full();
        let locale = inputs.renderer.resolve_locale(lang);
        let mut key = if drills {
            format!("{locale}+drills")
        } else {
            locale.to_owned()
        };
        if let Some(zone) = zone {
            key = format!("{key}@{}", zone.name());
        }
        if let Some(cached) = read(&self.rendered).get(&key).filter(|cached| {
            Arc::ptr_eq(&cached.inputs, &inputs)
                && cached.built_at <= now
                && now - cached.built_at < FRESH_FOR
        }) {
            return cached.banner.clone();
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let view = self.view(locale, drills, zone, now);
        // A view of plain strings and enums always serializes.
        let json = Bytes::from(serde_json::to_vec(&view).unwrap_or_default());
        let digest = Sha256::digest(&json);
        let etag = format!("\"{}\"", hex::encode(&digest[..16]));
        let banner = Arc::new(RenderedBanner { json, etag });
        let mut rendered = write(&self.rendered);
        if self.generation.load(Ordering::SeqCst) == generation {
            rendered.insert(
                key,
                Cached {
                    built_at: now,
                    inputs: inputs.clone(),
                    banner: banner.clone(),
                },
            );
        }
        banner
    }

    /// What `GET /v1/banner` returns for a reader of `lang` (in `zone`, when
    /// the site says: the hours are then given in it too); drills only
    /// when the site asks for them.
    pub fn view(
        &self,
        lang: &str,
        drills: bool,
        zone: Option<Tz>,
        now: DateTime<Utc>,
    ) -> BannerView {
        let inputs = self.inputs.load();
        let mut active = read(&self.active).clone();
        active.retain(|crisis| drills || !crisis.drill);
        view_of(&inputs, &active, lang, zone, now)
    }
}

/// The banner showing `active` to a reader of `lang`: what the site shows,
/// and what a preview shows for a crisis not yet declared.
pub fn view_of(
    inputs: &PlanInputs,
    active: &[Crisis],
    lang: &str,
    zone: Option<Tz>,
    now: DateTime<Utc>,
) -> BannerView {
    let renderer = &inputs.renderer;
    let locale = renderer.resolve_locale(lang).to_owned();
    let contacts = if active.is_empty() {
        Vec::new()
    } else {
        inputs.contacts(&locale, zone, now)
    };
    let crises = active
        .iter()
        .map(|crisis| banner_crisis(inputs, crisis, &locale, &contacts, now))
        .collect();
    BannerView {
        labels: renderer.strings(&locale).banner.clone(),
        status_url: inputs.company.status_url.clone(),
        lang: locale,
        crises,
        contacts,
    }
}

fn banner_crisis(
    inputs: &PlanInputs,
    crisis: &Crisis,
    locale: &str,
    contacts: &[ContactView],
    now: DateTime<Utc>,
) -> BannerCrisis {
    let kind = match crisis.status {
        Status::Declared => AnnouncementKind::Initial,
        _ => AnnouncementKind::Update,
    };
    let ctx = RenderContext::new(
        locale,
        inputs.company.clone(),
        crisis,
        kind,
        None,
        contacts.to_vec(),
        now,
    );
    let headline = inputs.renderer.render_banner(&ctx).unwrap_or_else(|err| {
        warn!(crisis_id = %crisis.id, error = %err, "Banner template failed; showing the title.");
        ctx.crisis.title.clone()
    });
    BannerCrisis {
        id: crisis.id,
        kind: crisis.kind,
        severity: crisis.severity,
        headline,
        message: ctx.announcement.message,
        title: ctx.crisis.title,
        summary: ctx.crisis.summary,
        status: crisis.status,
        updated_at: crisis.updated_at,
        role: Cow::Borrowed(if crisis.severity == Severity::Critical {
            "alert"
        } else {
            "status"
        }),
    }
}
