//! The HTTP surface: the API, the public banner, health and metrics.

mod answer_links;
pub mod answers;
pub mod api;
mod auth;
mod banner;
mod consent;
pub mod console;
mod correction;
pub mod directory;
mod error;
pub mod helpdesk;
pub mod hooks;
mod inbound;
pub mod listener;
pub mod ops;
mod preferences;
pub mod preview;
mod publish;
pub mod receipts;
mod refused_peers;
pub mod schedule;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, header};
use axum::routing::{get, post, put};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use auth::{NamedToken, authenticate};
pub use error::{ApiError, ErrorBody};

use crate::banner::Banner;
use crate::clock::Clock;
use crate::health::Health;
use crate::outbox::Storage;
use crate::plan::SharedInputs;
use crate::publish::Publisher;
use crate::service::CrisisService;
use arc_swap::ArcSwap;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct AppState {
    pub service: Arc<CrisisService>,
    /// What handlers read and write beside the service's transitions.
    pub storage: Storage,
    /// Inbound webhooks, their holds and proposals.
    pub intake: Arc<crate::intake::Intake>,
    pub banner: Arc<Banner>,
    /// The crisis page, CAP documents and feeds.
    pub publisher: Arc<Publisher>,
    /// Swapped whole by a reload, like the tokens and Twilio secrets.
    pub inputs: SharedInputs,
    pub tokens: Arc<ArcSwap<Vec<NamedToken>>>,
    /// What `/metrics` requires, if anything; a reload swaps it, so a
    /// rotated token takes effect at once.
    pub metrics_token: Arc<ArcSwap<Option<NamedToken>>>,
    /// What authenticates each channel's inbound SMS (Twilio's auth token,
    /// Vonage's signature secret, a gateway's token), by channel name.
    pub inbound_sms:
        Arc<ArcSwap<std::collections::HashMap<String, crate::channels::ReceiptSecret>>>,
    /// Delivery-receipt secrets by channel name, and what a permanent
    /// failure does.
    pub receipts: Arc<ArcSwap<receipts::ReceiptRoutes>>,
    pub health: Arc<Health>,
    /// How the outside world reaches this daemon.
    pub public_url: String,
    pub clock: Arc<dyn Clock>,
    pub max_body_bytes: usize,
    pub banner_max_age: Duration,
    /// The web console's templates, settings and sign-in limits.
    pub console: Arc<console::Console>,
    /// Urgent answers posted to the helpdesk webhook.
    pub helpdesk: Arc<helpdesk::Helpdesk>,
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

/// `/metrics` alone, for `[metrics] listen`.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(ops::metrics))
        .with_state(state)
}

/// Status pages and alerting systems: each hook checks its own signature
/// or token; bodies up to 1 MiB; an address with too many refusals is
/// answered 429 unread.
fn intake_router() -> Router<AppState> {
    Router::new()
        .route("/v1/hooks/{name}", post(hooks::receive))
        .layer(DefaultBodyLimit::max(crate::intake::MAX_BODY_BYTES))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::new(refused_peers::RefusedPeers::default()),
            refused_peers::guard,
        ))
}

/// `own_metrics`: `/metrics` has a listener of its own and is left out.
pub fn router(state: AppState, cors_origins: &[HeaderValue], own_metrics: bool) -> Router {
    let api = Router::new()
        .route("/v1/crises", post(api::declare).get(api::list))
        .route("/v1/crises/{id}", get(api::show))
        .route("/v1/crises/{id}/updates", post(api::update))
        .route("/v1/crises/{id}/resolve", post(api::resolve))
        .route("/v1/crises/{id}/correction", post(correction::correct))
        .route("/v1/crises/{id}/follow-ups", get(schedule::crisis))
        .route("/v1/follow-ups", get(schedule::all))
        .route("/v1/preview", post(preview::preview))
        .route("/v1/directory", get(directory::list))
        .route(
            "/v1/directory/{entry}/availability",
            put(directory::set_availability),
        )
        .route("/v1/deliveries/dead", get(api::dead))
        .route("/v1/callbacks", get(answers::callbacks))
        .route("/v1/callbacks.csv", get(answers::callbacks_csv))
        .route("/v1/deliveries/retry-dead", post(api::retry_dead))
        .route("/v1/crises/{id}/confirm", post(hooks::confirm))
        .route("/v1/crises/{id}/discard", post(hooks::discard))
        .route("/v1/proposals", get(hooks::proposals))
        .route("/v1/hooks/log", get(hooks::log))
        .layer(DefaultBodyLimit::max(state.max_body_bytes));
    let public = Router::new()
        .route("/v1/banner", get(banner::banner))
        .route("/banner.js", get(banner::script))
        .route("/status", get(publish::page))
        .route("/status/{lang}", get(publish::page_in))
        .route("/v1/feed.atom", get(publish::feed))
        .route("/v1/cap.atom", get(publish::cap_feed))
        .route("/v1/crises/{id}/cap.xml", get(publish::cap))
        .layer(banner_cors(cors_origins));
    // Called by mail providers, people and Twilio: no token, each request
    // authenticated by its own signature.
    let consent = Router::new()
        .route(
            "/v1/unsubscribe/{token}",
            get(consent::unsubscribe_page).post(consent::unsubscribe),
        )
        .merge(answer_links::router())
        .merge(inbound::router())
        .merge(receipts::router())
        .layer(DefaultBodyLimit::max(state.max_body_bytes));
    let intake = intake_router();
    let console = if state.console.settings.enabled {
        console::router()
    } else {
        Router::new()
    };
    Router::new()
        .merge(console)
        .merge(intake)
        .merge(api)
        .merge(public)
        .merge(consent)
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .merge(if own_metrics {
            Router::new()
        } else {
            Router::new().route("/metrics", get(ops::metrics))
        })
        .fallback(|| async {
            ApiError::NotFound("no such endpoint; see README.md for the API".into())
        })
        // The path only: a webhook's `?token=` secret stays out of the logs.
        .layer(TraceLayer::new_for_http().make_span_with(
            |request: &axum::http::Request<axum::body::Body>| {
                tracing::debug_span!(
                    "request",
                    method = %request.method(),
                    path = %request.uri().path()
                )
            },
        ))
        // A slow or stuck client must not hold a connection forever.
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(state)
}
