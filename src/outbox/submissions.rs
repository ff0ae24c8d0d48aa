//! Drafts submitted in the console for a second person's approval (the
//! two-person rule): the draft, its content hash, its author, and the
//! approval, which holds only while the content hash it was given for is
//! still the draft's.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::StoreError;
use crate::domain::account::UserName;
use crate::domain::draft::Draft;
use crate::domain::{CrisisId, DomainError, string_enum};

string_enum!(
    /// Where a submission is: waiting for an approver, approved (for the
    /// content hash it was approved at), sent, or withdrawn.
    SubmissionState {
        Submitted => "submitted",
        Approved => "approved",
        Sent => "sent",
        Withdrawn => "withdrawn",
    }
);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    pub id: Uuid,
    pub draft: Draft,
    /// `draft.content_hash()` as stored with it.
    pub content_hash: String,
    pub author: UserName,
    pub state: SubmissionState,
    pub approved_by: Option<UserName>,
    /// The content hash the approval was given for.
    pub approved_hash: Option<String>,
    /// The crisis it declared or changed, once sent.
    pub crisis: Option<CrisisId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Submission {
    /// Approved, and for exactly the content it has now.
    pub fn approval_holds(&self) -> bool {
        self.state == SubmissionState::Approved
            && self.approved_hash.as_deref() == Some(self.content_hash.as_str())
            && self.draft.content_hash() == self.content_hash
    }
}

#[async_trait]
pub trait SubmissionStore: Send + Sync + 'static {
    async fn submit(&self, submission: &Submission) -> Result<(), StoreError>;
    async fn submission(&self, id: Uuid) -> Result<Option<Submission>, StoreError>;
    /// Those submitted or approved, oldest first.
    async fn open_submissions(&self) -> Result<Vec<Submission>, StoreError>;
    /// Replaces the draft of a submission not yet sent or withdrawn; any
    /// approval is void and it waits for an approver again. False when it
    /// cannot be revised.
    async fn revise(&self, id: Uuid, draft: &Draft, at: DateTime<Utc>) -> Result<bool, StoreError>;
    /// Approves a submission waiting for it, only while its content hash
    /// is still `content_hash` (what the approver saw). False otherwise.
    async fn approve(
        &self,
        id: Uuid,
        approver: &UserName,
        content_hash: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Moves a submission from `from` to `to` (and notes its crisis), only
    /// if it is in `from`: the one who wins sends it.
    async fn advance(
        &self,
        id: Uuid,
        from: SubmissionState,
        to: SubmissionState,
        crisis: Option<CrisisId>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}
