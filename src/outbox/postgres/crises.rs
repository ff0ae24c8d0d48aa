//! Crises and their audit trail in PostgreSQL, and the transition write:
//! the crisis, its key, its event, its follow-ups, its announcement and
//! deliveries and its source link, in one transaction. Two daemons making
//! a transition of the same crisis at once: the second's version check
//! waits for the first's row lock and then finds the version changed.

use async_trait::async_trait;

use super::{
    CRISIS_CHANGED, PostgresStore, Tx, WORK_DUE, decode, follow_ups, idempotency, millis, notify,
    plans, source_links, to_json,
};
use crate::domain::{Crisis, CrisisEvent, CrisisId};
use crate::outbox::rows::{CrisisRow, EventRow};
use crate::outbox::{CrisisFilter, CrisisStore, DuplicateGuard, StoreError, TransitionWrite};

/// What a transition changes, `$1` to `$10` in both statements: kind,
/// severity, title, summary, localized, status, version, last_message,
/// updated_at, resolved_at, selection.
fn bind_changes<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    crisis: &'q Crisis,
) -> Result<sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>, StoreError> {
    Ok(query
        .bind(crisis.kind.as_str())
        .bind(crisis.severity.as_str())
        .bind(&crisis.title)
        .bind(&crisis.summary)
        .bind(to_json(&crisis.localized)?)
        .bind(crisis.status.as_str())
        .bind(i64::from(crisis.version))
        .bind(&crisis.last_message)
        .bind(millis(crisis.updated_at))
        .bind(crisis.resolved_at.map(millis))
        .bind(to_json(&crisis.selection)?))
}

