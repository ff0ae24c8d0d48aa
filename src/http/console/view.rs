//! The console's pages: minijinja templates from `templates/console/`,
//! compiled into the binary (the console needs no file at run time and
//! renders without touching the disk), and its UI strings per language.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use tracing::error;

/// Every console template, by name.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "layout.html.j2",
        include_str!("../../../templates/console/layout.html.j2"),
    ),
    (
        "login.html.j2",
        include_str!("../../../templates/console/login.html.j2"),
    ),
    (
        "dashboard.html.j2",
        include_str!("../../../templates/console/dashboard.html.j2"),
    ),
    (
        "_progress.html.j2",
        include_str!("../../../templates/console/_progress.html.j2"),
    ),
    (
        "_active.html.j2",
        include_str!("../../../templates/console/_active.html.j2"),
    ),
    (
        "crisis.html.j2",
        include_str!("../../../templates/console/crisis.html.j2"),
    ),
    (
        "message.html.j2",
        include_str!("../../../templates/console/message.html.j2"),
    ),
    (
        "compose.html.j2",
        include_str!("../../../templates/console/compose.html.j2"),
    ),
    (
        "preview.html.j2",
        include_str!("../../../templates/console/preview.html.j2"),
    ),
    (
        "confirm.html.j2",
        include_str!("../../../templates/console/confirm.html.j2"),
    ),
    (
        "submission.html.j2",
        include_str!("../../../templates/console/submission.html.j2"),
    ),
    (
        "_draft.html.j2",
        include_str!("../../../templates/console/_draft.html.j2"),
    ),
    (
        "hooks.html.j2",
        include_str!("../../../templates/console/hooks.html.j2"),
    ),
    (
        "correction.html.j2",
        include_str!("../../../templates/console/correction.html.j2"),
    ),
];

/// The UI's languages; the first is the fallback for any missing string.
pub const LANGUAGES: &[(&str, &str)] = &[
    (
        "en",
        include_str!("../../../templates/console/strings/en.toml"),
    ),
    (
        "bn",
        include_str!("../../../templates/console/strings/bn.toml"),
    ),
    (
        "eo",
        include_str!("../../../templates/console/strings/eo.toml"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("console template {name}: {source}")]
    Template {
        name: &'static str,
        source: minijinja::Error,
    },
    #[error("console strings for {lang}: {message}")]
    Strings { lang: &'static str, message: String },
}

/// The templates and the strings of every UI language.
pub struct View {
    env: Environment<'static>,
    strings: BTreeMap<&'static str, Value>,
}

impl View {
    pub fn new() -> Result<Self, ViewError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .map_err(|source| ViewError::Template { name, source })?;
        }
        let mut parsed: Vec<(&'static str, BTreeMap<String, String>)> = Vec::new();
        for (lang, text) in LANGUAGES {
            let table: BTreeMap<String, String> =
                toml::from_str(text).map_err(|e| ViewError::Strings {
                    lang,
                    message: e.to_string(),
                })?;
            parsed.push((lang, table));
        }
        let fallback = parsed.first().map(|(_, t)| t.clone()).unwrap_or_default();
        let strings = parsed
            .into_iter()
            .map(|(lang, table)| {
                let mut merged = fallback.clone();
                merged.extend(table);
                (lang, Value::from_serialize(&merged))
            })
            .collect();
        Ok(Self { env, strings })
    }

    /// The UI strings of `lang`, falling back to English.
    pub fn strings(&self, lang: &str) -> Value {
        self.strings
            .get(lang)
            .or_else(|| self.strings.get(LANGUAGES[0].0))
            .cloned()
            .unwrap_or_default()
    }

    /// `name` rendered with `context`, as HTML; `None` when the template
    /// fails (logged with its cause).
    pub fn render(&self, name: &str, context: Value) -> Option<String> {
        self.env
            .get_template(name)
            .and_then(|template| template.render(context))
            .map_err(|err| {
                error!(template = name, error = %format!("{err:#}"), "A console page failed to render.");
            })
            .ok()
    }

    /// A whole page; a template error is answered 500 with a plain sentence.
    pub fn page(&self, status: StatusCode, name: &str, context: Value) -> Response {
        match self.render(name, context) {
            Some(html) => (status, Html(html)).into_response(),
            None => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The console could not show this page; the daemon's log has the details.",
            )
                .into_response(),
        }
    }
}

/// The UI language: `?lang=` or the `crisisd_lang` cookie when it names
/// one, else the first Accept-Language tag that has strings, else English.
pub fn language(headers: &HeaderMap, asked: Option<&str>) -> &'static str {
    let known = |tag: &str| {
        let language = tag.split('-').next().unwrap_or(tag).to_ascii_lowercase();
        LANGUAGES
            .iter()
            .map(|(lang, _)| *lang)
            .find(|lang| *lang == language)
    };
    if let Some(lang) = asked.and_then(known) {
        return lang;
    }
    if let Some(lang) = super::session::cookie(headers, super::session::LANG_COOKIE).and_then(known)
    {
        return lang;
    }
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map(accept_language::parse)
        .unwrap_or_default()
        .iter()
        .find_map(|tag| known(tag))
        .unwrap_or(LANGUAGES[0].0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles_and_every_language_has_every_string() {
        let view = View::new().expect("the console's templates and strings load");
        let english: BTreeMap<String, String> = toml::from_str(LANGUAGES[0].1).expect("en");
        for (lang, text) in &LANGUAGES[1..] {
            let table: BTreeMap<String, String> = toml::from_str(text).expect("parse");
            let missing: Vec<&String> =
                english.keys().filter(|k| !table.contains_key(*k)).collect();
            assert!(missing.is_empty(), "{lang} lacks {missing:?}");
            let extra: Vec<&String> = table.keys().filter(|k| !english.contains_key(*k)).collect();
            assert!(
                extra.is_empty(),
                "{lang} has strings English lacks: {extra:?}"
            );
        }
        assert!(!view.strings("bn").is_undefined());
    }

    #[test]
    fn the_language_follows_the_query_then_the_browser() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_LANGUAGE,
            "fr, bn-BD;q=0.8".parse().expect("value"),
        );
        assert_eq!(language(&headers, None), "bn");
        assert_eq!(language(&headers, Some("eo")), "eo");
        assert_eq!(language(&headers, Some("xx")), "bn");
        assert_eq!(language(&HeaderMap::new(), None), "en");
    }
}
