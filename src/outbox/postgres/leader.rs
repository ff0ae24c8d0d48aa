//! The lead among daemons in PostgreSQL: one row, taken when free or run out,
//! renewed by its holder, its term counted up each time it changes hands.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{PostgresStore, decode, millis};
use crate::outbox::rows::{TermRow, lease_end};
use crate::outbox::{LeaderStore, StoreError, Term};

#[async_trait]
impl LeaderStore for PostgresStore {
    async fn elect(
        &self,
        node: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Option<Term>, StoreError> {
        // One statement: whoever holds the row keeps it until it runs out,
        // so two daemons electing at once cannot both win.
        sqlx::query(
            "INSERT INTO leader (id, node, term, elected_at, expires_at) VALUES (1, $1, 1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET \
               term = CASE WHEN leader.node = excluded.node AND leader.expires_at > $2 \
                 THEN leader.term ELSE leader.term + 1 END, \
               elected_at = CASE WHEN leader.node = excluded.node AND leader.expires_at > $2 \
                 THEN leader.elected_at ELSE excluded.elected_at END, \
               node = excluded.node, expires_at = excluded.expires_at \
             WHERE leader.node = excluded.node OR leader.expires_at <= $2 \
             RETURNING node, term, elected_at, expires_at",
        )
        .bind(node)
        .bind(millis(now))
        .bind(lease_end(now, ttl))
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(decode::<TermRow, _, _>)
        .transpose()
    }

    async fn resign(&self, node: &str) -> Result<(), StoreError> {
        // The term stays: the next leader's is one more.
        sqlx::query("UPDATE leader SET expires_at = 0 WHERE node = $1")
            .bind(node)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn leader(&self, now: DateTime<Utc>) -> Result<Option<Term>, StoreError> {
        sqlx::query("SELECT node, term, elected_at, expires_at FROM leader WHERE expires_at > $1")
            .bind(millis(now))
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(decode::<TermRow, _, _>)
            .transpose()
    }
}
