//! Vonage SMS API: `POST /sms/json`. It answers 200 with a status per
//! message part, so success is read from the body, not the HTTP status.

use std::path::PathBuf;

use async_trait::async_trait;
use serde::Deserialize;

use crate::channels::http::{Answer, Exchange, Provider};
use crate::channels::settings::{read_secret, secret, section};
use crate::channels::{DeliveryError, Kind, Receipt, message_of};
use crate::message::sms::is_gsm7;
use crate::message::{TextFamily, TextLimit};
use crate::outbox::Delivery;
use crate::secret::SecretSource;

section! {
    /// Vonage (Nexmo) SMS API.
    pub struct VonageSettings: phone {
        pub api_key: String,
        pub api_secret_env: Option<String>,
        pub api_secret_file: Option<PathBuf>,
        pub from: String,
        #[serde(default = "default_base_url")]
        pub base_url: String,
        /// Where Vonage sends delivery receipts, e.g.
        /// `https://crisis.example.com/v1/receipts/vonage/sms`.
        pub status_callback: Option<String>,
        /// The account's signature secret: delivery receipts and inbound
        /// messages (`/v1/inbound/vonage/{name}`) are accepted only when
        /// signed with it (an HMAC; SHA-1, SHA-256 or SHA-512).
        pub signature_secret_env: Option<String>,
        pub signature_secret_file: Option<PathBuf>,
    }
}

fn default_base_url() -> String {
    "https://rest.nexmo.com".into()
}

pub struct Vonage {
    api_key: String,
    api_secret: String,
    from: String,
    base_url: String,
    status_callback: Option<String>,
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

impl Kind for Vonage {
    type Settings = VonageSettings;
    const FAMILY: Option<TextFamily> = super::FAMILY;
    const STANDARD_LIMIT: TextLimit = super::STANDARD_LIMIT;

    fn receipt_secret(settings: &VonageSettings) -> Option<SecretSource> {
        let source = secret(
            &settings.signature_secret_env,
            &settings.signature_secret_file,
        );
        source.is_set().then_some(source)
    }

    /// Inbound messages are signed like delivery receipts.
    fn inbound_secret(settings: &VonageSettings) -> Option<SecretSource> {
        Self::receipt_secret(settings)
    }
}

#[async_trait]
impl Provider for Vonage {
    const LABEL: &'static str = "Vonage";

    fn new(settings: &VonageSettings) -> Result<Self, String> {
        Ok(Self {
            api_key: settings.api_key.clone(),
            api_secret: read_secret(
                "API secret",
                &secret(&settings.api_secret_env, &settings.api_secret_file),
            )?,
            from: settings.from.clone(),
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
        // Vonage takes numbers in international format without the `+`.
        let to = delivery.destination.trim_start_matches('+');
        let kind = if is_gsm7(&message.text) {
            "text"
        } else {
            "unicode"
        };
        let id = delivery.id.to_string();
        let mut form = vec![
            ("api_key", self.api_key.as_str()),
            ("api_secret", self.api_secret.as_str()),
            ("from", self.from.as_str()),
            ("to", to),
            ("text", message.text.as_str()),
            ("type", kind),
            // Our delivery id, echoed in delivery receipts.
            ("client-ref", id.as_str()),
        ];
        if let Some(url) = &self.status_callback {
            form.extend([("callback", url.as_str()), ("status-report-req", "1")]);
        }
        let request = exchange
            .client()
            .post(format!("{}/sms/json", self.base_url))
            .form(&form);
        exchange.deliver(request).await
    }

    async fn healthcheck(&self, exchange: &Exchange<'_, Self>) -> Result<(), DeliveryError> {
        // The account balance call checks reachability and credentials
        // without sending anything.
        let request = exchange
            .client()
            .get(format!("{}/account/get-balance", self.base_url))
            .query(&[("api_key", &self.api_key), ("api_secret", &self.api_secret)]);
        exchange.check(request).await
    }

    /// A 2xx still carries a status per part: any part's failure is the
    /// message's.
    fn receipt(&self, answer: &Answer) -> Result<Receipt, DeliveryError> {
        let parsed: VonageResponse = serde_json::from_str(&answer.body).map_err(|e| {
            DeliveryError::transient(format!(
                "Vonage answered with an unreadable body ({e}): {}",
                answer.excerpt()
            ))
        })?;
        if parsed.messages.is_empty() {
            return Err(DeliveryError::transient(format!(
                "Vonage answered without a message status: {}",
                answer.excerpt()
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
                    retry_after: answer.retry_after(),
                }
            } else {
                DeliveryError::Permanent { reason }
            });
        }
        Ok(Receipt {
            provider_ref: parsed.messages.iter().find_map(|m| m.message_id.clone()),
        })
    }
}

/// Whether `sig` signs Vonage's request parameters with `secret`: every
/// parameter but `sig`, sorted by name, written `&name=value` with `&` and
/// `=` in values replaced by `_`, then an HMAC keyed with the signature
/// secret, in hex. The signature's length tells SHA-1, SHA-256 and SHA-512
/// apart, so the dashboard's choice needs no setting of its own.
pub fn vonage_signed(secret: &str, params: &[(String, String)]) -> bool {
    use hmac::{Hmac, Mac};
    use subtle::ConstantTimeEq;
    let Some((_, sig)) = params.iter().find(|(name, _)| name == "sig") else {
        return false;
    };
    let mut sorted: Vec<&(String, String)> = params.iter().filter(|(n, _)| n != "sig").collect();
    sorted.sort();
    let mut text = String::new();
    for (name, value) in sorted {
        text.push('&');
        text.push_str(name);
        text.push('=');
        text.push_str(&value.replace(['&', '='], "_"));
    }
    fn mac<M: Mac + hmac::digest::KeyInit>(secret: &str, text: &str) -> String {
        let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(secret.as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(text.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
    let expected = match sig.len() {
        40 => mac::<Hmac<sha1::Sha1>>(secret, &text),
        64 => mac::<Hmac<sha2::Sha256>>(secret, &text),
        128 => mac::<Hmac<sha2::Sha512>>(secret, &text),
        _ => return false,
    };
    bool::from(
        expected
            .as_bytes()
            .ct_eq(sig.to_ascii_lowercase().as_bytes()),
    )
}
