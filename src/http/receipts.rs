//! Delivery receipts from providers: Twilio's status callbacks, Vonage's
//! delivery receipts, the generic gateway's dlr URL, and SendGrid's
//! signed Event Webhook for email. Each is
//! authenticated by its own signature (no API token: the provider calls
//! us), then recorded on the delivery it names. A permanent failure marks
//! the number bad, so the next plan skips it for the reader's fallback.
//!
//! Answers follow what the providers retry on: 5xx (and for Vonage any
//! non-2xx) is tried again, so a receipt for a delivery we do not know is
//! answered 2xx and ignored, and only a store failure answers 503.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use subtle::ConstantTimeEq;
use tracing::{info, warn};

use super::AppState;
use crate::channels::sendgrid::{self, SendgridKey};
use crate::channels::{ProviderKind, ReceiptSecret, dlr_token, twilio_signature, vonage_signed};
use crate::domain::DeliveryId;
use crate::domain::consent::ContactPoint;
use crate::outbox::{DeliveryReceipt, ReceiptKey, ReceiptState, Recorded, StoreError};

/// The receipt routes: called by providers, no token, each request
/// authenticated by its own signature.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/receipts/twilio/{channel}", post(twilio))
        .route("/v1/receipts/vonage/{channel}", get(vonage).post(vonage))
        .route(
            "/v1/receipts/gateway/{channel}/{delivery}/{token}",
            get(gateway).post(gateway),
        )
        .route("/v1/receipts/sendgrid/{channel}", post(sendgrid_events))
}

/// What the receipt routes need, swapped whole by a reload.
#[derive(Debug, Clone, Default)]
pub struct ReceiptRoutes {
    /// Each channel's receipt secret and kind, by channel name.
    pub secrets: HashMap<String, ReceiptSecret>,
    /// `[receipts] mark_bad_on_hard_bounce`: a permanent SMS failure
    /// marks the number bad like a hard bounce marks an address.
    pub mark_bad: bool,
    /// `[receipts] sendgrid_public_key`, read: enables the SendGrid route.
    pub sendgrid: Option<SendgridKey>,
    /// The email channels, by name: SendGrid's events are taken for them.
    pub email_channels: Vec<String>,
}

/// What a provider's receipt says, before it is matched to a delivery.
struct Said {
    state: ReceiptState,
    /// The destination will never take a message (an invalid or
    /// unreachable number), not a passing failure.
    permanent: bool,
    reason: Option<String>,
}

/// Twilio error codes that say the number itself is wrong: unknown
/// handset, landline or unreachable carrier, invalid `To`, not a mobile
/// number. Filtering, queue overflow and carrier trouble are not here:
/// the number may work tomorrow.
const TWILIO_PERMANENT: &[&str] = &["30005", "30006", "21211", "21614"];

/// Vonage `err-code`s that say the same: absent subscriber (permanent),
/// illegal number.
const VONAGE_PERMANENT: &[&str] = &["3", "9"];

pub(super) fn field<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// The channel's receipt secret, if it is a channel of `kind` that takes
/// receipts.
fn secret_of(state: &AppState, channel: &str, kind: ProviderKind) -> Option<ReceiptSecret> {
    state
        .receipts
        .load()
        .secrets
        .get(channel)
        .filter(|s| s.kind == kind)
        .cloned()
}

fn twilio_said(params: &[(String, String)]) -> Option<Said> {
    let error = field(params, "ErrorCode");
    let state = match field(params, "MessageStatus")? {
        "delivered" => ReceiptState::Delivered,
        "undelivered" | "failed" => ReceiptState::Undelivered,
        // queued, sending, sent, accepted, scheduled, read…: on the way,
        // not an outcome.
        _ => return None,
    };
    Some(Said {
        state,
        permanent: state == ReceiptState::Undelivered
            && error.is_some_and(|e| TWILIO_PERMANENT.contains(&e)),
        reason: error.map(|e| format!("Twilio error {e}")),
    })
}

fn vonage_said(params: &[(String, String)]) -> Option<Said> {
    let error = field(params, "err-code");
    let state = match field(params, "status")? {
        "delivered" => ReceiptState::Delivered,
        "failed" | "rejected" | "expired" => ReceiptState::Undelivered,
        // accepted, buffered, unknown: no outcome yet.
        _ => return None,
    };
    Some(Said {
        state,
        permanent: state == ReceiptState::Undelivered
            && error.is_some_and(|e| VONAGE_PERMANENT.contains(&e)),
        reason: error
            .filter(|e| *e != "0")
            .map(|e| format!("Vonage err-code {e}")),
    })
}

/// Kannel's `%d` dlr types (1 delivered, 2 failed, 16 rejected by the
/// SMSC), or the same as words for gateways that send words.
fn gateway_said(params: &[(String, String)]) -> Option<Said> {
    let (state, permanent) = match field(params, "status")? {
        "1" | "delivered" => (ReceiptState::Delivered, false),
        "2" | "failed" | "undelivered" => (ReceiptState::Undelivered, false),
        "16" | "rejected" => (ReceiptState::Undelivered, true),
        // 4 buffered, 8 submitted to the SMSC: on the way.
        _ => return None,
    };
    Some(Said {
        state,
        permanent,
        reason: field(params, "reason").map(str::to_owned),
    })
}

