//! The HTTP surface: the API, the public banner, health.

pub mod api;
mod auth;
mod banner;
mod consent;
mod error;
pub mod preview;
mod schedule;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use auth::{NamedToken, authenticate};
pub use error::{ApiError, ErrorBody};

use crate::banner::Banner;
use crate::clock::Clock;
use crate::crisis::CrisisService;
use crate::plan::PlanInputs;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct AppState {
    pub service: Arc<CrisisService>,
    pub banner: Arc<Banner>,
    pub inputs: Arc<PlanInputs>,
    pub tokens: Arc<Vec<NamedToken>>,
    /// Twilio auth tokens by channel name, for inbound-message signatures.
    pub inbound_sms: Arc<std::collections::HashMap<String, crate::config::Secret>>,
    /// How the outside world reaches this daemon.
    pub public_url: String,
    pub clock: Arc<dyn Clock>,
    pub max_body_bytes: usize,
    pub banner_max_age: Duration,
}

/// CORS for the banner: only the configured origins, only GET.
pub fn banner_cors(origins: &[HeaderValue]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().cloned())
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET])
        .expose_headers([header::ETAG])
        .max_age(Duration::from_secs(3600))
}

pub fn router(state: AppState, cors_origins: &[HeaderValue]) -> Router {
    let api = Router::new()
        .route("/v1/crises", post(api::declare).get(api::list))
        .route("/v1/crises/{id}", get(api::show))
        .route("/v1/crises/{id}/updates", post(api::update))
        .route("/v1/crises/{id}/resolve", post(api::resolve))
        .route("/v1/crises/{id}/follow-ups", get(schedule::crisis))
        .route("/v1/follow-ups", get(schedule::all))
        .route("/v1/preview", post(preview::preview))
        .route("/v1/deliveries/dead", get(api::dead))
        .route("/v1/deliveries/retry-dead", post(api::retry_dead))
        .layer(DefaultBodyLimit::max(state.max_body_bytes));
    let public = Router::new()
        .route("/v1/banner", get(banner::banner))
        .route("/banner.js", get(banner::script))
        .layer(banner_cors(cors_origins));
    // Called by mail providers, people and Twilio: no token, each request
    // authenticated by its own signature.
    let consent = Router::new()
        .route(
            "/v1/unsubscribe/{token}",
            get(consent::unsubscribe_page).post(consent::unsubscribe),
        )
        .route(
            "/v1/inbound/twilio/{channel}",
            post(consent::twilio_inbound),
        )
        .layer(DefaultBodyLimit::max(state.max_body_bytes));
    Router::new()
        .merge(api)
        .merge(public)
        .merge(consent)
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .fallback(|| async {
            ApiError::NotFound("no such endpoint; see README.md for the API".into())
        })
        .layer(TraceLayer::new_for_http())
        // A slow or stuck client must not hold a connection forever.
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(state)
}
