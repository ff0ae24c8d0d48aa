//! The website banner: the active crises, kept in memory (rebuilt from the
//! store at start) and rendered per language on request.

use std::collections::HashMap;
use std::sync::RwLock;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::warn;

use crate::app::SharedInputs;
use crate::crisis::{AnnouncementKind, Crisis, CrisisId, Kind, Severity, Status};
use crate::directory::ContactView;
use crate::render::{BannerLabels, RenderContext};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BannerCrisis {
    pub id: CrisisId,
    pub kind: Kind,
    pub severity: Severity,
    pub title: String,
    pub summary: String,
    /// The rendered banner text.
    pub message: String,
    pub status: Status,
    pub updated_at: DateTime<Utc>,
    /// ARIA role for the notice: `alert` for critical, else `status`.
    pub role: &'static str,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BannerView {
    pub lang: String,
    pub crises: Vec<BannerCrisis>,
    pub contacts: Vec<ContactView>,
    pub labels: BannerLabels,
}

#[derive(Debug)]
pub struct Banner {
    active: RwLock<Vec<Crisis>>,
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
            let mut seen = self.seen.write().unwrap_or_else(|e| e.into_inner());
            let newest = seen.entry(crisis.id).or_insert(0);
            if *newest >= crisis.version {
                return;
            }
            *newest = crisis.version;
        }
        let mut active = self.active.write().unwrap_or_else(|e| e.into_inner());
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

    pub fn active_count(&self) -> usize {
        self.active.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// What `GET /v1/banner` returns for a reader of `lang`.
    pub fn view(&self, lang: &str, now: DateTime<Utc>) -> BannerView {
        let inputs = self.inputs.load();
        let renderer = &inputs.renderer;
        let locale = renderer.resolve_locale(lang).to_owned();
        let active = self
            .active
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let contacts = if active.is_empty() {
            Vec::new()
        } else {
            inputs.contacts(&locale, now)
        };
        let crises = active
            .iter()
            .map(|crisis| {
                let kind = match crisis.status {
                    Status::Declared => AnnouncementKind::Initial,
                    _ => AnnouncementKind::Update,
                };
                let ctx = RenderContext::new(
                    &locale,
                    inputs.company.clone(),
                    crisis,
                    kind,
                    None,
                    contacts.clone(),
                    now,
                );
                let (title, summary) = crisis.text_for(&locale);
                let message = renderer.render_banner(&ctx).unwrap_or_else(|err| {
                    warn!(crisis_id = %crisis.id, error = %err, "Banner template failed; showing title and summary.");
                    format!("{title}: {summary}")
                });
                BannerCrisis {
                    id: crisis.id,
                    kind: crisis.kind,
                    severity: crisis.severity,
                    title: title.to_owned(),
                    summary: summary.to_owned(),
                    message,
                    status: crisis.status,
                    updated_at: crisis.updated_at,
                    role: if crisis.severity == Severity::Critical {
                        "alert"
                    } else {
                        "status"
                    },
                }
            })
            .collect();
        BannerView {
            labels: renderer.strings(&locale).banner.clone(),
            lang: locale,
            crises,
            contacts,
        }
    }
}
