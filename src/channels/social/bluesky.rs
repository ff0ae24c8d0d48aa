//! Bluesky (atproto): log in once with an app password
//! (`com.atproto.server.createSession`), then post each delivery as an
//! `app.bsky.feed.post` record (`com.atproto.repo.createRecord`).
//!
//! Bluesky limits logins hard (per account, per 5 minutes and per day), so
//! the session is kept and reused for every post. When the access token
//! expires, the refresh token renews it (`refreshSession`); only when that
//! is refused does the channel log in again.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{SecondsFormat, Utc};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::channels::{
    Channel, ChannelError, DeliveryError, Receipt, http, message_of, read_secret,
};
use crate::config::BlueskySettings;
use crate::message::post::link_facets;
use crate::outbox::Delivery;

pub struct BlueskyChannel {
    name: String,
    service: String,
    identifier: String,
    app_password: String,
    concurrency: usize,
    timeout: Duration,
    http: reqwest::Client,
    /// The current session, if logged in. Logging in and renewing happen
    /// under this lock, so concurrent sends never log in twice.
    session: Mutex<Option<Session>>,
}

/// What `createSession` and `refreshSession` answer (the parts we use).
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Session {
    access_jwt: String,
    refresh_jwt: String,
    did: String,
}

/// Only the DID: the tokens are credentials and stay out of logs.
impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("did", &self.did)
            .finish_non_exhaustive()
    }
}

/// An XRPC error body: `{"error": "ExpiredToken", "message": "…"}`.
#[derive(Debug, Default, Deserialize)]
struct XrpcError {
    error: Option<String>,
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CreatedRecord {
    uri: String,
}

/// The answer to one XRPC call that did not succeed.
struct Failure {
    status: StatusCode,
    headers: HeaderMap,
    error: XrpcError,
    body: String,
}

impl Failure {
    /// `Error: message`, or the start of the body when it is not XRPC's.
    fn describe(&self) -> String {
        match (&self.error.error, &self.error.message) {
            (Some(error), Some(message)) => format!("{error}: {message}"),
            (Some(error), None) => error.clone(),
            (None, Some(message)) => message.clone(),
            (None, None) => http::excerpt(&self.body),
        }
    }

    /// The access token is no longer accepted: renew the session and try
    /// again. Bluesky says `400 ExpiredToken`; other PDSs answer 401.
    fn session_expired(&self) -> bool {
        self.status == StatusCode::UNAUTHORIZED
            || (self.status == StatusCode::BAD_REQUEST
                && matches!(
                    self.error.error.as_deref(),
                    Some("ExpiredToken" | "InvalidToken")
                ))
    }

    /// Throttling, timeouts and server errors: trying again later can help.
    fn is_temporary(&self) -> bool {
        self.status == StatusCode::TOO_MANY_REQUESTS
            || self.status == StatusCode::REQUEST_TIMEOUT
            || self.status.is_server_error()
    }

    /// When to try again: `Retry-After`, else `ratelimit-reset` (Unix
    /// seconds), which Bluesky sends on every answer.
    fn retry_after(&self) -> Option<Duration> {
        http::retry_after(&self.headers).or_else(|| {
            if self.status == StatusCode::TOO_MANY_REQUESTS {
                rate_limit_reset(&self.headers, Utc::now().timestamp())
            } else {
                None
            }
        })
    }

    fn transient(&self, reason: String) -> DeliveryError {
        DeliveryError::Transient {
            reason,
            retry_after: self.retry_after(),
        }
    }
}

/// Why a call failed: no usable answer, or an answer saying no.
enum CallError {
    Request(DeliveryError),
    Answer(Failure),
}

impl BlueskyChannel {
    pub fn from_settings(
        settings: &BlueskySettings,
        http: reqwest::Client,
    ) -> Result<Self, ChannelError> {
        let config_err = |message: String| ChannelError::Config {
            channel: settings.name.clone(),
            message,
        };
        let service = settings.service.trim().trim_end_matches('/');
        if !is_http_url(service) {
            return Err(config_err(format!(
                "service must be an http(s) URL, not `{service}`"
            )));
        }
        let identifier = settings.identifier.trim();
        if identifier.is_empty() {
            return Err(config_err(
                "identifier must be the account's handle or DID".into(),
            ));
        }
        Ok(Self {
            name: settings.name.clone(),
            service: service.to_owned(),
            identifier: identifier.to_owned(),
            app_password: read_secret(&settings.name, "app password", &settings.app_password())?,
            concurrency: settings.concurrency.max(1),
            timeout: settings.timeout,
            http,
            session: Mutex::new(None),
        })
    }

    fn xrpc(&self, method: &str) -> String {
        format!("{}/xrpc/{method}", self.service)
    }

