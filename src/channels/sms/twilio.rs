//! Twilio Programmable Messaging: `POST /2010-04-01/Accounts/{sid}/Messages.json`,
//! a form with basic auth.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde::Deserialize;
use sha1::Sha1;

use crate::channels::{
    Channel, ChannelError, DeliveryError, Receipt, http, message_of, read_secret,
};
use crate::config::TwilioSettings;
use crate::outbox::Delivery;

pub struct TwilioChannel {
    name: String,
    account_sid: String,
    auth_token: String,
    sender: Sender,
    base_url: String,
    concurrency: usize,
    timeout: Duration,
    http: reqwest::Client,
}

enum Sender {
    From(String),
    MessagingService(String),
}

/// Twilio's error body.
#[derive(Debug, Deserialize)]
struct TwilioError {
    code: Option<u32>,
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TwilioMessage {
    sid: String,
}

/// Twilio error codes that retrying can fix: its own rate limit and queue
/// overflow. Everything else in a 4xx (21211 invalid number, 21610
/// unsubscribed recipient, 21614 not a mobile number, 21408 region not
/// enabled…) fails the same way again.
const TRANSIENT_CODES: [u32; 3] = [20429, 30001, 14107];

impl TwilioChannel {
    pub fn from_settings(
        settings: &TwilioSettings,
        http: reqwest::Client,
    ) -> Result<Self, ChannelError> {
        let config_err = |message: &str| ChannelError::Config {
            channel: settings.name.clone(),
            message: message.to_owned(),
        };
        let sender = match (&settings.from, &settings.messaging_service_sid) {
            (Some(from), None) => Sender::From(from.clone()),
            (None, Some(sid)) => Sender::MessagingService(sid.clone()),
            _ => {
                return Err(config_err(
                    "set exactly one of `from` and `messaging_service_sid`",
                ));
            }
        };
        if !settings.account_sid.starts_with("AC") {
            return Err(config_err("account_sid must be a Twilio Account SID (AC…)"));
        }
        Ok(Self {
            name: settings.name.clone(),
            account_sid: settings.account_sid.clone(),
            auth_token: read_secret(&settings.name, "auth token", &settings.auth_token())?,
            sender,
            base_url: settings.base_url.trim_end_matches('/').to_owned(),
            concurrency: settings.concurrency.max(1),
            timeout: settings.timeout,
            http,
        })
    }

    fn classify(
        &self,
        status: StatusCode,
        headers: &reqwest::header::HeaderMap,
        body: &str,
    ) -> DeliveryError {
        let error: Option<TwilioError> = serde_json::from_str(body).ok();
        let code = error.as_ref().and_then(|e| e.code);
        let message = error
            .as_ref()
            .and_then(|e| e.message.clone())
            .unwrap_or_else(|| http::excerpt(body));
        let reason = match code {
            Some(code) => format!("Twilio error {code}: {message}"),
            None => format!("Twilio answered {status}: {message}"),
        };
        let retry_after = http::retry_after(headers);
        if status == StatusCode::UNAUTHORIZED {
            // Wrong credentials fail every message alike until fixed.
            DeliveryError::Transient {
                reason: format!("{reason} (check the account SID and auth token)"),
                retry_after,
            }
        } else if code.is_some_and(|c| TRANSIENT_CODES.contains(&c))
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
            || status.is_server_error()
        {
            DeliveryError::Transient {
                reason,
                retry_after,
            }
        } else {
            DeliveryError::Permanent { reason }
        }
    }
}

#[async_trait]
impl Channel for TwilioChannel {
    fn name(&self) -> &str {
        &self.name
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }

    async fn send(&self, delivery: &Delivery) -> Result<Receipt, DeliveryError> {
        let message = message_of(delivery)?;
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.base_url, self.account_sid
        );
        let mut form = vec![
            ("To", delivery.destination.as_str()),
            ("Body", message.text.as_str()),
        ];
        match &self.sender {
            Sender::From(from) => form.push(("From", from)),
            Sender::MessagingService(sid) => form.push(("MessagingServiceSid", sid)),
        }
        let response = self
            .http
            .post(&url)
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .form(&form)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| http::request_failed("Twilio", e))?;
        let (status, headers) = (response.status(), response.headers().clone());
        let body = response
            .text()
            .await
            .map_err(|e| http::request_failed("Twilio", e))?;
        if !status.is_success() {
            return Err(self.classify(status, &headers, &body));
        }
        let sid = serde_json::from_str::<TwilioMessage>(&body)
            .ok()
            .map(|m| m.sid);
        Ok(Receipt { provider_ref: sid })
    }

    async fn healthcheck(&self) -> Result<(), DeliveryError> {
        let url = format!(
            "{}/2010-04-01/Accounts/{}.json",
            self.base_url, self.account_sid
        );
        let response = self
            .http
            .get(&url)
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| http::request_failed("Twilio", e))?;
        let (status, headers) = (response.status(), response.headers().clone());
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(self.classify(status, &headers, &body))
    }
}

/// `X-Twilio-Signature`: base64 of HMAC-SHA1, keyed with the auth token,
/// over the full URL Twilio called followed by every POST parameter's name
/// and value, sorted by name.
pub fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac =
        Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_twilios_documented_example() {
        // Twilio's own signature-validation sample.
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675310"),
            ("Digits", "1234"),
            ("From", "+14158675310"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            twilio_signature(
                "12345",
                "https://mycompany.com/myapp.php?foo=1&bar=2",
                &params
            ),
            "GvWf1cFY/Q7PnoempGyD5oXAezc="
        );
    }
}
