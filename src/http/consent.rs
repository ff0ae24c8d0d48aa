//! Consent endpoints: one-click unsubscribe links from emails (RFC 8058).
//! SMS keywords (STOP, START) arrive through `inbound`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use tracing::{info, warn};

use super::AppState;
use super::banner::{BannerQuery, choose_language};
use super::preferences::{self, Choice, Words};
use crate::domain::consent::{ConsentScope, ContactPoint, OptOutRequest};
use crate::outbox::StoreError;
use crate::plan::PlanInputs;

/// The page's words: `?lang=` (the link carries the reader's locale), else
/// Accept-Language, else the default locale. A language with no strings
/// falls back to the default locale's here rather than failing: a reader
/// must always be able to unsubscribe, even after a locale was removed.
fn words<'a>(inputs: &'a PlanInputs, lang: &str) -> Words<'a> {
    let renderer = &inputs.renderer;
    Words {
        lang: renderer.resolve_locale(lang),
        company: &inputs.company.name,
        strings: &renderer.strings(lang).consent,
    }
}

/// The address a genuine token was made for, and what its one click stops.
fn verify(inputs: &PlanInputs, token: &str) -> Option<(String, ConsentScope)> {
    inputs.unsubscribe.as_ref()?.signer.verify(token)
}

/// A person who clicks the link sees what they get now and the choices; a
/// GET never changes anything, because mail scanners follow links.
pub async fn unsubscribe_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
    query: Query<BannerQuery>,
    headers: HeaderMap,
) -> Response {
    let inputs = state.inputs.load_full();
    let words = words(&inputs, &choose_language(&state, &query, &headers));
    let Some((address, _)) = verify(&inputs, &token) else {
        return preferences::invalid(&words);
    };
    match state
        .storage
        .consent
        .opt_out_scope(ContactPoint::Email, &address)
        .await
    {
        Ok(scope) => preferences::preferences(&words, &address, Choice::of(scope), false),
        Err(err) => {
            warn!(error = %err, "Could not read a subscriber's consent.");
            preferences::retry(&words)
        }
    }
}

/// What a POST to an unsubscribe link asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    /// RFC 8058: `List-Unsubscribe=One-Click` from the mail program.
    OneClick,
    /// The page's form.
    Choose(Choice),
}

/// The form fields of a POST, `application/x-www-form-urlencoded` or
/// `multipart/form-data` (RFC 8058 lets the mail program send either);
/// `None` when the body is neither.
fn form_fields(headers: &HeaderMap, body: &[u8]) -> Option<Vec<(String, String)>> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (mime, parameters) = content_type.split_once(';').unwrap_or((content_type, ""));
    if !mime.trim().eq_ignore_ascii_case("multipart/form-data") {
        return serde_urlencoded::from_bytes(body).ok();
    }
    let boundary = parameters
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(name, _)| name.eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| value.trim_matches('"'))?;
    let text = std::str::from_utf8(body).ok()?;
    let fields = text
        .split(&format!("--{boundary}"))
        .filter_map(|part| {
            let (head, value) = part
                .split_once("\r\n\r\n")
                .or_else(|| part.split_once("\n\n"))?;
            let name = head
                .split(';')
                .filter_map(|p| p.trim().strip_prefix("name="))
                .next()?
                .trim_matches('"');
            let value = value
                .strip_suffix("\r\n")
                .or_else(|| value.strip_suffix('\n'))
                .unwrap_or(value);
            Some((name.to_owned(), value.to_owned()))
        })
        .collect();
    Some(fields)
}

fn ask(headers: &HeaderMap, body: &[u8]) -> Option<Ask> {
    let fields = form_fields(headers, body)?;
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match (field("choice"), field("List-Unsubscribe")) {
        (Some(choice), _) => Choice::parse(choice).map(Ask::Choose),
        (None, Some("One-Click")) => Some(Ask::OneClick),
        _ => None,
    }
}

/// Records what was asked; what the address gets afterwards.
async fn record(
    state: &AppState,
    address: &str,
    link_scope: ConsentScope,
    ask: Ask,
) -> Result<Option<ConsentScope>, StoreError> {
    let consent = &state.storage.consent;
    let now = state.clock.now();
    let point = ContactPoint::Email;
    let changed = match ask {
        // No page, no confirmation (RFC 8058 section 3.2): the one click
        // stops what the link was made for, and never narrows a wider
        // opt-out already recorded.
        Ask::OneClick => {
            let request = OptOutRequest::AtLeast(link_scope);
            consent
                .opt_out(point, address, request, "one-click unsubscribe", now)
                .await?
        }
        Ask::Choose(choice) => match choice.scope() {
            None => consent.opt_in(point, address).await?,
            Some(scope) => {
                let request = OptOutRequest::Exactly(scope);
                consent
                    .opt_out(point, address, request, "preference page", now)
                    .await?
            }
        },
    };
    let scope = consent.opt_out_scope(point, address).await?;
    if changed {
        let now_gets = Choice::of(scope).as_str();
        info!(
            point = "email",
            now_gets, "A subscriber changed what they receive."
        );
    }
    Ok(scope)
}

/// The one-click POST (from a mail provider, RFC 8058) or the page's
/// form. The token is checked first: a forged one changes nothing.
pub async fn unsubscribe(
    State(state): State<AppState>,
    Path(token): Path<String>,
    query: Query<BannerQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let inputs = state.inputs.load_full();
    let words = words(&inputs, &choose_language(&state, &query, &headers));
    let Some((address, link_scope)) = verify(&inputs, &token) else {
        return preferences::invalid(&words);
    };
    let Some(ask) = ask(&headers, &body) else {
        return preferences::bad_choice(&words);
    };
    match record(&state, &address, link_scope, ask).await {
        Ok(scope) => preferences::preferences(&words, &address, Choice::of(scope), true),
        Err(err) => {
            warn!(error = %err, "Could not record a subscriber's consent.");
            preferences::retry(&words)
        }
    }
}
