//! What the SQL backends store in a row and read back, shared by SQLite and
//! PostgreSQL: both keep the same columns (times as Unix milliseconds, enums
//! as their words, structured values as JSON text), so each row is read as
//! one `FromRow` struct, generic over the database, and converted into its
//! domain type here, once.

use std::collections::HashMap;
use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::{
    AccountEvent, Announcement, ChannelStateCount, Correctable, DeadCause, DeadLetter, Delivery,
    DeliveryCount, DeliveryState, FinishedCount, HookLogEntry, IdempotencyRecord, NewDelivery,
    OriginalDelivery, OriginalState, Payload, Pending, Personal, PlanLease, Planned, Session,
    SourceLink, StoreError, Submission, Term, UnfinishedPlan,
};
use crate::domain::account::{User, UserName};
use crate::domain::consent::{ConsentScope, ContactPoint, OptOutRequest};
use crate::domain::directory::EntryAvailability;
use crate::domain::follow_up::{FollowUp, Phase};
use crate::domain::{Actor, AnnouncementKind, Crisis, CrisisEvent, CrisisId, EventKind};
use crate::message::DeliveryContent;
use crate::sync::lock;

/// What a retry or a queued message to an opted-out address says.
pub(super) const OPTED_OUT: &str = "the recipient opted out";

/// The one way a row is read: as its `FromRow` struct (borrowing the
/// row's text), then converted into the domain type.
pub(super) fn decode<'r, R, T, Row>(row: &'r Row) -> Result<T, StoreError>
where
    Row: sqlx::Row,
    R: FromRow<'r, Row>,
    T: TryFrom<R, Error = StoreError>,
{
    T::try_from(R::from_row(row)?)
}

pub(super) fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub(super) fn from_millis(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {ms} out of range")))
}

pub(super) fn parse<T: FromStr>(text: &str, what: &str) -> Result<T, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("unreadable {what} `{text}`")))
}

pub(super) fn json<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("unreadable {what}: {e}")))
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A `COUNT(*)` as the count it is.
pub(super) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[derive(sqlx::FromRow)]
pub(super) struct OptOutRow<'r> {
    pub(super) point: &'r str,
    pub(super) address: String,
    pub(super) scope: &'r str,
}

impl TryFrom<OptOutRow<'_>> for (ContactPoint, String, ConsentScope) {
    type Error = StoreError;

    fn try_from(row: OptOutRow<'_>) -> Result<Self, StoreError> {
        let point = ContactPoint::parse(row.point)
            .ok_or_else(|| StoreError::Corrupt("unknown opt-out contact point".into()))?;
        Ok((point, row.address, opt_out_scope(row.scope)?))
    }
}

pub(super) fn opt_out_scope(text: &str) -> Result<ConsentScope, StoreError> {
    ConsentScope::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown opt-out scope `{text}`")))
}

/// The opt-out rows that stop a delivery row (`deliveries`): of its
/// address (emails lower-cased as `opt_out` stores them) and a scope that
/// covers its announcement's kind.
pub(super) fn opted_out_now() -> String {
    format!(
        "EXISTS (SELECT 1 FROM opt_outs WHERE opt_outs.address = lower(deliveries.destination) \
         AND {})",
        ConsentScope::STOPS_SQL
    )
}

/// Records an opt-out, binding point, address, scope, source and time as
/// numbered placeholders (`mark` is `?` for SQLite, `$` for PostgreSQL).
/// A row already there is replaced only as the request allows: a
/// one-click or STOP only widens (follow-ups to everything), the
/// preference page sets what the reader chose. Affects a row only when
/// something changed.
pub(super) fn record_opt_out(request: OptOutRequest, mark: char) -> String {
    let replace = match request {
        OptOutRequest::AtLeast(_) => "excluded.scope = 'all' AND opt_outs.scope <> 'all'",
        OptOutRequest::Exactly(_) => "opt_outs.scope <> excluded.scope",
    };
    format!(
        "INSERT INTO opt_outs (point, address, scope, source, opted_out_at) \
         VALUES ({mark}1, {mark}2, {mark}3, {mark}4, {mark}5) \
         ON CONFLICT (point, address) DO UPDATE SET scope = excluded.scope, \
         source = excluded.source, opted_out_at = excluded.opted_out_at WHERE {replace}"
    )
}

