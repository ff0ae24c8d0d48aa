//! Slack incoming webhooks: `POST {webhook_url}` with `{"text": ...}`.
//! Slack answers `200 ok`, or an error status whose plain-text body names
//! the problem (`invalid_payload`, `channel_not_found`, `no_service`...).
//!
//! This file also holds what the three webhook channels (Slack, Discord,
//! Teams) share: reading the webhook URL, reaching its host without
//! posting, and keeping the URL out of error reasons.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use reqwest::{StatusCode, Url};

use crate::channels::{
    Channel, ChannelError, DeliveryError, Receipt, http, message_of, read_secret,
};
use crate::config::WebhookSettings;
use crate::outbox::Delivery;

pub struct SlackChannel {
    name: String,
    url: Url,
    concurrency: usize,
    timeout: Duration,
    http: reqwest::Client,
}

/// Answers that mean the webhook itself is gone or wrong: every message
/// fails alike until someone configures a new URL.
const WEBHOOK_GONE: [&str; 4] = ["no_service", "no_team", "invalid_token", "team_disabled"];

impl SlackChannel {
    pub fn from_settings(
        settings: &WebhookSettings,
        http: reqwest::Client,
    ) -> Result<Self, ChannelError> {
        Ok(Self {
            name: settings.name.clone(),
            url: webhook_url(settings)?,
            concurrency: settings.concurrency.max(1),
            timeout: settings.timeout,
            http,
        })
    }

    fn classify(status: StatusCode, headers: &HeaderMap, body: &str) -> DeliveryError {
        // Slack's error bodies are bare codes; the generic reading (429,
        // 408 and 5xx retry, other 4xx do not) fits them.
        match http::classify("Slack", status, headers, body) {
            DeliveryError::Permanent { reason } if WEBHOOK_GONE.contains(&body.trim()) => {
                DeliveryError::Permanent {
                    reason: format!(
                        "{reason} (the webhook was revoked or disabled: create a new one and update webhook_url)"
                    ),
                }
            }
            other => other,
        }
    }

    fn redact(&self, err: DeliveryError) -> DeliveryError {
        redact(err, &url_secrets(&self.url))
    }
}

#[async_trait]
impl Channel for SlackChannel {
    fn name(&self) -> &str {
        &self.name
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }

    async fn send(&self, delivery: &Delivery) -> Result<Receipt, DeliveryError> {
        let message = message_of(delivery)?;
        let payload = serde_json::json!({ "text": escape(&message.text) });
        let response = self
            .http
            .post(self.url.clone())
            .json(&payload)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.redact(http::request_failed("Slack", e)))?;
        let (status, headers) = (response.status(), response.headers().clone());
        let body = response
            .text()
            .await
            .map_err(|e| self.redact(http::request_failed("Slack", e)))?;
        let body = scrub(&body, &url_secrets(&self.url));
        if status.is_success() {
            // Slack answers a bare `ok`; it gives no message id.
            return Ok(Receipt::default());
        }
        Err(Self::classify(status, &headers, &body))
    }

    async fn healthcheck(&self) -> Result<(), DeliveryError> {
        // An incoming webhook has no call that checks it without posting
        // a message to the channel, so this only checks that Slack's host
        // resolves and answers HTTPS.
        reach_origin("Slack", &self.http, &self.url, self.timeout)
            .await
            .map_err(|e| self.redact(e))
    }
}

/// Slack reads `<...>` as links and mentions (`<!channel>` would ping the
/// whole channel) and `&` as the start of an entity. These three are the
/// only characters Slack asks senders to escape; the text displays as
/// written.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Reads a webhook URL from its secret and checks that it is an http(s)
/// URL. The URL is a credential: no error repeats it.
pub(super) fn webhook_url(settings: &WebhookSettings) -> Result<Url, ChannelError> {
    let raw = read_secret(&settings.name, "webhook URL", &settings.webhook_url())?;
    let invalid = |why: String| ChannelError::Config {
        channel: settings.name.clone(),
        message: format!("the webhook URL {why}"),
    };
    // `url::ParseError` describes the problem without quoting the input.
    let url = Url::parse(&raw).map_err(|e| invalid(format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("must start with https://".into()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("has no host".into()));
    }
    Ok(url)
}

/// Checks that a webhook's host resolves and answers HTTP(S) within the
/// timeout, without posting anything: a HEAD on the URL's origin, whose
/// status does not matter (the origin itself is not an API).
pub(super) async fn reach_origin(
    provider: &str,
    http: &reqwest::Client,
    url: &Url,
    timeout: Duration,
) -> Result<(), DeliveryError> {
    let origin = format!("{}/", url.origin().ascii_serialization());
    http.head(origin)
        .timeout(timeout)
        .send()
        .await
        .map(drop)
        .map_err(|e| http::request_failed(provider, e))
}

/// What in a webhook URL is its credential: the whole URL, and its path
/// and query on their own (a page may quote just those).
pub(super) fn url_secrets(url: &Url) -> [&str; 3] {
    [url.as_str(), url.path(), url.query().unwrap_or_default()]
}

/// Takes secrets (a webhook URL, a bot token) out of a text, in case a
/// provider or a proxy in between echoed them back. Done to a body before
/// it is cut to an excerpt, so a cut-off secret cannot slip through.
pub(super) fn scrub(text: &str, secrets: &[&str]) -> String {
    // A path of "/" or "" is no secret, and replacing it would mangle
    // every text.
    secrets
        .iter()
        .filter(|s| s.len() > 1)
        .fold(text.to_owned(), |text, secret| {
            text.replace(secret, "[redacted]")
        })
}

/// `scrub` for an error's reason.
pub(super) fn redact(err: DeliveryError, secrets: &[&str]) -> DeliveryError {
    match err {
        DeliveryError::Transient {
            reason,
            retry_after,
        } => DeliveryError::Transient {
            reason: scrub(&reason, secrets),
            retry_after,
        },
        DeliveryError::Permanent { reason } => DeliveryError::Permanent {
            reason: scrub(&reason, secrets),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_slacks_three_control_characters_are_escaped() {
        assert_eq!(
            escape("Tom & Jerry <!channel> -> *bold* \"quoted\" 'single'"),
            "Tom &amp; Jerry &lt;!channel&gt; -&gt; *bold* \"quoted\" 'single'"
        );
    }

    #[test]
    fn redaction_removes_the_url_and_its_parts_but_never_a_bare_slash() {
        let url = Url::parse("https://hooks.example/services/T1/B2/x?sig=abc").unwrap();
        let err = DeliveryError::permanent(
            "POST https://hooks.example/services/T1/B2/x?sig=abc failed at /services/T1/B2/x with sig=abc, see /",
        );
        assert_eq!(
            redact(err, &url_secrets(&url)),
            DeliveryError::permanent("POST [redacted] failed at [redacted] with [redacted], see /")
        );
        let root = Url::parse("https://hooks.example/").unwrap();
        assert_eq!(scrub("a/b", &url_secrets(&root)), "a/b");
    }
}
