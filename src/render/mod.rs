//! Rendering announcements with minijinja: templates are read once, checked
//! against sample data at start (`check`, `sample`), and composed into
//! each channel's message when an announcement is planned or previewed
//! (`compose`).

mod check;
mod compose;
mod context;
pub mod sample;
pub mod strict;
mod strings;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};

pub use crate::message::{EmailContent, Form, Measurement, TextFamily, TextLimit, escape_html};
pub use check::{Addressee, Subject};
pub use compose::{Composed, Unsendable, fit};
pub use context::{
    AnnouncementView, AnswerLinkView, CompanyView, CrisisView, MAX_ROOM, RecipientView,
    RenderContext, local_time,
};
pub use strings::{AnswerStrings, ConsentStrings, Glossary, SmsStrings};

use crate::domain::directory::{self, ContactEntry, ContactView, EntryAvailability, HoursStrings};
use crate::domain::{AnnouncementKind, Kind, Status};

/// Labels the banner script shows, per locale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BannerLabels {
    pub contacts: String,
    pub dismiss: String,
    pub emergency: String,
    pub open_now: String,
    pub closed_now: String,
    pub always_open: String,
    /// The control that opens a notice's summary, message and contacts.
    pub show_details: String,
    pub hide_details: String,
    /// The link to the status page, with the full and current text.
    pub status_page: String,
    /// Said of a contact marked unavailable.
    #[serde(default = "default_unavailable_label")]
    pub unavailable: String,
}

fn default_unavailable_label() -> String {
    "Unavailable now".to_owned()
}

/// `templates/<locale>/strings.toml`: words the code itself puts in front
/// of readers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocaleStrings {
    /// What every message of a drill starts with, e.g. `DRILL / EXERCISE`.
    #[serde(default = "default_drill_marker")]
    pub drill_marker: String,
    pub hours: HoursStrings,
    pub banner: BannerLabels,
    /// Words of the feeds and CAP alerts; English where a locale has none.
    #[serde(default)]
    pub publish: PublishStrings,
    /// What a correction says; English where a locale has none.
    #[serde(default)]
    pub correction: CorrectionStrings,
    /// The unsubscribe and preference page; English where a locale has none.
    #[serde(default)]
    pub consent: ConsentStrings,
    /// The locale's SMS keywords and the answer to HELP; English where a
    /// locale has none.
    #[serde(default)]
    pub sms: SmsStrings,
    /// The answer links' page and the reminder; English where a locale
    /// has none.
    #[serde(default)]
    pub answers: AnswerStrings,
    /// The locale's words for what every message names.
    #[serde(default)]
    pub glossary: Glossary,
}

/// `[correction]` of `strings.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorrectionStrings {
    /// What every correction is titled and starts with.
    pub marker: String,
    /// The prepared correction; `{time}` is when the reader received the
    /// message in error.
    pub sent_in_error: String,
}

impl Default for CorrectionStrings {
    fn default() -> Self {
        Self {
            marker: "Correction".into(),
            sent_in_error:
                "The message you received at {time} was sent in error. Please disregard it.".into(),
        }
    }
}

/// `[publish]` of `strings.toml`: feed titles, transition words and the
/// crisis kinds' names (CAP's `event`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishStrings {
    pub feed_title: String,
    pub cap_feed_title: String,
    pub declared: String,
    pub updated: String,
    pub resolved: String,
    /// By kind name (`outage`); a kind left out is shown by its name.
    pub kinds: BTreeMap<String, String>,
}

impl Default for PublishStrings {
    fn default() -> Self {
        Self {
            feed_title: "Service announcements".into(),
            cap_feed_title: "Active alerts (CAP 1.2)".into(),
            declared: "Declared".into(),
            updated: "Update".into(),
            resolved: "Resolved".into(),
            kinds: BTreeMap::new(),
        }
    }
}

impl PublishStrings {
    pub fn kind(&self, kind: Kind) -> &str {
        self.kinds
            .get(kind.as_str())
            .map_or(kind.as_str(), String::as_str)
    }

