//! Held fallbacks in SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{SqliteStore, Tx, millis};
use crate::domain::consent::normalize;
use crate::outbox::fallbacks::{
    ALREADY, DUE, DueRow, HOLD, OPTED_OUT, RELEASE, REPOINT, SETTLE, Verdict, audit_events, wait_ms,
};
use crate::outbox::rows::RowValues;
use crate::outbox::{FallbackOutcome, FallbackStore, HeldFallback, StoreError};

#[async_trait]
impl FallbackStore for SqliteStore {
    async fn hold_fallbacks(
        &self,
        fallbacks: &[HeldFallback],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if fallbacks.is_empty() {
            return Ok(());
        }
        let _writing = self.writer.lock().await;
        let mut tx = self.ledger.begin().await?;
        for fallback in fallbacks {
            let values = RowValues::of(&fallback.delivery, millis(at))?;
            let rendition = values.rendition.as_ref();
            sqlx::query(HOLD)
                .bind(fallback.delivery.id.to_string())
                .bind(fallback.after.to_string())
                .bind(fallback.delivery.channel.as_str())
                .bind(fallback.point.as_str())
                .bind(fallback.delivery.destination.as_str())
                .bind(values.content.as_str())
                .bind(rendition.map(|(id, _, _)| id.as_str()))
                .bind(rendition.and_then(|(_, name, _)| *name))
                .bind(rendition.and_then(|(_, _, url)| *url))
                .bind(fallback.no_receipt_after.map(wait_ms))
                .bind(millis(at))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn release_fallbacks(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<FallbackOutcome>, StoreError> {
        let writing = self.writer.lock().await;
        let mut tx = self.ledger.begin().await?;
        let due = sqlx::query(DUE)
            .bind(millis(now))
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| <DueRow as sqlx::FromRow<_>>::from_row(row).map_err(StoreError::from))
            .collect::<Result<Vec<_>, _>>()?;
        let mut outcomes = Vec::with_capacity(due.len());
        for row in &due {
            outcomes.push(settle(&mut tx, row, now).await?);
        }
        // In the same transaction: a release is never without its line in
        // the audit trail.
        for event in audit_events(&due, &outcomes, now)? {
            super::crises::insert_event(&mut tx, &event).await?;
        }
        tx.commit().await?;
        drop(writing);
        if outcomes.iter().any(|o| o.released) {
            self.work_due.notify();
        }
        Ok(outcomes)
    }
}

/// Releases or skips one due fallback.
async fn settle(
    tx: &mut Tx<'_>,
    row: &DueRow,
    now: DateTime<Utc>,
) -> Result<FallbackOutcome, StoreError> {
    let why = match row.verdict() {
        Verdict::Skip(why) => return finish(tx, row, now, why, false).await,
        Verdict::Release(why) => why,
    };
    let point = crate::domain::consent::ContactPoint::parse(&row.point)
        .ok_or_else(|| StoreError::Corrupt(format!("contact point `{}`", row.point)))?;
    let opted_out: i64 = sqlx::query_scalar(OPTED_OUT)
        .bind(point.as_str())
        .bind(normalize(point, &row.destination))
        .fetch_one(&mut **tx)
        .await?;
    let already: i64 = sqlx::query_scalar(ALREADY)
        .bind(&row.announcement_id)
        .bind(&row.channel)
        .bind(&row.destination)
        .fetch_one(&mut **tx)
        .await?;
    let skipped = if opted_out > 0 {
        Some("skipped: the reader opted out there")
    } else if already > 0 {
        Some("skipped: already sent on that channel")
    } else {
        None
    };
    if let Some(why) = skipped {
        sqlx::query(REPOINT)
            .bind(&row.after_id)
            .bind(&row.id)
            .execute(&mut **tx)
            .await?;
        return finish(tx, row, now, why.to_owned(), false).await;
    }
    sqlx::query(RELEASE)
        .bind(millis(now))
        .bind(&row.id)
        .execute(&mut **tx)
        .await?;
    finish(tx, row, now, why.to_owned(), true).await
}

async fn finish(
    tx: &mut Tx<'_>,
    row: &DueRow,
    now: DateTime<Utc>,
    outcome: String,
    released: bool,
) -> Result<FallbackOutcome, StoreError> {
    sqlx::query(SETTLE)
        .bind(millis(now))
        .bind(&outcome)
        .bind(&row.id)
        .execute(&mut **tx)
        .await?;
    row.outcome(outcome, released)
}
