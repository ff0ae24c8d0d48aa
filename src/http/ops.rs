//! For operators and their tools: `/healthz` (the process answers),
//! `/readyz` (it can do its job; the body says what is wrong) and
//! `/metrics` (Prometheus text format). No token for the probes; `/metrics`
//! needs one when `[metrics]` names it, or can have a listener of its own.

use axum::Json;
use axum::extract::State;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio_util::sync::CancellationToken;

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
    // One snapshot of the static mirror's targets for both the warnings
    // and the body, so they agree.
    let published = state.publisher.status().snapshot();
    let readiness = state
        .health
        .readiness(
            state.storage.ledger.as_ref(),
            waiting,
            crate::publish::warnings(&published),
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
    // Which daemon holds what: the same view as `crisisd status`.
    body["node"] = json!(crate::outbox::node_name());
    if let Ok(daemons) = super::api::daemons(&state).await {
        body["daemons"] = json!(daemons);
    }
    // The static mirror's targets, when any is configured.
    if !published.is_empty() {
        body["publish"] = json!(published);
    }
    (status, Json(body)).into_response()
}

/// Renders what the recorder holds: the store-derived gauges are kept
/// by `keep_gauges`, so a scrape costs no query however many deliveries
/// are stored, and scrapes cannot load the store.
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = state.metrics_token.load().as_ref() {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or("");
        if super::authenticate(std::slice::from_ref(token), presented).is_none() {
            return super::ApiError::Unauthorized.into_response();
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::render(),
    )
        .into_response()
}

/// Recomputes the gauges read from the store every `every` until
/// `shutdown`: one query set per interval, whatever the scrape rate.
pub async fn keep_gauges(state: AppState, every: Duration, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = interval.tick() => refresh_gauges(&state).await,
        }
    }
}

/// Who the active crises reached, per channel, summed over the crises
/// (a crisis id is no label); one query per active crisis, usually one.
async fn reach_gauges(
    storage: &crate::outbox::Storage,
    channels: &[String],
    active: &[crate::domain::Crisis],
) {
    let mut sums: std::collections::BTreeMap<String, crate::outbox::ReachCounts> = channels
        .iter()
        .map(|c| (c.clone(), crate::outbox::ReachCounts::default()))
        .collect();
    for crisis in active {
        let Ok(rows) = storage.receipts.reach(Some(crisis.id)).await else {
            return;
        };
        for row in rows {
            let sum = sums.entry(row.channel).or_default();
            let c = &row.counts;
            sum.delivered += c.delivered;
            sum.unconfirmed += c.unconfirmed;
            sum.undelivered += c.undelivered;
            sum.bounced_hard += c.bounced_hard;
            sum.bounced_soft += c.bounced_soft;
            sum.dead += c.dead;
            sum.fallbacks += c.fallbacks;
        }
    }
    crate::telemetry::reach(&sums);
}

async fn refresh_gauges(state: &AppState) {
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
        reach_gauges(storage, &channels, &active).await;
    }
    crate::telemetry::published(&state.publisher.status().snapshot());
}
