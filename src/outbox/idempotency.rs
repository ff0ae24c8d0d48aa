//! Stored answers for repeated Idempotency-Keys. A key is taken by the
//! transition write and completed by `finish_plan`; here it is read.

use async_trait::async_trait;

use super::StoreError;

/// A stored response to replay for a repeated Idempotency-Key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// Keys are per API token, so two clients cannot collide.
    pub scope: String,
    pub key: String,
    /// Hash of the request; a key reused for a different request is refused.
    pub fingerprint: String,
    pub status: u16,
    pub body: String,
}

#[async_trait]
pub trait IdempotencyStore: Send + Sync + 'static {
    async fn idempotent_response(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;
}
