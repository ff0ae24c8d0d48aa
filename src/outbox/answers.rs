//! Answers to questions: what readers replied (by SMS, matched to the
//! latest open question sent to their number, or by a signed link in an
//! email), the tallies per answer, and the callback list of urgent ones.
//! The SQL is shared by both backends, written with `$n` placeholders
//! (SQLite reads them as `?n`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::StoreError;
use super::rows::{from_millis, parse};
use crate::domain::consent::ContactPoint;
use crate::domain::{AnnouncementId, CrisisId, DeliveryId};

/// The latest message sent to an address that carried a question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    pub crisis_id: CrisisId,
    pub announcement_id: AnnouncementId,
    /// Its key in `[answers.questions]`.
    pub question: String,
    pub locale: String,
    pub sent_at: DateTime<Utc>,
}

/// The delivery an email's answer link names, when its announcement asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AskedDelivery {
    /// `sent_at` is when it was sent, or planned if its outcome is not
    /// written yet (a reader may click before the recorder writes it).
    pub asked: Asked,
    pub destination: String,
    pub channel: String,
}

/// The latest message sent to an address, question or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastSent {
    pub crisis_id: CrisisId,
    pub locale: String,
}

/// One reply to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAnswer {
    pub id: uuid::Uuid,
    /// None for a reply from an address no crisis message reached.
    pub crisis_id: Option<CrisisId>,
    pub announcement_id: Option<AnnouncementId>,
    pub question: Option<String>,
    pub point: ContactPoint,
    pub address: String,
    pub locale: String,
    /// The channel it came in on (`email` for an answer link).
    pub channel: String,
    /// The choice, or None for free text.
    pub answer: Option<u8>,
    pub text: String,
    pub urgent: bool,
    /// The provider's id for the reply: recorded once per channel.
    pub message_ref: Option<String>,
    pub received_at: DateTime<Utc>,
}

/// A recorded reply, as the callback list and the API show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnswerRecord {
    pub id: String,
    pub crisis_id: Option<String>,
    pub question: Option<String>,
    pub point: String,
    pub address: String,
    pub locale: String,
    pub channel: String,
    pub answer: Option<u8>,
    pub text: String,
    pub urgent: bool,
    pub received_at: DateTime<Utc>,
}

/// How many readers gave one answer to one question of a crisis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub question: Option<String>,
    /// None: free text.
    pub answer: Option<u8>,
    pub urgent: bool,
    pub count: u64,
}

/// Which replies to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnswerFilter {
    pub crisis: Option<CrisisId>,
    /// Only the callback list.
    pub urgent_only: bool,
    pub limit: u32,
}

#[async_trait]
pub trait AnswerStore: Send + Sync + 'static {
    /// The latest message sent to `address` since `since` that carried a
    /// question.
    async fn asked(&self, address: &str, since: DateTime<Utc>)
    -> Result<Option<Asked>, StoreError>;
    /// The delivery `delivery`, if its announcement carries a question.
    async fn asked_delivery(
        &self,
        delivery: DeliveryId,
    ) -> Result<Option<AskedDelivery>, StoreError>;
    /// The latest message sent to `address`.
    async fn last_sent(&self, address: &str) -> Result<Option<LastSent>, StoreError>;
    /// Records a reply; false when the provider's id was recorded already
    /// (a retried webhook), which changes nothing.
    async fn record_answer(&self, answer: &NewAnswer) -> Result<bool, StoreError>;
    async fn answers(&self, filter: &AnswerFilter) -> Result<Vec<AnswerRecord>, StoreError>;
    async fn tallies(&self, crisis: CrisisId) -> Result<Vec<Tally>, StoreError>;
}

pub(super) const ASKED: &str = "SELECT d.crisis_id, d.announcement_id, a.question, d.locale, d.finished_at \
     FROM deliveries d JOIN announcements a ON a.id = d.announcement_id \
     WHERE d.destination = $1 AND d.state = 'sent' AND d.finished_at >= $2 \
     AND a.question IS NOT NULL ORDER BY d.finished_at DESC LIMIT 1";

