//! Source links in PostgreSQL: set or removed inside a transition's
//! transaction, read and forgotten here. `(source, external_id)` is the
//! key, so one outside incident drives one crisis across every daemon.

use async_trait::async_trait;
use sqlx::PgExecutor;

use super::{PostgresStore, Tx, decode};
use crate::outbox::rows::SourceLinkRow;
use crate::outbox::{SourceLink, SourceLinkChange, SourceLinkStore, StoreError};

async fn remove(
    executor: impl PgExecutor<'_>,
    source: &str,
    external_id: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM source_links WHERE source = $1 AND external_id = $2")
        .bind(source)
        .bind(external_id)
        .execute(executor)
        .await?;
    Ok(())
}

/// A transition's link change, in its transaction. A new crisis
/// (`declaring`) may not take over an incident an active crisis is linked
/// to (one resolved by hand, it may): two daemons given the same incident
/// at once declare it once, and the one that lost gets `Conflict` and
/// looks again.
pub(super) async fn apply(
    tx: &mut Tx<'_>,
    change: &SourceLinkChange,
    declaring: bool,
) -> Result<(), StoreError> {
    match change {
        SourceLinkChange::Set(link) if declaring => {
            let inserted = sqlx::query(
                "INSERT INTO source_links (source, external_id, crisis_id, fingerprint) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (source, external_id) DO UPDATE SET crisis_id = excluded.crisis_id, \
                 fingerprint = excluded.fingerprint WHERE EXISTS (SELECT 1 FROM crises \
                 WHERE crises.id = source_links.crisis_id AND crises.status = 'resolved')",
            )
            .bind(&link.source)
            .bind(&link.external_id)
            .bind(link.crisis_id.to_string())
            .bind(&link.fingerprint)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Err(StoreError::Conflict(link.crisis_id));
            }
        }
        SourceLinkChange::Set(link) => {
            sqlx::query(
                "INSERT INTO source_links (source, external_id, crisis_id, fingerprint) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (source, external_id) DO UPDATE SET crisis_id = excluded.crisis_id, \
                 fingerprint = excluded.fingerprint",
            )
            .bind(&link.source)
            .bind(&link.external_id)
            .bind(link.crisis_id.to_string())
            .bind(&link.fingerprint)
            .execute(&mut **tx)
            .await?;
        }
        SourceLinkChange::Remove {
            source,
            external_id,
        } => remove(&mut **tx, source, external_id).await?,
    }
    Ok(())
}

#[async_trait]
impl SourceLinkStore for PostgresStore {
    async fn source_link(
        &self,
        source: &str,
        external_id: &str,
    ) -> Result<Option<SourceLink>, StoreError> {
        sqlx::query("SELECT * FROM source_links WHERE source = $1 AND external_id = $2")
            .bind(source)
            .bind(external_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(decode::<SourceLinkRow, _, _>)
            .transpose()
    }

    async fn unlink_source(&self, source: &str, external_id: &str) -> Result<(), StoreError> {
        remove(&self.pool, source, external_id).await
    }
}
