//! Crises and their audit trail in SQLite, and the transition write: the
//! crisis, its key, its event, its follow-ups, its announcement and
//! deliveries and its source link, in one transaction on the durable pool.

use async_trait::async_trait;

use super::{
    SqliteStore, Tx, decode, follow_ups, idempotency, millis, plans, source_links, to_json,
};
use crate::domain::{Crisis, CrisisEvent, CrisisId};
use crate::outbox::rows::{CrisisRow, EventRow};
use crate::outbox::{CrisisFilter, CrisisStore, DuplicateGuard, StoreError, TransitionWrite};

type Query<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

/// What a transition changes, bound in the order both statements name it:
/// kind, severity, title, summary, localized, status, version,
/// last_message, updated_at, resolved_at, selection.
fn bind_changes<'q>(query: Query<'q>, crisis: &'q Crisis) -> Result<Query<'q>, StoreError> {
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
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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

/// Refused with `Conflict` when the stored version is no longer `previous`.
async fn update_crisis(tx: &mut Tx<'_>, crisis: &Crisis, previous: u32) -> Result<(), StoreError> {
    let query = sqlx::query(
        "UPDATE crises SET kind = ?, severity = ?, title = ?, summary = ?, localized = ?, \
         status = ?, version = ?, last_message = ?, updated_at = ?, resolved_at = ?, \
         selection = ? WHERE id = ? AND version = ?",
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
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
         VALUES (?, ?, ?, ?, ?, ?, ?)",
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
impl CrisisStore for SqliteStore {
    async fn record_transition(&self, write: TransitionWrite) -> Result<(), StoreError> {
        let result: Result<_, StoreError> = async {
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
            let writing = self.writer.lock().await;
            let mut tx = self.pool.begin().await?;
            // Under the one writer: no other declaration can come between
            // the check and the insert.
            if let Some(guard) = &unless_duplicate {
                let candidates = sqlx::query_as(DuplicateGuard::CANDIDATES)
                    .bind(guard.kind.as_str())
                    .bind(millis(guard.since))
                    .fetch_all(&mut *tx)
                    .await?;
                guard.refuse(candidates)?;
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
            tx.commit().await?;
            drop(writing);
            self.work_due.notify();
            Ok(())
        }
        .await;
        self.faults.note(&result);
        result
    }

    async fn note(&self, event: &CrisisEvent) -> Result<(), StoreError> {
        let _writing = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        insert_event(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn crisis(&self, id: CrisisId) -> Result<Option<Crisis>, StoreError> {
        sqlx::query("SELECT * FROM crises WHERE id = ?")
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
        sqlx::query("SELECT * FROM crisis_events WHERE crisis_id = ? ORDER BY seq")
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
             JOIN crises c ON c.id = v.crisis_id WHERE v.crisis_id = ? ORDER BY v.version",
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
             ORDER BY v.updated_at DESC, v.crisis_id DESC, v.version DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(decode::<CrisisRow, _, _>)
        .collect()
    }
}
