//! Consent endpoints: one-click unsubscribe links from emails (RFC 8058)
//! and inbound SMS keywords from Twilio (STOP, START).

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use subtle::ConstantTimeEq;
use tracing::{info, warn};

use super::AppState;
use crate::channels::twilio_signature;
use crate::domain::consent::ContactPoint;
use crate::message::escape_html;

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title></head>\
         <body style=\"font-family: system-ui, sans-serif; max-width: 36em; margin: 3em auto; padding: 0 1em\">\
         <h1>{title}</h1>{body}</body></html>"
    );
    (status, Html(html)).into_response()
}

fn unsubscribe_address(state: &AppState, token: &str) -> Option<String> {
    state
        .inputs
        .load()
        .unsubscribe
        .as_ref()?
        .signer
        .verify(token)
}

fn refused() -> Response {
    page(
        StatusCode::FORBIDDEN,
        "This link is not valid",
        "<p>The unsubscribe link is incomplete or was not issued by us. Use the link from the email itself.</p>",
    )
}

/// A person who clicks the link sees a button; a GET never unsubscribes,
/// because mail scanners follow links.
pub async fn unsubscribe_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Response {
    let Some(address) = unsubscribe_address(&state, &token) else {
        return refused();
    };
    page(
        StatusCode::OK,
        "Unsubscribe from crisis emails",
        &format!(
            "<p>Stop sending crisis announcements to <strong>{}</strong>?</p>\
             <form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
             <button type=\"submit\">Unsubscribe</button></form>",
            escape_html(&address)
        ),
    )
}

/// The one-click POST (from a mail provider or the page's button).
pub async fn unsubscribe(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let Some(address) = unsubscribe_address(&state, &token) else {
        return refused();
    };
    match state
        .storage
        .consent
        .opt_out(
            ContactPoint::Email,
            &address,
            "one-click unsubscribe",
            state.clock.now(),
        )
        .await
    {
        Ok(_) => {
            info!(point = "email", "A subscriber unsubscribed.");
            page(
                StatusCode::OK,
                "You are unsubscribed",
                &format!(
                    "<p>We will not send crisis announcements to <strong>{}</strong> any more.</p>",
                    escape_html(&address)
                ),
            )
        }
        Err(err) => {
            warn!(error = %err, "Could not record an unsubscribe.");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again",
                "<p>We could not record your request just now. Please try again in a minute.</p>",
            )
        }
    }
}

/// What an inbound SMS asks for. The keywords are the carriers' standard
/// opt-out and opt-in words.
fn keyword(body: &str) -> Option<bool> {
    let word = body.split_whitespace().next()?.to_ascii_uppercase();
    match word.trim_matches(|c: char| !c.is_ascii_alphanumeric()) {
        "STOP" | "STOPALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" | "OPTOUT" | "REVOKE" => {
            Some(false)
        }
        "START" | "UNSTOP" | "YES" => Some(true),
        _ => None,
    }
}

const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>";

/// Twilio's incoming-message webhook for one Twilio channel.
pub async fn twilio_inbound(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let inbound_sms = state.inbound_sms.load();
    let Some(auth_token) = inbound_sms.get(&channel) else {
        return (StatusCode::NOT_FOUND, "no Twilio channel by that name").into_response();
    };
    let Ok(params) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        return (StatusCode::BAD_REQUEST, "the body is not a form").into_response();
    };
    // Twilio signs the URL it was told to call: our public URL.
    let url = format!(
        "{}{}",
        state.public_url,
        uri.path_and_query().map_or(uri.path(), |pq| pq.as_str())
    );
    let expected = twilio_signature(auth_token.expose(), &url, &params);
    let presented = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !bool::from(expected.as_bytes().ct_eq(presented.as_bytes())) {
        warn!(channel = %channel, "Refused an inbound SMS webhook with a bad X-Twilio-Signature.");
        return (StatusCode::FORBIDDEN, "bad X-Twilio-Signature").into_response();
    }
    let field = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let (Some(from), Some(text)) = (field("From"), field("Body")) else {
        return (StatusCode::BAD_REQUEST, "From and Body are required").into_response();
    };
    let consent = &state.storage.consent;
    let recorded = match keyword(text) {
        Some(false) => consent
            .opt_out(ContactPoint::Phone, from, "sms keyword", state.clock.now())
            .await
            .map(|changed| changed.then_some("opted out")),
        Some(true) => consent
            .opt_in(ContactPoint::Phone, from)
            .await
            .map(|changed| changed.then_some("opted back in")),
        None => Ok(None),
    };
    match recorded {
        Ok(Some(what)) => info!(channel = %channel, point = "phone", "A subscriber {what} by SMS."),
        Ok(None) => {}
        // Twilio retries a failed webhook: ask it to.
        Err(err) => {
            warn!(error = %err, "Could not record an SMS opt-out; Twilio will retry.");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    (
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        EMPTY_TWIML,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::keyword;

    #[test]
    fn carrier_keywords_opt_out_and_back_in() {
        assert_eq!(keyword("STOP"), Some(false));
        assert_eq!(keyword(" stop please"), Some(false));
        assert_eq!(keyword("Unsubscribe."), Some(false));
        assert_eq!(keyword("START"), Some(true));
        assert_eq!(keyword("Is the outage over?"), None);
        assert_eq!(keyword(""), None);
    }
}
