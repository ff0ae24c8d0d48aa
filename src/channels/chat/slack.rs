//! Slack incoming webhooks: `POST {webhook_url}` with `{"text": ...}`.
//! Slack answers `200 ok`, or an error status whose plain-text body names
//! the problem (`invalid_payload`, `channel_not_found`, `no_service`...).

use async_trait::async_trait;

use super::webhook::{Webhook, WebhookSettings};
use crate::channels::http::{Answer, Exchange, Provider, classify};
use crate::channels::{DeliveryError, Kind, Receipt, length, message_of};
use crate::message::post::LengthRule;
use crate::message::{TextFamily, TextLimit};
use crate::outbox::Delivery;

pub struct Slack(Webhook);

/// Answers that mean the webhook itself is gone or wrong: every message
/// fails alike until someone configures a new URL.
const WEBHOOK_GONE: [&str; 4] = ["no_service", "no_team", "invalid_token", "team_disabled"];

impl Kind for Slack {
    type Settings = WebhookSettings;
    const FAMILY: Option<TextFamily> = Some(TextFamily::Chat);
    /// Slack truncates far later, but advises keeping messages under 4,000.
    const STANDARD_LIMIT: TextLimit = length(LengthRule::Chars, 4000);
}

#[async_trait]
impl Provider for Slack {
    const LABEL: &'static str = "Slack";

    fn new(settings: &WebhookSettings) -> Result<Self, String> {
        Webhook::new(settings).map(Self)
    }

    async fn send(
        &self,
        exchange: &Exchange<'_, Self>,
        delivery: &Delivery,
    ) -> Result<Receipt, DeliveryError> {
        let message = message_of(delivery)?;
        let payload = serde_json::json!({ "text": escape(&message.text) });
        // Slack answers a bare `ok`; it gives no message id.
        exchange
            .deliver(exchange.client().post(self.0.url.clone()).json(&payload))
            .await
    }

    async fn healthcheck(&self, exchange: &Exchange<'_, Self>) -> Result<(), DeliveryError> {
        // An incoming webhook has no call that checks it without posting
        // a message to the channel, so this only checks that Slack's host
        // resolves and answers HTTPS.
        exchange.reach(self.0.origin()).await
    }

    fn classify(&self, answer: &Answer) -> DeliveryError {
        // Slack's error bodies are bare codes; the generic reading (429,
        // 408 and 5xx retry, other 4xx do not) fits them.
        match classify(Self::LABEL, answer.status, &answer.headers, &answer.body) {
            DeliveryError::Permanent { reason } if WEBHOOK_GONE.contains(&answer.body.trim()) => {
                DeliveryError::Permanent {
                    reason: format!(
                        "{reason} (the webhook was revoked or disabled: create a new one and update webhook_url)"
                    ),
                }
            }
            other => other,
        }
    }

    fn secrets(&self) -> Vec<&str> {
        self.0.secrets()
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
}
