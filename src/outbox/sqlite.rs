//! The embedded store: SQLite in WAL mode, one file.

mod follow_ups;
mod hooks;

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};
use uuid::Uuid;

use super::{
    Announcement, ChannelStateCount, CrisisFilter, DeadLetter, Delivery, DeliveryCount,
    DeliveryState, FinishedCount, IdempotencyRecord, NewDelivery, NewRendition, Outcome, Payload,
    Personal, SourceLink, SourceLinkChange, Store, StoreError, TransitionWrite, UnfinishedPlan,
};
use crate::domain::consent::{ContactPoint, OptOuts, normalize};
use crate::domain::follow_up::{FollowUp, FollowUpState};
use crate::domain::{Actor, Crisis, CrisisEvent, CrisisId, DeliveryId};
use crate::message::DeliveryContent;
use crate::sync::lock;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Commits reach the disk before they return (`synchronous = FULL`):
    /// crisis transitions, opt-outs, everything an API answer promises.
    pool: SqlitePool,
    /// The dispatcher's bookkeeping (plan batches, claims, outcomes,
    /// releases), committed with `synchronous = NORMAL`: in WAL mode a
    /// process crash loses none of it, and a power cut can only roll back
    /// the latest claims and outcomes, so a delivery is sent again, never
    /// lost. It saves an fsync per claim and per outcome batch, which was
    /// what bounded email throughput (3.7 ms each on the benchmark VM).
    ledger: SqlitePool,
    /// SQLite lets one transaction write at a time, and a second writer
    /// waits in SQLite's busy handler, which sleeps 1, 2, 5… ms between
    /// tries (thousands of such sleeps per fan-out in the benchmark).
    /// Writers queue here instead, and each starts the moment the one
    /// before it commits.
    writer: Arc<tokio::sync::Mutex<()>>,
    /// Decoded renditions by id, so a claim does not parse the same
    /// message for every reader.
    renditions: Arc<Mutex<HashMap<String, Arc<DeliveryContent>>>>,
}

fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn from_millis(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {ms} out of range")))
}

fn parse<T: FromStr>(text: &str, what: &str) -> Result<T, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("unreadable {what} `{text}`")))
}

fn json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("unreadable {what}: {e}")))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

const DELIVERY_COLUMNS: &str = "id, crisis_id, announcement_id, kind, channel, recipient_id, destination, \
     locale, content, state, attempts, available_at, last_error, created_at, rendition_id, recipient_name, \
     unsubscribe_url";

/// Columns of one delivery row, in insert order.
const INSERT_COLUMNS: &str = "INSERT INTO deliveries (id, crisis_id, announcement_id, kind, channel, recipient_id, \
     destination, locale, content, priority, state, attempts, available_at, last_error, created_at, finished_at, \
     rendition_id, recipient_name, unsubscribe_url) ";

/// Rows per INSERT statement: 19 parameters each stays well under
/// SQLite's limit of 32,766.
const ROWS_PER_INSERT: usize = 500;

/// Renditions kept decoded in memory; a crisis has a few dozen.
const RENDITION_CACHE: usize = 4096;

