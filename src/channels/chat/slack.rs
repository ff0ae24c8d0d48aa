//! Slack incoming webhooks: `POST {webhook_url}` with `{"text": ...}`.
//! Slack answers `200 ok`, or an error status whose plain-text body names
//! the problem (`invalid_payload`, `channel_not_found`, `no_service`...).

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use reqwest::{StatusCode, Url};

use super::webhook::{reach_origin, redact, scrub, url_secrets, webhook_url};
use crate::channels::{Channel, ChannelError, DeliveryError, Receipt, http, message_of};
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
