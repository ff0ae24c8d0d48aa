//! Bluesky (atproto): log in once with an app password
//! (`com.atproto.server.createSession`), then post each delivery as an
//! `app.bsky.feed.post` record (`com.atproto.repo.createRecord`).
//!
//! Bluesky limits logins hard (per account, per 5 minutes and per day), so
//! the session is kept and reused for every post. When the access token
//! expires, the refresh token renews it (`refreshSession`); only when that
//! is refused does the channel log in again.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{SecondsFormat, Utc};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::channels::http::{Answer, Exchange, Provider, is_http_url, is_temporary};
use crate::channels::settings::{read_secret, secret, section};
use crate::channels::{DeliveryError, Kind, Receipt, length, message_of};
use crate::message::post::{LengthRule, link_facets};
use crate::message::{TextFamily, TextLimit};
use crate::outbox::Delivery;

section! {
    /// A Bluesky account, posting with an app password.
    pub struct BlueskySettings: broadcast {
        /// The account's PDS or entryway.
        #[serde(default = "default_service")]
        pub service: String,
        /// Handle or DID.
        pub identifier: String,
        pub app_password_env: Option<String>,
        pub app_password_file: Option<PathBuf>,
        @locale,
    }
}

fn default_service() -> String {
    "https://bsky.social".into()
}

pub struct Bluesky {
    service: String,
    identifier: String,
    app_password: String,
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

/// An answer to one XRPC call that did not succeed.
struct Failure<'a> {
    answer: &'a Answer,
    error: XrpcError,
}

impl<'a> Failure<'a> {
    fn new(answer: &'a Answer) -> Self {
        Failure {
            answer,
            error: serde_json::from_str(&answer.body).unwrap_or_default(),
        }
    }

    /// The failure in an answer, `None` for a success.
    fn of(answer: &'a Answer) -> Option<Self> {
        (!answer.status.is_success()).then(|| Self::new(answer))
    }

    /// `Error: message`, or the start of the body when it is not XRPC's.
    fn describe(&self) -> String {
        match (&self.error.error, &self.error.message) {
            (Some(error), Some(message)) => format!("{error}: {message}"),
            (Some(error), None) => error.clone(),
            (None, Some(message)) => message.clone(),
            (None, None) => self.answer.excerpt(),
        }
    }

    /// `Bluesky <method> answered <status>: <description>`.
    fn reason(&self, method: &str) -> String {
        format!(
            "Bluesky {method} answered {}: {}",
            self.answer.status,
            self.describe()
        )
    }

    /// The access token is no longer accepted: renew the session and try
    /// again. Bluesky says `400 ExpiredToken`; other PDSs answer 401.
    fn session_expired(&self) -> bool {
        self.answer.status == StatusCode::UNAUTHORIZED
            || (self.answer.status == StatusCode::BAD_REQUEST
                && matches!(
                    self.error.error.as_deref(),
                    Some("ExpiredToken" | "InvalidToken")
                ))
    }

    fn is_temporary(&self) -> bool {
        is_temporary(self.answer.status)
    }