/// Writes deliveries with multi-row INSERTs inside the caller's transaction.
async fn insert_deliveries(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    announcement: &Announcement,
    deliveries: &[NewDelivery],
) -> Result<(), StoreError> {
    let now = millis(announcement.created_at);
    let crisis_id = announcement.crisis_id.to_string();
    let announcement_id = announcement.id.to_string();
    for chunk in deliveries.chunks(ROWS_PER_INSERT) {
        let mut rows = Vec::with_capacity(chunk.len());
        for delivery in chunk {
            let (content, rendition) = match &delivery.payload {
                Payload::Inline(content) => (to_json(content)?, None),
                Payload::Rendition {
                    id,
                    recipient_name,
                    unsubscribe_url,
                } => (
                    String::new(),
                    Some((id.to_string(), recipient_name, unsubscribe_url)),
                ),
            };
            rows.push((delivery, content, rendition));
        }
        let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(INSERT_COLUMNS);
        query.push_values(&rows, |mut row, (delivery, content, rendition)| {
            let (state, finished_at) = match delivery.dead_reason {
                Some(_) => (DeliveryState::Dead, Some(now)),
                None => (DeliveryState::Pending, None),
            };
            let available_at = match (&delivery.dead_reason, delivery.not_before) {
                (None, Some(at)) => millis(at).max(now),
                _ => now,
            };
            row.push_bind(delivery.id.to_string())
                .push_bind(crisis_id.clone())
                .push_bind(announcement_id.clone())
                .push_bind(announcement.kind.as_str())
                .push_bind(delivery.channel.clone())
                .push_bind(delivery.recipient_id.clone())
                .push_bind(delivery.destination.clone())
                .push_bind(delivery.locale.clone())
                .push_bind(content.clone())
                .push_bind(i64::from(delivery.priority))
                .push_bind(state.as_str())
                .push_bind(0_i64)
                .push_bind(available_at)
                .push_bind(delivery.dead_reason.clone())
                .push_bind(now)
                .push_bind(finished_at)
                .push_bind(rendition.as_ref().map(|(id, _, _)| id.clone()))
                .push_bind(rendition.as_ref().and_then(|(_, name, _)| (*name).clone()))
                .push_bind(rendition.as_ref().and_then(|(_, _, url)| (*url).clone()));
        });
        query.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Writes an announcement row inside the caller's transaction.
async fn insert_announcement(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    announcement: &Announcement,
    planning: bool,
    idempotency: Option<&IdempotencyRecord>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO announcements (id, crisis_id, kind, message, created_at, planning, \
         idempotency_scope, idempotency_key, follow_up) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(announcement.id.to_string())
    .bind(announcement.crisis_id.to_string())
    .bind(announcement.kind.as_str())
    .bind(&announcement.message)
    .bind(millis(announcement.created_at))
    .bind(planning)
    .bind(idempotency.map(|r| r.scope.clone()))
    .bind(idempotency.map(|r| r.key.clone()))
    .bind(announcement.follow_up.as_ref().map(to_json).transpose()?)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Dead deliveries that can be sent again. Left dead:
/// - one written dead at planning (a template that did not render): never
///   claimed, finished the moment it was created, and its content is an
///   empty placeholder;
/// - one to an address that opted out (since): sending it would ignore the
///   opt-out. Addresses are matched as `opt_out` stores them (emails
///   lower-cased, both trimmed), which the `(point, address)` key serves.
const REQUEUEABLE: &str = "state = 'dead' AND NOT (attempts = 0 AND finished_at = created_at) \
     AND NOT EXISTS (SELECT 1 FROM opt_outs WHERE opt_outs.point IN ('email', 'phone') \
         AND opt_outs.address IN (lower(trim(deliveries.destination)), trim(deliveries.destination))) \
     AND last_error IS NOT 'cancelled: the crisis was resolved' \
     AND (?1 IS NULL OR crisis_id = ?1) AND (?2 IS NULL OR channel = ?2)";

impl SqliteStore {
    /// A rendition, decoded once.
    async fn rendition(&self, id: &str) -> Result<Arc<DeliveryContent>, StoreError> {
        if let Some(content) = lock(&self.renditions).get(id) {
            return Ok(content.clone());
        }
        let text: String = sqlx::query_scalar("SELECT content FROM renditions WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.ledger)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("rendition {id} is missing")))?;
        let content: Arc<DeliveryContent> = Arc::new(json(&text, "rendition")?);
        let mut cache = lock(&self.renditions);
        if cache.len() >= RENDITION_CACHE {
            cache.clear();
        }
        cache.insert(id.to_owned(), content.clone());
        Ok(content)
    }

    /// Opens (creating when missing) the database and applies migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an accepted crisis survives a power cut, not only a crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("src/outbox/migrations/sqlite")
            .run(&pool)
            .await?;
        // Opened lazily, so its connection threads start where the
        // dispatcher runs (and take that runtime's CPU priority).
        let ledger = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_lazy_with(options.synchronous(SqliteSynchronous::Normal));
        Ok(Self {
            pool,
            ledger,
            writer: Arc::default(),
            renditions: Arc::default(),
        })
    }

    fn crisis_from_row(row: &SqliteRow) -> Result<Crisis, StoreError> {
        Ok(Crisis {
            id: parse(row.try_get::<&str, _>("id")?, "crisis id")?,
            kind: parse(row.try_get::<&str, _>("kind")?, "kind")?,
            severity: parse(row.try_get::<&str, _>("severity")?, "severity")?,
            title: row.try_get("title")?,
            summary: row.try_get("summary")?,
            localized: json(row.try_get::<&str, _>("localized")?, "localized text")?,
            status: parse(row.try_get::<&str, _>("status")?, "status")?,
            version: u32::try_from(row.try_get::<i64, _>("version")?)
                .map_err(|_| StoreError::Corrupt("crisis version out of range".into()))?,
            last_message: row.try_get("last_message")?,
            declared_at: from_millis(row.try_get("declared_at")?)?,
            updated_at: from_millis(row.try_get("updated_at")?)?,
            resolved_at: row
                .try_get::<Option<i64>, _>("resolved_at")?
                .map(from_millis)
                .transpose()?,
        })
    }

    fn delivery_from_row(row: &SqliteRow) -> Result<Delivery, StoreError> {
        Ok(Delivery {
            id: parse(row.try_get::<&str, _>("id")?, "delivery id")?,
            crisis_id: parse(row.try_get::<&str, _>("crisis_id")?, "crisis id")?,
            announcement_id: parse::<Uuid>(
                row.try_get::<&str, _>("announcement_id")?,
                "announcement id",
            )?,
            kind: parse(row.try_get::<&str, _>("kind")?, "announcement kind")?,
            channel: row.try_get("channel")?,
            recipient_id: row.try_get("recipient_id")?,
            destination: row.try_get("destination")?,
            locale: row.try_get("locale")?,
            content: match row.try_get::<&str, _>("content")? {
                // A rendition's delivery: its content is the rendition's,
                // filled in by `claim`.
                "" => Arc::new(DeliveryContent::Email(crate::message::EmailContent {
                    subject: String::new(),
                    text: String::new(),
                    html: String::new(),
                    unsubscribe_url: None,
                })),
                text => Arc::new(json(text, "delivery content")?),
            },
            personal: None,
            state: row.try_get::<&str, _>("state")?.parse()?,
            attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
            available_at: from_millis(row.try_get("available_at")?)?,
            last_error: row.try_get("last_error")?,
            created_at: from_millis(row.try_get("created_at")?)?,
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
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
        } = write;
        let _writing = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        let localized = to_json(&crisis.localized)?;
        match previous_version {
            None => {
                sqlx::query(
                    "INSERT INTO crises (id, kind, severity, title, summary, localized, status, version, \
                     last_message, declared_at, updated_at, resolved_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(crisis.id.to_string())
                .bind(crisis.kind.as_str())
                .bind(crisis.severity.as_str())
                .bind(&crisis.title)
                .bind(&crisis.summary)
                .bind(&localized)
                .bind(crisis.status.as_str())
                .bind(i64::from(crisis.version))
                .bind(&crisis.last_message)
                .bind(millis(crisis.declared_at))
                .bind(millis(crisis.updated_at))
                .bind(crisis.resolved_at.map(millis))
                .execute(&mut *tx)
                .await?;
            }
            Some(previous) => {
                let changed = sqlx::query(
                    "UPDATE crises SET kind = ?, severity = ?, title = ?, summary = ?, localized = ?, \
                     status = ?, version = ?, last_message = ?, updated_at = ?, resolved_at = ? \
                     WHERE id = ? AND version = ?",
                )
                .bind(crisis.kind.as_str())
                .bind(crisis.severity.as_str())
                .bind(&crisis.title)
                .bind(&crisis.summary)
                .bind(&localized)
                .bind(crisis.status.as_str())
                .bind(i64::from(crisis.version))
                .bind(&crisis.last_message)
                .bind(millis(crisis.updated_at))
                .bind(crisis.resolved_at.map(millis))
                .bind(crisis.id.to_string())
                .bind(i64::from(previous))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if changed == 0 {
                    return Err(StoreError::Conflict(crisis.id));
                }
            }
        }
        if let Some(record) = &idempotency {
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys (scope, key, fingerprint, status, body, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(&record.scope)
            .bind(&record.key)
            .bind(&record.fingerprint)
            .bind(i64::from(record.status))
            .bind(&record.body)
            .bind(millis(event.at))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Err(StoreError::IdempotencyKeyTaken);
            }
        }
        sqlx::query(
            "INSERT INTO crisis_events (crisis_id, status, actor_source, actor_name, message, at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(event.crisis_id.to_string())
        .bind(event.status.as_str())
        .bind(event.actor.source.as_str())
        .bind(&event.actor.name)
        .bind(&event.message)
        .bind(millis(event.at))
        .execute(&mut *tx)
        .await?;
        // Before the all-clear's own deliveries are written, so only
        // follow-up messages queued earlier are killed.
        follow_ups::apply_change(&mut tx, &crisis, &follow_ups, event.at).await?;
        insert_announcement(&mut tx, &announcement, planning, idempotency.as_ref()).await?;
        insert_deliveries(&mut tx, &announcement, &deliveries).await?;
        match source_link {
            Some(SourceLinkChange::Set(link)) => {
                sqlx::query(
                    "INSERT INTO source_links (source, external_id, crisis_id, fingerprint) VALUES (?, ?, ?, ?) \
                     ON CONFLICT (source, external_id) DO UPDATE SET crisis_id = excluded.crisis_id, \
                     fingerprint = excluded.fingerprint",
                )
                .bind(&link.source)
                .bind(&link.external_id)
                .bind(link.crisis_id.to_string())
                .bind(&link.fingerprint)
                .execute(&mut *tx)
                .await?;
            }
            Some(SourceLinkChange::Remove {
                source,
                external_id,
            }) => {
                sqlx::query("DELETE FROM source_links WHERE source = ? AND external_id = ?")
                    .bind(source)
                    .bind(external_id)
                    .execute(&mut *tx)
                    .await?;
            }
            None => {}
        }
        tx.commit().await?;
        Ok(())
    }

    async fn crisis(&self, id: CrisisId) -> Result<Option<Crisis>, StoreError> {
        sqlx::query("SELECT * FROM crises WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(Self::crisis_from_row)
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
        .map(Self::crisis_from_row)
        .collect()
    }

    async fn events(&self, id: CrisisId) -> Result<Vec<CrisisEvent>, StoreError> {
        let rows = sqlx::query("SELECT * FROM crisis_events WHERE crisis_id = ? ORDER BY seq")
            .bind(id.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(CrisisEvent {
                    crisis_id: id,
                    status: parse(row.try_get::<&str, _>("status")?, "status")?,
                    actor: Actor {
                        source: parse(row.try_get::<&str, _>("actor_source")?, "actor source")?,
                        name: row.try_get("actor_name")?,
                    },
                    message: row.try_get("message")?,
                    at: from_millis(row.try_get("at")?)?,
                })
            })
            .collect()
    }

    async fn idempotent_response(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM idempotency_keys WHERE scope = ? AND key = ?")
            .bind(scope)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(IdempotencyRecord {
                scope: row.try_get("scope")?,
                key: row.try_get("key")?,
                fingerprint: row.try_get("fingerprint")?,
                status: u16::try_from(row.try_get::<i64, _>("status")?)
                    .map_err(|_| StoreError::Corrupt("idempotency status out of range".into()))?,
                body: row.try_get("body")?,
            })
        })
        .transpose()
    }

    async fn source_link(
        &self,
        source: &str,
        external_id: &str,
    ) -> Result<Option<SourceLink>, StoreError> {
        let row = sqlx::query("SELECT * FROM source_links WHERE source = ? AND external_id = ?")
            .bind(source)
            .bind(external_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(SourceLink {
                source: row.try_get("source")?,
                external_id: row.try_get("external_id")?,
                crisis_id: parse(row.try_get::<&str, _>("crisis_id")?, "crisis id")?,
                fingerprint: row.try_get("fingerprint")?,
            })
        })
        .transpose()
    }

    async fn opt_out(
        &self,
        point: ContactPoint,
        address: &str,
        source: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let _writing = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO opt_outs (point, address, source, opted_out_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT DO NOTHING",
        )
        .bind(point.as_str())
        .bind(normalize(point, address))
        .bind(source)
        .bind(millis(at))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // Messages already queued for them are not sent either; they end
        // dead with the reason, so the count stays honest.
        sqlx::query(
            "UPDATE deliveries SET state = 'dead', last_error = 'the recipient opted out', finished_at = ? \
             WHERE lower(destination) = lower(?) AND state IN ('pending', 'retrying')",
        )
        .bind(millis(at))
        .bind(normalize(point, address))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(inserted > 0)
    }

    async fn opt_in(&self, point: ContactPoint, address: &str) -> Result<bool, StoreError> {
        let _writing = self.writer.lock().await;
        let removed = sqlx::query("DELETE FROM opt_outs WHERE point = ? AND address = ?")
            .bind(point.as_str())
            .bind(normalize(point, address))
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(removed > 0)
    }

    async fn opt_outs(&self) -> Result<OptOuts, StoreError> {
        let rows = sqlx::query("SELECT point, address FROM opt_outs")
            .fetch_all(&self.pool)
            .await?;
        let mut opt_outs = OptOuts::default();
        for row in rows {
            let address: String = row.try_get("address")?;
            match ContactPoint::parse(row.try_get::<&str, _>("point")?) {
                Some(ContactPoint::Email) => opt_outs.emails.insert(address),
                Some(ContactPoint::Phone) => opt_outs.phones.insert(address),
                None => return Err(StoreError::Corrupt("unknown opt-out contact point".into())),
            };
        }
        Ok(opt_outs)
    }

    async fn unlink_source(&self, source: &str, external_id: &str) -> Result<(), StoreError> {
        let _writing = self.writer.lock().await;
        sqlx::query("DELETE FROM source_links WHERE source = ? AND external_id = ?")
            .bind(source)
            .bind(external_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn channel_counts(&self) -> Result<Vec<ChannelStateCount>, StoreError> {
        // By state first: the (state, finished_at) index skips sent rows.
        let rows = sqlx::query(
            "SELECT channel, state, COUNT(*) AS n FROM deliveries \
             WHERE state IN ('pending', 'in_flight', 'retrying', 'dead') \
             GROUP BY channel, state ORDER BY channel, state",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ChannelStateCount {
                    channel: row.try_get("channel")?,
                    state: row.try_get::<&str, _>("state")?.parse()?,
                    count: u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0),
                })
            })
            .collect()
    }

    async fn delivery_counts(
        &self,
        crisis: Option<CrisisId>,
    ) -> Result<Vec<DeliveryCount>, StoreError> {
        let rows = match crisis {
            Some(id) => {
                sqlx::query(
                    "SELECT crisis_id, channel, state, COUNT(*) AS n FROM deliveries WHERE crisis_id = ? \
                     GROUP BY crisis_id, channel, state ORDER BY channel, state",
                )
                .bind(id.to_string())
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(
                    "SELECT crisis_id, channel, state, COUNT(*) AS n FROM deliveries \
                     GROUP BY crisis_id, channel, state ORDER BY crisis_id, channel, state",
                )
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter()
            .map(|row| {
                Ok(DeliveryCount {
                    crisis_id: parse(row.try_get::<&str, _>("crisis_id")?, "crisis id")?,
                    channel: row.try_get("channel")?,
                    state: row.try_get::<&str, _>("state")?.parse()?,
                    count: u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0),
                })
            })
            .collect()
    }

    async fn dead_deliveries(
        &self,
        crisis: Option<CrisisId>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE state = 'dead' AND (?1 IS NULL OR crisis_id = ?1) \
             ORDER BY finished_at DESC LIMIT ?2"
        );
        sqlx::query(&sql)
            .bind(crisis.map(|id| id.to_string()))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(Self::delivery_from_row)
            .collect()
    }

    async fn claim(
        &self,
        channel: &str,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let now_ms = millis(now);
        let lease_until =
            now_ms.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        let _writing = self.writer.lock().await;
        let mut tx = self.ledger.begin().await?;
        // A crashed sender's expired leases become claimable again; the
        // attempt they used stays counted.
        sqlx::query(
            "UPDATE deliveries SET state = 'retrying', available_at = ?2, lease_owner = NULL, lease_until = NULL \
             WHERE state = 'in_flight' AND channel = ?1 AND lease_until <= ?2",
        )
        .bind(channel)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        // New messages first, by priority (initial, updates and the
        // all-clear before follow-ups), then retries that are due. Each is
        // one range of the (channel, state, priority, available_at) index.
        let mut rows = Vec::new();
        for (state, order) in [
            ("pending", "priority, available_at"),
            ("retrying", "available_at"),
        ] {
            let wanted = i64::from(limit) - i64::try_from(rows.len()).unwrap_or(i64::MAX);
            if wanted <= 0 {
                break;
            }
            let sql = format!(
                "UPDATE deliveries SET state = 'in_flight', lease_owner = ?1, lease_until = ?2, attempts = attempts + 1 \
                 WHERE id IN (SELECT id FROM deliveries WHERE channel = ?3 AND state = ?4 AND available_at <= ?5 \
                   ORDER BY {order} LIMIT ?6) \
                 RETURNING {DELIVERY_COLUMNS}"
            );
            rows.extend(
                sqlx::query(&sql)
                    .bind(owner)
                    .bind(lease_until)
                    .bind(channel)
                    .bind(state)
                    .bind(now_ms)
                    .bind(wanted)
                    .fetch_all(&mut *tx)
                    .await?,
            );
        }
        tx.commit().await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut delivery = Self::delivery_from_row(row)?;
            if let Some(rendition) = row.try_get::<Option<&str>, _>("rendition_id")? {
                delivery.content = self.rendition(rendition).await?;
                delivery.personal = Some(Personal {
                    rendition: parse(rendition, "rendition id")?,
                    recipient_name: row.try_get("recipient_name")?,
                    unsubscribe_url: row.try_get("unsubscribe_url")?,
                });
            }
            claimed.push(delivery);
        }
        Ok(claimed)
    }

    async fn record_outcomes(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        outcomes: &[(DeliveryId, Outcome)],
    ) -> Result<(), StoreError> {
        let now = millis(now);
        let _writing = self.writer.lock().await;
        let mut tx = self.ledger.begin().await?;
        // Sends, the bulk of outcomes, go in one statement per chunk: each
        // statement is a round trip to SQLite's connection thread, and one
        // per delivery was what bounded throughput (perf: most of the time
        // in thread wake-ups, little in SQLite itself).
        let sent: Vec<(String, Option<String>)> = outcomes
            .iter()
            .filter_map(|(id, outcome)| match outcome {
                Outcome::Sent { provider_ref } => Some((id.to_string(), provider_ref.clone())),
                _ => None,
            })
            .collect();
        for chunk in sent.chunks(ROWS_PER_INSERT) {
            let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "UPDATE deliveries SET state = 'sent', provider_ref = v.column2, finished_at = ",
            );
            query
                .push_bind(now)
                .push(", lease_owner = NULL, lease_until = NULL, last_error = NULL FROM (");
            query.push_values(chunk, |mut row, (id, provider_ref)| {
                row.push_bind(id.clone()).push_bind(provider_ref.clone());
            });
            query
                .push(") AS v WHERE deliveries.id = v.column1 AND deliveries.state = 'in_flight' AND deliveries.lease_owner = ")
                .push_bind(owner.to_owned());
            query.build().execute(&mut *tx).await?;
        }
        for (id, outcome) in outcomes {
            let query = match outcome {
                // Written above, in bulk.
                Outcome::Sent { .. } => continue,
                // A reader who opted out while this was in flight is not
                // tried again.
                Outcome::Retry { at, error } => sqlx::query(
                    "UPDATE deliveries SET available_at = ?1, lease_owner = NULL, lease_until = NULL, \
                     state = CASE WHEN lower(destination) IN (SELECT address FROM opt_outs) \
                       THEN 'dead' ELSE 'retrying' END, \
                     last_error = CASE WHEN lower(destination) IN (SELECT address FROM opt_outs) \
                       THEN 'the recipient opted out' ELSE ?2 END, \
                     finished_at = CASE WHEN lower(destination) IN (SELECT address FROM opt_outs) \
                       THEN ?5 ELSE finished_at END \
                     WHERE id = ?3 AND state = 'in_flight' AND lease_owner = ?4",
                )
                .bind(millis(*at))
                .bind(error.clone())
                .bind(id.to_string())
                .bind(owner)
                .bind(now),
                Outcome::Dead { reason } => sqlx::query(
                    "UPDATE deliveries SET state = 'dead', finished_at = ?1, last_error = ?2, lease_owner = NULL, \
                     lease_until = NULL WHERE id = ?3 AND state = 'in_flight' AND lease_owner = ?4",
                )
                .bind(now)
                .bind(reason.clone())
                .bind(id.to_string())
                .bind(owner),
            };
            query.execute(&mut *tx).await?;
        }
        follow_ups::kill_retries_after_resolve(&mut tx, outcomes, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn append_plan(
        &self,
        announcement: &Announcement,
        renditions: &[NewRendition],
        deliveries: &[NewDelivery],
        planned_through: u64,
    ) -> Result<(), StoreError> {
        let _writing = self.writer.lock().await;
        let mut tx = self.ledger.begin().await?;
        for rendition in renditions {
            sqlx::query("INSERT INTO renditions (id, announcement_id, content) VALUES (?, ?, ?)")
                .bind(rendition.id.to_string())
                .bind(announcement.id.to_string())
                .bind(to_json(&rendition.content)?)
                .execute(&mut *tx)
                .await?;
        }
        insert_deliveries(&mut tx, announcement, deliveries).await?;
        follow_ups::kill_if_resolved(&mut tx, announcement).await?;
        sqlx::query("UPDATE announcements SET planned_through = ? WHERE id = ?")
            .bind(i64::try_from(planned_through).unwrap_or(i64::MAX))
            .bind(announcement.id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn finish_plan(
        &self,
        announcement_id: Uuid,
        idempotency: Option<IdempotencyRecord>,
    ) -> Result<(), StoreError> {
        let _writing = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE announcements SET planning = 0 WHERE id = ?")
            .bind(announcement_id.to_string())
            .execute(&mut *tx)
            .await?;
        if let Some(record) = idempotency {
            sqlx::query(
                "UPDATE idempotency_keys SET status = ?, body = ? WHERE scope = ? AND key = ?",
            )
            .bind(i64::from(record.status))
            .bind(&record.body)
            .bind(&record.scope)
            .bind(&record.key)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn unfinished_plans(&self) -> Result<Vec<UnfinishedPlan>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM announcements WHERE planning = 1 ORDER BY created_at")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| {
                let scope: Option<String> = row.try_get("idempotency_scope")?;
                let key: Option<String> = row.try_get("idempotency_key")?;
                Ok(UnfinishedPlan {
                    announcement: Announcement {
                        id: parse(row.try_get::<&str, _>("id")?, "announcement id")?,
                        crisis_id: parse(row.try_get::<&str, _>("crisis_id")?, "crisis id")?,
                        kind: parse(row.try_get::<&str, _>("kind")?, "announcement kind")?,
                        message: row.try_get("message")?,
                        created_at: from_millis(row.try_get("created_at")?)?,
                        follow_up: row
                            .try_get::<Option<&str>, _>("follow_up")?
                            .map(|text| json(text, "follow-up step"))
                            .transpose()?,
                    },
                    planned_through: u64::try_from(row.try_get::<i64, _>("planned_through")?)
                        .unwrap_or(0),
                    idempotency: scope.zip(key),
                })
            })
            .collect()
    }

    async fn announcement_deliveries(&self, announcement_id: Uuid) -> Result<u64, StoreError> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE announcement_id = ?")
                .bind(announcement_id.to_string())
                .fetch_one(&self.pool)
                .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn mark_sent(
        &self,
        id: DeliveryId,
        owner: &str,
        now: DateTime<Utc>,
        provider_ref: Option<&str>,
    ) -> Result<(), StoreError> {
        self.record_outcomes(
            owner,
            now,
            &[(
                id,
                Outcome::Sent {
                    provider_ref: provider_ref.map(str::to_owned),
                },
            )],
        )
        .await
    }

    async fn mark_retry(
        &self,
        id: DeliveryId,
        owner: &str,
        at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError> {
        self.record_outcomes(
            owner,
            at,
            &[(
                id,
                Outcome::Retry {
                    at,
                    error: error.to_owned(),
                },
            )],
        )
        .await
    }

    async fn mark_dead(
        &self,
        id: DeliveryId,
        owner: &str,
        now: DateTime<Utc>,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.record_outcomes(
            owner,
            now,
            &[(
                id,
                Outcome::Dead {
                    reason: reason.to_owned(),
                },
            )],
        )
        .await
    }

    async fn release(&self, ids: &[DeliveryId], owner: &str) -> Result<(), StoreError> {
        let _writing = self.writer.lock().await;
        let mut tx = self.ledger.begin().await?;
        for id in ids {
            sqlx::query(
                "UPDATE deliveries SET state = CASE WHEN attempts > 1 THEN 'retrying' ELSE 'pending' END, \
                 attempts = attempts - 1, lease_owner = NULL, lease_until = NULL \
                 WHERE id = ? AND state = 'in_flight' AND lease_owner = ?",
            )
            .bind(id.to_string())
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn kill_unroutable(
        &self,
        known_channels: &[String],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let known = to_json(&known_channels)?;
        let _writing = self.writer.lock().await;
        let killed = sqlx::query(
            "UPDATE deliveries SET state = 'dead', finished_at = ?1, lease_owner = NULL, lease_until = NULL, \
             last_error = 'channel `' || channel || '` is not configured' \
             WHERE state IN ('pending', 'retrying', 'in_flight') \
               AND channel NOT IN (SELECT value FROM json_each(?2))",
        )
        .bind(millis(now))
        .bind(known)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(killed)
    }

    async fn finished_since(
        &self,
        crisis: Option<CrisisId>,
        since: DateTime<Utc>,
    ) -> Result<Vec<FinishedCount>, StoreError> {
        let rows = sqlx::query(
            "SELECT crisis_id, channel, COUNT(*) AS n FROM deliveries \
             WHERE state IN ('sent', 'dead') AND finished_at >= ?1 AND (?2 IS NULL OR crisis_id = ?2) \
             GROUP BY crisis_id, channel ORDER BY crisis_id, channel",
        )
        .bind(millis(since))
        .bind(crisis.map(|id| id.to_string()))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(FinishedCount {
                    crisis_id: parse(row.try_get::<&str, _>("crisis_id")?, "crisis id")?,
                    channel: row.try_get("channel")?,
                    count: u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0),
                })
            })
            .collect()
    }

    async fn dead_letters(
        &self,
        crisis: Option<CrisisId>,
        channel: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        // Every way into `dead` sets finished_at; ordering by it lets the
        // (state, finished_at) index serve the newest first.
        let rows = sqlx::query(
            "SELECT id, crisis_id, channel, destination, attempts, \
             COALESCE(finished_at, created_at) AS died_at, last_error FROM deliveries \
             WHERE state = 'dead' AND (?1 IS NULL OR crisis_id = ?1) AND (?2 IS NULL OR channel = ?2) \
             ORDER BY finished_at DESC, id DESC LIMIT ?3",
        )
        .bind(crisis.map(|id| id.to_string()))
        .bind(channel)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(DeadLetter {
                    id: parse(row.try_get::<&str, _>("id")?, "delivery id")?,
                    crisis_id: parse(row.try_get::<&str, _>("crisis_id")?, "crisis id")?,
                    channel: row.try_get("channel")?,
                    destination: row.try_get("destination")?,
                    attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
                    finished_at: from_millis(row.try_get("died_at")?)?,
                    reason: row
                        .try_get::<Option<String>, _>("last_error")?
                        .unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn requeueable_dead(
        &self,
        crisis: Option<CrisisId>,
        channel: Option<&str>,
    ) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM deliveries WHERE {REQUEUEABLE}"
        ))
        .bind(crisis.map(|id| id.to_string()))
        .bind(channel)
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn requeue_dead(
        &self,
        crisis: Option<CrisisId>,
        channel: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        // last_error stays: it says why the delivery died until the next
        // outcome replaces it. finished_at is cleared, so the rate counts
        // the delivery again when it finishes anew.
        let _writing = self.writer.lock().await;
        let requeued = sqlx::query(&format!(
            "UPDATE deliveries SET state = 'pending', attempts = 0, available_at = ?3, \
             finished_at = NULL, lease_owner = NULL, lease_until = NULL WHERE {REQUEUEABLE}"
        ))
        .bind(crisis.map(|id| id.to_string()))
        .bind(channel)
        .bind(millis(now))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(requeued)
    }

    async fn follow_ups(&self, crisis: Option<CrisisId>) -> Result<Vec<FollowUp>, StoreError> {
        self.list_follow_ups(crisis).await
    }

    async fn due_follow_ups(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<FollowUp>, StoreError> {
        self.due(now, limit).await
    }

    async fn next_follow_up_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.next_due().await
    }

    async fn settle_follow_up(
        &self,
        id: Uuid,
        state: FollowUpState,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.settle(id, state, reason, at).await
    }

    async fn start_follow_up(&self, start: super::FollowUpStart) -> Result<bool, StoreError> {
        self.start(start).await
    }

    async fn replace_follow_ups(
        &self,
        replacement: super::FollowUpReplacement,
    ) -> Result<(), StoreError> {
        self.replace(replacement).await
    }
}
