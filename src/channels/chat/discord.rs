//! Discord webhooks: `POST {webhook_url}?wait=true` with `content` and
//! `allowed_mentions`. With `wait=true` Discord answers with the created
//! message, so a failure is reported instead of dropped, and the message
//! id becomes the receipt.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::Value;

use super::webhook::{Webhook, WebhookSettings};
use crate::channels::http::{Answer, Exchange, Provider, excerpt, is_temporary};
use crate::channels::{DeliveryError, Kind, Receipt, length, message_of};
use crate::message::post::LengthRule;
use crate::message::{TextFamily, TextLimit};
use crate::outbox::Delivery;

pub struct Discord {
    /// The webhook as configured (for `GET`, and to know what to keep out
    /// of error reasons).
    webhook: Webhook,
    /// The same URL with `wait=true` (for posting).
    execute_url: Url,
}

/// Discord's error body: `{"message", "code"}`, `errors` for invalid form
/// fields, `retry_after` (seconds, fractional) when rate limited.
#[derive(Debug, Default, Deserialize)]
struct DiscordError {
    message: Option<String>,
    code: Option<u64>,
    retry_after: Option<f64>,
    errors: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct DiscordMessage {
    id: String,
}

impl Kind for Discord {
    type Settings = WebhookSettings;
    const FAMILY: Option<TextFamily> = Some(TextFamily::Chat);
    const STANDARD_LIMIT: TextLimit = length(LengthRule::Chars, 2000);
}

#[async_trait]
impl Provider for Discord {
    const LABEL: &'static str = "Discord";

    fn new(settings: &WebhookSettings) -> Result<Self, String> {
        let webhook = Webhook::new(settings)?;
        Ok(Self {
            execute_url: with_wait(&webhook.url),
            webhook,
        })
    }

    async fn send(
        &self,
        exchange: &Exchange<'_, Self>,
        delivery: &Delivery,
    ) -> Result<Receipt, DeliveryError> {
        let message = message_of(delivery)?;
        let payload = serde_json::json!({
            "content": message.text,
            // Parse no mentions at all: an `@everyone` in the text stays
            // text and pings nobody.
            "allowed_mentions": { "parse": [] },
        });
        exchange
            .deliver(
                exchange
                    .client()
                    .post(self.execute_url.clone())
                    .json(&payload),
            )
            .await
    }

    async fn healthcheck(&self, exchange: &Exchange<'_, Self>) -> Result<(), DeliveryError> {
        // `GET` on a webhook URL returns the webhook object: it checks the
        // webhook exists and its token is right, and posts nothing.
        let mut url = self.webhook.url.clone();
        url.set_query(None);
        exchange.check(exchange.client().get(url)).await
    }

    /// 200 with the message; a 204 (`wait` ignored) has no id to give.
    fn receipt(&self, answer: &Answer) -> Result<Receipt, DeliveryError> {
        Ok(answer.receipt(|m: DiscordMessage| m.id))
    }

    fn classify(&self, answer: &Answer) -> DeliveryError {
        let status = answer.status;
        let error: DiscordError = serde_json::from_str(&answer.body).unwrap_or_default();
        let message = error.message.unwrap_or_else(|| answer.excerpt());
        let mut reason = match error.code {
            // Code 0 is Discord's "general error": the status says more.
            Some(code) if code != 0 => format!("Discord error {code}: {message}"),
            _ => format!("Discord answered {status}: {message}"),
        };
        let mut fields = Vec::new();
        if let Some(errors) = &error.errors {
            field_errors(errors, "", &mut fields);
        }
        if !fields.is_empty() {
            reason = format!("{reason} ({})", excerpt(&fields.join("; ")));
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            // The body's `retry_after` is fractional seconds and the more
            // precise of the two; the header is the fallback (Cloudflare's
            // own 429s have no JSON body).
            let from_body = error
                .retry_after
                .and_then(|s| Duration::try_from_secs_f64(s).ok());
            DeliveryError::Transient {
                reason,
                retry_after: from_body.or_else(|| answer.retry_after()),
            }
        } else if is_temporary(status) {
            DeliveryError::Transient {
                reason,
                retry_after: answer.retry_after(),
            }
        } else {
            // 400 (e.g. 50035 Invalid Form Body), 401 Invalid Webhook
            // Token, 404 Unknown Webhook: the same message fails again.
            DeliveryError::Permanent { reason }
        }
    }

    /// The token is in the path, which the execute URL shares.
    fn secrets(&self) -> Vec<&str> {
        self.webhook.secrets()
    }
}

/// The webhook URL with `wait=true`, keeping any other parameter the
/// configured URL carries (e.g. `thread_id`) and replacing any `wait`.
fn with_wait(url: &Url) -> Url {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(key, _)| key != "wait")
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    let mut url = url.clone();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair("wait", "true");
    url
}

/// Flattens Discord's nested `errors` object into `field: message` lines,
/// e.g. `content: Must be 2000 or fewer in length.`
fn field_errors(value: &Value, path: &str, out: &mut Vec<String>) {
    let Value::Object(map) = value else { return };
    for (key, child) in map {
        if key == "_errors" {
            let messages = child.as_array().into_iter().flatten();
            out.extend(
                messages
                    .filter_map(|e| e.get("message").and_then(Value::as_str))
                    .map(|m| format!("{path}: {m}")),
            );
        } else if path.is_empty() {
            field_errors(child, key, out);
        } else {
            field_errors(child, &format!("{path}.{key}"), out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_is_added_to_a_url_with_or_without_a_query() {
        let plain = Url::parse("https://discord.com/api/webhooks/1/tok").unwrap();
        assert_eq!(
            with_wait(&plain).as_str(),
            "https://discord.com/api/webhooks/1/tok?wait=true"
        );
        let threaded =
            Url::parse("https://discord.com/api/webhooks/1/tok?thread_id=9&wait=false").unwrap();
        assert_eq!(
            with_wait(&threaded).as_str(),
            "https://discord.com/api/webhooks/1/tok?thread_id=9&wait=true"
        );
    }

    #[test]
    fn nested_form_errors_are_named_by_their_field() {
        let errors = serde_json::json!({
            "content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]},
            "embeds": {"0": {"url": {"_errors": [{"code": "URL_TYPE_INVALID_URL", "message": "Not a well formed URL."}]}}}
        });
        let mut out = Vec::new();
        field_errors(&errors, "", &mut out);
        assert_eq!(
            out,
            vec![
                "content: Must be 2000 or fewer in length.".to_owned(),
                "embeds.0.url: Not a well formed URL.".to_owned()
            ]
        );
    }
}
