//! Inbound SMS from readers, by provider: Twilio (`X-Twilio-Signature`),
//! Vonage (the signed-webhook `sig`) and the generic gateway (a token,
//! since gateways cannot sign). Each request is authenticated first; a
//! forged or unsigned one is refused and changes nothing. Then one path
//! for all three: STOP, START and HELP (the carriers' words and each
//! locale's own, `domain::keywords`), else an answer to the question
//! last sent to that number (`answers`).
//!
//! HELP is answered the way each provider lets a webhook answer: TwiML
//! for Twilio, the response body for a gateway (Kannel's sms-service
//! sends it back to the sender). Vonage's inbound webhook has no reply,
//! so a Vonage HELP is recorded in the log and answered by nothing here.
//!
//! Providers retry what is not answered 2xx (Twilio on 5xx, Vonage on any
//! other status), so only a store failure answers 503.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing::{info, warn};

use super::AppState;
use super::receipts::{field, signed_vonage_params, vonage_params};
use crate::channels::{ProviderKind, ReceiptSecret, twilio_signature};
use crate::domain::PhoneNumber;
use crate::domain::consent::{ConsentScope, ContactPoint, OptOutRequest};
use crate::domain::keywords::{LocaleKeywords, SmsKeyword, classify};
use crate::message::escape_html;
use crate::outbox::StoreError;
use crate::plan::PlanInputs;

/// The inbound routes: called by providers, no API token.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/inbound/twilio/{channel}", post(twilio))
        .route("/v1/inbound/vonage/{channel}", get(vonage).post(vonage))
        .route("/v1/inbound/gateway/{channel}", get(gateway).post(gateway))
}

/// One authenticated inbound message.
#[derive(Debug)]
pub struct Inbound<'a> {
    pub channel: &'a str,
    /// E.164.
    pub from: String,
    pub text: &'a str,
    /// The provider's id for the message, which makes a retried webhook
    /// harmless.
    pub message_id: Option<&'a str>,
}

/// The channel's inbound secret, if it is a channel of `kind` that takes
/// inbound messages.
fn secret_of(state: &AppState, channel: &str, kind: ProviderKind) -> Option<ReceiptSecret> {
    state
        .inbound_sms
        .load()
        .get(channel)
        .filter(|s| s.kind == kind)
        .cloned()
}

/// A sender's number in E.164: Vonage writes it without the `+`.
fn sender(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let number = if raw.starts_with('+') {
        raw.to_owned()
    } else {
        format!("+{raw}")
    };
    PhoneNumber::parse(&number).ok().map(|_| number)
}

/// Every locale's own keywords.
fn locale_keywords(inputs: &PlanInputs) -> Vec<LocaleKeywords<'_>> {
    let renderer = &inputs.renderer;
    renderer
        .locales()
        .map(|locale| {
            let sms = &renderer.strings(locale).sms;
            LocaleKeywords {
                locale,
                stop: &sms.stop,
                start: &sms.start,
                help: &sms.help,
            }
        })
        .collect()
}

/// What the webhook answers the provider with, beside its status.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Nothing,
    /// A text for the sender (HELP).
    Reply(String),
}

