//! Readers' answers: a reply that is no keyword is matched to the latest
//! open question sent to its number and recorded (a number it does not
//! know is kept as free text, never dropped); the tallies per answer; and
//! the callback list, the urgent answers newest first, as JSON or CSV.

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::AppState;
use super::auth::Authenticated;
use super::error::ApiError;
use super::inbound::Inbound;
use crate::domain::CrisisId;
use crate::domain::consent::ContactPoint;
use crate::domain::question::{AnswerSettings, localized};
use crate::outbox::{AnswerFilter, AnswerRecord, NewAnswer, StoreError, Tally};

/// The longest any question stays open: how far back a reply looks.
fn longest_open(settings: &AnswerSettings) -> Option<std::time::Duration> {
    settings.questions.values().map(|q| q.open_for).max()
}

/// Records an SMS reply that is no keyword.
pub async fn record(state: &AppState, message: &Inbound<'_>) -> Result<(), StoreError> {
    let inputs = state.inputs.load_full();
    let now = state.clock.now();
    let answers = &state.storage.answers;
    let asked = match longest_open(&inputs.answers) {
        Some(longest) => {
            let since = now - chrono::Duration::from_std(longest).unwrap_or(chrono::Duration::MAX);
            answers.asked(&message.from, since).await?
        }
        None => None,
    };
    // Still open for its own question's time, and still configured.
    let open = asked.and_then(|asked| {
        let question = inputs.answers.questions.get(&asked.question)?;
        let closes = asked.sent_at + chrono::Duration::from_std(question.open_for).ok()?;
        (closes >= now).then_some((asked, question))
    });
    let answer = match open {
        Some((asked, question)) => {
            let chosen = question.answer(message.text);
            NewAnswer {
                id: uuid::Uuid::now_v7(),
                crisis_id: Some(asked.crisis_id),
                announcement_id: Some(asked.announcement_id),
                question: Some(asked.question),
                point: ContactPoint::Phone,
                address: message.from.clone(),
                locale: asked.locale,
                channel: message.channel.to_owned(),
                answer: chosen.map(|c| c.number),
                text: message.text.to_owned(),
                urgent: chosen.is_some_and(|c| c.urgent),
                message_ref: message.message_id.map(str::to_owned),
                received_at: now,
            }
        }
        None => {
            // No open question: kept as free text with the crisis that
            // last wrote to the number, if any.
            let last = answers.last_sent(&message.from).await?;
            NewAnswer {
                id: uuid::Uuid::now_v7(),
                crisis_id: last.as_ref().map(|l| l.crisis_id),
                announcement_id: None,
                question: None,
                point: ContactPoint::Phone,
                address: message.from.clone(),
                locale: last
                    .map_or_else(|| inputs.renderer.default_locale().to_owned(), |l| l.locale),
                channel: message.channel.to_owned(),
                answer: None,
                text: message.text.to_owned(),
                urgent: false,
                message_ref: message.message_id.map(str::to_owned),
                received_at: now,
            }
        }
    };
    save(state, &answer).await?;
    Ok(())
}

/// Records an answer, by SMS or by an email's link, and posts an urgent
/// one to the helpdesk; false when it was recorded already.
pub async fn save(state: &AppState, answer: &NewAnswer) -> Result<bool, StoreError> {
    let recorded = state.storage.answers.record_answer(answer).await?;
    if recorded {
        info!(
            channel = answer.channel,
            question = answer.question.as_deref().unwrap_or("none"),
            answer = answer
                .answer
                .map_or_else(|| "free text".to_owned(), |a| a.to_string()),
            urgent = answer.urgent,
            "Recorded a reader's reply."
        );
        if answer.urgent {
            state.helpdesk.notify(answer);
        }
    }
    Ok(recorded)
}

/// One line of a crisis's tallies, as the API, status and console show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TallyView {
    /// The question's key; none for replies no open question matched.
    pub question: Option<String>,
    /// The number chosen; none for free text.
    pub answer: Option<u8>,
    /// What the answer means, in the default locale ("free text" for none).
    pub label: String,
    pub urgent: bool,
    pub count: u64,
}

/// The tallies with their labels in `locale` (else the default's).
pub fn tally_views(
    settings: &AnswerSettings,
    (locale, default_locale): (&str, &str),
    tallies: Vec<Tally>,
) -> Vec<TallyView> {
    tallies
        .into_iter()
        .map(|tally| {
            let label = tally
                .question
                .as_ref()
                .and_then(|q| settings.questions.get(q))
                .zip(tally.answer)
                .and_then(|(q, number)| q.choice(number))
                .map_or_else(
                    || "free text".to_owned(),
                    |choice| localized(&choice.label, locale, default_locale).to_owned(),
                );
            TallyView {
                question: tally.question,
                answer: tally.answer,
                label,
                urgent: tally.urgent,
                count: tally.count,
            }
        })
        .collect()
}

