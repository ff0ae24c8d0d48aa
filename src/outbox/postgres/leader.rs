//! The lead among daemons in PostgreSQL: one row, taken when free or run out,
//! renewed by its holder, its term counted up each time it changes hands.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{PostgresStore, count, decode, from_millis, millis};
use crate::outbox::rows::{TermRow, lease_end};
use crate::outbox::{HeldLeases, LeaderStore, NodeSeen, StoreError, Term};

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

    async fn heartbeat(
        &self,
        node: &str,
        started_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO nodes (node, started_at, seen_at) VALUES ($1, $2, $3) \
             ON CONFLICT (node) DO UPDATE SET seen_at = excluded.seen_at",
        )
        .bind(node)
        .bind(millis(started_at))
        .bind(millis(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn leave(&self, node: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM nodes WHERE node = $1")
            .bind(node)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn nodes(&self, since: DateTime<Utc>) -> Result<Vec<NodeSeen>, StoreError> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT node, started_at, seen_at FROM nodes WHERE seen_at >= $1 ORDER BY node",
        )
        .bind(millis(since))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(node, started_at, seen_at)| {
                Ok(NodeSeen {
                    node,
                    started_at: from_millis(started_at)?,
                    seen_at: from_millis(seen_at)?,
                })
            })
            .collect()
    }

    async fn held_leases(&self) -> Result<Vec<HeldLeases>, StoreError> {
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT lease_owner, channel, COUNT(*), MAX(lease_until) FROM deliveries \
             WHERE state = 'in_flight' AND lease_owner IS NOT NULL \
             GROUP BY lease_owner, channel ORDER BY lease_owner, channel",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(owner, channel, n, until)| {
                Ok(HeldLeases {
                    owner,
                    channel,
                    in_flight: count(n),
                    until: from_millis(until)?,
                })
            })
            .collect()
    }
}