/// The one path every provider's inbound message takes once authenticated.
async fn handle(state: &AppState, message: &Inbound<'_>) -> Result<Answer, StoreError> {
    let inputs = state.inputs.load_full();
    let keywords = locale_keywords(&inputs);
    let consent = &state.storage.consent;
    let channel = message.channel;
    match classify(message.text, keywords.iter().copied()) {
        // STOP means everything, as the carriers treat it.
        Some((SmsKeyword::Stop, _)) => {
            let request = OptOutRequest::AtLeast(ConsentScope::All);
            let at = state.clock.now();
            let point = ContactPoint::Phone;
            if consent
                .opt_out(point, &message.from, request, "sms keyword", at)
                .await?
            {
                info!(channel, point = "phone", "A subscriber opted out by SMS.");
            }
            Ok(Answer::Nothing)
        }
        Some((SmsKeyword::Start, _)) => {
            if consent.opt_in(ContactPoint::Phone, &message.from).await? {
                info!(
                    channel,
                    point = "phone",
                    "A subscriber opted back in by SMS."
                );
            }
            Ok(Answer::Nothing)
        }
        Some((SmsKeyword::Help, said_in)) => {
            let locale = match said_in {
                Some(locale) => locale.to_owned(),
                None => reader_locale(state, &inputs, &message.from).await?,
            };
            info!(channel, locale, "Answered HELP by SMS.");
            Ok(Answer::Reply(help_reply(&inputs, &locale)))
        }
        None => {
            super::answers::record(state, message).await?;
            Ok(Answer::Nothing)
        }
    }
}

/// The language to answer a number in: that of the last message sent to
/// it, else the default.
async fn reader_locale(
    state: &AppState,
    inputs: &PlanInputs,
    number: &str,
) -> Result<String, StoreError> {
    let sent = state.storage.answers.last_sent(number).await?;
    Ok(sent.map_or_else(|| inputs.renderer.default_locale().to_owned(), |s| s.locale))
}

fn help_reply(inputs: &PlanInputs, locale: &str) -> String {
    inputs
        .renderer
        .strings(locale)
        .sms
        .help_reply
        .replace("{company}", &inputs.company.name)
        .replace("{status_url}", &inputs.company.status_url)
}

fn store_failed(provider: &str, err: &StoreError) -> Response {
    warn!(error = %err, "Could not record an inbound SMS; {provider} will retry.");
    StatusCode::SERVICE_UNAVAILABLE.into_response()
}

fn twiml(answer: &Answer) -> Response {
    let body = match answer {
        Answer::Nothing => "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>".into(),
        Answer::Reply(text) => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>{}</Message></Response>",
            escape_html(text)
        ),
    };
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

/// Twilio's incoming-message webhook for one Twilio channel: a form POST
/// signed with the auth token over our public URL and the parameters.
pub async fn twilio(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(secret) = secret_of(&state, &channel, ProviderKind::Twilio) else {
        return (StatusCode::NOT_FOUND, "no Twilio channel by that name").into_response();
    };
    let Ok(params) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        return (StatusCode::BAD_REQUEST, "the body is not a form").into_response();
    };
    let url = format!(
        "{}{}",
        state.public_url,
        uri.path_and_query().map_or(uri.path(), |pq| pq.as_str())
    );
    let expected = twilio_signature(secret.secret.expose(), &url, &params);
    let presented = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !bool::from(expected.as_bytes().ct_eq(presented.as_bytes())) {
        warn!(channel = %channel, "Refused an inbound SMS webhook with a bad X-Twilio-Signature.");
        return (StatusCode::FORBIDDEN, "bad X-Twilio-Signature").into_response();
    }
    let (Some(from), Some(text)) = (field(&params, "From"), field(&params, "Body")) else {
        return (StatusCode::BAD_REQUEST, "From and Body are required").into_response();
    };
    let Some(from) = sender(from) else {
        return (StatusCode::BAD_REQUEST, "From is not a phone number").into_response();
    };
    let message = Inbound {
        channel: &channel,
        from,
        text,
        message_id: field(&params, "MessageSid"),
    };
    match handle(&state, &message).await {
        Ok(answer) => twiml(&answer),
        Err(err) => store_failed("Twilio", &err),
    }
}

