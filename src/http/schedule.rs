//! `/v1/follow-ups`: the follow-ups of every crisis, or of one, with their
//! due times and states.

use axum::Json;
use axum::extract::{Path, Query, State};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::auth::Authenticated;
use super::{ApiError, AppState};
use crate::domain::CrisisId;
use crate::domain::follow_up::ScheduleList;

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleQuery {
    /// IANA zone for `due_local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
}

fn zone(state: &AppState, query: &ScheduleQuery) -> Result<Tz, ApiError> {
    match &query.tz {
        Some(name) => name.parse().map_err(|_| {
            ApiError::BadRequest(format!(
                "`tz` must be an IANA time zone such as Asia/Dhaka, not `{name}`"
            ))
        }),
        None => Ok(state
            .service
            .follow_up_plans()
            .map_or(Tz::UTC, |plans| plans.zone)),
    }
}

pub async fn all(
    State(state): State<AppState>,
    _auth: Authenticated,
    Query(query): Query<ScheduleQuery>,
) -> Result<Json<ScheduleList>, ApiError> {
    let zone = zone(&state, &query)?;
    let follow_ups = state.storage.follow_ups.follow_ups(None).await?;
    Ok(Json(ScheduleList::new(follow_ups, zone)))
}

pub async fn crisis(
    State(state): State<AppState>,
    _auth: Authenticated,
    Path(id): Path<String>,
    Query(query): Query<ScheduleQuery>,
) -> Result<Json<ScheduleList>, ApiError> {
    let zone = zone(&state, &query)?;
    let id: CrisisId = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("`{id}` is not a crisis id (a UUID)")))?;
    let storage = &state.storage;
    if storage.crises.crisis(id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no crisis with id {id}")));
    }
    let follow_ups = storage.follow_ups.follow_ups(Some(id)).await?;
    Ok(Json(ScheduleList::new(follow_ups, zone)))
}
