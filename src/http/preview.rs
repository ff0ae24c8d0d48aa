//! `POST /v1/preview`: what every channel would send, sending nothing.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;

use super::api::parse_json;
use super::auth::Authenticated;
use super::{ApiError, AppState};
use crate::channels;
use crate::preview::{
    PreviewError, PreviewRequest, PreviewResponse, PreviewSource, preview as render_preview,
};

pub async fn preview(
    State(state): State<AppState>,
    _auth: Authenticated,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<PreviewResponse>, ApiError> {
    let (request, _): (PreviewRequest, _) = parse_json(body, state.max_body_bytes)?;
    let inputs = state.inputs.load();
    let source = PreviewSource {
        inputs: &inputs,
        follow_ups: state.service.follow_ups().map(|f| &**f),
        standard: channels::standard_profile,
    };
    render_preview(source, request, state.clock.now())
        .map(Json)
        .map_err(|err| match err {
            PreviewError::UnknownChannel(_)
            | PreviewError::NoFollowUps(_)
            | PreviewError::UnsupportedKind
            | PreviewError::UnknownLanguage { .. }
            | PreviewError::Domain(_) => ApiError::BadRequest(err.to_string()),
        })
}