    pub fn status(&self, status: Status) -> &str {
        match status {
            Status::Declared => &self.declared,
            Status::Updated => &self.updated,
            Status::Resolved => &self.resolved,
        }
    }
}

fn default_drill_marker() -> String {
    "DRILL / EXERCISE".to_owned()
}

/// Cloneable, so that a rendition that failed can fail every reader who
/// needs it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RenderError {
    #[error("cannot read templates from {path}: {source}")]
    Read {
        path: PathBuf,
        source: Arc<std::io::Error>,
    },
    #[error("{path}: {message}")]
    Strings { path: PathBuf, message: String },
    #[error("no templates for the default locale `{0}` (expected a directory of that name)")]
    NoDefaultLocale(String),
    #[error("template {0} is missing")]
    Missing(String),
    #[error(
        "template {name} uses {} that no message gives it (misspelt?)",
        variables.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", ")
    )]
    Undeclared {
        name: String,
        variables: Vec<String>,
    },
    #[error("template {name}: {source:#}")]
    Template {
        name: String,
        source: Arc<minijinja::Error>,
    },
}

impl RenderError {
    fn template(name: String, source: minijinja::Error) -> Self {
        RenderError::Template {
            name,
            source: Arc::new(source),
        }
    }
}

/// Announcement kinds that have email templates today.
pub const EMAIL_KINDS: [AnnouncementKind; 3] = [
    AnnouncementKind::Initial,
    AnnouncementKind::Update,
    AnnouncementKind::Resolved,
];
const EMAIL_PARTS: [&str; 3] = ["subject", "text", "html"];
const BANNER_TEMPLATE: &str = "banner/message.j2";

pub struct Renderer {
    env: Environment<'static>,
    default_locale: String,
    strings: BTreeMap<String, LocaleStrings>,
    default_strings: LocaleStrings,
    names: BTreeSet<String>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("default_locale", &self.default_locale)
            .field("locales", &self.strings.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// `templates/console/` holds the web console's own pages, compiled into
/// the binary; it is not a locale of the messages.
pub const CONSOLE_DIR: &str = "console";

impl Renderer {
    /// Reads every `*.j2` under `dir` (but `console/`) and each locale's `strings.toml`.
    pub fn load(dir: &Path, default_locale: &str) -> Result<Self, RenderError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html.j2") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        let mut names = BTreeSet::new();
        let mut strings = BTreeMap::new();
        let read_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RenderError::Read {
                path,
                source: Arc::new(source),
            }
        };
        for entry in std::fs::read_dir(dir).map_err(read_err(dir))? {
            let entry = entry.map_err(read_err(dir))?;
            let locale = entry.file_name().to_string_lossy().into_owned();
            if !entry.file_type().map_err(read_err(dir))?.is_dir() || locale == CONSOLE_DIR {
                continue;
            }
            let strings_path = entry.path().join("strings.toml");
            let text = std::fs::read_to_string(&strings_path).map_err(read_err(&strings_path))?;
            let parsed: LocaleStrings =
                toml::from_str(&text).map_err(|e| RenderError::Strings {
                    path: strings_path.clone(),
                    message: e.to_string(),
                })?;
            strings.insert(locale.clone(), parsed);
            for path in template_files(&entry.path()).map_err(read_err(&entry.path()))? {
                let relative = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .replace('\\', "/");
                let source = std::fs::read_to_string(&path).map_err(read_err(&path))?;
                env.add_template_owned(relative.clone(), source)
                    .map_err(|source| RenderError::template(relative.clone(), source))?;
                names.insert(relative);
            }
        }
        let Some(default_strings) = strings.get(default_locale).cloned() else {
            return Err(RenderError::NoDefaultLocale(default_locale.to_owned()));
        };
        // A global, so that the macros a template imports see it too.
        env.add_global(
            "glossaries",
            minijinja::Value::from_serialize(glossaries(&strings)),
        );
        Ok(Self {
            env,
            default_locale: default_locale.to_owned(),
            strings,
            default_strings,
            names,
        })
    }

    pub fn default_locale(&self) -> &str {
        &self.default_locale
    }

    pub fn locales(&self) -> impl Iterator<Item = &str> {
        self.strings.keys().map(String::as_str)
    }

