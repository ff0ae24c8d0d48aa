//! API errors: JSON bodies with a message a person can act on.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tracing::error;

use crate::domain::DomainError;
use crate::outbox::StoreError;
use crate::service::{CorrectionError, ServiceError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error(
        "missing or invalid bearer token: send `Authorization: Bearer <token>` with a token named in the config"
    )]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// 409 for a declaration that duplicates an active crisis.
    #[error("{message}")]
    Duplicate {
        message: String,
        existing_id: String,
    },
    /// A request with the same Idempotency-Key is still being carried out:
    /// 409, with `Retry-After` (the IETF Idempotency-Key draft's answer).
    #[error("{0}")]
    InProgress(String),
    #[error("request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Unavailable(String),
    /// 429: the caller must wait (the handler adds `Retry-After`).
    #[error("{0}")]
    TooManyRequests(String),
    #[error("internal error; the daemon's log has the details")]
    Internal,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub status: u16,
    pub message: String,
    /// For a duplicate declaration: the active crisis it duplicates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing_id: Option<String>,
}

impl ApiError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) | ApiError::Duplicate { .. } | ApiError::InProgress(_) => {
                StatusCode::CONFLICT
            }
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            error: ErrorDetail {
                status: status.as_u16(),
                message: self.to_string(),
                existing_id: match &self {
                    ApiError::Duplicate { existing_id, .. } => Some(existing_id.clone()),
                    _ => None,
                },
            },
        };
        let retry_after = matches!(self, ApiError::InProgress(_));
        let mut response = (status, Json(body)).into_response();
        if retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        if status == StatusCode::UNAUTHORIZED
            && let Ok(value) = "Bearer realm=\"crisisd\"".parse()
        {
            response
                .headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Domain(DomainError::AlreadyResolved { .. }) => {
                ApiError::Conflict(err.to_string())
            }
            ServiceError::Domain(DomainError::StaleLocales(_)) => {
                ApiError::Unprocessable(err.to_string())
            }
            ServiceError::Domain(domain) => ApiError::BadRequest(domain.to_string()),
            ServiceError::NotFound(_) | ServiceError::UnknownEntry { .. } => {
                ApiError::NotFound(err.to_string())
            }
            ServiceError::Conflict(_) => ApiError::Conflict(err.to_string()),
            ServiceError::Duplicate { existing, .. } => ApiError::Duplicate {
                message: err.to_string(),
                existing_id: existing.to_string(),
            },
            ServiceError::IdempotencyMismatch | ServiceError::Selection(_) => {
                ApiError::Unprocessable(err.to_string())
            }
            ServiceError::InProgress => ApiError::InProgress(err.to_string()),
            ServiceError::Stopping => ApiError::Unavailable(err.to_string()),
            ServiceError::Audience(_) | ServiceError::Planning(_) => {
                error!(error = %err, "Planning deliveries failed; the plan resumes at the next start.");
                ApiError::Internal
            }
            ServiceError::Correction(
                CorrectionError::NothingSent | CorrectionError::CorrectedRecently(_),
            ) => ApiError::Conflict(err.to_string()),
            ServiceError::Correction(CorrectionError::NotCorrectable(_)) => {
                ApiError::NotFound(err.to_string())
            }
            ServiceError::Correction(_) => ApiError::Unprocessable(err.to_string()),
            ServiceError::Store(store) => store.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        error!(error = %err, "Store error while serving a request.");
        match err.unavailable() {
            // A client can act on these: the request changed nothing, and
            // the same request later (same Idempotency-Key) is safe.
            Some(why) => ApiError::Unavailable(format!(
                "the store cannot write right now ({why}); nothing was changed: try again \
                 later, /readyz says when it is back"
            )),
            None => ApiError::Internal,
        }
    }
}
