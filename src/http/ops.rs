//! For operators and their tools: `/healthz` (the process answers),
//! `/readyz` (it can do its job; the body says what is wrong) and
//! `/metrics` (Prometheus text format). No token: they carry no customer
//! data, and probes and scrapers rarely hold secrets.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use crate::outbox::CrisisFilter;

pub async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    let waiting = state
        .service
        .pending_plans()
        .iter()
        .map(|plan| {
            format!(
                "planning: the {} announcement of crisis {} is not fully planned ({} failed \
                 tries since {}): {}",
                plan.announcement,
                plan.crisis_id,
                plan.failures,
                plan.since
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                plan.reason
            )
        })
        .collect();
    let readiness = state
        .health
        .readiness(
            state.storage.ledger.as_ref(),
            waiting,
            state.publisher.status().warnings(),
        )
        .await;
    let status = if readiness.problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    // Which daemon leads those sharing the store (this one, alone on
    // SQLite); informational, never a reason to be unready.
    let mut body = serde_json::to_value(&readiness).unwrap_or_default();
    if let Ok(leader) = state.storage.leader.leader(state.clock.now()).await {
        body["leader"] = json!(leader);
    }
    // The static mirror's targets, when any is configured.
    let published = state.publisher.status().snapshot();
    if !published.is_empty() {
        body["publish"] = json!(published);
    }
    (status, Json(body)).into_response()
}

/// Refreshes the gauges read from the store, then renders everything.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let storage = &state.storage;
    let channels: Vec<String> = state
        .inputs
        .load()
        .channels
        .iter()
        .map(|c| c.name.clone())
        .collect();
    // A store that does not answer leaves the gauges at their last value;
    // /readyz reports it.
    if let Ok(counts) = storage.ledger.channel_counts().await {
        crate::telemetry::ledger(&channels, &counts);
    }
    if let Ok(active) = storage.crises.crises(CrisisFilter::Active).await {
        crate::telemetry::active_crises(&active);
    }
    crate::telemetry::published(&state.publisher.status().snapshot());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::render(),
    )
        .into_response()
}
