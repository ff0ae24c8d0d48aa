//! The public crisis page: every active crisis with its history, the whole
//! contact directory (emergency route first) and the follow-up library's
//! resources for the crisis kind, or a calm page when all is well.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::{Document, PublishError, Publisher, Site};
use crate::domain::directory::ContactView;
use crate::domain::follow_up::{Library, ResourceView};
use crate::domain::{Crisis, CrisisUpdate, Declaration, Kind, Severity, Status};
use crate::plan::PlanInputs;
use crate::render::{CompanyView, local_time};

const TEMPLATE: &str = "status/page.html.j2";

/// A feed or another language of the page, for `<link rel="alternate">`.
#[derive(Debug, Clone, Serialize)]
pub struct Alternate {
    pub lang: String,
    pub href: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PageLinks {
    /// This page.
    pub page: String,
    /// The announcements feed in this language.
    pub feed: String,
    /// The CAP feed for alerting systems.
    pub cap_feed: String,
    /// This page in every shipped language.
    pub languages: Vec<Alternate>,
}

/// One transition as the history lists it.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub status: Status,
    pub at: String,
    pub at_local: String,
    pub title: String,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CrisisSection {
    pub id: String,
    pub kind: String,
    pub severity: Severity,
    pub status: Status,
    pub title: String,
    pub summary: String,
    pub message: Option<String>,
    pub declared_at: String,
    pub declared_at_local: String,
    pub updated_at: String,
    pub updated_at_local: String,
    /// Newest first.
    pub history: Vec<HistoryEntry>,
    /// The follow-up library's resources for this kind and language.
    pub resources: Vec<ResourceView>,
    /// This crisis's latest CAP document.
    pub cap_url: String,
}

/// What `status/page.html.j2` sees; documented in templates/README.md.
#[derive(Debug, Clone, Serialize)]
pub struct PageView {
    pub locale: String,
    pub company: CompanyView,
    pub links: PageLinks,
    /// Most severe first, then the newest.
    pub crises: Vec<CrisisSection>,
    /// The whole directory, emergency entries first.
    pub contacts: Vec<ContactView>,
    pub emergency_contacts: Vec<ContactView>,
    pub now: String,
    pub now_local: String,
}

/// Times on a page nobody's zone is known for are shown in UTC.
fn shown(at: DateTime<Utc>) -> String {
    local_time(at, Tz::UTC)
}

fn minute(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::minutes(1)).unwrap_or(at)
}

fn history_entry(version: &Crisis, locale: &str) -> HistoryEntry {
    HistoryEntry {
        status: version.status,
        at: version.updated_at.to_rfc3339(),
        at_local: shown(version.updated_at),
        title: version.text_for(locale).0.to_owned(),
        message: version.message_for(locale).map(str::to_owned),
    }
}

fn page_links(locales: impl Iterator<Item = String>, locale: &str, site: &Site) -> PageLinks {
    PageLinks {
        page: site.page(locale),
        feed: site.feed(locale),
        cap_feed: site.cap_feed(),
        languages: locales
            .map(|lang| Alternate {
                href: site.page(&lang),
                lang,
            })
            .collect(),
    }
}

fn section(
    crisis: &Crisis,
    versions: &[Crisis],
    library: &Library,
    locale: &str,
    site: &Site,
) -> CrisisSection {
    let (title, summary) = crisis.text_for(locale);
    CrisisSection {
        id: crisis.id.to_string(),
        kind: crisis.kind.to_string(),
        severity: crisis.severity,
        status: crisis.status,
        title: title.to_owned(),
        summary: summary.to_owned(),
        message: crisis.message_for(locale).map(str::to_owned),
        declared_at: crisis.declared_at.to_rfc3339(),
        declared_at_local: shown(crisis.declared_at),
        updated_at: crisis.updated_at.to_rfc3339(),
        updated_at_local: shown(crisis.updated_at),
        history: versions
            .iter()
            .rev()
            .map(|version| history_entry(version, locale))
            .collect(),
        resources: library.view(crisis.kind, locale, None, &[]),
        cap_url: site.cap(crisis.id, crisis.version),
    }
}

