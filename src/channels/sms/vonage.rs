//! Vonage SMS API: `POST /sms/json`. It answers 200 with a status per
//! message part, so success is read from the body, not the HTTP status.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use crate::channels::{
    Channel, ChannelError, DeliveryError, Receipt, http, message_of, read_secret,
};
use crate::config::VonageSettings;
use crate::message::sms::is_gsm7;
use crate::outbox::Delivery;

pub struct VonageChannel {
    name: String,
    api_key: String,
    api_secret: String,
    from: String,
    base_url: String,
    concurrency: usize,
    timeout: Duration,
    http: reqwest::Client,
}

#[derive(Debug, Deserialize)]
struct VonageResponse {
    #[serde(default)]
    messages: Vec<VonagePart>,
}

#[derive(Debug, Deserialize)]
struct VonagePart {
    status: String,
    #[serde(rename = "message-id")]
    message_id: Option<String>,
    #[serde(rename = "error-text")]
    error_text: Option<String>,
}

/// Status 1 is "Throttled"; 4 and 14 are bad credentials, which fail every
/// message alike until the config is fixed. Retrying helps those; every
/// other status is about the message.
const RETRYABLE: [&str; 3] = ["1", "4", "14"];

impl VonageChannel {
    pub fn from_settings(
        settings: &VonageSettings,
        http: reqwest::Client,
    ) -> Result<Self, ChannelError> {
        Ok(Self {
            name: settings.name.clone(),
            api_key: settings.api_key.clone(),
            api_secret: read_secret(&settings.name, "API secret", &settings.api_secret())?,
            from: settings.from.clone(),
            base_url: settings.base_url.trim_end_matches('/').to_owned(),
            concurrency: settings.concurrency.max(1),
            timeout: settings.timeout,
            http,
        })
    }
}

#[async_trait]
impl Channel for VonageChannel {
    fn name(&self) -> &str {
        &self.name
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }

    async fn send(&self, delivery: &Delivery) -> Result<Receipt, DeliveryError> {
        let message = message_of(delivery)?;
        // Vonage takes numbers in international format without the `+`.
        let to = delivery.destination.trim_start_matches('+');
        let kind = if is_gsm7(&message.text) {
            "text"
        } else {
            "unicode"
        };
        let id = delivery.id.to_string();
        let form = [
            ("api_key", self.api_key.as_str()),
            ("api_secret", self.api_secret.as_str()),
            ("from", self.from.as_str()),
            ("to", to),
            ("text", message.text.as_str()),
            ("type", kind),
            // Our delivery id, echoed in delivery receipts.
            ("client-ref", id.as_str()),
        ];
        let response = self
            .http
            .post(format!("{}/sms/json", self.base_url))
            .form(&form)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| http::request_failed("Vonage", e))?;
        let (status, headers) = (response.status(), response.headers().clone());
        let body = response
            .text()
            .await
            .map_err(|e| http::request_failed("Vonage", e))?;
        if !status.is_success() {
            return Err(http::classify("Vonage", status, &headers, &body));
        }
        let parsed: VonageResponse = serde_json::from_str(&body).map_err(|e| {
            DeliveryError::transient(format!(
                "Vonage answered with an unreadable body ({e}): {}",
                http::excerpt(&body)
            ))
        })?;
        if parsed.messages.is_empty() {
            return Err(DeliveryError::transient(format!(
                "Vonage answered without a message status: {}",
                http::excerpt(&body)
            )));
        }
        if let Some(failed) = parsed.messages.iter().find(|m| m.status != "0") {
            let reason = format!(
                "Vonage status {}: {}",
                failed.status,
                failed.error_text.as_deref().unwrap_or("no error text")
            );
            return Err(if RETRYABLE.contains(&failed.status.as_str()) {
                DeliveryError::Transient {
                    reason,
                    retry_after: http::retry_after(&headers),
                }
            } else {
                DeliveryError::Permanent { reason }
            });
        }
        Ok(Receipt {
            provider_ref: parsed.messages.iter().find_map(|m| m.message_id.clone()),
        })
    }

    async fn healthcheck(&self) -> Result<(), DeliveryError> {
        // The account balance call checks reachability and credentials
        // without sending anything.
        let response = self
            .http
            .get(format!("{}/account/get-balance", self.base_url))
            .query(&[("api_key", &self.api_key), ("api_secret", &self.api_secret)])
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| http::request_failed("Vonage", e))?;
        let (status, headers) = (response.status(), response.headers().clone());
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(http::classify("Vonage", status, &headers, &body))
    }
}