pub(super) const ASKED_DELIVERY: &str = "SELECT d.crisis_id, d.announcement_id, a.question, d.locale, \
     COALESCE(d.finished_at, d.created_at) AS finished_at, d.destination, d.channel \
     FROM deliveries d JOIN announcements a ON a.id = d.announcement_id \
     WHERE d.id = $1 AND a.question IS NOT NULL";

pub(super) const LAST_SENT: &str = "SELECT crisis_id, locale FROM deliveries \
     WHERE destination = $1 AND state = 'sent' AND finished_at IS NOT NULL \
     ORDER BY finished_at DESC LIMIT 1";

pub(super) const RECORD: &str = "INSERT INTO answers (id, crisis_id, announcement_id, question, \
     point, address, locale, channel, answer, text, urgent, message_ref, received_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING";

pub(super) const TALLIES: &str = "SELECT question, answer, urgent, COUNT(*) AS count FROM answers \
     WHERE crisis_id = $1 GROUP BY question, answer, urgent \
     ORDER BY question IS NULL, question, answer IS NULL, answer";

const ANSWER_COLUMNS: &str = "id, crisis_id, question, point, address, locale, channel, answer, \
     text, urgent, received_at";

/// The list query for `filter`, with `$1` the crisis (when filtered)
/// and the last placeholder the limit.
pub(super) fn list_sql(filter: &AnswerFilter) -> String {
    let mut conditions = Vec::new();
    if filter.crisis.is_some() {
        conditions.push("crisis_id = $1");
    }
    if filter.urgent_only {
        conditions.push("urgent");
    }
    let limit = if filter.crisis.is_some() { "$2" } else { "$1" };
    let condition = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {} ", conditions.join(" AND "))
    };
    format!(
        "SELECT {ANSWER_COLUMNS} FROM answers {condition}ORDER BY received_at DESC, id DESC LIMIT {limit}"
    )
}

#[derive(sqlx::FromRow)]
pub(super) struct AskedRow {
    crisis_id: String,
    announcement_id: String,
    question: String,
    locale: String,
    finished_at: i64,
}

impl TryFrom<AskedRow> for Asked {
    type Error = StoreError;