    /// Sends one XRPC request and reads its answer.
    async fn call(&self, request: reqwest::RequestBuilder) -> Result<String, CallError> {
        let response = request
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| CallError::Request(http::request_failed("Bluesky", e)))?;
        let (status, headers) = (response.status(), response.headers().clone());
        let body = response
            .text()
            .await
            .map_err(|e| CallError::Request(http::request_failed("Bluesky", e)))?;
        if status.is_success() {
            return Ok(body);
        }
        let error = serde_json::from_str(&body).unwrap_or_default();
        Err(CallError::Answer(Failure {
            status,
            headers,
            error,
            body,
        }))
    }

    /// The current session, logging in when there is none.
    async fn session(&self) -> Result<Session, DeliveryError> {
        let mut current = self.session.lock().await;
        if let Some(session) = current.as_ref() {
            return Ok(session.clone());
        }
        let session = self.create_session().await?;
        *current = Some(session.clone());
        Ok(session)
    }

    /// A new session in place of `stale`, whose access token was refused:
    /// refreshed when the refresh token still works, else a new login.
    async fn renew(&self, stale: &Session) -> Result<Session, DeliveryError> {
        let mut current = self.session.lock().await;
        if let Some(session) = current.as_ref()
            && session.access_jwt != stale.access_jwt
        {
            // Another send renewed it while this one waited for the lock.
            return Ok(session.clone());
        }
        let renewed = match self.refresh_session(stale).await {
            Ok(session) => session,
            // No answer, or Bluesky is down or throttling: the refresh token
            // may still be good, so it is kept for the next attempt, and
            // logging in now would fail too and spend the scarce logins.
            Err(CallError::Request(err)) => return Err(err),
            Err(CallError::Answer(failure)) if failure.is_temporary() => {
                return Err(failure.transient(format!(
                    "Bluesky refreshSession answered {}: {}",
                    failure.status,
                    failure.describe()
                )));
            }
            // The refresh token was refused (expired or revoked): log in.
            Err(CallError::Answer(_)) => match self.create_session().await {
                Ok(session) => session,
                Err(err) => {
                    // Nothing kept works any more; the next send logs in.
                    *current = None;
                    return Err(err);
                }
            },
        };
        *current = Some(renewed.clone());
        Ok(renewed)
    }

    async fn create_session(&self) -> Result<Session, DeliveryError> {
        let request = self
            .http
            .post(self.xrpc("com.atproto.server.createSession"))
            .json(&json!({ "identifier": self.identifier, "password": self.app_password }));
        match self.call(request).await {
            Ok(body) => {
                let session = read_session("createSession", &body)?;
                tracing::info!(channel = %self.name, did = %session.did, "logged in to Bluesky");
                Ok(session)
            }
            Err(CallError::Request(err)) => Err(err),
            Err(CallError::Answer(failure)) if failure.is_temporary() => Err(failure.transient(format!(
                "Bluesky createSession answered {}: {}",
                failure.status,
                failure.describe()
            ))),
            // 401 AuthenticationRequired, 400 AccountTakedown or
            // AuthFactorTokenRequired: fails alike until the credentials are
            // fixed; the dispatcher's attempt limit bounds the retries.
            Err(CallError::Answer(failure)) => Err(failure.transient(format!(
                "Bluesky refused to log in as {}: {} (check the identifier and that the password is an app password)",
                self.identifier,
                failure.describe()
            ))),
        }
    }

    async fn refresh_session(&self, stale: &Session) -> Result<Session, CallError> {
        let request = self
            .http
            .post(self.xrpc("com.atproto.server.refreshSession"))
            .bearer_auth(&stale.refresh_jwt);
        let body = self.call(request).await?;
        let session = read_session("refreshSession", &body).map_err(CallError::Request)?;
        tracing::debug!(channel = %self.name, "Bluesky session refreshed");
        Ok(session)
    }

    async fn create_record(&self, session: &Session, record: &Value) -> Result<Receipt, CallError> {
        let request = self
            .http
            .post(self.xrpc("com.atproto.repo.createRecord"))
            .bearer_auth(&session.access_jwt)
            .json(&json!({
                "repo": session.did,
                "collection": "app.bsky.feed.post",
                "record": record,
            }));
        let body = self.call(request).await?;
        // A 2xx means the post exists; failing here would only post it
        // again, so an unreadable body still counts as sent.
        let uri = serde_json::from_str::<CreatedRecord>(&body)
            .ok()
            .map(|r| r.uri);
        Ok(Receipt { provider_ref: uri })
    }
}

#[async_trait]
impl Channel for BlueskyChannel {
    fn name(&self) -> &str {
        &self.name
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }

    async fn send(&self, delivery: &Delivery) -> Result<Receipt, DeliveryError> {
        let message = message_of(delivery)?;
        let record = post_record(
            &message.text,
            &message.language,
            Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        );
        let session = self.session().await?;
        let failure = match self.create_record(&session, &record).await {
            Ok(receipt) => return Ok(receipt),
            Err(CallError::Request(err)) => return Err(err),
            Err(CallError::Answer(failure)) if failure.session_expired() => {
                // Renew once and post again with the new token.
                let renewed = self.renew(&session).await?;
                match self.create_record(&renewed, &record).await {
                    Ok(receipt) => return Ok(receipt),
                    Err(CallError::Request(err)) => return Err(err),
                    Err(CallError::Answer(failure)) => failure,
                }
            }
            Err(CallError::Answer(failure)) => failure,
        };
        Err(post_failed(&failure))
    }

    /// A session proves both that Bluesky answers and that the
    /// credentials work; an existing one is not logged in again.
    async fn healthcheck(&self) -> Result<(), DeliveryError> {
        self.session().await.map(|_| ())
    }
}

/// What a refused `createRecord` means for the delivery.
fn post_failed(failure: &Failure) -> DeliveryError {
    let reason = format!(
        "Bluesky createRecord answered {}: {}",
        failure.status,
        failure.describe()
    );
    if failure.is_temporary() {
        failure.transient(reason)
    } else if failure.session_expired() {
        // Refused even with a fresh session: a later attempt starts over.
        failure.transient(format!("{reason} (even after renewing the session)"))
    } else {
        // 400 InvalidRequest / InvalidRecord: the post itself is refused
        // (too long, malformed) and will be again.
        DeliveryError::Permanent { reason }
    }
}

/// The `app.bsky.feed.post` record: the text as planned, its language, and
/// a link facet for every URL, since Bluesky does not find links itself.
fn post_record(text: &str, language: &str, created_at: String) -> Value {
    let facets: Vec<Value> = link_facets(text)
        .into_iter()
        .map(|facet| {
            json!({
                "index": { "byteStart": facet.byte_start, "byteEnd": facet.byte_end },
                "features": [{ "$type": "app.bsky.richtext.facet#link", "uri": facet.uri }],
            })
        })
        .collect();
    let mut record = json!({
        "$type": "app.bsky.feed.post",
        "text": text,
        "createdAt": created_at,
    });
    let language = language.trim();
    if !language.is_empty() {
        // `langs` takes BCP 47 tags, so a locale such as `pt-BR` goes as is.
        record["langs"] = json!([language]);
    }
    if !facets.is_empty() {
        record["facets"] = Value::Array(facets);
    }
    record
}

fn read_session(method: &str, body: &str) -> Result<Session, DeliveryError> {
    // The body holds tokens: the reason says where it went wrong, and
    // never quotes the body (serde's messages can quote values).
    serde_json::from_str(body).map_err(|e| {
        DeliveryError::transient(format!(
            "Bluesky {method} answered without a usable session (unreadable at line {} column {})",
            e.line(),
            e.column()
        ))
    })
}

/// `ratelimit-reset` (Unix seconds) as a wait from `now`.
fn rate_limit_reset(headers: &HeaderMap, now: i64) -> Option<Duration> {
    let reset: i64 = headers
        .get("ratelimit-reset")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(u64::try_from(reset - now).unwrap_or(0)))
}

/// An absolute http(s) URL with a host.
fn is_http_url(url: &str) -> bool {
    reqwest::Url::parse(url)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn the_rate_limit_reset_is_read_as_a_wait_from_now() {
        let mut headers = HeaderMap::new();
        headers.insert("ratelimit-reset", HeaderValue::from_static("1695201121"));
        assert_eq!(
            rate_limit_reset(&headers, 1_695_201_100),
            Some(Duration::from_secs(21))
        );
        assert_eq!(
            rate_limit_reset(&headers, 1_695_201_200),
            Some(Duration::ZERO)
        );
        headers.insert("ratelimit-reset", HeaderValue::from_static("later"));
        assert_eq!(rate_limit_reset(&headers, 0), None);
    }

    #[test]
    fn a_record_without_links_or_language_has_neither_facets_nor_langs() {
        let record = post_record("Payments are down.", "", "2024-01-01T00:00:00.000Z".into());
        assert_eq!(
            record,
            json!({
                "$type": "app.bsky.feed.post",
                "text": "Payments are down.",
                "createdAt": "2024-01-01T00:00:00.000Z",
            })
        );
    }

    #[test]
    fn a_session_that_cannot_be_read_does_not_show_the_body() {
        let err = read_session("createSession", r#"{"accessJwt": "secret-token"}"#).unwrap_err();
        assert!(!err.to_string().contains("secret-token"), "{err}");
    }
}