    /// The locale whose strings serve `wanted`: itself, its language, or
    /// the default.
    pub fn resolve_locale<'a>(&'a self, wanted: &str) -> &'a str {
        let language = wanted.split('-').next().unwrap_or(wanted);
        [wanted, language]
            .into_iter()
            .find_map(|l| self.strings.get_key_value(l).map(|(k, _)| k.as_str()))
            .unwrap_or(&self.default_locale)
    }

    pub fn strings(&self, locale: &str) -> &LocaleStrings {
        self.strings
            .get(self.resolve_locale(locale))
            .unwrap_or(&self.default_strings)
    }

    /// The contact directory as a reader in `locale` sees it at `now`, in
    /// that locale's words for opening hours, and in the reader's zone
    /// when it is known.
    pub fn contacts(
        &self,
        directory: &[ContactEntry],
        locale: &str,
        reader_zone: Option<chrono_tz::Tz>,
        now: DateTime<Utc>,
        down: &BTreeMap<String, EntryAvailability>,
    ) -> Vec<ContactView> {
        directory::views(
            directory,
            locale,
            &self.default_locale,
            &self.strings(locale).hours,
            reader_zone,
            now,
            down,
        )
    }

    /// `<locale>/<path>`, falling back to the default locale's template.
    fn template_name(&self, locale: &str, path: &str) -> Result<String, RenderError> {
        let locale = self.resolve_locale(locale);
        [locale, self.default_locale.as_str()]
            .into_iter()
            .map(|l| format!("{l}/{path}"))
            .find(|name| self.names.contains(name))
            .ok_or_else(|| RenderError::Missing(format!("{}/{path}", self.default_locale)))
    }

    fn render<S: Serialize>(
        &self,
        locale: &str,
        path: &str,
        ctx: &S,
    ) -> Result<String, RenderError> {
        let name = self.template_name(locale, path)?;
        let template = self
            .env
            .get_template(&name)
            .map_err(|source| RenderError::template(name.clone(), source))?;
        template
            .render(ctx)
            .map_err(|source| RenderError::template(name, source))
    }

    /// The drill marker of `ctx`'s locale, when its crisis is a drill.
    fn drill_marker(&self, ctx: &RenderContext) -> Option<&str> {
        ctx.crisis
            .drill
            .then(|| self.strings(&ctx.locale).drill_marker.as_str())
    }

    /// A page of its own view (the public crisis page): `<locale>/<path>`,
    /// falling back to the default locale's template.
    pub fn render_view<S: Serialize>(
        &self,
        locale: &str,
        path: &str,
        view: &S,
    ) -> Result<String, RenderError> {
        self.render(locale, path, view)
    }

    pub fn render_email(&self, ctx: &RenderContext) -> Result<EmailContent, RenderError> {
        let kind = ctx.announcement.kind;
        let part = |part: &str| self.render(&ctx.locale, &format!("email/{kind}.{part}.j2"), ctx);
        // A subject is one line whatever the template's whitespace.
        let subject = part("subject")?
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let (text, html) = (part("text")?, part("html")?);
        Ok(match self.drill_marker(ctx) {
            None => EmailContent {
                subject,
                text,
                html,
                unsubscribe_url: None,
            },
            Some(marker) => EmailContent {
                subject: format!("[{marker}] {subject}"),
                text: format!("*** {marker} ***\n\n{text}"),
                html: mark_html(&html, marker),
                unsubscribe_url: None,
            },
        })
    }

    pub fn render_banner(&self, ctx: &RenderContext) -> Result<String, RenderError> {
        let text = self
            .render(&ctx.locale, BANNER_TEMPLATE, ctx)?
            .trim()
            .to_owned();
        Ok(match self.drill_marker(ctx) {
            Some(marker) => format!("[{marker}] {text}"),
            None => text,
        })
    }

    /// One text message: the long or short form of a family's template.
    pub fn render_text(
        &self,
        family: TextFamily,
        form: Form,
        ctx: &RenderContext,
    ) -> Result<String, RenderError> {
        let path = template_name(family, ctx.announcement.kind, form);
        let text = self.render(&ctx.locale, &path, ctx)?.trim().to_owned();
        // Marked before it is measured, so the marker counts against the
        // channel's limit like any other text.
        Ok(match self.drill_marker(ctx) {
            Some(marker) => format!("{marker}\n{text}"),
            None => text,
        })
    }
}