/// Vonage's inbound-message webhook for one Vonage channel (GET, or POST
/// as JSON or a form), accepted only when signed with the account's
/// signature secret. A long message arrives in parts, each taken alone.
pub async fn vonage(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(secret) = secret_of(&state, &channel, ProviderKind::Vonage) else {
        return (
            StatusCode::NOT_FOUND,
            "no Vonage channel with a signature secret by that name",
        )
            .into_response();
    };
    let params = match signed_vonage_params(
        &secret,
        &channel,
        "inbound message",
        &query,
        &headers,
        &body,
    ) {
        Ok(params) => params,
        Err(refused) => return refused.into_response(),
    };
    let (Some(from), Some(text)) = (field(&params, "msisdn"), field(&params, "text")) else {
        return (StatusCode::BAD_REQUEST, "msisdn and text are required").into_response();
    };
    let Some(from) = sender(from) else {
        return (StatusCode::BAD_REQUEST, "msisdn is not a phone number").into_response();
    };
    let message = Inbound {
        channel: &channel,
        from,
        text,
        message_id: field(&params, "messageId"),
    };
    match handle(&state, &message).await {
        Ok(Answer::Reply(_)) => {
            info!(channel = %channel, "Vonage's inbound webhook cannot carry a reply; HELP is not answered by SMS.");
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(Answer::Nothing) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => store_failed("Vonage", &err),
    }
}

/// The token a gateway presents, from `X-Crisisd-Token` or `?token=`.
fn presented_token<'a>(headers: &'a HeaderMap, params: &'a [(String, String)]) -> &'a str {
    headers
        .get("x-crisisd-token")
        .and_then(|v| v.to_str().ok())
        .or_else(|| field(params, "token"))
        .unwrap_or_default()
}

/// The generic gateway's inbound webhook: `from`, `text` and optionally
/// `id` in the query, a form or a JSON object, with the channel's inbound
/// token. A reply (HELP) is the response body, as text; otherwise 204.
pub async fn gateway(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(secret) = secret_of(&state, &channel, ProviderKind::SmsGateway) else {
        return (
            StatusCode::NOT_FOUND,
            "no gateway channel with an inbound token by that name",
        )
            .into_response();
    };
    let Some(mut params) = vonage_params(query.as_deref(), &headers, &body) else {
        return (
            StatusCode::BAD_REQUEST,
            "the message is neither a form nor JSON",
        )
            .into_response();
    };
    if !body.is_empty() {
        // The token may be in the query while the message is in the body.
        let query = query.as_deref().unwrap_or_default().as_bytes();
        params.extend(
            serde_urlencoded::from_bytes::<Vec<(String, String)>>(query).unwrap_or_default(),
        );
    }
    // Digests, so the comparison takes as long whatever the lengths.
    let expected = Sha256::digest(secret.secret.expose().as_bytes());
    let presented = Sha256::digest(presented_token(&headers, &params).as_bytes());
    if !bool::from(expected.ct_eq(&presented)) {
        warn!(channel = %channel, "Refused a gateway inbound message with a bad or missing token.");
        return (StatusCode::FORBIDDEN, "bad token").into_response();
    }
    let (Some(from), Some(text)) = (field(&params, "from"), field(&params, "text")) else {
        return (StatusCode::BAD_REQUEST, "from and text are required").into_response();
    };
    let Some(from) = sender(from) else {
        return (StatusCode::BAD_REQUEST, "from is not a phone number").into_response();
    };
    let message = Inbound {
        channel: &channel,
        from,
        text,
        message_id: field(&params, "id"),
    };
    match handle(&state, &message).await {
        Ok(Answer::Reply(text)) => {
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
        }
        Ok(Answer::Nothing) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => store_failed("the gateway", &err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_are_taken_with_or_without_the_plus() {
        assert_eq!(sender("447700900001").as_deref(), Some("+447700900001"));
        assert_eq!(sender(" +8801712345678").as_deref(), Some("+8801712345678"));
        assert_eq!(sender("not a number"), None);
    }

    #[test]
    fn a_help_reply_in_twiml_is_escaped() {
        let response = twiml(&Answer::Reply("A & B <ok>".into()));
        assert_eq!(response.status(), StatusCode::OK);
    }
}
