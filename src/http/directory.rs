//! The live directory: `GET /v1/directory` lists the entries with their
//! availability, `PUT /v1/directory/{entry}/availability` marks one
//! unavailable or available again (token required, audited).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

use super::api::{actor, parse_json};
use super::auth::Authenticated;
use super::{ApiError, AppState};
use crate::service::DirectoryEntryState;

/// The most a reason may say: it is shown to staff, not to readers.
const MAX_REASON_CHARS: usize = 500;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityRequest {
    pub available: bool,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DirectoryResponse {
    pub entries: Vec<DirectoryEntryState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AvailabilityResponse {
    pub entry: String,
    /// False when the entry already stood so.
    pub changed: bool,
    pub entries: Vec<DirectoryEntryState>,
}

pub async fn list(
    State(state): State<AppState>,
    _auth: Authenticated,
) -> Result<Json<DirectoryResponse>, ApiError> {
    let entries = state.service.directory_states(state.clock.now()).await?;
    Ok(Json(DirectoryResponse { entries }))
}

pub async fn set_availability(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(entry): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AvailabilityResponse>, ApiError> {
    let (request, _): (AvailabilityRequest, _) = parse_json(body, state.max_body_bytes)?;
    if request
        .reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_REASON_CHARS || r.contains('\n'))
    {
        return Err(ApiError::BadRequest(format!(
            "reason must be one line of at most {MAX_REASON_CHARS} characters"
        )));
    }
    let by = actor(&auth, &headers).to_string();
    let changed = state
        .service
        .set_availability(
            &entry,
            request.available,
            request.reason.clone(),
            by.clone(),
        )
        .await?;
    tracing::info!(
        entry = %entry,
        available = request.available,
        reason = ?request.reason,
        by = %by,
        changed,
        "Directory entry availability set."
    );
    let entries = state.service.directory_states(state.clock.now()).await?;
    Ok(Json(AvailabilityResponse {
        entry,
        changed,
        entries,
    }))
}
