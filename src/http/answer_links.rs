//! Email readers answer by link instead of by reply: an email that asks
//! carries one link per answer, `/v1/answers/{token}/{number}?lang=`, the
//! token signed over the delivery's id with the `[consent]` key (see
//! `UnsubscribeSigner::answer_token`). A GET only shows the answer and a
//! button, because mail scanners follow links; the button's POST records
//! it as an SMS reply is recorded (tallies, the callback list, the
//! helpdesk). A token that does not verify changes nothing.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use tracing::warn;

use super::AppState;
use super::banner::{BannerQuery, choose_language};
use super::preferences::document;
use crate::domain::DeliveryId;
use crate::domain::consent::ContactPoint;
use crate::domain::question::localized;
use crate::message::escape_html;
use crate::outbox::{AskedDelivery, NewAnswer};
use crate::plan::PlanInputs;
use crate::render::AnswerStrings;

/// The answer links' route: followed by people, no API token.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/answers/{token}/{number}", get(page).post(answer))
}

/// The page's language and words.
struct Words<'a> {
    lang: &'a str,
    strings: &'a AnswerStrings,
    status_url: &'a str,
}

impl Words<'_> {
    /// `text` escaped, with `{answer}` (in bold) and `{status_url}` filled in.
    fn text(&self, text: &str, answer: &str) -> String {
        escape_html(text)
            .replace(
                "{answer}",
                &format!("<strong>{}</strong>", escape_html(answer)),
            )
            .replace("{status_url}", &escape_html(self.status_url))
    }

    fn page(&self, status: StatusCode, title: &str, body: &str) -> Response {
        document(status, self.lang, &self.text(title, ""), body)
    }

    fn notice(&self, status: StatusCode, title: &str, text: &str) -> Response {
        let body = format!("<p role=\"alert\">{}</p>", self.text(text, ""));
        self.page(status, title, &body)
    }
}

fn words<'a>(inputs: &'a PlanInputs, lang: &str) -> Words<'a> {
    let renderer = &inputs.renderer;
    Words {
        lang: renderer.resolve_locale(lang),
        strings: &renderer.strings(lang).answers,
        status_url: &inputs.company.status_url,
    }
}

/// What a link names once checked: the delivery, and the chosen answer.
struct Chosen {
    delivery: DeliveryId,
    asked: AskedDelivery,
    number: u8,
    /// In the page's language.
    label: String,
    urgent: bool,
}

/// Why a link is not answered.
enum Refused {
    /// Forged, altered, or no `[consent]` key to check it.
    Invalid,
    UnknownChoice,
    Closed,
    Store,
}

/// Checks the token, then finds its delivery, question and answer.
async fn chosen(
    state: &AppState,
    inputs: &PlanInputs,
    (token, number): (&str, &str),
    lang: &str,
) -> Result<Chosen, Refused> {
    let signer = &inputs.unsubscribe.as_ref().ok_or(Refused::Invalid)?.signer;
    let delivery: DeliveryId = signer
        .verify_answer(token)
        .and_then(|id| id.parse().ok())
        .ok_or(Refused::Invalid)?;
    let asked = match state.storage.answers.asked_delivery(delivery).await {
        Ok(Some(asked)) => asked,
        // Signed by us, but for no delivery that asks (pruned, or its
        // question taken out of the config): nothing to answer.
        Ok(None) => return Err(Refused::Closed),
        Err(err) => {
            warn!(error = %err, "Could not read the delivery an answer link names.");
            return Err(Refused::Store);
        }
    };
    let question = inputs
        .answers
        .questions
        .get(&asked.asked.question)
        .ok_or(Refused::Closed)?;
    let closes = chrono::Duration::from_std(question.open_for)
        .ok()
        .map(|open| asked.asked.sent_at + open);
    if closes.is_none_or(|closes| closes < state.clock.now()) {
        return Err(Refused::Closed);
    }
    let choice = number
        .parse()
        .ok()
        .and_then(|n| question.choice(n))
        .ok_or(Refused::UnknownChoice)?;
    let default = inputs.renderer.default_locale();
    Ok(Chosen {
        delivery,
        number: choice.number,
        label: localized(&choice.label, lang, default).to_owned(),
        urgent: choice.urgent,
        asked,
    })
}

fn refusal(words: &Words<'_>, refused: Refused) -> Response {
    let s = words.strings;
    match refused {
        Refused::Invalid => words.notice(StatusCode::FORBIDDEN, &s.invalid_title, &s.invalid_text),
        Refused::UnknownChoice => words.notice(StatusCode::NOT_FOUND, &s.title, &s.unknown_choice),
        Refused::Closed => words.notice(StatusCode::GONE, &s.closed_title, &s.closed_text),
        Refused::Store => words.notice(
            StatusCode::SERVICE_UNAVAILABLE,
            &s.retry_title,
            &s.retry_text,
        ),
    }
}

/// `GET`: the answer and a button that sends it; nothing is recorded.
pub async fn page(
    State(state): State<AppState>,
    Path((token, number)): Path<(String, String)>,
    query: Query<BannerQuery>,
    headers: HeaderMap,
) -> Response {
    let inputs = state.inputs.load_full();
    let lang = choose_language(&state, &query, &headers);
    let words = words(&inputs, &lang);
    match chosen(&state, &inputs, (&token, &number), words.lang).await {
        Ok(chosen) => {
            let s = words.strings;
            let body = format!(
                "<form method=\"post\"><p id=\"answer\">{}</p>\
                 <button type=\"submit\" aria-describedby=\"answer\">{}</button></form>",
                words.text(&s.confirm, &chosen.label),
                words.text(&s.send, ""),
            );
            words.page(StatusCode::OK, &s.title, &body)
        }
        Err(refused) => refusal(&words, refused),
    }
}

/// `POST` (the page's button): records the answer once per delivery and
/// number, so a second click changes nothing.
pub async fn answer(
    State(state): State<AppState>,
    Path((token, number)): Path<(String, String)>,
    query: Query<BannerQuery>,
    headers: HeaderMap,
) -> Response {
    let inputs = state.inputs.load_full();
    let lang = choose_language(&state, &query, &headers);
    let words = words(&inputs, &lang);
    let chosen = match chosen(&state, &inputs, (&token, &number), words.lang).await {
        Ok(chosen) => chosen,
        Err(refused) => return refusal(&words, refused),
    };
    let asked = chosen.asked.asked;
    let answer = NewAnswer {
        id: uuid::Uuid::now_v7(),
        crisis_id: Some(asked.crisis_id),
        announcement_id: Some(asked.announcement_id),
        question: Some(asked.question),
        point: ContactPoint::Email,
        address: chosen.asked.destination,
        locale: asked.locale,
        channel: chosen.asked.channel,
        answer: Some(chosen.number),
        text: chosen.number.to_string(),
        urgent: chosen.urgent,
        message_ref: Some(format!("link:{}:{}", chosen.delivery, chosen.number)),
        received_at: state.clock.now(),
    };
    if let Err(err) = super::answers::save(&state, &answer).await {
        warn!(error = %err, "Could not record an answer given by link.");
        return refusal(&words, Refused::Store);
    }
    let s = words.strings;
    let mut body = format!(
        "<p class=\"saved\" role=\"status\">{}</p>",
        words.text(&s.recorded, &chosen.label)
    );
    if chosen.urgent {
        body.push_str(&format!("<p>{}</p>", words.text(&s.urgent_note, "")));
    }
    words.page(StatusCode::OK, &s.title, &body)
}
