//! The unsubscribe and preference page: in the reader's language (the
//! `[consent]` words of the locale's `strings.toml`), no script, no
//! cookie, readable without styles and at 390 px.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::domain::consent::ConsentScope;
use crate::message::escape_html;
use crate::render::ConsentStrings;

/// What the reader chooses on the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Everything,
    Announcements,
    Nothing,
}

impl Choice {
    pub const ALL: [Choice; 3] = [Choice::Everything, Choice::Announcements, Choice::Nothing];

    pub fn as_str(&self) -> &'static str {
        match self {
            Choice::Everything => "everything",
            Choice::Announcements => "announcements",
            Choice::Nothing => "nothing",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Choice::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// The opt-out this choice is.
    pub fn scope(&self) -> Option<ConsentScope> {
        match self {
            Choice::Everything => None,
            Choice::Announcements => Some(ConsentScope::FollowUps),
            Choice::Nothing => Some(ConsentScope::All),
        }
    }

    pub fn of(scope: Option<ConsentScope>) -> Self {
        match scope {
            None => Choice::Everything,
            Some(ConsentScope::FollowUps) => Choice::Announcements,
            Some(ConsentScope::All) => Choice::Nothing,
        }
    }

    fn label<'a>(&self, words: &'a ConsentStrings) -> &'a str {
        match self {
            Choice::Everything => &words.choice_everything,
            Choice::Announcements => &words.choice_announcements,
            Choice::Nothing => &words.choice_nothing,
        }
    }

    fn now<'a>(&self, words: &'a ConsentStrings) -> &'a str {
        match self {
            Choice::Everything => &words.now_everything,
            Choice::Announcements => &words.now_announcements,
            Choice::Nothing => &words.now_nothing,
        }
    }
}

/// The words and the language (its `lang` tag) a page is written in.
pub struct Words<'a> {
    pub lang: &'a str,
    pub company: &'a str,
    pub strings: &'a ConsentStrings,
}

impl Words<'_> {
    /// `text` escaped, with `{company}` filled in.
    fn text(&self, text: &str) -> String {
        escape_html(text).replace("{company}", &escape_html(self.company))
    }
}

const STYLE: &str = "body{margin:0;background:#f3f4f6;color:#1f2937;\
font-family:-apple-system,\"Segoe UI\",Roboto,\"Noto Sans\",\"Noto Sans Bengali\",Helvetica,Arial,sans-serif;\
font-size:1rem;line-height:1.5}\
main{max-width:36rem;margin:0 auto;padding:1rem;overflow-wrap:anywhere}\
h1{font-size:1.5rem;line-height:1.25;margin:1rem 0}\
fieldset{border:1px solid #6b7280;border-radius:.5rem;background:#fff;padding:.75rem 1rem;margin:0 0 1rem}\
legend{font-weight:bold;padding:0 .25rem}\
.option{display:flex;gap:.5rem;align-items:flex-start;margin:.5rem 0}\
.option input{width:1.25rem;height:1.25rem;margin:.15rem 0 0;flex:none}\
.note{color:#7f1d1d;margin:0 0 .5rem 1.75rem;font-size:.95rem}\
.saved{background:#dcfce7;color:#14532d;border-radius:.5rem;padding:.5rem .75rem}\
button{font:inherit;min-height:2.75rem;padding:.5rem 1.25rem;border:0;border-radius:.5rem;\
background:#1d4ed8;color:#fff;cursor:pointer}\
button:focus-visible,input:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}";

/// A whole page; the token in its URL must not leave in a Referer, and a
/// page about one person's consent or answer is never cached.
pub(super) fn document(status: StatusCode, lang: &str, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html><html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{title}</title><style>{STYLE}</style></head>\
         <body><main><h1>{title}</h1>{body}</main></body></html>",
        lang = escape_html(lang),
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The preference page: what `address` gets now and the three choices,
/// the current one checked; `saved` when a change was just recorded.
pub fn preferences(words: &Words<'_>, address: &str, now: Choice, saved: bool) -> Response {
    let strings = words.strings;
    let mut body = String::new();
    if saved {
        body.push_str(&format!(
            "<p class=\"saved\" role=\"status\">{}</p>",
            words.text(&strings.saved)
        ));
    }
    body.push_str(&format!(
        "<p>{}</p><p id=\"now\">{}</p><form method=\"post\"><fieldset><legend>{}</legend>",
        words.text(&strings.intro).replace(
            "{address}",
            &format!("<strong>{}</strong>", escape_html(address))
        ),
        words.text(now.now(strings)),
        words.text(&strings.legend),
    ));
    for choice in Choice::ALL {
        let id = format!("choice-{}", choice.as_str());
        let warned = choice == Choice::Nothing;
        body.push_str(&format!(
            "<div class=\"option\"><input type=\"radio\" name=\"choice\" id=\"{id}\" value=\"{value}\"{checked}{described}>\
             <label for=\"{id}\">{label}</label></div>",
            value = choice.as_str(),
            checked = if choice == now { " checked" } else { "" },
            described = if warned { " aria-describedby=\"nothing-note\"" } else { "" },
            label = words.text(choice.label(strings)),
        ));
        if warned {
            body.push_str(&format!(
                "<p class=\"note\" id=\"nothing-note\">{}</p>",
                words.text(&strings.nothing_warning)
            ));
        }
    }
    body.push_str(&format!(
        "</fieldset><button type=\"submit\">{}</button></form>",
        words.text(&strings.save)
    ));
    document(
        StatusCode::OK,
        words.lang,
        &words.text(&strings.title),
        &body,
    )
}

/// A page of one short notice.
fn notice(words: &Words<'_>, status: StatusCode, title: &str, text: &str) -> Response {
    let body = format!("<p role=\"alert\">{}</p>", words.text(text));
    document(status, words.lang, &words.text(title), &body)
}

/// A link whose token does not verify.
pub fn invalid(words: &Words<'_>) -> Response {
    let strings = words.strings;
    notice(
        words,
        StatusCode::FORBIDDEN,
        &strings.invalid_title,
        &strings.invalid_text,
    )
}

/// A POST that is neither RFC 8058's one click nor one of the choices.
pub fn bad_choice(words: &Words<'_>) -> Response {
    let strings = words.strings;
    notice(
        words,
        StatusCode::BAD_REQUEST,
        &strings.title,
        &strings.bad_choice,
    )
}

/// The store could not be read or written.
pub fn retry(words: &Words<'_>) -> Response {
    let strings = words.strings;
    notice(
        words,
        StatusCode::SERVICE_UNAVAILABLE,
        &strings.retry_title,
        &strings.retry_text,
    )
}
