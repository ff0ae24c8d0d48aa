//! Mastodon: `POST /api/v1/statuses`, a form with a bearer token. The
//! delivery id goes in `Idempotency-Key`, so a post resent after a crash
//! (within the hour Mastodon keeps keys) returns the first status instead
//! of posting twice.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::Deserialize;

use crate::channels::http::{Answer, Exchange, Provider, is_http_url, is_temporary};
use crate::channels::settings::{read_secret, secret, section};
use crate::channels::{DeliveryError, Kind, Receipt, length, message_of};
use crate::message::post::LengthRule;
use crate::message::{TextFamily, TextLimit};
use crate::outbox::Delivery;

section! {
    /// A Mastodon account.
    pub struct MastodonSettings: broadcast {
        /// e.g. `https://mastodon.social`.
        pub instance_url: String,
        pub access_token_env: Option<String>,
        pub access_token_file: Option<PathBuf>,
        #[serde(default)]
        pub visibility: MastodonVisibility,
        @locale,
        /// The instance's post limit.
        #[serde(default = "default_max_characters")]
        pub max_characters: usize,
    }
}

/// mastodon.social's limit, and the software's default.
const MAX_CHARACTERS: usize = 500;

fn default_max_characters() -> usize {
    MAX_CHARACTERS
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MastodonVisibility {
    #[default]
    Public,
    Unlisted,
    Private,
    Direct,
}

impl MastodonVisibility {
    pub fn as_str(&self) -> &'static str {
        match self {
            MastodonVisibility::Public => "public",
            MastodonVisibility::Unlisted => "unlisted",
            MastodonVisibility::Private => "private",
            MastodonVisibility::Direct => "direct",
        }
    }
}

pub struct Mastodon {
    instance_url: String,
    access_token: String,
    visibility: &'static str,
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

impl Kind for Mastodon {
    type Settings = MastodonSettings;
    const FAMILY: Option<TextFamily> = Some(TextFamily::Social);
    /// Characters as Mastodon counts them (a link as 23).
    const STANDARD_LIMIT: TextLimit = length(LengthRule::Mastodon, MAX_CHARACTERS);

    fn limit(settings: &MastodonSettings) -> TextLimit {
        length(LengthRule::Mastodon, settings.max_characters)
    }
}

#[async_trait]
impl Provider for Mastodon {
    const LABEL: &'static str = "Mastodon";

    fn new(settings: &MastodonSettings) -> Result<Self, String> {
        let instance_url = settings.instance_url.trim().trim_end_matches('/');
        if !is_http_url(instance_url) {
            return Err(format!(
                "instance_url must be an http(s) URL, not `{instance_url}`"
            ));
        }
        Ok(Self {
            instance_url: instance_url.to_owned(),
            access_token: read_secret(
                "access token",
                &secret(&settings.access_token_env, &settings.access_token_file),
            )?,
            visibility: settings.visibility.as_str(),
        })
    }

    async fn send(
        &self,
        exchange: &Exchange<'_, Self>,
        delivery: &Delivery,
    ) -> Result<Receipt, DeliveryError> {
        let message = message_of(delivery)?;
        let mut form = vec![
            ("status", message.text.as_str()),
            ("visibility", self.visibility),
        ];
        if let Some(language) = iso639(&message.language) {
            form.push(("language", language));
        }
        let request = exchange
            .client()
            .post(format!("{}/api/v1/statuses", self.instance_url))
            .bearer_auth(&self.access_token)
            .header("Idempotency-Key", delivery.id.to_string())
            .form(&form);
        exchange.deliver(request).await
    }

    async fn healthcheck(&self, exchange: &Exchange<'_, Self>) -> Result<(), DeliveryError> {
        // Checks reachability and the token without posting anything.
        let request = exchange
            .client()
            .get(format!(
                "{}/api/v1/accounts/verify_credentials",
                self.instance_url
            ))
            .bearer_auth(&self.access_token);
        exchange.check(request).await
    }

    fn receipt(&self, answer: &Answer) -> Result<Receipt, DeliveryError> {
        Ok(answer.receipt(|m: MastodonStatus| m.id))
    }

    /// The token is never part of the reason: Mastodon does not echo it,
    /// and the reason is built from the status and body only.
    fn classify(&self, answer: &Answer) -> DeliveryError {
        let status = answer.status;
        let message = serde_json::from_str::<MastodonError>(&answer.body)
            .ok()
            .and_then(|e| e.error)
            .unwrap_or_else(|| answer.excerpt());
        let reason = format!("Mastodon answered {status}: {message}");
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            // A revoked token or a missing `write:statuses` scope fails every
            // post alike until someone fixes it; the dispatcher's attempt
            // limit bounds the retries.
            DeliveryError::Transient {
                reason: format!("{reason} (check the access token and its write:statuses scope)"),
                retry_after: answer.retry_after(),
            }
        } else if status == StatusCode::TOO_MANY_REQUESTS {
            DeliveryError::Transient {
                reason,
                retry_after: answer
                    .retry_after()
                    .or_else(|| rate_limit_reset(&answer.headers, Utc::now())),
            }
        } else if is_temporary(status) {
            DeliveryError::Transient {
                reason,
                retry_after: answer.retry_after(),
            }
        } else {
            // 422 (too long, blank, unknown visibility) and any other client
            // error fail the same way again.
            DeliveryError::Permanent { reason }
        }
    }
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
}
