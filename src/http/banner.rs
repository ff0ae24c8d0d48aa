//! The public banner: `GET /v1/banner` (JSON, ETag, CORS) and the script a
//! website embeds, `GET /banner.js`.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;

use crate::banner::SCRIPT;

#[derive(Debug, Deserialize)]
pub struct BannerQuery {
    pub(super) lang: Option<String>,
    /// Show drills too; a public site leaves it out and never shows one.
    #[serde(default)]
    drills: bool,
    /// The reader's IANA time zone (banner.js sends the browser's): the
    /// directory's hours are then given in it, the entry's zone beside.
    tz: Option<String>,
}

/// `?lang=` wins; else the first Accept-Language tag we have templates for;
/// else the default locale.
pub(super) fn choose_language(
    state: &AppState,
    query: &BannerQuery,
    headers: &HeaderMap,
) -> String {
    if let Some(lang) = query.lang.as_deref().filter(|l| !l.is_empty()) {
        return lang.to_owned();
    }
    let inputs = state.inputs.load();
    let renderer = &inputs.renderer;
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map(accept_language::parse)
        .unwrap_or_default()
        .into_iter()
        .find(|tag| {
            let language = tag.split('-').next().unwrap_or(tag);
            renderer.locales().any(|l| l == tag || l == language)
        })
        .unwrap_or_else(|| renderer.default_locale().to_owned())
}

pub(super) fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}

pub async fn banner(
    State(state): State<AppState>,
    query: Query<BannerQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = choose_language(&state, &query, &headers);
    let zone = match query.tz.as_deref().filter(|tz| !tz.is_empty()) {
        None => None,
        Some(tz) => match tz.parse::<chrono_tz::Tz>() {
            Ok(zone) => Some(zone),
            Err(_) => {
                return super::error::ApiError::BadRequest(format!(
                    "tz `{tz}` is not an IANA time zone (e.g. Asia/Dhaka)"
                ))
                .into_response();
            }
        },
    };
    let banner = state
        .banner
        .rendered(&lang, query.drills, zone, state.clock.now());
    let etag = &banner.etag;
    let cache_control = format!("public, max-age={}", state.banner_max_age.as_secs());
    let mut response = if etag_matches(&headers, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = banner.json.clone().into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    };
    let out = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(etag) {
        out.insert(header::ETAG, value);
    }
    if let Ok(value) = HeaderValue::from_str(&cache_control) {
        out.insert(header::CACHE_CONTROL, value);
    }
    out.insert(header::VARY, HeaderValue::from_static("Accept-Language"));
    response
}

pub async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        SCRIPT,
    )
}
