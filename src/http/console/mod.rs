//! The console at `/console`: comms staff sign in, see every crisis with
//! live progress, read its audit trail, follow-ups, dead deliveries and
//! the webhook log, and requeue what died. Server-rendered (minijinja
//! templates from `templates/console/`, compiled in) with htmx and its SSE
//! extension vendored into the binary; every page reads without
//! JavaScript. It calls the same service and stores as the API.

mod assets;
mod compose;
mod correction;
mod limit;
mod live;
mod login;
mod pages;
mod proposals;
mod send;
pub(super) mod session;
mod submissions;
mod view;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use minijinja::{Value, context};

pub use session::Staff;
pub use view::ViewError;

use super::AppState;
use crate::config::ConsoleSettings;
use limit::SignInLimiter;
use view::View;

/// What the console keeps between requests.
pub struct Console {
    pub settings: ConsoleSettings,
    view: View,
    sign_ins: SignInLimiter,
    /// The host of the public URL when it is https: requests that came
    /// through it get Secure cookies.
    https_host: Option<String>,
}

impl Console {
    pub fn new(settings: ConsoleSettings, public_url: &str) -> Result<Self, ViewError> {
        let https_host = public_url
            .strip_prefix("https://")
            .map(|rest| rest.split('/').next().unwrap_or(rest).to_owned());
        Ok(Self {
            settings,
            view: View::new()?,
            sign_ins: SignInLimiter::default(),
            https_host,
        })
    }
}

/// The console's routes; forms are small, so bodies are capped at 256 KiB.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(pages::dashboard))
        .route("/console/login", get(login::page).post(login::sign_in))
        .route("/console/logout", post(login::sign_out))
        .route("/console/crises/{id}", get(pages::crisis))
        .route("/console/crises/{id}/requeue", post(pages::requeue))
        .route(
            "/console/crises/{id}/correction",
            get(correction::page).post(correction::send),
        )
        .route("/console/hooks", get(pages::hooks))
        .route("/console/proposals/{id}/confirm", post(proposals::confirm))
        .route("/console/proposals/{id}/discard", post(proposals::discard))
        .route("/console/compose", get(compose::page).post(compose::post))
        .route("/console/submissions/{id}", get(submissions::page))
        .route("/console/submissions/{id}/edit", get(submissions::edit))
        .route(
            "/console/submissions/{id}/approve",
            post(submissions::approve),
        )
        .route("/console/submissions/{id}/send", post(submissions::send))
        .route("/console/live", get(live::dashboard))
        .route("/console/crises/{id}/live", get(live::crisis))
        .route("/console/assets/{name}", get(assets::asset))
        .layer(DefaultBodyLimit::max(256 * 1024))
        .layer(middleware::from_fn(security_headers))
}

/// Console pages are never cached, framed or sent elsewhere as referrers,
/// and load nothing from other origins. Styles may be inline: the email
/// preview shows the message's own HTML, sandboxed without scripts.
async fn security_headers(request: axum::extract::Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
         frame-src 'self' about:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    );
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "same-origin");
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
    response
}

/// A page being rendered: the language, the person (if signed in) and
/// what every page shows.
pub(crate) struct Page<'a> {
    state: &'a AppState,
    lang: &'static str,
    staff: Option<&'a Staff>,
}

impl<'a> Page<'a> {
    fn anonymous(state: &'a AppState, lang: &'static str) -> Self {
        Self {
            state,
            lang,
            staff: None,
        }
    }

    fn of(state: &'a AppState, staff: &'a Staff, lang: &'static str) -> Self {
        Self {
            state,
            lang,
            staff: Some(staff),
        }
    }

    fn base(&self) -> Value {
        let user = self.staff.map(|staff| {
            context! {
                name => staff.name.as_str(),
                role => staff.role.as_str(),
                can_compose => staff.role.can_compose(),
                can_approve => staff.role.can_approve(),
            }
        });
        context! {
            t => self.state.console.view.strings(self.lang),
            lang => self.lang,
            languages => view::LANGUAGES.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
            user => user,
            csrf => self.staff.map(|s| s.csrf.clone()),
            // A page about a drill looks unmistakably different.
            drill_page => false,
            company => self.state.inputs.load().company.name.clone(),
        }
    }

    /// A part of a page (for htmx or a live update); `None` when it fails
    /// (logged).
    fn fragment(&self, name: &str, extra: Value) -> Option<String> {
        let context = context! { ..extra, ..self.base() };
        self.state.console.view.render(name, context)
    }

    fn render(&self, status: StatusCode, name: &str, extra: Value) -> Response {
        let context = context! { ..extra, ..self.base() };
        self.state.console.view.page(status, name, context)
    }
}

/// One UI string in `lang`.
fn text(state: &AppState, lang: &str, key: &str) -> String {
    state
        .console
        .view
        .strings(lang)
        .get_attr(key)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

/// A form without this session's CSRF token: refused, nothing done.
fn csrf_refused(state: &AppState, lang: &'static str) -> Response {
    Page::anonymous(state, lang).render(
        StatusCode::FORBIDDEN,
        "message.html.j2",
        context! {
            heading => text(state, lang, "csrf_heading"),
            body => text(state, lang, "csrf_body"),
        },
    )
}

/// A signed-in person whose role does not allow what they asked.
fn forbidden(state: &AppState, staff: &Staff, lang: &'static str) -> Response {
    Page::of(state, staff, lang).render(
        StatusCode::FORBIDDEN,
        "message.html.j2",
        context! {
            heading => text(state, lang, "forbidden_heading"),
            body => text(state, lang, "forbidden_body"),
        },
    )
}
