//! SendGrid's Event Webhook: delivery and bounce events for mail sent
//! through SendGrid, as a JSON array, signed with ECDSA (P-256, SHA-256)
//! over the `X-Twilio-Email-Event-Webhook-Timestamp` header's value
//! followed by the raw body; the signature, base64 of its DER form, is in
//! `X-Twilio-Email-Event-Webhook-Signature`, and the verification key the
//! dashboard shows is base64 of the DER public key (SubjectPublicKeyInfo).
//! An event names its delivery by `smtp-id`, the Message-ID we gave the
//! message (`<delivery id@domain>`).
//!
//! No timestamp window: SendGrid retries a failed post for up to 24
//! hours, and a replayed event changes nothing (a final state is never
//! downgraded).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use serde::Deserialize;

use crate::domain::DeliveryId;
use crate::outbox::ReceiptState;

pub const SIGNATURE_HEADER: &str = "x-twilio-email-event-webhook-signature";
pub const TIMESTAMP_HEADER: &str = "x-twilio-email-event-webhook-timestamp";

/// The SubjectPublicKeyInfo of every P-256 public key up to the key
/// itself (RFC 5480): SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 },
/// BIT STRING (0 unused bits) }, then the 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// A SendGrid verification key: the public point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendgridKey(Vec<u8>);

impl SendgridKey {
    /// The key as the dashboard shows it (base64 DER), PEM armour allowed.
    pub fn parse(text: &str) -> Result<Self, String> {
        let body: String = text
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect::<String>()
            .split_whitespace()
            .collect();
        let der = BASE64
            .decode(body)
            .map_err(|e| format!("the SendGrid verification key is not base64: {e}"))?;
        match der.strip_prefix(&P256_SPKI_PREFIX[..]) {
            Some(point) if point.len() == 65 && point[0] == 0x04 => Ok(Self(point.to_vec())),
            _ => Err("the SendGrid verification key is not a P-256 public key \
                 (base64 of its DER SubjectPublicKeyInfo)"
                .into()),
        }
    }

    /// Whether `signature` (base64 DER) signs `timestamp` then `body`.
    pub fn verifies(&self, timestamp: &str, body: &[u8], signature: &str) -> bool {
        let Ok(signature) = BASE64.decode(signature.trim()) else {
            return false;
        };
        let mut signed = Vec::with_capacity(timestamp.len() + body.len());
        signed.extend_from_slice(timestamp.as_bytes());
        signed.extend_from_slice(body);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.0)
            .verify(&signed, &signature)
            .is_ok()
    }
}

/// One event, the fields we read.
#[derive(Debug, Deserialize)]
struct Event {
    event: String,
    #[serde(rename = "smtp-id")]
    smtp_id: Option<String>,
    /// For a bounce: `bounce` or `blocked`.
    #[serde(rename = "type")]
    kind: Option<String>,
    status: Option<String>,
    reason: Option<String>,
}

/// What one event says about one of our deliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendgridReceipt {
    pub delivery: DeliveryId,
    pub state: ReceiptState,
    /// A hard bounce (a 5.x.x status, not a block).
    pub hard: bool,
    pub reason: Option<String>,
}

/// The receipts in a body of events; events of other kinds (processed,
/// open, click, deferred...) and of messages not ours are passed over.
pub fn receipts(body: &[u8]) -> Result<Vec<SendgridReceipt>, serde_json::Error> {
    let events: Vec<Event> = serde_json::from_slice(body)?;
    Ok(events.into_iter().filter_map(receipt).collect())
}

fn receipt(event: Event) -> Option<SendgridReceipt> {
    let delivery = event
        .smtp_id
        .as_deref()?
        .trim()
        .trim_start_matches('<')
        .split('@')
        .next()?
        .parse()
        .ok()?;
    let status = event.status.as_deref().unwrap_or_default();
    let (state, hard) = match event.event.as_str() {
        "delivered" => (ReceiptState::Delivered, false),
        "bounce" => {
            let blocked = event.kind.as_deref() == Some("blocked");
            (ReceiptState::Bounced, !blocked && !status.starts_with('4'))
        }
        // SendGrid would not send it (an address that bounced before, an
        // unsubscribe, an invalid one): it will not arrive.
        "dropped" => (ReceiptState::Undelivered, false),
        _ => return None,
    };
    let reason = match (status, event.reason) {
        ("", reason) => reason,
        (status, Some(reason)) => Some(format!("{status} {reason}")),
        (status, None) => Some(status.to_owned()),
    };
    Some(SendgridReceipt {
        delivery,
        state,
        hard,
        reason: (state != ReceiptState::Delivered)
            .then_some(reason)
            .flatten(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SendGrid's own example, from its libraries' tests: a key, a
    /// timestamp, a payload and the signature its service made of them.
    const KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==";
    const OTHER_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8REntlo7aNDthvj+y7GjUuFDb/R1NGe1OPzpA==";
    const TIMESTAMP: &str = "1588788367";
    const PAYLOAD: &str =
        r#"{"category":"example_payload","event":"test_event","message_id":"message_id"}"#;
    const SIGNATURE: &str = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0=";

    #[test]
    fn sendgrids_own_example_verifies_and_any_change_to_it_does_not() {
        let key = SendgridKey::parse(KEY).unwrap();
        assert!(key.verifies(TIMESTAMP, PAYLOAD.as_bytes(), SIGNATURE));
        assert!(!key.verifies("1588788368", PAYLOAD.as_bytes(), SIGNATURE));
        assert!(!key.verifies(TIMESTAMP, b"payload", SIGNATURE));
        let mut forged = SIGNATURE.to_owned();
        forged.replace_range(90..91, "3");
        assert!(!key.verifies(TIMESTAMP, PAYLOAD.as_bytes(), &forged));
        assert!(!key.verifies(TIMESTAMP, PAYLOAD.as_bytes(), "not base64!"));
        let other = SendgridKey::parse(OTHER_KEY).unwrap();
        assert!(!other.verifies(TIMESTAMP, PAYLOAD.as_bytes(), SIGNATURE));
        assert!(SendgridKey::parse("aGVsbG8=").is_err());
    }

    #[test]
    fn bounces_are_hard_unless_blocked_or_4xx_and_other_events_pass() {
        let id = DeliveryId::new();
        let body = serde_json::json!([
            {"event": "processed", "smtp-id": format!("<{id}@example.com>")},
            {"event": "bounce", "type": "bounce", "status": "5.1.1", "reason": "550 no such user",
             "smtp-id": format!("<{id}@example.com>")},
            {"event": "bounce", "type": "blocked", "status": "5.7.1", "smtp-id": format!("<{id}@example.com>")},
            {"event": "delivered", "smtp-id": "<not-ours@sendgrid.net>"},
        ]);
        let receipts = receipts(body.to_string().as_bytes()).unwrap();
        assert_eq!(
            receipts,
            [
                SendgridReceipt {
                    delivery: id,
                    state: ReceiptState::Bounced,
                    hard: true,
                    reason: Some("5.1.1 550 no such user".into()),
                },
                SendgridReceipt {
                    delivery: id,
                    state: ReceiptState::Bounced,
                    hard: false,
                    reason: Some("5.7.1".into()),
                },
            ]
        );
    }
}