/// Records what the receipt said and answers the provider.
async fn record(state: &AppState, channel: &str, key: ReceiptKey, said: Said) -> Response {
    match record_one(state, channel, key, said, ContactPoint::Phone).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => unavailable(channel, &err),
    }
}

/// 503, so the provider retries: nothing was recorded.
fn unavailable(channel: &str, err: &StoreError) -> Response {
    warn!(channel = %channel, error = %err, "Could not record a delivery receipt; the provider will retry.");
    StatusCode::SERVICE_UNAVAILABLE.into_response()
}

/// Records one receipt on the delivery `key` names; a permanent failure
/// marks the destination bad on `point` when so configured.
async fn record_one(
    state: &AppState,
    channel: &str,
    key: ReceiptKey,
    said: Said,
    point: ContactPoint,
) -> Result<(), StoreError> {
    let mark_bad = state.receipts.load().mark_bad;
    let receipt = DeliveryReceipt {
        key: key.clone(),
        state: said.state,
        hard: said.permanent,
        reason: said.reason,
        at: state.clock.now(),
        mark_bad: (mark_bad && said.permanent).then_some(point),
    };
    match state.storage.receipts.record_receipt(&receipt).await? {
        Recorded::Changed { delivery, .. } => {
            info!(channel = %channel, delivery = %delivery, state = %said.state, permanent = said.permanent, "Recorded a delivery receipt.");
        }
        Recorded::Unchanged { delivery } => {
            info!(channel = %channel, delivery = %delivery, "A late or repeated receipt changed nothing: the delivery already has a final one.");
        }
        Recorded::Unknown => {
            // Retention may have removed it, or another daemon sent it:
            // a retry would not find it either.
            warn!(channel = %channel, key = %key, "Ignored a delivery receipt for no known delivery.");
        }
    }
    Ok(())
}

fn form(body: &[u8]) -> Option<Vec<(String, String)>> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body).ok()
}

/// Twilio's `StatusCallback` for one Twilio channel: a form POST signed
/// with `X-Twilio-Signature` like its inbound messages.
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
    let Some(params) = form(&body) else {
        return (StatusCode::BAD_REQUEST, "the body is not a form").into_response();
    };
    // Twilio signs the URL it was told to call: our public URL.
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
        warn!(channel = %channel, "Refused a Twilio status callback with a bad X-Twilio-Signature.");
        return (StatusCode::FORBIDDEN, "bad X-Twilio-Signature").into_response();
    }
    let Some(sid) = field(&params, "MessageSid") else {
        return (StatusCode::BAD_REQUEST, "MessageSid is required").into_response();
    };
    let Some(said) = twilio_said(&params) else {
        return StatusCode::NO_CONTENT.into_response();
    };
    let key = ReceiptKey::ProviderRef {
        channel: channel.clone(),
        reference: sid.to_owned(),
    };
    record(&state, &channel, key, said).await
}

/// Why Vonage's parameters were refused, naming `what` it sent (a
/// delivery receipt, an inbound message).
pub(super) enum VonageRefusal {
    Unreadable(&'static str),
    BadSig,
}

impl IntoResponse for VonageRefusal {
    fn into_response(self) -> Response {
        match self {
            VonageRefusal::Unreadable(what) => (
                StatusCode::BAD_REQUEST,
                format!("the {what} is neither a form nor JSON"),
            )
                .into_response(),
            VonageRefusal::BadSig => (StatusCode::FORBIDDEN, "bad sig").into_response(),
        }
    }
}

/// Vonage's parameters, read as `vonage_params` and accepted only when
/// signed with the channel's secret.
pub(super) fn signed_vonage_params(
    secret: &ReceiptSecret,
    channel: &str,
    what: &'static str,
    query: &Option<String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<(String, String)>, VonageRefusal> {
    let params =
        vonage_params(query.as_deref(), headers, body).ok_or(VonageRefusal::Unreadable(what))?;
    if !vonage_signed(secret.secret.expose(), &params) {
        warn!(channel = %channel, "Refused a Vonage {what} with a bad or missing sig.");
        return Err(VonageRefusal::BadSig);
    }
    Ok(params)
}

/// Vonage's parameters, from the query (GET), a JSON object or a form:
/// its receipts and its inbound messages come alike.
pub(super) fn vonage_params(
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Vec<(String, String)>> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(body).ok()?;
        return Some(
            object
                .into_iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => (k, s),
                    other => (k, other.to_string()),
                })
                .collect(),
        );
    }
    if body.is_empty() {
        return form(query.unwrap_or_default().as_bytes());
    }
    form(body)
}

