//! Twilio Programmable Messaging: `POST /2010-04-01/Accounts/{sid}/Messages.json`,
//! a form with basic auth.

use std::path::PathBuf;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde::Deserialize;
use sha1::Sha1;

use crate::channels::http::{Answer, Exchange, Provider, excerpt, is_temporary};
use crate::channels::settings::{read_secret, secret, section};
use crate::channels::{DeliveryError, Kind, Receipt, message_of};
use crate::message::{TextFamily, TextLimit};
use crate::outbox::Delivery;
use crate::secret::SecretSource;

section! {
    /// Twilio Programmable Messaging.
    pub struct TwilioSettings: phone {
        pub account_sid: String,
        pub auth_token_env: Option<String>,
        pub auth_token_file: Option<PathBuf>,
        /// Sender number (E.164) or alphanumeric sender id; or use
        /// `messaging_service_sid`.
        pub from: Option<String>,
        pub messaging_service_sid: Option<String>,
        #[serde(default = "default_base_url")]
        pub base_url: String,
        /// Where Twilio posts delivery receipts, e.g.
        /// `https://crisis.example.com/v1/receipts/twilio/sms`; none asks
        /// for none (a Messaging Service may still send its own).
        pub status_callback: Option<String>,
    }
}

fn default_base_url() -> String {
    "https://api.twilio.com".into()
}

pub struct Twilio {
    account_sid: String,
    auth_token: String,
    sender: Sender,
    base_url: String,
    status_callback: Option<String>,
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

impl Kind for Twilio {
    type Settings = TwilioSettings;
    const FAMILY: Option<TextFamily> = super::FAMILY;
    const STANDARD_LIMIT: TextLimit = super::STANDARD_LIMIT;

    /// Twilio signs the messages it forwards with the auth token.
    fn inbound_secret(settings: &TwilioSettings) -> Option<SecretSource> {
        Some(secret(&settings.auth_token_env, &settings.auth_token_file))
    }

    /// Status callbacks are signed like inbound messages.
    fn receipt_secret(settings: &TwilioSettings) -> Option<SecretSource> {
        Self::inbound_secret(settings)
    }
}

impl Twilio {
    fn account_url(&self) -> String {
        format!("{}/2010-04-01/Accounts/{}", self.base_url, self.account_sid)
    }
}

#[async_trait]
impl Provider for Twilio {
    const LABEL: &'static str = "Twilio";

    fn new(settings: &TwilioSettings) -> Result<Self, String> {
        let sender = match (&settings.from, &settings.messaging_service_sid) {
            (Some(from), None) => Sender::From(from.clone()),
            (None, Some(sid)) => Sender::MessagingService(sid.clone()),
            _ => return Err("set exactly one of `from` and `messaging_service_sid`".into()),
        };
        if !settings.account_sid.starts_with("AC") {
            return Err("account_sid must be a Twilio Account SID (AC…)".into());
        }
        Ok(Self {
            account_sid: settings.account_sid.clone(),
            auth_token: read_secret(
                "auth token",
                &secret(&settings.auth_token_env, &settings.auth_token_file),
            )?,
            sender,
            base_url: settings.base_url.trim_end_matches('/').to_owned(),
            status_callback: settings.status_callback.clone(),
        })
    }

    async fn send(
        &self,
        exchange: &Exchange<'_, Self>,
        delivery: &Delivery,
    ) -> Result<Receipt, DeliveryError> {
        let message = message_of(delivery)?;
        let mut form = vec![
            ("To", delivery.destination.as_str()),
            ("Body", message.text.as_str()),
        ];
        match &self.sender {
            Sender::From(from) => form.push(("From", from)),
            Sender::MessagingService(sid) => form.push(("MessagingServiceSid", sid)),
        }
        if let Some(url) = &self.status_callback {
            form.push(("StatusCallback", url));
        }
        let request = exchange
            .client()
            .post(format!("{}/Messages.json", self.account_url()))
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .form(&form);
        exchange.deliver(request).await
    }

    async fn healthcheck(&self, exchange: &Exchange<'_, Self>) -> Result<(), DeliveryError> {
        let request = exchange
            .client()
            .get(format!("{}.json", self.account_url()))
            .basic_auth(&self.account_sid, Some(&self.auth_token));
        exchange.check(request).await
    }

    fn receipt(&self, answer: &Answer) -> Result<Receipt, DeliveryError> {
        Ok(answer.receipt(|m: TwilioMessage| m.sid))
    }

    fn classify(&self, answer: &Answer) -> DeliveryError {
        let Answer { status, body, .. } = answer;
        let error: Option<TwilioError> = serde_json::from_str(body).ok();
        let code = error.as_ref().and_then(|e| e.code);
        let message = error
            .as_ref()
            .and_then(|e| e.message.clone())
            .unwrap_or_else(|| excerpt(body));
        let reason = match code {
            Some(code) => format!("Twilio error {code}: {message}"),
            None => format!("Twilio answered {status}: {message}"),
        };
        let retry_after = answer.retry_after();
        if *status == StatusCode::UNAUTHORIZED {
            // Wrong credentials fail every message alike until fixed.
            DeliveryError::Transient {
                reason: format!("{reason} (check the account SID and auth token)"),
                retry_after,
            }
        } else if code.is_some_and(|c| TRANSIENT_CODES.contains(&c)) || is_temporary(*status) {
            DeliveryError::Transient {
                reason,
                retry_after,
            }
        } else {
            DeliveryError::Permanent { reason }
        }
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