/// Ends dead the queued deliveries to an address that its opt-out now
/// stops: binds the error, the cause, the time, the point and the address.
pub(super) fn end_opted_out(mark: char) -> String {
    format!(
        "UPDATE deliveries SET state = 'dead', last_error = {mark}1, dead_cause = {mark}2, \
         finished_at = {mark}3 \
         WHERE lower(destination) = lower({mark}5) AND state IN ('pending', 'retrying') \
         AND EXISTS (SELECT 1 FROM opt_outs WHERE opt_outs.point = {mark}4 \
             AND opt_outs.address = {mark}5 AND {})",
        ConsentScope::STOPS_SQL
    )
}

#[derive(sqlx::FromRow)]
pub(super) struct CrisisRow<'r> {
    pub(super) id: &'r str,
    pub(super) kind: &'r str,
    pub(super) severity: &'r str,
    pub(super) title: String,
    pub(super) summary: String,
    pub(super) localized: &'r str,
    pub(super) status: &'r str,
    pub(super) version: i64,
    pub(super) last_message: Option<String>,
    pub(super) declared_at: i64,
    pub(super) updated_at: i64,
    pub(super) resolved_at: Option<i64>,
    pub(super) drill: bool,
    pub(super) selection: &'r str,
}

impl TryFrom<CrisisRow<'_>> for Crisis {
    type Error = StoreError;

    fn try_from(row: CrisisRow<'_>) -> Result<Self, StoreError> {
        Ok(Crisis {
            id: parse(row.id, "crisis id")?,
            kind: parse(row.kind, "kind")?,
            severity: parse(row.severity, "severity")?,
            title: row.title,
            summary: row.summary,
            localized: json(row.localized, "localized text")?,
            status: parse(row.status, "status")?,
            version: u32::try_from(row.version)
                .map_err(|_| StoreError::Corrupt("crisis version out of range".into()))?,
            last_message: row.last_message,
            declared_at: from_millis(row.declared_at)?,
            updated_at: from_millis(row.updated_at)?,
            resolved_at: row.resolved_at.map(from_millis).transpose()?,
            drill: row.drill,
            selection: json(row.selection, "audience and channels")?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct EventRow<'r> {
    pub(super) crisis_id: &'r str,
    pub(super) status: &'r str,
    pub(super) kind: Option<&'r str>,
    pub(super) actor_source: &'r str,
    pub(super) actor_name: String,
    pub(super) message: Option<String>,
    pub(super) at: i64,
}

impl TryFrom<EventRow<'_>> for CrisisEvent {
    type Error = StoreError;

    fn try_from(row: EventRow<'_>) -> Result<Self, StoreError> {
        let status = parse(row.status, "status")?;
        Ok(CrisisEvent {
            crisis_id: parse(row.crisis_id, "crisis id")?,
            // An entry from before kinds were kept: its status says it.
            kind: match row.kind {
                Some(kind) => parse(kind, "event kind")?,
                None => EventKind::of(status),
            },
            status,
            actor: Actor {
                source: parse(row.actor_source, "actor source")?,
                name: row.actor_name,
            },
            message: row.message,
            at: from_millis(row.at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct DeadLetterRow<'r> {
    pub(super) id: &'r str,
    pub(super) crisis_id: &'r str,
    pub(super) channel: String,
    pub(super) destination: String,
    pub(super) attempts: i64,
    pub(super) died_at: i64,
    pub(super) dead_cause: &'r str,
    pub(super) last_error: Option<String>,
}

impl TryFrom<DeadLetterRow<'_>> for DeadLetter {
    type Error = StoreError;

    fn try_from(row: DeadLetterRow<'_>) -> Result<Self, StoreError> {
        Ok(DeadLetter {
            id: parse(row.id, "delivery id")?,
            crisis_id: parse(row.crisis_id, "crisis id")?,
            channel: row.channel,
            destination: row.destination,
            attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
            finished_at: from_millis(row.died_at)?,
            cause: parse(row.dead_cause, "dead cause")?,
            reason: row.last_error.unwrap_or_default(),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct FollowUpRow<'r> {
    pub(super) id: &'r str,
    pub(super) crisis_id: &'r str,
    pub(super) occurrence: i64,
    pub(super) due_at: i64,
    pub(super) spec: &'r str,
    pub(super) state: &'r str,
    pub(super) reason: Option<String>,
    pub(super) announcement_id: Option<&'r str>,
    pub(super) settled_at: Option<i64>,
}

impl TryFrom<FollowUpRow<'_>> for FollowUp {
    type Error = StoreError;

    fn try_from(row: FollowUpRow<'_>) -> Result<Self, StoreError> {
        Ok(FollowUp {
            id: parse(row.id, "follow-up id")?,
            crisis_id: parse(row.crisis_id, "crisis id")?,
            occurrence: u32::try_from(row.occurrence).unwrap_or(0),
            due_at: from_millis(row.due_at)?,
            spec: json(row.spec, "follow-up step")?,
            state: parse(row.state, "follow-up state")?,
            reason: row.reason,
            announcement_id: row
                .announcement_id
                .map(|id| parse(id, "announcement id"))
                .transpose()?,
            settled_at: row.settled_at.map(from_millis).transpose()?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct PendingRow<'r> {
    pub(super) id: &'r str,
    pub(super) hook: String,
    pub(super) external_id: String,
    pub(super) state: &'r str,
    pub(super) declaration: &'r str,
    pub(super) due_at: Option<i64>,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    pub(super) decided_by: Option<String>,
}

impl TryFrom<PendingRow<'_>> for Pending {
    type Error = StoreError;

    fn try_from(row: PendingRow<'_>) -> Result<Self, StoreError> {
        Ok(Pending {
            id: parse(row.id, "pending id")?,
            hook: row.hook,
            external_id: row.external_id,
            state: parse(row.state, "pending state")?,
            declaration: json(row.declaration, "pending declaration")?,
            due_at: row.due_at.map(from_millis).transpose()?,
            created_at: from_millis(row.created_at)?,
            updated_at: from_millis(row.updated_at)?,
            decided_by: row.decided_by,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct HookLogRow<'r> {
    pub(super) seq: i64,
    pub(super) hook: String,
    pub(super) source: String,
    pub(super) received_at: i64,
    pub(super) status: i64,
    pub(super) verdict: &'r str,
    pub(super) transitions: &'r str,
    pub(super) error: Option<String>,
    pub(super) delivery_id: Option<String>,
}

impl TryFrom<HookLogRow<'_>> for HookLogEntry {
    type Error = StoreError;

    fn try_from(row: HookLogRow<'_>) -> Result<Self, StoreError> {
        Ok(HookLogEntry {
            seq: row.seq,
            hook: row.hook,
            source: row.source,
            received_at: from_millis(row.received_at)?,
            status: u16::try_from(row.status).unwrap_or(0),
            verdict: parse(row.verdict, "webhook verdict")?,
            transitions: json(row.transitions, "hook transitions")?,
            error: row.error,
            delivery_id: row.delivery_id,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct IdempotencyRow {
    pub(super) scope: String,
    pub(super) key: String,
    pub(super) fingerprint: String,
    pub(super) status: i64,
    pub(super) body: String,
}

impl TryFrom<IdempotencyRow> for IdempotencyRecord {
    type Error = StoreError;

    fn try_from(row: IdempotencyRow) -> Result<Self, StoreError> {
        Ok(IdempotencyRecord {
            scope: row.scope,
            key: row.key,
            fingerprint: row.fingerprint,
            status: u16::try_from(row.status)
                .map_err(|_| StoreError::Corrupt("idempotency status out of range".into()))?,
            body: row.body,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct DeliveryCountRow<'r> {
    pub(super) crisis_id: &'r str,
    pub(super) channel: String,
    pub(super) state: &'r str,
    pub(super) n: i64,
}

impl TryFrom<DeliveryCountRow<'_>> for DeliveryCount {
    type Error = StoreError;

    fn try_from(row: DeliveryCountRow<'_>) -> Result<Self, StoreError> {
        Ok(DeliveryCount {
            crisis_id: parse(row.crisis_id, "crisis id")?,
            channel: row.channel,
            state: parse(row.state, "delivery state")?,
            count: count(row.n),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ChannelStateCountRow<'r> {
    pub(super) channel: String,
    pub(super) state: &'r str,
    pub(super) n: i64,
}

impl TryFrom<ChannelStateCountRow<'_>> for ChannelStateCount {
    type Error = StoreError;

    fn try_from(row: ChannelStateCountRow<'_>) -> Result<Self, StoreError> {
        Ok(ChannelStateCount {
            channel: row.channel,
            state: parse(row.state, "delivery state")?,
            count: count(row.n),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct FinishedCountRow<'r> {
    pub(super) crisis_id: &'r str,
    pub(super) channel: String,
    pub(super) n: i64,
}

impl TryFrom<FinishedCountRow<'_>> for FinishedCount {
    type Error = StoreError;

    fn try_from(row: FinishedCountRow<'_>) -> Result<Self, StoreError> {
        Ok(FinishedCount {
            crisis_id: parse(row.crisis_id, "crisis id")?,
            channel: row.channel,
            count: count(row.n),
        })
    }
}

/// Columns of one delivery row, in insert order.
pub(super) const INSERT_COLUMNS: &str = "INSERT INTO deliveries (id, crisis_id, announcement_id, kind, channel, recipient_id, \
     destination, locale, content, priority, state, attempts, available_at, last_error, dead_cause, created_at, \
     finished_at, rendition_id, recipient_name, unsubscribe_url, ordinal, reached_only) ";

/// What one delivery row stores beyond the delivery's own fields.
pub(super) struct RowValues<'a> {
    pub(super) delivery: &'a NewDelivery,
    pub(super) state: DeliveryState,
    /// The inline message as JSON; empty for a rendition's reader and for
    /// a delivery planned dead.
    pub(super) content: String,
    pub(super) rendition: Option<(String, Option<&'a str>, Option<&'a str>)>,
    pub(super) available_at: i64,
    pub(super) finished_at: Option<i64>,
    pub(super) dead: Option<(&'static str, &'a str)>,
}

impl<'a> RowValues<'a> {
    pub(super) fn of(delivery: &'a NewDelivery, now: i64) -> Result<Self, StoreError> {
        let mut values = Self {
            delivery,
            state: DeliveryState::Pending,
            content: String::new(),
            rendition: None,
            available_at: now,
            finished_at: None,
            dead: None,
        };
        match &delivery.planned {
            Planned::Queued {
                payload,
                not_before,
            } => {
                if let Some(at) = not_before {
                    values.available_at = millis(*at).max(now);
                }
                match payload {
                    Payload::Inline(content) => values.content = to_json(content)?,
                    Payload::Rendition {
                        id,
                        recipient_name,
                        unsubscribe_url,
                    } => {
                        values.rendition = Some((
                            id.to_string(),
                            recipient_name.as_deref(),
                            unsubscribe_url.as_deref(),
                        ));
                    }
                }
            }
            Planned::Dead { cause, reason } => {
                values.state = DeliveryState::Dead;
                values.finished_at = Some(now);
                values.dead = Some((cause.as_str(), reason));
            }
        }
        Ok(values)
    }
}

/// An announcement still planning, as `announcements` stores it.
#[derive(sqlx::FromRow)]
pub(super) struct UnfinishedPlanRow<'r> {
    pub(super) id: &'r str,
    pub(super) crisis_id: &'r str,
    pub(super) kind: &'r str,
    pub(super) message: Option<String>,
    pub(super) created_at: i64,
    pub(super) follow_up: Option<&'r str>,
    pub(super) planned_through: i64,
    pub(super) idempotency_scope: Option<String>,
    pub(super) idempotency_key: Option<String>,
    pub(super) reached_only: bool,
    pub(super) plan_owner: Option<String>,
    pub(super) plan_lease_until: Option<i64>,
    pub(super) question: Option<String>,
}

impl TryFrom<UnfinishedPlanRow<'_>> for UnfinishedPlan {
    type Error = StoreError;

    fn try_from(row: UnfinishedPlanRow<'_>) -> Result<Self, StoreError> {
        Ok(UnfinishedPlan {
            announcement: Announcement {
                id: parse(row.id, "announcement id")?,
                crisis_id: parse(row.crisis_id, "crisis id")?,
                kind: parse(row.kind, "announcement kind")?,
                message: row.message,
                created_at: from_millis(row.created_at)?,
                follow_up: row
                    .follow_up
                    .map(|text| json(text, "follow-up step"))
                    .transpose()?,
                reached_only: row.reached_only,
                question: row.question,
            },
            planned_through: count(row.planned_through),
            idempotency: row.idempotency_scope.zip(row.idempotency_key),
            lease: match (row.plan_owner, row.plan_lease_until) {
                (Some(owner), Some(until)) => Some(PlanLease {
                    owner,
                    until: from_millis(until)?,
                }),
                _ => None,
            },
        })
    }
}

/// What a claim returns of each row: `DeliveryRow`'s columns.
pub(super) const DELIVERY_COLUMNS: &str = "id, crisis_id, announcement_id, kind, channel, recipient_id, destination, \
     locale, content, state, attempts, available_at, last_error, created_at, rendition_id, recipient_name, \
     unsubscribe_url";

/// A claimed delivery as stored: its own message (`content`), or empty and
/// a rendition shared with other readers.
#[derive(FromRow)]
pub(super) struct DeliveryRow<'r> {
    pub(super) id: &'r str,
    pub(super) crisis_id: &'r str,
    pub(super) announcement_id: &'r str,
    pub(super) kind: &'r str,
    pub(super) channel: String,
    pub(super) recipient_id: Option<String>,
    pub(super) destination: String,
    pub(super) locale: String,
    pub(super) content: &'r str,
    pub(super) state: &'r str,
    pub(super) attempts: i64,
    pub(super) available_at: i64,
    pub(super) last_error: Option<String>,
    pub(super) created_at: i64,
    pub(super) rendition_id: Option<&'r str>,
    pub(super) recipient_name: Option<String>,
    pub(super) unsubscribe_url: Option<String>,
}

/// A row and the message it sends (its own, or its rendition's, decoded
/// once for all its readers).
impl TryFrom<(DeliveryRow<'_>, Arc<DeliveryContent>)> for Delivery {
    type Error = StoreError;

    fn try_from(
        (row, content): (DeliveryRow<'_>, Arc<DeliveryContent>),
    ) -> Result<Self, StoreError> {
        let personal = match row.rendition_id {
            Some(rendition) => Some(Personal {
                rendition: parse(rendition, "rendition id")?,
                recipient_name: row.recipient_name,
                unsubscribe_url: row.unsubscribe_url,
                answer_url: None,
            }),
            None => None,
        };
        Ok(Delivery {
            id: parse(row.id, "delivery id")?,
            crisis_id: parse(row.crisis_id, "crisis id")?,
            announcement_id: parse(row.announcement_id, "announcement id")?,
            kind: parse(row.kind, "announcement kind")?,
            channel: row.channel,
            recipient_id: row.recipient_id,
            destination: row.destination,
            locale: row.locale,
            content,
            personal,
            state: parse(row.state, "delivery state")?,
            attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
            available_at: from_millis(row.available_at)?,
            last_error: row.last_error,
            created_at: from_millis(row.created_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SourceLinkRow<'r> {
    pub(super) source: String,
    pub(super) external_id: String,
    pub(super) crisis_id: &'r str,
    pub(super) fingerprint: String,
}

impl TryFrom<SourceLinkRow<'_>> for SourceLink {
    type Error = StoreError;

    fn try_from(row: SourceLinkRow<'_>) -> Result<Self, StoreError> {
        Ok(SourceLink {
            source: row.source,
            external_id: row.external_id,
            crisis_id: parse(row.crisis_id, "crisis id")?,
            fingerprint: row.fingerprint,
        })
    }
}

/// Renditions kept decoded in memory; a crisis has a few dozen.
const RENDITION_CACHE: usize = 4096;

/// Decoded renditions by id, so a claim does not parse the same message
/// for every reader.
#[derive(Debug, Clone, Default)]
pub(super) struct RenditionCache(Arc<Mutex<HashMap<String, Arc<DeliveryContent>>>>);

impl RenditionCache {
    /// The rendition `id`, decoded once: from the cache, or from its
    /// stored text, which `fetch` reads.
    async fn get<F, Fut>(&self, id: &str, fetch: &F) -> Result<Arc<DeliveryContent>, StoreError>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<Option<String>, StoreError>>,
    {
        if let Some(content) = lock(&self.0).get(id) {
            return Ok(content.clone());
        }
        let text = fetch(id.to_owned())
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("rendition {id} is missing")))?;
        let content: Arc<DeliveryContent> = Arc::new(json(&text, "rendition")?);
        let mut cache = lock(&self.0);
        if cache.len() >= RENDITION_CACHE {
            cache.clear();
        }
        cache.insert(id.to_owned(), content.clone());
        Ok(content)
    }

    /// Claimed rows as deliveries, each with its message: its own, or its
    /// rendition's (`fetch` reads a rendition's text the cache lacks).
    pub(super) async fn claimed<'r, Row, F, Fut>(
        &self,
        rows: &'r [Row],
        fetch: F,
    ) -> Result<Vec<Delivery>, StoreError>
    where
        Row: sqlx::Row,
        DeliveryRow<'r>: FromRow<'r, Row>,
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<Option<String>, StoreError>>,
    {
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let row = DeliveryRow::from_row(row)?;
            let content = match row.rendition_id {
                Some(rendition) => self.get(rendition, &fetch).await?,
                None => Arc::new(json(row.content, "delivery content")?),
            };
            claimed.push(Delivery::try_from((row, content))?);
        }
        Ok(claimed)
    }
}

/// Dead deliveries that can be sent again: of a cause that allows it, and
/// not to an address that opted out (since): sending it would ignore the
/// opt-out. Addresses are matched as `opt_out` stores them (emails
/// lower-cased, both trimmed), which the `(point, address)` key serves.
/// `crisis` and `channel` are the placeholders of the optional filters.
pub(super) fn requeueable(crisis: &str, channel: &str) -> String {
    let causes: Vec<String> = DeadCause::ALL
        .iter()
        .filter(|cause| cause.requeueable())
        .map(|cause| format!("'{}'", cause.as_str()))
        .collect();
    format!(
        "state = 'dead' AND dead_cause IN ({}) \
         AND NOT EXISTS (SELECT 1 FROM opt_outs WHERE opt_outs.point IN ('email', 'phone') \
             AND opt_outs.address IN (lower(trim(deliveries.destination)), trim(deliveries.destination)) \
             AND {}) \
         AND ({crisis} IS NULL OR crisis_id = {crisis}) AND ({channel} IS NULL OR channel = {channel})",
        causes.join(", "),
        ConsentScope::STOPS_SQL
    )
}

/// The migrations a database has applied; none when it has no migrations
/// table yet.
pub(super) async fn applied_migrations<'c, E>(executor: E) -> Result<Vec<i64>, StoreError>
where
    E: sqlx::Executor<'c>,
    i64: for<'r> sqlx::Decode<'r, E::Database> + sqlx::Type<E::Database>,
    for<'q> <E::Database as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, E::Database>,
    (i64,): for<'r> FromRow<'r, <E::Database as sqlx::Database>::Row>,
{
    match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
        .fetch_all(executor)
        .await
    {
        Ok(versions) => Ok(versions),
        // No migrations table: a database this binary never opened.
        Err(sqlx::Error::Database(e)) if e.message().contains("_sqlx_migrations") => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// `migrator`'s migrations missing from `applied`, by file name.
pub(super) fn missing(migrator: &sqlx::migrate::Migrator, applied: &[i64]) -> Vec<String> {
    migrator
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .map(|m| format!("{:04}_{}", m.version, m.description.replace(' ', "_")))
        .collect()
}

#[derive(sqlx::FromRow)]
pub(super) struct UserRow<'r> {
    pub(super) name: &'r str,
    pub(super) role: &'r str,
    pub(super) password_hash: String,
    pub(super) created_at: i64,
}

impl TryFrom<UserRow<'_>> for User {
    type Error = StoreError;

    fn try_from(row: UserRow<'_>) -> Result<Self, StoreError> {
        Ok(User {
            name: parse(row.name, "user name")?,
            role: parse(row.role, "role")?,
            password_hash: row.password_hash,
            created_at: from_millis(row.created_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SessionRow<'r> {
    pub(super) token_digest: String,
    pub(super) user_name: &'r str,
    pub(super) role: &'r str,
    pub(super) csrf: String,
    pub(super) created_at: i64,
    pub(super) last_seen_at: i64,
}

impl TryFrom<SessionRow<'_>> for Session {
    type Error = StoreError;

    fn try_from(row: SessionRow<'_>) -> Result<Self, StoreError> {
        Ok(Session {
            token_digest: row.token_digest,
            user: parse(row.user_name, "user name")?,
            role: parse(row.role, "role")?,
            csrf: row.csrf,
            created_at: from_millis(row.created_at)?,
            last_seen_at: from_millis(row.last_seen_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct AccountEventRow<'r> {
    pub(super) at: i64,
    pub(super) kind: &'r str,
    pub(super) user_name: String,
    pub(super) detail: String,
}

impl TryFrom<AccountEventRow<'_>> for AccountEvent {
    type Error = StoreError;

    fn try_from(row: AccountEventRow<'_>) -> Result<Self, StoreError> {
        Ok(AccountEvent {
            at: from_millis(row.at)?,
            kind: parse(row.kind, "account event")?,
            user: row.user_name,
            detail: row.detail,
        })
    }
}

/// Whether `announcement` was made before its crisis's all-clear (the
/// initial one, an update, a follow-up of the active phase): its messages
/// still queued when the all-clear comes are not sent after it.
pub(super) fn made_before_the_all_clear(announcement: &Announcement) -> bool {
    match announcement.kind {
        AnnouncementKind::Initial | AnnouncementKind::Update => true,
        AnnouncementKind::FollowUp => announcement
            .follow_up
            .as_ref()
            .is_some_and(|spec| spec.phase == Phase::Active),
        // A correction still goes after the all-clear: people must learn
        // what they were told in error.
        AnnouncementKind::Resolved | AnnouncementKind::Correction => false,
    }
}

/// SQL shared by both backends' claims (portable between SQLite and
/// PostgreSQL), over a delivery `d`.
/// All-clears a claim may cancel (their readers got nothing earlier) before
/// it commits; more wait for the next claim, which is asked for at once.
pub(super) const MAX_CANCELLED_PER_CLAIM: usize = 4096;

/// A delivery is held back while an earlier message of its crisis to the
/// same destination on the same channel is unfinished: announcements reach
/// each reader in order. A follow-up (priority 2) holds back only later
/// follow-ups, so a step held by quiet hours never delays an update. One
/// range of `deliveries_by_reader`; empty for a crisis's first message. A
/// correction (priority 0) waits only for an earlier correction.
pub(super) const HELD_BACK: &str = "EXISTS (SELECT 1 FROM deliveries AS earlier \
     WHERE earlier.crisis_id = d.crisis_id AND earlier.channel = d.channel \
       AND earlier.destination = d.destination AND earlier.ordinal < d.ordinal \
       AND earlier.priority <= d.priority AND earlier.state IN ('pending', 'in_flight', 'retrying'))";

/// A delivery meant only for readers reached before (the all-clear) whose
/// reader got no earlier message of the crisis on this channel.
pub(super) const UNREACHED: &str = "CASE WHEN d.reached_only THEN NOT EXISTS (SELECT 1 FROM deliveries AS earlier \
     WHERE earlier.crisis_id = d.crisis_id AND earlier.channel = d.channel \
       AND earlier.destination = d.destination AND earlier.ordinal < d.ordinal \
       AND earlier.state = 'sent') ELSE false END";

/// The lead as `leader` stores it.
#[derive(sqlx::FromRow)]
pub(super) struct TermRow {
    pub(super) node: String,
    pub(super) term: i64,
    pub(super) elected_at: i64,
    pub(super) expires_at: i64,
}

impl TryFrom<TermRow> for Term {
    type Error = StoreError;

    fn try_from(row: TermRow) -> Result<Self, StoreError> {
        Ok(Term {
            node: row.node,
            term: count(row.term),
            elected_at: from_millis(row.elected_at)?,
            expires_at: from_millis(row.expires_at)?,
        })
    }
}

/// A lease's end, `ttl` after `now`.
pub(super) fn lease_end(now: DateTime<Utc>, ttl: std::time::Duration) -> i64 {
    millis(now).saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}

#[derive(sqlx::FromRow)]
pub(super) struct SubmissionRow<'r> {
    pub(super) id: &'r str,
    pub(super) draft: &'r str,
    pub(super) content_hash: String,
    pub(super) author: &'r str,
    pub(super) state: &'r str,
    pub(super) approved_by: Option<&'r str>,
    pub(super) approved_hash: Option<String>,
    pub(super) crisis_id: Option<&'r str>,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
}

impl TryFrom<SubmissionRow<'_>> for Submission {
    type Error = StoreError;

    fn try_from(row: SubmissionRow<'_>) -> Result<Self, StoreError> {
        Ok(Submission {
            id: parse(row.id, "submission id")?,
            draft: json(row.draft, "draft")?,
            content_hash: row.content_hash,
            author: parse(row.author, "user name")?,
            state: parse(row.state, "submission state")?,
            approved_by: row
                .approved_by
                .map(|name| parse::<UserName>(name, "user name"))
                .transpose()?,
            approved_hash: row.approved_hash,
            crisis: row
                .crisis_id
                .map(|id| parse::<CrisisId>(id, "crisis id"))
                .transpose()?,
            created_at: from_millis(row.created_at)?,
            updated_at: from_millis(row.updated_at)?,
        })
    }
}

/// The announcements a correction may be of, `$1`/`?1` the crisis: both
/// backends read them with this one statement.
pub(super) const CORRECTABLE: &str = "SELECT a.id, a.kind, a.created_at, COUNT(*) AS sent \
     FROM announcements AS a JOIN deliveries AS d ON d.announcement_id = a.id \
     WHERE a.crisis_id = $1 AND a.kind != 'correction' AND d.state IN ('sent', 'in_flight') \
     GROUP BY a.id, a.kind, a.created_at, a.ordinal ORDER BY a.ordinal DESC";

/// An original's deliveries a correction is about, `$1` the announcement.
pub(super) const ORIGINALS: &str = "SELECT channel, recipient_id, destination, locale, \
     recipient_name, unsubscribe_url, state, finished_at FROM deliveries \
     WHERE announcement_id = $1 AND state IN ('pending', 'retrying', 'in_flight', 'sent')";

/// Stops an original's queued deliveries: `$1` the announcement, `$2` the
/// cause, `$3` the reason, `$4` now.
pub(super) const STOP_ORIGINALS: &str = "UPDATE deliveries SET state = 'dead', dead_cause = $2, \
     last_error = $3, finished_at = $4, lease_owner = NULL, lease_until = NULL \
     WHERE announcement_id = $1 AND state IN ('pending', 'retrying')";

/// The newest correction of a crisis recorded at or after a time: `$1`
/// the crisis, `$2` the time.
pub(super) const RECENT_CORRECTION: &str = "SELECT MAX(created_at) FROM announcements \
     WHERE crisis_id = $1 AND kind = 'correction' AND created_at >= $2";

/// Marks an announcement corrected: `$1` the announcement, `$2` now. What
/// of it was in flight then is never tried again (`CORRECTED_NOW`).
pub(super) const MARK_CORRECTED: &str = "UPDATE announcements SET corrected_at = $2 WHERE id = $1";

/// True of a delivery row (`deliveries`) whose announcement a correction
/// stopped. A delivery in flight when the correction came counts as sent
/// (the correction goes to its reader too); if that attempt fails, or its
/// lease is given back or expires, it must end dead, `Corrected`, rather
/// than reach the reader after its own correction.
pub(super) const CORRECTED_NOW: &str = "EXISTS (SELECT 1 FROM announcements AS a \
     WHERE a.id = deliveries.announcement_id AND a.corrected_at IS NOT NULL)";

#[derive(sqlx::FromRow)]
pub(super) struct CorrectableRow<'r> {
    pub(super) id: &'r str,
    pub(super) kind: &'r str,
    pub(super) created_at: i64,
    pub(super) sent: i64,
}

impl TryFrom<CorrectableRow<'_>> for Correctable {
    type Error = StoreError;

    fn try_from(row: CorrectableRow<'_>) -> Result<Self, StoreError> {
        Ok(Correctable {
            id: parse(row.id, "announcement id")?,
            kind: parse(row.kind, "announcement kind")?,
            created_at: from_millis(row.created_at)?,
            sent: count(row.sent),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct OriginalRow<'r> {
    pub(super) channel: String,
    pub(super) recipient_id: Option<String>,
    pub(super) destination: String,
    pub(super) locale: String,
    pub(super) recipient_name: Option<String>,
    pub(super) unsubscribe_url: Option<String>,
    pub(super) state: &'r str,
    pub(super) finished_at: Option<i64>,
}

impl TryFrom<OriginalRow<'_>> for OriginalDelivery {
    type Error = StoreError;

    fn try_from(row: OriginalRow<'_>) -> Result<Self, StoreError> {
        let state = match (row.state, row.finished_at) {
            ("sent", Some(at)) => OriginalState::Sent(from_millis(at)?),
            ("in_flight", _) => OriginalState::InFlight,
            ("pending" | "retrying", _) => OriginalState::Stopped,
            (other, _) => {
                return Err(StoreError::Corrupt(format!(
                    "delivery in state `{other}` without its time"
                )));
            }
        };
        Ok(OriginalDelivery {
            channel: row.channel,
            recipient_id: row.recipient_id,
            destination: row.destination,
            locale: row.locale,
            recipient_name: row.recipient_name,
            unsubscribe_url: row.unsubscribe_url,
            state,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct AvailabilityRow {
    pub(super) entry: String,
    pub(super) available: i64,
    pub(super) reason: Option<String>,
    pub(super) changed_by: String,
    pub(super) changed_at: i64,
}

impl TryFrom<AvailabilityRow> for EntryAvailability {
    type Error = StoreError;

    fn try_from(row: AvailabilityRow) -> Result<Self, StoreError> {
        Ok(EntryAvailability {
            entry: row.entry,
            available: row.available != 0,
            reason: row.reason,
            changed_by: row.changed_by,
            changed_at: from_millis(row.changed_at)?,
        })
    }
}

/// The columns of `directory_availability` and its log, in this order.
pub(super) const AVAILABILITY_COLUMNS: &str = "entry, available, reason, changed_by, changed_at";