/// What the page template sees for `locale` at `now`, for `active`
/// crises each with its versions, oldest first.
fn view(
    inputs: &PlanInputs,
    library: &Library,
    locale: &str,
    site: &Site,
    mut active: Vec<(Crisis, Vec<Crisis>)>,
    now: DateTime<Utc>,
) -> PageView {
    active.sort_by(|(a, _), (b, _)| {
        b.severity
            .rank()
            .cmp(&a.severity.rank())
            .then(b.declared_at.cmp(&a.declared_at))
    });
    let mut contacts = inputs.contacts(locale, None, now);
    // The emergency route first: the one a frightened reader needs (one
    // marked unavailable after those that are not).
    contacts.sort_by_key(|contact| (!contact.emergency, !contact.available));
    let locales = inputs.renderer.locales().map(str::to_owned);
    PageView {
        locale: locale.to_owned(),
        company: inputs.company.clone(),
        links: page_links(locales, locale, site),
        crises: active
            .iter()
            .map(|(crisis, versions)| section(crisis, versions, library, locale, site))
            .collect(),
        emergency_contacts: crate::domain::directory::emergency_route(&contacts),
        contacts,
        // To the minute, as opening hours go: the page (and its ETag)
        // stays the same until a minute turns or a transition.
        now: minute(now).to_rfc3339(),
        now_local: shown(now),
    }
}

/// What the page templates would do wrong, found with sample data at
/// start and by check-config: the page in every locale, calm and with a
/// crisis that was declared and updated.
pub fn template_problems(
    inputs: &PlanInputs,
    library: &Library,
    now: DateTime<Utc>,
) -> Vec<String> {
    let declaration = Declaration {
        kind: Kind::Outage,
        severity: Severity::Major,
        title: "Card payments are failing".into(),
        summary: "Some card payments fail; cash and bank transfers work.".into(),
        localized: Default::default(),
        message: Some("We are working on a fix.".into()),
        separate: false,
        drill: false,
        audience: Default::default(),
        channels: Vec::new(),
    };
    let mut versions = Vec::new();
    if let Ok(crisis) = Crisis::declare(declaration, now) {
        let mut updated = crisis.clone();
        let update = CrisisUpdate {
            message: Some("A fix is rolling out.".into()),
            fall_back: true,
            ..Default::default()
        };
        versions.push(crisis);
        if updated.apply_update(update, now).is_ok() {
            versions.push(updated);
        }
    }
    let sample: Vec<(Crisis, Vec<Crisis>)> = versions
        .last()
        .map(|latest| (latest.clone(), versions.clone()))
        .into_iter()
        .collect();
    let site = Site::Daemon {
        base: "https://crisis.example.com".into(),
    };
    let mut problems = Vec::new();
    for locale in inputs.renderer.locales() {
        for active in [Vec::new(), sample.clone()] {
            let page = view(inputs, library, locale, &site, active, now);
            if let Err(err) = inputs.renderer.render_view(locale, TEMPLATE, &page) {
                problems.push(format!("templates: the crisis page in {locale}: {err}"));
            }
        }
    }
    problems
}

impl Publisher {
    /// What the page template sees for `locale` at `now`.
    pub async fn page_view(
        &self,
        locale: &str,
        site: &Site,
        now: DateTime<Utc>,
    ) -> Result<PageView, PublishError> {
        let mut active = Vec::new();
        for crisis in self.active_crises().await? {
            let versions = self.storage.crises.versions(crisis.id).await?;
            active.push((crisis, versions));
        }
        let inputs = self.inputs.load();
        Ok(view(
            &inputs,
            &self.follow_ups.library,
            locale,
            site,
            active,
            now,
        ))
    }

    /// The page for `locale`, rendered with links into `site`.
    pub async fn render_page(
        &self,
        locale: &str,
        site: &Site,
        now: DateTime<Utc>,
    ) -> Result<Document, PublishError> {
        let view = self.page_view(locale, site, now).await?;
        let html = self
            .inputs
            .load()
            .renderer
            .render_view(locale, TEMPLATE, &view)?;
        Ok(Document::new(html.into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::inputs;
    use crate::render::Renderer;
    use crate::render::tests::copy_of_shipped;

    #[test]
    fn the_shipped_page_renders_in_every_locale_calm_and_in_a_crisis() {
        let templates = copy_of_shipped(&["en", "bn", "eo"]);
        let renderer = Renderer::load(templates.path(), "en").unwrap();
        let inputs = inputs(templates.path(), "", renderer, Vec::new());
        assert_eq!(
            template_problems(&inputs, &Library::default(), Utc::now()),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_page_template_that_does_not_render_is_found_before_any_crisis() {
        let templates = copy_of_shipped(&["en", "bn"]);
        let page = templates.path().join("bn/status/page.html.j2");
        let text = std::fs::read_to_string(&page).unwrap();
        std::fs::write(&page, text.replace("\"status\": ", "\"statut\": ")).unwrap();
        let renderer = Renderer::load(templates.path(), "en").unwrap();
        let inputs = inputs(templates.path(), "", renderer, Vec::new());
        let problems = template_problems(&inputs, &Library::default(), Utc::now());
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with("templates: the crisis page in bn: "),
            "{problems:?}"
        );
    }
}