/// Vonage's delivery receipt for one Vonage channel, accepted only when
/// signed with the account's signature secret.
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
            "no Vonage channel that takes receipts by that name",
        )
            .into_response();
    };
    let params = match signed_vonage_params(
        &secret,
        &channel,
        "delivery receipt",
        &query,
        &headers,
        &body,
    ) {
        Ok(params) => params,
        Err(refused) => return refused.into_response(),
    };
    let Some(said) = vonage_said(&params) else {
        return StatusCode::NO_CONTENT.into_response();
    };
    // Our id, echoed as `client-ref`, finds the delivery even if the
    // send's answer was lost; Vonage's id otherwise.
    let key = match field(&params, "client-ref").and_then(|r| r.parse::<DeliveryId>().ok()) {
        Some(id) => ReceiptKey::Delivery(id),
        None => match field(&params, "messageId") {
            Some(id) => ReceiptKey::ProviderRef {
                channel: channel.clone(),
                reference: id.to_owned(),
            },
            None => {
                return (StatusCode::BAD_REQUEST, "messageId is required").into_response();
            }
        },
    };
    record(&state, &channel, key, said).await
}

/// The generic gateway's dlr URL: `{dlr_base_url}/{delivery}/{token}`,
/// the token an HMAC of the channel and delivery, since such gateways
/// cannot sign. The outcome is in the query (`status`, `reason`) or a
/// form body.
pub async fn gateway(
    State(state): State<AppState>,
    Path((channel, delivery, token)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let Some(secret) = secret_of(&state, &channel, ProviderKind::SmsGateway) else {
        return (
            StatusCode::NOT_FOUND,
            "no gateway channel with a dlr URL by that name",
        )
            .into_response();
    };
    let expected = dlr_token(secret.secret.expose(), &channel, &delivery);
    if !bool::from(expected.as_bytes().ct_eq(token.as_bytes())) {
        warn!(channel = %channel, "Refused a gateway delivery report with a bad token.");
        return (StatusCode::FORBIDDEN, "bad token").into_response();
    }
    let Ok(id) = delivery.parse::<DeliveryId>() else {
        return (StatusCode::BAD_REQUEST, "not a delivery id").into_response();
    };
    let mut params = form(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    params.extend(form(&body).unwrap_or_default());
    let Some(said) = gateway_said(&params) else {
        return StatusCode::NO_CONTENT.into_response();
    };
    record(&state, &channel, ReceiptKey::Delivery(id), said).await
}

/// SendGrid's Event Webhook for one email channel, accepted only when
/// signed by the key `[receipts] sendgrid_public_key` names. SendGrid
/// retries any answer but 2xx, so a body of events is answered 2xx once
/// every receipt in it is recorded, and 503 when the store failed (the
/// ones already recorded change nothing when posted again).
pub async fn sendgrid_events(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let routes = state.receipts.load();
    let (Some(key), true) = (&routes.sendgrid, routes.email_channels.contains(&channel)) else {
        return (
            StatusCode::NOT_FOUND,
            "no email channel taking SendGrid events by that name",
        )
            .into_response();
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let timestamp = header(sendgrid::TIMESTAMP_HEADER);
    if !key.verifies(timestamp, &body, header(sendgrid::SIGNATURE_HEADER)) {
        warn!(channel = %channel, "Refused SendGrid events with a bad or missing signature.");
        return (
            StatusCode::FORBIDDEN,
            "bad X-Twilio-Email-Event-Webhook-Signature",
        )
            .into_response();
    }
    let receipts = match sendgrid::receipts(&body) {
        Ok(receipts) => receipts,
        Err(err) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("not a JSON array of SendGrid events: {err}"),
            )
                .into_response();
        }
    };
    for receipt in receipts {
        let said = Said {
            state: receipt.state,
            permanent: receipt.hard,
            reason: receipt.reason,
        };
        let key = ReceiptKey::Delivery(receipt.delivery);
        if let Err(err) = record_one(&state, &channel, key, said, ContactPoint::Email).await {
            return unavailable(&channel, &err);
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn twilio_statuses_on_the_way_are_no_outcome_and_bad_numbers_are_permanent() {
        assert!(twilio_said(&params(&[("MessageStatus", "sent")])).is_none());
        let ok = twilio_said(&params(&[("MessageStatus", "delivered")])).unwrap();
        assert_eq!(ok.state, ReceiptState::Delivered);
        assert!(!ok.permanent);
        let bad = twilio_said(&params(&[
            ("MessageStatus", "undelivered"),
            ("ErrorCode", "30005"),
        ]))
        .unwrap();
        assert!(bad.permanent);
        let busy = twilio_said(&params(&[
            ("MessageStatus", "failed"),
            ("ErrorCode", "30007"),
        ]))
        .unwrap();
        assert_eq!(busy.state, ReceiptState::Undelivered);
        assert!(!busy.permanent);
    }

    #[test]
    fn vonage_and_gateway_outcomes() {
        let v = vonage_said(&params(&[("status", "failed"), ("err-code", "9")])).unwrap();
        assert!(v.permanent);
        assert!(vonage_said(&params(&[("status", "buffered")])).is_none());
        assert!(gateway_said(&params(&[("status", "8")])).is_none());
        assert!(
            gateway_said(&params(&[("status", "16")]))
                .unwrap()
                .permanent
        );
        assert_eq!(
            gateway_said(&params(&[("status", "1")])).unwrap().state,
            ReceiptState::Delivered
        );
    }
}
