//! The public crisis page (`/status`, `/status/{lang}`), the CAP 1.2
//! documents (`/v1/crises/{id}/cap.xml`, `/v1/cap.atom`) and the
//! announcements feed (`/v1/feed.atom?lang=`): no token, cacheable.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tracing::error;

use super::banner::{BannerQuery, choose_language, etag_matches};
use super::{ApiError, AppState};
use crate::domain::CrisisId;
use crate::publish::{Document, PublishError};

impl From<PublishError> for ApiError {
    fn from(err: PublishError) -> Self {
        match err {
            PublishError::NoCrisis(_) | PublishError::NoVersion { .. } => {
                ApiError::NotFound(err.to_string())
            }
            other => {
                error!(error = %other, "Could not publish a document.");
                ApiError::Internal
            }
        }
    }
}

/// The document, or 304 when the reader's copy is current; with its ETag
/// and the banner's cache lifetime.
fn serve(
    state: &AppState,
    headers: &HeaderMap,
    document: &Document,
    kind: &'static str,
) -> Response {
    let mut response = if etag_matches(headers, &document.etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, kind)], document.body.clone()).into_response()
    };
    let out = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&document.etag) {
        out.insert(header::ETAG, value);
    }
    let cache_control = format!("public, max-age={}", state.banner_max_age.as_secs());
    if let Ok(value) = HeaderValue::from_str(&cache_control) {
        out.insert(header::CACHE_CONTROL, value);
    }
    out.insert(header::VARY, HeaderValue::from_static("Accept-Language"));
    response
}

const HTML: &str = "text/html; charset=utf-8";
const ATOM: &str = "application/atom+xml; charset=utf-8";
const CAP: &str = "application/cap+xml; charset=utf-8";

/// `/status`: the language from `?lang=`, else Accept-Language.
pub async fn page(
    State(state): State<AppState>,
    query: Query<BannerQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let lang = choose_language(&state, &query, &headers);
    let page = state
        .publisher
        .status_page(&lang, state.clock.now())
        .await?;
    Ok(serve(&state, &headers, &page, HTML))
}

/// `/status/{lang}`: the language the path names.
pub async fn page_in(
    State(state): State<AppState>,
    Path(lang): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let page = state
        .publisher
        .status_page(&lang, state.clock.now())
        .await?;
    Ok(serve(&state, &headers, &page, HTML))
}

pub async fn feed(
    State(state): State<AppState>,
    query: Query<BannerQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let lang = choose_language(&state, &query, &headers);
    let site = state.publisher.daemon_site();
    let feed = state.publisher.feed(&lang, &site).await?;
    Ok(serve(&state, &headers, &feed, ATOM))
}

pub async fn cap_feed(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let site = state.publisher.daemon_site();
    let feed = state.publisher.cap_feed(&site, state.clock.now()).await?;
    Ok(serve(&state, &headers, &feed, ATOM))
}

#[derive(Debug, Deserialize)]
pub struct CapQuery {
    /// One transition of the crisis; its latest when left out.
    version: Option<u32>,
}

pub async fn cap(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<CapQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id: CrisisId = id
        .parse()
        .map_err(|e: crate::domain::DomainError| ApiError::BadRequest(e.to_string()))?;
    let site = state.publisher.daemon_site();
    let document = state.publisher.cap(id, query.version, &site).await?;
    Ok(serve(&state, &headers, &document, CAP))
}