    /// When to try again: `Retry-After`, else `ratelimit-reset` (Unix
    /// seconds), which Bluesky sends on every answer.
    fn retry_after(&self) -> Option<Duration> {
        self.answer.retry_after().or_else(|| {
            if self.answer.status == StatusCode::TOO_MANY_REQUESTS {
                rate_limit_reset(&self.answer.headers, Utc::now().timestamp())
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

impl Kind for Bluesky {
    type Settings = BlueskySettings;
    const FAMILY: Option<TextFamily> = Some(TextFamily::Social);
    /// 300 graphemes, whatever the PDS.
    const STANDARD_LIMIT: TextLimit = length(LengthRule::Graphemes, 300);
}

impl Bluesky {
    fn xrpc(&self, method: &str) -> String {
        format!("{}/xrpc/{method}", self.service)
    }

    /// The current session, logging in when there is none.
    async fn session(&self, exchange: &Exchange<'_, Self>) -> Result<Session, DeliveryError> {
        let mut current = self.session.lock().await;
        if let Some(session) = current.as_ref() {
            return Ok(session.clone());
        }
        let session = self.create_session(exchange).await?;
        *current = Some(session.clone());
        Ok(session)
    }

    /// A new session in place of `stale`, whose access token was refused:
    /// refreshed when the refresh token still works, else a new login.
    async fn renew(
        &self,
        exchange: &Exchange<'_, Self>,
        stale: &Session,
    ) -> Result<Session, DeliveryError> {
        let mut current = self.session.lock().await;
        if let Some(session) = current.as_ref()
            && session.access_jwt != stale.access_jwt
        {
            // Another send renewed it while this one waited for the lock.
            return Ok(session.clone());
        }
        // No answer: the refresh token may still be good, so it is kept
        // for the next attempt.
        let refreshed = exchange
            .call(
                exchange
                    .client()
                    .post(self.xrpc("com.atproto.server.refreshSession"))
                    .bearer_auth(&stale.refresh_jwt),
            )
            .await?;
        let renewed = match Failure::of(&refreshed) {
            None => {
                let session = read_session("refreshSession", &refreshed.body)?;
                tracing::debug!(channel = %exchange.channel(), "Bluesky session refreshed");
                session
            }
            // Bluesky is down or throttling: logging in now would fail too
            // and spend the scarce logins.
            Some(failure) if failure.is_temporary() => {
                return Err(failure.transient(failure.reason("refreshSession")));
            }
            // The refresh token was refused (expired or revoked): log in.
            Some(_) => match self.create_session(exchange).await {
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

    async fn create_session(
        &self,
        exchange: &Exchange<'_, Self>,
    ) -> Result<Session, DeliveryError> {
        let request = exchange
            .client()
            .post(self.xrpc("com.atproto.server.createSession"))
            .json(&json!({ "identifier": self.identifier, "password": self.app_password }));
        let answer = exchange.call(request).await?;
        match Failure::of(&answer) {
            None => {
                let session = read_session("createSession", &answer.body)?;
                tracing::info!(channel = %exchange.channel(), did = %session.did, "logged in to Bluesky");
                Ok(session)
            }
            Some(failure) if failure.is_temporary() => {
                Err(failure.transient(failure.reason("createSession")))
            }
            // 401 AuthenticationRequired, 400 AccountTakedown or
            // AuthFactorTokenRequired: fails alike until the credentials are
            // fixed; the dispatcher's attempt limit bounds the retries.
            Some(failure) => Err(failure.transient(format!(
                "Bluesky refused to log in as {}: {} (check the identifier and that the password is an app password)",
                self.identifier,
                failure.describe()
            ))),
        }
    }

    /// Posts `record` in `session`.
    async fn create_record(
        &self,
        exchange: &Exchange<'_, Self>,
        session: &Session,
        record: &Value,
    ) -> Result<Answer, DeliveryError> {
        let request = exchange
            .client()
            .post(self.xrpc("com.atproto.repo.createRecord"))
            .bearer_auth(&session.access_jwt)
            .json(&json!({
                "repo": session.did,
                "collection": "app.bsky.feed.post",
                "record": record,
            }));
        exchange.call(request).await
    }
}

#[async_trait]
impl Provider for Bluesky {
    const LABEL: &'static str = "Bluesky";

    fn new(settings: &BlueskySettings) -> Result<Self, String> {
        let service = settings.service.trim().trim_end_matches('/');
        if !is_http_url(service) {
            return Err(format!("service must be an http(s) URL, not `{service}`"));
        }
        let identifier = settings.identifier.trim();
        if identifier.is_empty() {
            return Err("identifier must be the account's handle or DID".into());
        }
        Ok(Self {
            service: service.to_owned(),
            identifier: identifier.to_owned(),
            app_password: read_secret(
                "app password",
                &secret(&settings.app_password_env, &settings.app_password_file),
            )?,
            session: Mutex::new(None),
        })
    }

    /// Logs in first when there is no session, and renews it once when
    /// the post is refused for an expired token.
    async fn send(
        &self,
        exchange: &Exchange<'_, Self>,
        delivery: &Delivery,
    ) -> Result<Receipt, DeliveryError> {
        let message = message_of(delivery)?;
        let record = post_record(
            &message.text,
            &message.language,
            Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        );
        let session = self.session(exchange).await?;
        let answer = self.create_record(exchange, &session, &record).await?;
        if !Failure::of(&answer).is_some_and(|failure| failure.session_expired()) {
            return self.read(&answer);
        }
        // The same post again with the new token.
        let renewed = self.renew(exchange, &session).await?;
        let answer = self.create_record(exchange, &renewed, &record).await?;
        self.read(&answer)
    }

    /// A session proves both that Bluesky answers and that the
    /// credentials work; an existing one is not logged in again.
    async fn healthcheck(&self, exchange: &Exchange<'_, Self>) -> Result<(), DeliveryError> {
        self.session(exchange).await.map(drop)
    }

    fn receipt(&self, answer: &Answer) -> Result<Receipt, DeliveryError> {
        Ok(answer.receipt(|m: CreatedRecord| m.uri))
    }

    /// What a refused `createRecord` means for the delivery.
    fn classify(&self, answer: &Answer) -> DeliveryError {
        let failure = Failure::new(answer);
        let reason = failure.reason("createRecord");
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