/// Every locale's glossary, by locale: what templates see as `glossaries`.
fn glossaries(strings: &BTreeMap<String, LocaleStrings>) -> BTreeMap<&str, &Glossary> {
    strings
        .iter()
        .map(|(locale, strings)| (locale.as_str(), &strings.glossary))
        .collect()
}

/// `html` with a marker block at the top of its body (or of the whole
/// text, when it has no `<body>`).
fn mark_html(html: &str, marker: &str) -> String {
    let block = format!(
        "<p style=\"background:#ffdd00;color:#0b0c0c;border:3px solid #0b0c0c;padding:8px;\
         font-weight:bold;text-align:center\">{}</p>",
        crate::message::escape_html(marker)
    );
    let insert_at = html
        .find("<body")
        .and_then(|at| html[at..].find('>').map(|end| at + end + 1))
        .unwrap_or(0);
    format!("{}{block}{}", &html[..insert_at], &html[insert_at..])
}

/// The template of a family's announcement kind in one form.
fn template_name(family: TextFamily, kind: AnnouncementKind, form: Form) -> String {
    match form {
        Form::Long => format!("{}/{kind}.j2", family.as_str()),
        Form::Short => format!("{}/{kind}.short.j2", family.as_str()),
    }
}

fn template_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            files.extend(template_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "j2") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A copy of the shipped templates of these locales, for a test to
    /// change.
    pub(crate) fn copy_of_shipped(locales: &[&str]) -> tempfile::TempDir {
        fn copy(from: &Path, to: &Path) {
            std::fs::create_dir_all(to).unwrap();
            for entry in std::fs::read_dir(from).unwrap() {
                let entry = entry.unwrap();
                let target = to.join(entry.file_name());
                if entry.file_type().unwrap().is_dir() {
                    copy(&entry.path(), &target);
                } else {
                    std::fs::copy(entry.path(), target).unwrap();
                }
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        for locale in locales {
            copy(&shipped.join(locale), &dir.path().join(locale));
        }
        dir
    }

    /// The templates crisisd ships with.
    pub(crate) fn shipped() -> Renderer {
        Renderer::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("templates"),
            "en",
        )
        .expect("templates load")
    }

    /// A crisis kind is named in two places per locale: `_labels.j2` for
    /// the messages and `[publish.kinds]` for CAP and the feeds. A reader
    /// must meet one name in both.
    #[test]
    fn every_locale_names_each_crisis_kind_alike_in_messages_and_feeds() {
        let renderer = shipped();
        for locale in renderer.locales() {
            let labels = format!("{locale}/_labels.j2");
            for kind in Kind::ALL {
                let source = format!(
                    "{{% import {labels:?} as labels %}}{{{{ labels.kind({:?}) }}}}",
                    kind.as_str()
                );
                let in_messages = renderer
                    .env
                    .render_str(&source, ())
                    .unwrap_or_else(|e| panic!("{labels}: {e:#}"));
                let in_feeds = renderer.strings(locale).publish.kind(*kind);
                assert_eq!(
                    in_messages,
                    in_feeds,
                    "{locale}: the kind `{}` has two names",
                    kind.as_str()
                );
            }
        }
    }

    #[test]
    fn a_locale_without_templates_falls_back_to_the_default() {
        let renderer = shipped();
        assert_eq!(renderer.resolve_locale("fr"), "en");
        assert_eq!(renderer.resolve_locale("bn-BD"), "bn");
        assert_eq!(renderer.resolve_locale("eo"), "eo");
        assert_eq!(
            renderer.strings("fr").banner.dismiss,
            renderer.strings("en").banner.dismiss
        );
    }

    #[test]
    fn a_missing_default_locale_is_an_error() {
        let err = Renderer::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("templates"),
            "xx",
        )
        .unwrap_err();
        assert!(matches!(err, RenderError::NoDefaultLocale(_)), "{err}");
    }
}