async fn insert_crisis(tx: &mut Tx<'_>, crisis: &Crisis) -> Result<(), StoreError> {
    let query = sqlx::query(
        "INSERT INTO crises (kind, severity, title, summary, localized, status, version, last_message, \
         updated_at, resolved_at, selection, id, declared_at, drill) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    );
    // `drill` is written once, here: no update changes it.
    bind_changes(query, crisis)?
        .bind(crisis.id.to_string())
        .bind(millis(crisis.declared_at))
        .bind(crisis.drill)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Every daemon's check and insert of a declaration queue on one
/// transaction-scoped advisory lock (released at commit or rollback), so
/// two identical declarations on two daemons cannot both find no
/// duplicate. Declarations are rare; the lock serialises nothing else.
const DECLARING: i64 = 0x6372_6973_6973_6401; // "crisisd" and 1

async fn refuse_duplicate(tx: &mut Tx<'_>, guard: &DuplicateGuard) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(DECLARING)
        .execute(&mut **tx)
        .await?;
    let candidates = sqlx::query_as(DuplicateGuard::CANDIDATES)
        .bind(guard.kind.as_str())
        .bind(millis(guard.since))
        .fetch_all(&mut **tx)
        .await?;
    guard.refuse(candidates)
}

/// Refused with `Conflict` when the stored version is no longer `previous`.
async fn update_crisis(tx: &mut Tx<'_>, crisis: &Crisis, previous: u32) -> Result<(), StoreError> {
    let query = sqlx::query(
        "UPDATE crises SET kind = $1, severity = $2, title = $3, summary = $4, localized = $5, \
         status = $6, version = $7, last_message = $8, updated_at = $9, resolved_at = $10, \
         selection = $11 WHERE id = $12 AND version = $13",
    );
    let changed = bind_changes(query, crisis)?
        .bind(crisis.id.to_string())
        .bind(i64::from(previous))
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if changed == 0 {
        return Err(StoreError::Conflict(crisis.id));
    }
    Ok(())
}

/// The crisis as this transition leaves it, kept beside the current row.
async fn insert_version(tx: &mut Tx<'_>, crisis: &Crisis) -> Result<(), StoreError> {
    let query = sqlx::query(
        "INSERT INTO crisis_versions (kind, severity, title, summary, localized, status, version, \
         last_message, updated_at, resolved_at, selection, crisis_id, declared_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    );
    bind_changes(query, crisis)?
        .bind(crisis.id.to_string())
        .bind(millis(crisis.declared_at))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(super) async fn insert_event(tx: &mut Tx<'_>, event: &CrisisEvent) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO crisis_events (crisis_id, status, kind, actor_source, actor_name, message, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(event.crisis_id.to_string())
    .bind(event.status.as_str())
    .bind(event.kind.as_str())
    .bind(event.actor.source.as_str())
    .bind(&event.actor.name)
    .bind(&event.message)
    .bind(millis(event.at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[async_trait]
impl CrisisStore for PostgresStore {
    async fn record_transition(&self, write: TransitionWrite) -> Result<(), StoreError> {
        let TransitionWrite {
            crisis,
            previous_version,
            event,
            announcement,
            deliveries,
            planning,
            idempotency,
            source_link,
            follow_ups,
            unless_duplicate,
        } = write;
        let mut tx = self.pool.begin().await?;
        if let Some(guard) = &unless_duplicate {
            refuse_duplicate(&mut tx, guard).await?;
        }
        match previous_version {
            None => insert_crisis(&mut tx, &crisis).await?,
            Some(previous) => update_crisis(&mut tx, &crisis, previous).await?,
        }
        if let Some(record) = &idempotency {
            idempotency::take(&mut tx, record, event.at).await?;
        }
        insert_version(&mut tx, &crisis).await?;
        insert_event(&mut tx, &event).await?;
        // Before the all-clear's own deliveries are written, so only
        // follow-up messages queued earlier are killed.
        follow_ups::apply_change(&mut tx, &crisis, &follow_ups, event.at).await?;
        plans::insert_announcement(
            &mut tx,
            &announcement,
            planning.as_ref(),
            idempotency.as_ref(),
        )
        .await?;
        plans::insert_deliveries(&mut tx, &announcement, &deliveries).await?;
        if let Some(change) = &source_link {
            source_links::apply(&mut tx, change, previous_version.is_none()).await?;
        }
        notify(&mut tx, CRISIS_CHANGED, &crisis.id.to_string()).await?;
        notify(&mut tx, WORK_DUE, "").await?;
        tx.commit().await?;
        self.work_due.notify();
        self.wrote_deliveries(deliveries.len()).await;
        Ok(())
    }

    async fn note(&self, event: &CrisisEvent) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_event(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn crisis(&self, id: CrisisId) -> Result<Option<Crisis>, StoreError> {
        sqlx::query("SELECT * FROM crises WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(decode::<CrisisRow, _, _>)
            .transpose()
    }

    async fn crises(&self, filter: CrisisFilter) -> Result<Vec<Crisis>, StoreError> {
        let condition = match filter {
            CrisisFilter::Active => "WHERE status != 'resolved'",
            CrisisFilter::Resolved => "WHERE status = 'resolved'",
            CrisisFilter::All => "",
        };
        sqlx::query(&format!(
            "SELECT * FROM crises {condition} ORDER BY declared_at DESC, id DESC"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(decode::<CrisisRow, _, _>)
        .collect()
    }

    async fn events(&self, id: CrisisId) -> Result<Vec<CrisisEvent>, StoreError> {
        sqlx::query("SELECT * FROM crisis_events WHERE crisis_id = $1 ORDER BY seq")
            .bind(id.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(decode::<EventRow, _, _>)
            .collect()
    }

    async fn versions(&self, id: CrisisId) -> Result<Vec<Crisis>, StoreError> {
        sqlx::query(
            // A crisis is a drill or not from its declaration on, so the
            // flag is read from the crisis, not kept per version.
            "SELECT v.crisis_id AS id, v.*, c.drill FROM crisis_versions v \
             JOIN crises c ON c.id = v.crisis_id WHERE v.crisis_id = $1 ORDER BY v.version",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(decode::<CrisisRow, _, _>)
        .collect()
    }

    async fn recent_versions(&self, limit: u32) -> Result<Vec<Crisis>, StoreError> {
        sqlx::query(
            "SELECT v.crisis_id AS id, v.*, c.drill FROM crisis_versions v \
             JOIN crises c ON c.id = v.crisis_id \
             ORDER BY v.updated_at DESC, v.crisis_id DESC, v.version DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(decode::<CrisisRow, _, _>)
        .collect()
    }
}