/// A crisis's tallies, labelled.
pub async fn crisis_tallies(
    state: &AppState,
    crisis: CrisisId,
) -> Result<Vec<TallyView>, StoreError> {
    let inputs = state.inputs.load_full();
    let tallies = state.storage.answers.tallies(crisis).await?;
    let default = inputs.renderer.default_locale();
    Ok(tally_views(&inputs.answers, (default, default), tallies))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackQuery {
    pub crisis: Option<String>,
    pub limit: Option<u32>,
}

/// Default and largest page of the callback list.
const CALLBACKS_DEFAULT: u32 = 500;
const CALLBACKS_MAX: u32 = 10_000;

/// One reader to call back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Callback {
    pub received_at: DateTime<Utc>,
    pub crisis_id: Option<String>,
    /// `phone` or `email`.
    pub point: String,
    pub address: String,
    /// The reader's language: the one the question was sent in.
    pub locale: String,
    pub channel: String,
    pub question: Option<String>,
    pub answer: Option<u8>,
    /// What the answer means, in the default locale.
    pub label: String,
    /// What the reader wrote.
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallbackList {
    /// Newest first.
    pub callbacks: Vec<Callback>,
}

fn callback(settings: &AnswerSettings, default_locale: &str, record: AnswerRecord) -> Callback {
    let label = record
        .question
        .as_ref()
        .and_then(|q| settings.questions.get(q))
        .zip(record.answer)
        .and_then(|(q, n)| q.choice(n))
        .map_or_else(String::new, |c| {
            localized(&c.label, default_locale, default_locale).to_owned()
        });
    Callback {
        received_at: record.received_at,
        crisis_id: record.crisis_id,
        point: record.point,
        address: record.address,
        locale: record.locale,
        channel: record.channel,
        question: record.question,
        answer: record.answer,
        label,
        text: record.text,
    }
}

async fn callback_list(state: &AppState, query: CallbackQuery) -> Result<Vec<Callback>, ApiError> {
    let limit = query.limit.unwrap_or(CALLBACKS_DEFAULT);
    if !(1..=CALLBACKS_MAX).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "`limit` must be 1 to {CALLBACKS_MAX}, not {limit}"
        )));
    }
    let crisis = match query.crisis.as_deref() {
        Some(raw) => Some(raw.trim().parse::<CrisisId>().map_err(|_| {
            ApiError::BadRequest(format!(
                "`crisis` must be a crisis id (a UUID), not `{raw}`"
            ))
        })?),
        None => None,
    };
    let filter = AnswerFilter {
        crisis,
        urgent_only: true,
        limit,
    };
    let records = state.storage.answers.answers(&filter).await?;
    let inputs = state.inputs.load_full();
    let default = inputs.renderer.default_locale();
    Ok(records
        .into_iter()
        .map(|r| callback(&inputs.answers, default, r))
        .collect())
}

fn query_of(
    query: Result<Query<CallbackQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<CallbackQuery, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

/// `GET /v1/callbacks`: the readers who answered urgently, newest first.
pub async fn callbacks(
    State(state): State<AppState>,
    _auth: Authenticated,
    query: Result<Query<CallbackQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<CallbackList>, ApiError> {
    let callbacks = callback_list(&state, query_of(query)?).await?;
    Ok(axum::Json(CallbackList { callbacks }))
}

/// `GET /v1/callbacks.csv`: the same list for a spreadsheet or a dialer.
pub async fn callbacks_csv(
    State(state): State<AppState>,
    _auth: Authenticated,
    query: Result<Query<CallbackQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let callbacks = callback_list(&state, query_of(query)?).await?;
    let body = to_csv(&callbacks).map_err(|e| {
        tracing::error!(error = %e, "Could not write the callback list as CSV.");
        ApiError::Internal
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"callbacks.csv\"",
            ),
        ],
        body,
    )
        .into_response())
}

fn to_csv(callbacks: &[Callback]) -> Result<String, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record([
        "received_at",
        "crisis_id",
        "point",
        "address",
        "locale",
        "channel",
        "question",
        "answer",
        "label",
        "text",
    ])?;
    for c in callbacks {
        writer.write_record([
            c.received_at.to_rfc3339().as_str(),
            c.crisis_id.as_deref().unwrap_or_default(),
            c.point.as_str(),
            c.address.as_str(),
            c.locale.as_str(),
            c.channel.as_str(),
            c.question.as_deref().unwrap_or_default(),
            c.answer.map(|a| a.to_string()).unwrap_or_default().as_str(),
            c.label.as_str(),
            // A spreadsheet runs a cell that starts with = + - @ as a
            // formula: a reader's text must stay text.
            defuse(&c.text).as_str(),
        ])?;
    }
    let bytes = writer.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn defuse(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_readers_formula_stays_text_in_the_csv() {
        assert_eq!(defuse("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(defuse("1"), "1");
    }
}
