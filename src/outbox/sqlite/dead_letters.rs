//! Dead deliveries in SQLite: listed newest first through the
//! `(state, finished_at)` index, and requeued by their cause.

use std::sync::LazyLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{SqliteStore, count, decode, millis};
use crate::outbox::rows::{DeadLetterRow, requeueable};
use crate::outbox::{DeadFilter, DeadLetter, DeadLetterStore, StoreError};

/// `rows::requeueable` with `?1` the crisis and `?2` the channel.
static REQUEUEABLE: LazyLock<String> = LazyLock::new(|| requeueable("?1", "?2"));

#[async_trait]
impl DeadLetterStore for SqliteStore {
    async fn list(
        &self,
        filter: DeadFilter<'_>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        // Every way into `dead` sets finished_at; ordering by it lets the
        // (state, finished_at) index serve the newest first.
        sqlx::query(
            "SELECT id, crisis_id, channel, destination, attempts, \
             COALESCE(finished_at, created_at) AS died_at, dead_cause, last_error FROM deliveries \
             WHERE state = 'dead' AND (?1 IS NULL OR crisis_id = ?1) AND (?2 IS NULL OR channel = ?2) \
             ORDER BY finished_at DESC, id DESC LIMIT ?3",
        )
        .bind(filter.crisis.map(|id| id.to_string()))
        .bind(filter.channel)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(decode::<DeadLetterRow, _, _>)
        .collect()
    }

    async fn count_requeueable(&self, filter: DeadFilter<'_>) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM deliveries WHERE {}",
            *REQUEUEABLE
        ))
        .bind(filter.crisis.map(|id| id.to_string()))
        .bind(filter.channel)
        .fetch_one(&self.pool)
        .await?;
        Ok(count(n))
    }

    async fn requeue(&self, filter: DeadFilter<'_>, now: DateTime<Utc>) -> Result<u64, StoreError> {
        // last_error stays: it says why the delivery died until the next
        // outcome replaces it. finished_at is cleared, so the rate counts
        // the delivery again when it finishes anew; the cause too, as the
        // delivery is no longer dead.
        let writing = self.writer.lock().await;
        let requeued = sqlx::query(&format!(
            "UPDATE deliveries SET state = 'pending', attempts = 0, available_at = ?3, \
             finished_at = NULL, dead_cause = NULL, lease_owner = NULL, lease_until = NULL WHERE {}",
            *REQUEUEABLE
        ))
        .bind(filter.crisis.map(|id| id.to_string()))
        .bind(filter.channel)
        .bind(millis(now))
        .execute(&self.pool)
        .await?
        .rows_affected();
        drop(writing);
        if requeued > 0 {
            self.work_due.notify();
        }
        Ok(requeued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::DeadCause;

    #[test]
    fn migration_0007_backfills_every_cause_and_only_known_ones() {
        let sql = include_str!("../migrations/sqlite/0007_dead_cause.sql");
        let words: Vec<&str> = ["THEN '", "ELSE '"]
            .iter()
            .flat_map(|keyword| {
                sql.match_indices(keyword).map(|(at, _)| {
                    let rest = &sql[at + keyword.len()..];
                    &rest[..rest.find('\'').unwrap()]
                })
            })
            .collect();
        let causes: Vec<DeadCause> = words.iter().map(|w| w.parse().unwrap()).collect();
        // Every cause there was when it ran; `Corrected` came with
        // corrections (0033) and `Capped` with the reader cap (0065), after
        // any row it backfilled.
        let then: Vec<&DeadCause> = DeadCause::ALL
            .iter()
            .filter(|cause| !matches!(cause, DeadCause::Corrected | DeadCause::Capped))
            .collect();
        assert_eq!(causes.len(), then.len(), "{words:?}");
        assert!(then.iter().all(|cause| causes.contains(cause)));
    }

    #[test]
    fn a_requeue_tries_again_only_what_another_try_can_help() {
        let requeueable: Vec<DeadCause> = DeadCause::ALL
            .iter()
            .copied()
            .filter(|cause| cause.requeueable())
            .collect();
        assert_eq!(
            requeueable,
            [
                DeadCause::OptedOut,
                DeadCause::Unroutable,
                DeadCause::AttemptsExhausted,
                DeadCause::Permanent,
                DeadCause::Capped
            ]
        );
        for cause in DeadCause::ALL {
            assert_eq!(
                REQUEUEABLE.contains(&format!("'{cause}'")),
                cause.requeueable(),
                "{cause}"
            );
        }
    }
}
