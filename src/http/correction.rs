//! `POST /v1/crises/{id}/correction`: a correction through the same
//! service the console calls, by one token holder, with an
//! Idempotency-Key like every transition.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::api::{parse_id, parse_json, replayed, transition_context};
use super::auth::Authenticated;
use super::error::ApiError;
use crate::domain::AnnouncementId;
use crate::plan::CorrectionText;
use crate::service::{Corrected, CorrectionRequest};

/// The request body; empty for the prepared correction of the newest
/// announcement that reached anyone.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrectionBody {
    /// The announcement to correct (`GET /v1/crises/{id}` lists them).
    #[serde(default)]
    pub original: Option<AnnouncementId>,
    /// An edited text per locale instead of the prepared one.
    #[serde(default)]
    pub text: Option<BTreeMap<String, String>>,
    /// Send it even though a correction of the crisis went out minutes ago.
    #[serde(default)]
    pub again: bool,
}

impl From<CorrectionBody> for CorrectionRequest {
    fn from(body: CorrectionBody) -> Self {
        CorrectionRequest {
            original: body.original,
            text: body
                .text
                .map_or(CorrectionText::Prepared, CorrectionText::Edited),
            again: body.again,
        }
    }
}

pub async fn correct(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let (request, raw) = match &body {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => {
            (CorrectionBody::default(), Bytes::new())
        }
        _ => parse_json::<CorrectionBody>(body, state.max_body_bytes)?,
    };
    let ctx = transition_context(&auth, &headers, &method, &uri, &raw)?;
    let corrected = state.service.correct(id, request.into(), ctx).await?;
    Ok(match corrected {
        Corrected::New(outcome) => (StatusCode::OK, Json(outcome)).into_response(),
        Corrected::Replayed { status, body } => replayed(status, body),
    })
}