    fn try_from(row: AskedRow) -> Result<Self, StoreError> {
        Ok(Asked {
            crisis_id: parse(&row.crisis_id, "crisis id")?,
            announcement_id: parse(&row.announcement_id, "announcement id")?,
            question: row.question,
            locale: row.locale,
            sent_at: from_millis(row.finished_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct AskedDeliveryRow {
    #[sqlx(flatten)]
    asked: AskedRow,
    destination: String,
    channel: String,
}

impl TryFrom<AskedDeliveryRow> for AskedDelivery {
    type Error = StoreError;

    fn try_from(row: AskedDeliveryRow) -> Result<Self, StoreError> {
        Ok(AskedDelivery {
            asked: row.asked.try_into()?,
            destination: row.destination,
            channel: row.channel,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct LastSentRow {
    crisis_id: String,
    locale: String,
}

impl TryFrom<LastSentRow> for LastSent {
    type Error = StoreError;

    fn try_from(row: LastSentRow) -> Result<Self, StoreError> {
        Ok(LastSent {
            crisis_id: parse(&row.crisis_id, "crisis id")?,
            locale: row.locale,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct AnswerRow {
    id: String,
    crisis_id: Option<String>,
    question: Option<String>,
    point: String,
    address: String,
    locale: String,
    channel: String,
    answer: Option<i32>,
    text: String,
    urgent: bool,
    received_at: i64,
}

impl TryFrom<AnswerRow> for AnswerRecord {
    type Error = StoreError;

    fn try_from(row: AnswerRow) -> Result<Self, StoreError> {
        Ok(AnswerRecord {
            id: row.id,
            crisis_id: row.crisis_id,
            question: row.question,
            point: row.point,
            address: row.address,
            locale: row.locale,
            channel: row.channel,
            answer: row.answer.and_then(|a| u8::try_from(a).ok()),
            text: row.text,
            urgent: row.urgent,
            received_at: from_millis(row.received_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct TallyRow {
    question: Option<String>,
    answer: Option<i32>,
    urgent: bool,
    count: i64,
}

impl From<TallyRow> for Tally {
    fn from(row: TallyRow) -> Self {
        Tally {
            question: row.question,
            answer: row.answer.and_then(|a| u8::try_from(a).ok()),
            urgent: row.urgent,
            count: u64::try_from(row.count).unwrap_or(0),
        }
    }
}

/// Implements `AnswerStore` for a backend over its pool, with its
/// placeholder style and writer discipline.
macro_rules! answer_store {
    ($store:ty, $sql:expr, |$self_:ident| $write_guard:expr, $pool:ident) => {
        #[async_trait::async_trait]
        impl $crate::outbox::AnswerStore for $store {
            async fn asked(
                &self,
                address: &str,
                since: chrono::DateTime<chrono::Utc>,
            ) -> Result<Option<$crate::outbox::Asked>, $crate::outbox::StoreError> {
                use $crate::outbox::answers::AskedRow;
                let row: Option<AskedRow> = sqlx::query_as(&$sql($crate::outbox::answers::ASKED))
                    .bind(address)
                    .bind($crate::outbox::rows::millis(since))
                    .fetch_optional(&self.$pool)
                    .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn asked_delivery(
                &self,
                delivery: $crate::domain::DeliveryId,
            ) -> Result<Option<$crate::outbox::AskedDelivery>, $crate::outbox::StoreError> {
                use $crate::outbox::answers::AskedDeliveryRow;
                let row: Option<AskedDeliveryRow> =
                    sqlx::query_as(&$sql($crate::outbox::answers::ASKED_DELIVERY))
                        .bind(delivery.to_string())
                        .fetch_optional(&self.$pool)
                        .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn last_sent(
                &self,
                address: &str,
            ) -> Result<Option<$crate::outbox::LastSent>, $crate::outbox::StoreError> {
                use $crate::outbox::answers::LastSentRow;
                let row: Option<LastSentRow> =
                    sqlx::query_as(&$sql($crate::outbox::answers::LAST_SENT))
                        .bind(address)
                        .fetch_optional(&self.$pool)
                        .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn record_answer(
                &self,
                answer: &$crate::outbox::NewAnswer,
            ) -> Result<bool, $crate::outbox::StoreError> {
                let $self_ = self;
                let _writing = $write_guard;
                let inserted = sqlx::query(&$sql($crate::outbox::answers::RECORD))
                    .bind(answer.id.to_string())
                    .bind(answer.crisis_id.map(|id| id.to_string()))
                    .bind(answer.announcement_id.map(|id| id.to_string()))
                    .bind(answer.question.as_deref())
                    .bind(answer.point.as_str())
                    .bind(&answer.address)
                    .bind(&answer.locale)
                    .bind(&answer.channel)
                    .bind(answer.answer.map(i32::from))
                    .bind(&answer.text)
                    .bind(answer.urgent)
                    .bind(answer.message_ref.as_deref())
                    .bind($crate::outbox::rows::millis(answer.received_at))
                    .execute(&self.$pool)
                    .await?
                    .rows_affected();
                Ok(inserted > 0)
            }

            async fn answers(
                &self,
                filter: &$crate::outbox::AnswerFilter,
            ) -> Result<Vec<$crate::outbox::AnswerRecord>, $crate::outbox::StoreError> {
                use $crate::outbox::answers::{AnswerRow, list_sql};
                let sql = $sql(&list_sql(filter));
                let mut query = sqlx::query_as::<_, AnswerRow>(&sql);
                if let Some(crisis) = filter.crisis {
                    query = query.bind(crisis.to_string());
                }
                let rows = query
                    .bind(i64::from(filter.limit))
                    .fetch_all(&self.$pool)
                    .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn tallies(
                &self,
                crisis: $crate::domain::CrisisId,
            ) -> Result<Vec<$crate::outbox::Tally>, $crate::outbox::StoreError> {
                use $crate::outbox::answers::TallyRow;
                let rows: Vec<TallyRow> = sqlx::query_as(&$sql($crate::outbox::answers::TALLIES))
                    .bind(crisis.to_string())
                    .fetch_all(&self.$pool)
                    .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }
        }
    };
}
pub(super) use answer_store;
