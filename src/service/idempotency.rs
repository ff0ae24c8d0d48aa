//! Idempotency-Keys: a repeated request gets the answer the first one got,
//! and a key reused for another request is refused.

use super::{Applied, CrisisService, ServiceError, TransitionOutcome};
use crate::domain::AnnouncementKind;
use crate::outbox::{IdempotencyRecord, StoreError};

/// An Idempotency-Key and what identifies the request it came with.
#[derive(Debug, Clone)]
pub struct IdempotencyRequest {
    pub scope: String,
    pub key: String,
    pub fingerprint: String,
}

/// The stored status of a key whose request is still being carried out
/// (its subscribers are being planned).
const IN_PROGRESS: u16 = 0;

/// The status a transition's answer is stored and replayed with. A key's
/// answer is completed here, when its fan-out ends (after a restart too),
/// not by the HTTP handler, so the stored response needs its status: the
/// API's convention, 201 for a declaration (a crisis was created) and 200
/// for a change. The API answers a new transition through this same
/// function, so a replay can never differ from the first answer.
pub fn answer_status(kind: AnnouncementKind) -> u16 {
    match kind {
        AnnouncementKind::Initial => 201,
        AnnouncementKind::Update
        | AnnouncementKind::FollowUp
        | AnnouncementKind::Resolved
        | AnnouncementKind::Correction => 200,
    }
}

/// The stored answer for `outcome`, or the "in progress" placeholder while
/// its subscribers are still being planned.
pub(super) fn record(
    request: &IdempotencyRequest,
    outcome: &TransitionOutcome,
    in_progress: bool,
) -> Result<IdempotencyRecord, ServiceError> {
    let (status, body) = if in_progress {
        (IN_PROGRESS, String::new())
    } else {
        (answer_status(outcome.announcement), answer_body(outcome)?)
    };
    Ok(IdempotencyRecord {
        scope: request.scope.clone(),
        key: request.key.clone(),
        fingerprint: request.fingerprint.clone(),
        status,
        body,
    })
}

/// The answer that completes a key held in progress; the store keeps the
/// fingerprint it was taken with.
pub(super) fn completion(
    (scope, key): &(String, String),
    outcome: &TransitionOutcome,
) -> Result<IdempotencyRecord, ServiceError> {
    Ok(IdempotencyRecord {
        scope: scope.clone(),
        key: key.clone(),
        fingerprint: String::new(),
        status: answer_status(outcome.announcement),
        body: answer_body(outcome)?,
    })
}

fn answer_body(outcome: &TransitionOutcome) -> Result<String, ServiceError> {
    serde_json::to_string(outcome)
        .map_err(|e| ServiceError::Store(StoreError::Corrupt(e.to_string())))
}

impl CrisisService {
    /// The stored answer for a repeated key; `None` for a new one.
    pub(super) async fn replay(
        &self,
        request: &IdempotencyRequest,
    ) -> Result<Option<Applied>, ServiceError> {
        let Some(record) = self
            .storage
            .idempotency
            .idempotent_response(&request.scope, &request.key)
            .await?
        else {
            return Ok(None);
        };
        if record.fingerprint != request.fingerprint {
            return Err(ServiceError::IdempotencyMismatch);
        }
        if record.status == IN_PROGRESS {
            return Err(ServiceError::InProgress);
        }
        Ok(Some(Applied::Replayed {
            status: record.status,
            body: record.body,
        }))
    }
}
