//! Console submissions awaiting a second person in PostgreSQL; every change
//! of state is one conditional UPDATE, so two people acting at once, on one
//! daemon or two, cannot both win.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{PostgresStore, decode, millis, to_json};
use crate::domain::CrisisId;
use crate::domain::account::UserName;
use crate::domain::draft::Draft;
use crate::outbox::rows::SubmissionRow;
use crate::outbox::{StoreError, Submission, SubmissionState, SubmissionStore};

#[async_trait]
impl SubmissionStore for PostgresStore {
    async fn submit(&self, submission: &Submission) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO console_submissions (id, draft, content_hash, author, state, approved_by, \
             approved_hash, crisis_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(submission.id.to_string())
        .bind(to_json(&submission.draft)?)
        .bind(&submission.content_hash)
        .bind(submission.author.as_str())
        .bind(submission.state.as_str())
        .bind(submission.approved_by.as_ref().map(UserName::as_str))
        .bind(&submission.approved_hash)
        .bind(submission.crisis.map(|id| id.to_string()))
        .bind(millis(submission.created_at))
        .bind(millis(submission.updated_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn submission(&self, id: Uuid) -> Result<Option<Submission>, StoreError> {
        sqlx::query("SELECT * FROM console_submissions WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(decode::<SubmissionRow, _, _>)
            .transpose()
    }

    async fn open_submissions(&self) -> Result<Vec<Submission>, StoreError> {
        sqlx::query(
            "SELECT * FROM console_submissions WHERE state IN ('submitted', 'approved') \
             ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(decode::<SubmissionRow, _, _>)
        .collect()
    }

    async fn revise(&self, id: Uuid, draft: &Draft, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE console_submissions SET draft = $1, content_hash = $2, state = 'submitted', \
             approved_by = NULL, approved_hash = NULL, updated_at = $3 \
             WHERE id = $4 AND state IN ('submitted', 'approved')",
        )
        .bind(to_json(draft)?)
        .bind(draft.content_hash())
        .bind(millis(at))
        .bind(id.to_string())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn approve(
        &self,
        id: Uuid,
        approver: &UserName,
        content_hash: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE console_submissions SET state = 'approved', approved_by = $1, approved_hash = $2, \
             updated_at = $3 WHERE id = $4 AND state = 'submitted' AND content_hash = $5",
        )
        .bind(approver.as_str())
        .bind(content_hash)
        .bind(millis(at))
        .bind(id.to_string())
        .bind(content_hash)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn advance(
        &self,
        id: Uuid,
        from: SubmissionState,
        to: SubmissionState,
        crisis: Option<CrisisId>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE console_submissions SET state = $1, crisis_id = COALESCE($2, crisis_id), \
             updated_at = $3 WHERE id = $4 AND state = $5",
        )
        .bind(to.as_str())
        .bind(crisis.map(|id| id.to_string()))
        .bind(millis(at))
        .bind(id.to_string())
        .bind(from.as_str())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }
}
