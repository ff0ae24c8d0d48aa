//! Mastodon: `POST /api/v1/statuses`, a form with a bearer token. The
//! delivery id goes in `Idempotency-Key`, so a post resent after a crash
//! (within the hour Mastodon keeps keys) returns the first status instead
//! of posting twice.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::Deserialize;

use crate::channels::{
    Channel, ChannelError, DeliveryError, Receipt, http, message_of, read_secret,
};
use crate::config::MastodonSettings;
use crate::outbox::Delivery;

pub struct MastodonChannel {
    name: String,
    instance_url: String,
    access_token: String,
    visibility: &'static str,
    concurrency: usize,
    timeout: Duration,
    http: reqwest::Client,
}

/// Mastodon's error body: `{"error": "Validation failed: …"}`.
#[derive(Debug, Deserialize)]
struct MastodonError {
    error: Option<String>,
}

/// The part of the created status we keep.
#[derive(Debug, Deserialize)]
struct MastodonStatus {
    id: String,
}

impl MastodonChannel {
    pub fn from_settings(
        settings: &MastodonSettings,
        http: reqwest::Client,
    ) -> Result<Self, ChannelError> {
        let instance_url = settings.instance_url.trim().trim_end_matches('/');
        if !is_http_url(instance_url) {
            return Err(ChannelError::Config {
                channel: settings.name.clone(),
                message: format!("instance_url must be an http(s) URL, not `{instance_url}`"),
            });
        }
        Ok(Self {
            name: settings.name.clone(),
            instance_url: instance_url.to_owned(),
            access_token: read_secret(&settings.name, "access token", &settings.access_token())?,
            visibility: settings.visibility.as_str(),
            concurrency: settings.concurrency.max(1),
            timeout: settings.timeout,
            http,
        })
    }

    /// Reads an error answer. The token is never part of it: Mastodon does
    /// not echo it, and the reason is built from the status and body only.
    fn classify(&self, status: StatusCode, headers: &HeaderMap, body: &str) -> DeliveryError {
        let message = serde_json::from_str::<MastodonError>(body)
            .ok()
            .and_then(|e| e.error)
            .unwrap_or_else(|| http::excerpt(body));
        let reason = format!("Mastodon answered {status}: {message}");
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            // A revoked token or a missing `write:statuses` scope fails every
            // post alike until someone fixes it; the dispatcher's attempt
            // limit bounds the retries.
            DeliveryError::Transient {
                reason: format!("{reason} (check the access token and its write:statuses scope)"),
                retry_after: http::retry_after(headers),
            }
        } else if status == StatusCode::TOO_MANY_REQUESTS {
            DeliveryError::Transient {
                reason,
                retry_after: http::retry_after(headers)
                    .or_else(|| rate_limit_reset(headers, Utc::now())),
            }
        } else if status == StatusCode::REQUEST_TIMEOUT || status.is_server_error() {
            DeliveryError::Transient {
                reason,
                retry_after: http::retry_after(headers),
            }
        } else {
            // 422 (too long, blank, unknown visibility) and any other client
            // error fail the same way again.
            DeliveryError::Permanent { reason }
        }
    }
}

#[async_trait]
impl Channel for MastodonChannel {
    fn name(&self) -> &str {
        &self.name
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }

    async fn send(&self, delivery: &Delivery) -> Result<Receipt, DeliveryError> {
        let message = message_of(delivery)?;
        let mut form = vec![
            ("status", message.text.as_str()),
            ("visibility", self.visibility),
        ];
        if let Some(language) = iso639(&message.language) {
            form.push(("language", language));
        }
        let response = self
            .http
            .post(format!("{}/api/v1/statuses", self.instance_url))
            .bearer_auth(&self.access_token)
            .header("Idempotency-Key", delivery.id.to_string())
            .form(&form)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| http::request_failed("Mastodon", e))?;
        let (status, headers) = (response.status(), response.headers().clone());
        let body = response
            .text()
            .await
            .map_err(|e| http::request_failed("Mastodon", e))?;
        if !status.is_success() {
            return Err(self.classify(status, &headers, &body));
        }
        // A 2xx means the status exists; failing here would only post it
        // again, so an unreadable body still counts as sent.
        let id = serde_json::from_str::<MastodonStatus>(&body)
            .ok()
            .map(|s| s.id);
        Ok(Receipt { provider_ref: id })
    }

    async fn healthcheck(&self) -> Result<(), DeliveryError> {
        // Checks reachability and the token without posting anything.
        let response = self
            .http
            .get(format!(
                "{}/api/v1/accounts/verify_credentials",
                self.instance_url
            ))
            .bearer_auth(&self.access_token)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| http::request_failed("Mastodon", e))?;
        let (status, headers) = (response.status(), response.headers().clone());
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(self.classify(status, &headers, &body))
    }
}

/// An absolute http(s) URL with a host.
fn is_http_url(url: &str) -> bool {
    reqwest::Url::parse(url)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// The ISO 639 code Mastodon wants from a locale tag: `pt` from `pt-BR`,
/// `bn` from `bn`. Anything that is not a language subtag is left out, and
/// Mastodon then detects the language itself.
fn iso639(locale: &str) -> Option<&str> {
    let primary = locale.trim().split(['-', '_']).next()?;
    let is_code =
        (2..=3).contains(&primary.len()) && primary.bytes().all(|b| b.is_ascii_lowercase());
    is_code.then_some(primary)
}

/// `X-RateLimit-Reset` (an ISO 8601 time) as a wait from `now`: Mastodon
/// sends it on every answer, `Retry-After` not always.
fn rate_limit_reset(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get("x-ratelimit-reset")?.to_str().ok()?.trim();
    let reset = DateTime::parse_from_rfc3339(value).ok()?;
    Some(
        (reset.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn the_language_is_the_primary_subtag_of_the_locale() {
        assert_eq!(iso639("bn"), Some("bn"));
        assert_eq!(iso639("pt-BR"), Some("pt"));
        assert_eq!(iso639("zh_Hant"), Some("zh"));
        assert_eq!(iso639(""), None);
        assert_eq!(iso639("EN"), None);
        assert_eq!(iso639("english"), None);
    }

    #[test]
    fn the_rate_limit_reset_is_read_as_a_wait_from_now() {
        let now = DateTime::parse_from_rfc3339("2020-09-08T13:24:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-ratelimit-reset",
            HeaderValue::from_static("2020-09-08T13:25:00.000000Z"),
        );
        assert_eq!(
            rate_limit_reset(&headers, now),
            Some(Duration::from_secs(60))
        );
        headers.insert(
            "x-ratelimit-reset",
            HeaderValue::from_static("2020-09-08T13:00:00Z"),
        );
        assert_eq!(rate_limit_reset(&headers, now), Some(Duration::ZERO));
        headers.insert("x-ratelimit-reset", HeaderValue::from_static("soon"));
        assert_eq!(rate_limit_reset(&headers, now), None);
    }

    #[test]
    fn only_http_urls_are_instance_urls() {
        assert!(is_http_url("https://mastodon.social"));
        assert!(is_http_url("http://127.0.0.1:8080"));
        assert!(!is_http_url("mastodon.social"));
        assert!(!is_http_url("ftp://mastodon.social"));
    }
}
