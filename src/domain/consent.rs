//! Consent: who asked not to be contacted on which channel, and the signed
//! one-click unsubscribe links that let them say so.

use std::collections::HashSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::secret::Secret;

/// The kind of contact point an opt-out is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactPoint {
    Email,
    Phone,
}

impl ContactPoint {
    pub fn as_str(&self) -> &'static str {
        match self {
            ContactPoint::Email => "email",
            ContactPoint::Phone => "phone",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "email" => Some(ContactPoint::Email),
            "phone" => Some(ContactPoint::Phone),
            _ => None,
        }
    }
}

/// Normalized form used for storage and comparison: email addresses are
/// compared case-insensitively, phone numbers as E.164.
pub fn normalize(point: ContactPoint, address: &str) -> String {
    match point {
        ContactPoint::Email => address.trim().to_lowercase(),
        ContactPoint::Phone => address.trim().to_owned(),
    }
}

/// Contact points that opted out, loaded before planning.
#[derive(Debug, Clone, Default)]
pub struct OptOuts {
    pub emails: HashSet<String>,
    pub phones: HashSet<String>,
}

impl OptOuts {
    pub fn contains(&self, point: ContactPoint, address: &str) -> bool {
        let address = normalize(point, address);
        match point {
            ContactPoint::Email => self.emails.contains(&address),
            ContactPoint::Phone => self.phones.contains(&address),
        }
    }

    pub fn len(&self) -> usize {
        self.emails.len() + self.phones.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

type HmacSha256 = Hmac<Sha256>;

/// Signs and checks unsubscribe tokens: `<address, base64url>.<HMAC-SHA256,
/// base64url>`, so only the holder of the link can unsubscribe that address.
#[derive(Clone)]
pub struct UnsubscribeSigner {
    key: Secret,
}

impl std::fmt::Debug for UnsubscribeSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnsubscribeSigner")
    }
}

/// Domain separation: a token signed for something else never verifies.
const CONTEXT: &[u8] = b"crisisd unsubscribe v1\0";

impl UnsubscribeSigner {
    pub fn new(key: Secret) -> Self {
        Self { key }
    }

    fn mac(&self, address: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(self.key.expose().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(CONTEXT);
        mac.update(address.as_bytes());
        mac
    }

    pub fn token(&self, email: &str) -> String {
        let address = normalize(ContactPoint::Email, email);
        let signature = self.mac(&address).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&address),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    /// The email address a genuine token was made for.
    pub fn verify(&self, token: &str) -> Option<String> {
        let (address, signature) = token.split_once('.')?;
        let address = String::from_utf8(URL_SAFE_NO_PAD.decode(address).ok()?).ok()?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        // verify_slice compares in constant time.
        self.mac(&address).verify_slice(&signature).ok()?;
        Some(address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(key: &str) -> UnsubscribeSigner {
        UnsubscribeSigner::new(Secret::new(key))
    }

    #[test]
    fn a_token_verifies_to_its_address() {
        let token = signer("k").token("Ada@Example.com");
        assert_eq!(
            signer("k").verify(&token).as_deref(),
            Some("ada@example.com")
        );
    }

    #[test]
    fn a_token_for_another_address_or_key_is_refused() {
        let token = signer("k").token("ada@example.com");
        let (_, signature) = token.split_once('.').unwrap();
        let forged = format!("{}.{signature}", URL_SAFE_NO_PAD.encode("eve@example.com"));
        assert_eq!(signer("k").verify(&forged), None);
        assert_eq!(signer("other").verify(&token), None);
        assert_eq!(signer("k").verify("garbage"), None);
    }
}
