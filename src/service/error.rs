//! What can go wrong applying a transition, in words an operator can act on.

use crate::domain::{CrisisId, DomainError};
use crate::outbox::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("no crisis with id {0}")]
    NotFound(CrisisId),
    #[error("this Idempotency-Key was already used for a different request; use a new key")]
    IdempotencyMismatch,
    #[error(
        "crisis {0} was changed by someone else at the same moment; look at it again and retry"
    )]
    Conflict(CrisisId),
    #[error("a request with this Idempotency-Key is still being carried out; retry in a moment")]
    InProgress,
    #[error(transparent)]
    Audience(#[from] crate::domain::audience::AudienceError),
    #[error("planning the deliveries failed: {0}")]
    Planning(String),
    #[error("the daemon is stopping; the rest of this fan-out resumes when it starts again")]
    Stopping,
    #[error(
        "crisis {existing} (\"{title}\") is already active with the same kind and title; update \
         it, or say this is a separate crisis (API: `\"separate\": true`; CLI: --separate)"
    )]
    Duplicate { existing: CrisisId, title: String },
    #[error("the directory has no entry `{entry}`; it has: {known}")]
    UnknownEntry { entry: String, known: String },
    #[error(transparent)]
    Correction(super::correction::CorrectionError),
    /// An audience or channel that does not exist: nothing was changed.
    #[error(transparent)]
    Selection(crate::domain::SelectionError),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ServiceError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(id) => ServiceError::Conflict(id),
            other => ServiceError::Store(other),
        }
    }
}
