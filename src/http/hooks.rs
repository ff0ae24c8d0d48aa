//! `POST /v1/hooks/{name}` for status pages and alerting systems, the
//! webhook log, and what people do with proposed crises: confirm or
//! discard.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::api::{actor, parse_id};
use super::auth::Authenticated;
use super::error::ErrorDetail;
use super::{ApiError, AppState, ErrorBody};
use crate::intake::{DecisionError, Request};
use crate::outbox::{HookLogEntry, Pending};

/// Default and largest page of `GET /v1/hooks/log`.
pub const LOG_LIMIT_DEFAULT: u32 = 50;
pub const LOG_LIMIT_MAX: u32 = 1000;

pub async fn receive(
    State(state): State<AppState>,
    Path(name): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = body.map_err(|rejection| {
        (rejection.status() != StatusCode::PAYLOAD_TOO_LARGE)
            .then(|| format!("cannot read the request body: {rejection}"))
    });
    let request = Request {
        hook: &name,
        headers: &headers,
        query: uri.query(),
        body: body.as_deref().map_err(Clone::clone),
    };
    match state.intake.receive(request).await {
        Ok(receipt) => (StatusCode::OK, Json(receipt)).into_response(),
        Err(err) => {
            let status =
                StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = ErrorBody {
                error: ErrorDetail {
                    status: status.as_u16(),
                    message: err.to_string(),
                    existing_id: None,
                },
            };
            (status, Json(body)).into_response()
        }
    }
}

impl From<DecisionError> for ApiError {
    fn from(err: DecisionError) -> Self {
        match err {
            DecisionError::NotFound(_) => ApiError::NotFound(err.to_string()),
            DecisionError::NotOpen { .. } => ApiError::Conflict(err.to_string()),
            DecisionError::Service(service) => service.into(),
            DecisionError::Store(store) => store.into(),
        }
    }
}

/// `POST /v1/crises/{id}/confirm`: declares a proposed (or held) crisis.
pub async fn confirm(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let outcome = state.intake.confirm(id, actor(&auth, &headers)).await?;
    Ok((StatusCode::CREATED, Json(outcome)).into_response())
}

/// `POST /v1/crises/{id}/discard`: drops a proposed (or held) crisis.
pub async fn discard(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Pending>, ApiError> {
    let id = parse_id(&id)?;
    Ok(Json(
        state.intake.discard(id, actor(&auth, &headers)).await?,
    ))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProposalList {
    /// Held and proposed crises, oldest first.
    pub proposals: Vec<Pending>,
}

pub async fn proposals(
    State(state): State<AppState>,
    _auth: Authenticated,
) -> Result<Json<ProposalList>, ApiError> {
    Ok(Json(ProposalList {
        proposals: state.storage.hooks.open_pendings().await?,
    }))
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// Only this hook's entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HookLog {
    /// Newest first.
    pub entries: Vec<HookLogEntry>,
}

pub async fn log(
    State(state): State<AppState>,
    _auth: Authenticated,
    query: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<HookLog>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = query.limit.unwrap_or(LOG_LIMIT_DEFAULT);
    if !(1..=LOG_LIMIT_MAX).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "`limit` must be 1 to {LOG_LIMIT_MAX}, not {limit}"
        )));
    }
    let entries = state
        .storage
        .hooks
        .hook_log(query.hook.as_deref(), limit)
        .await?;
    Ok(Json(HookLog { entries }))
}
