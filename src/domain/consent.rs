//! Consent: who asked not to be contacted on which channel, and the signed
//! one-click unsubscribe links that let them say so.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::domain::AnnouncementKind;
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

/// What an opt-out stops. In a crisis the announcements (the first
/// notice, updates, the all-clear, corrections) can matter for a reader's
/// safety, while follow-ups (resources, check-ins, surveys) are extra: a
/// reader may stop the extra and keep the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentScope {
    /// Follow-ups only; crisis announcements still come.
    FollowUps,
    /// Everything.
    All,
}

impl ConsentScope {
    pub fn as_str(&self) -> &'static str {
        match self {
            ConsentScope::FollowUps => "follow_ups",
            ConsentScope::All => "all",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "follow_ups" => Some(ConsentScope::FollowUps),
            "all" => Some(ConsentScope::All),
            _ => None,
        }
    }

    /// Whether an opt-out of this scope stops a message of `kind`.
    pub fn stops(&self, kind: AnnouncementKind) -> bool {
        match self {
            ConsentScope::All => true,
            ConsentScope::FollowUps => kind == AnnouncementKind::FollowUp,
        }
    }

    /// The deliveries (aliased `deliveries`, their `kind` the
    /// announcement's) an opt-out row (aliased `opt_outs`) stops, as SQL
    /// both stores share.
    pub const STOPS_SQL: &'static str = "(opt_outs.scope = 'all' OR (opt_outs.scope = 'follow_ups' AND deliveries.kind = 'follow_up'))";
}

/// How an opt-out meets one already recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptOutRequest {
    /// A one-click unsubscribe or an SMS STOP: stops at least this scope
    /// and never narrows a wider opt-out already recorded (a one-click from
    /// an old follow-up must not bring announcements back).
    AtLeast(ConsentScope),
    /// The reader's choice on the preference page: exactly this scope.
    Exactly(ConsentScope),
}

impl OptOutRequest {
    pub fn scope(&self) -> ConsentScope {
        match self {
            OptOutRequest::AtLeast(scope) | OptOutRequest::Exactly(scope) => *scope,
        }
    }
}

/// Contact points that opted out, each with what it stopped, loaded
/// before planning.
#[derive(Debug, Clone, Default)]
pub struct OptOuts {
    pub emails: HashMap<String, ConsentScope>,
    pub phones: HashMap<String, ConsentScope>,
}

impl OptOuts {
    /// What `address` opted out of, if anything.
    pub fn scope(&self, point: ContactPoint, address: &str) -> Option<ConsentScope> {
        let address = normalize(point, address);
        match point {
            ContactPoint::Email => self.emails.get(&address).copied(),
            ContactPoint::Phone => self.phones.get(&address).copied(),
        }
    }

    /// Whether `address` opted out of anything.
    pub fn contains(&self, point: ContactPoint, address: &str) -> bool {
        self.scope(point, address).is_some()
    }

    /// Whether a message of `kind` may not go to `address`.
    pub fn stops(&self, point: ContactPoint, address: &str, kind: AnnouncementKind) -> bool {
        self.scope(point, address)
            .is_some_and(|scope| scope.stops(kind))
    }

    pub fn insert(&mut self, point: ContactPoint, address: String, scope: ConsentScope) {
        match point {
            ContactPoint::Email => self.emails.insert(address, scope),
            ContactPoint::Phone => self.phones.insert(address, scope),
        };
    }

    pub fn len(&self) -> usize {
        self.emails.len() + self.phones.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

type HmacSha256 = Hmac<Sha256>;

/// Signs and checks unsubscribe tokens: `<address, base64url>.<scope>.
/// <HMAC-SHA256, base64url>`, so only the holder of the link can change
/// that address's consent, and only as far as the link says. Tokens of
/// the first format, `<address>.<HMAC>` (in mail sent before scopes), still
/// verify, as stopping everything: what they meant when they were sent.
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
/// The scoped format's own context, so a token of one format never
/// verifies as the other.
const CONTEXT_SCOPED: &[u8] = b"crisisd unsubscribe v2\0";
/// Answer links' own context: an unsubscribe token never answers a
/// question, nor the other way round.
const CONTEXT_ANSWER: &[u8] = b"crisisd answer v1\0";

impl UnsubscribeSigner {
    pub fn new(key: Secret) -> Self {
        Self { key }
    }

    fn mac(&self, context: &[u8], scope: Option<ConsentScope>, address: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(self.key.expose().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(context);
        if let Some(scope) = scope {
            mac.update(scope.as_str().as_bytes());
            mac.update(b"\0");
        }
        mac.update(address.as_bytes());
        mac
    }

    /// The token of a link that stops `scope` for `email` in one click.
    pub fn token(&self, email: &str, scope: ConsentScope) -> String {
        let address = normalize(ContactPoint::Email, email);
        let signature = self
            .mac(CONTEXT_SCOPED, Some(scope), &address)
            .finalize()
            .into_bytes();
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(&address),
            scope.as_str(),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    /// The email address a genuine token was made for, and the scope its
    /// one click stops.
    pub fn verify(&self, token: &str) -> Option<(String, ConsentScope)> {
        let mut parts = token.split('.');
        let (address, scope, signature) = match (parts.next(), parts.next(), parts.next()) {
            (Some(address), Some(signature), None) => (address, None, signature),
            (Some(address), Some(scope), Some(signature)) if parts.next().is_none() => {
                (address, Some(ConsentScope::parse(scope)?), signature)
            }
            _ => return None,
        };
        let address = String::from_utf8(URL_SAFE_NO_PAD.decode(address).ok()?).ok()?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        let context = if scope.is_some() {
            CONTEXT_SCOPED
        } else {
            CONTEXT
        };
        // verify_slice compares in constant time.
        self.mac(context, scope, &address)
            .verify_slice(&signature)
            .ok()?;
        Some((address, scope.unwrap_or(ConsentScope::All)))
    }

    /// The token of a reader's answer links: `<delivery id>.<HMAC,
    /// base64url>`. It names the one delivery (so the reader, the crisis and
    /// the question) and is signed with the same key as unsubscribe links;
    /// the choice is the link's last path segment, since the reader may
    /// pick any of the answers anyway.
    pub fn answer_token(&self, delivery: &str) -> String {
        let signature = self
            .mac(CONTEXT_ANSWER, None, delivery)
            .finalize()
            .into_bytes();
        format!("{delivery}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// The delivery a genuine answer token was made for.
    pub fn verify_answer(&self, token: &str) -> Option<String> {
        let (delivery, signature) = token.split_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        self.mac(CONTEXT_ANSWER, None, delivery)
            .verify_slice(&signature)
            .ok()?;
        Some(delivery.to_owned())
    }

    /// A token of the first format (no scope), as mail sent before scopes
    /// carries.
    #[cfg(test)]
    fn unscoped_token(&self, email: &str) -> String {
        let address = normalize(ContactPoint::Email, email);
        let signature = self.mac(CONTEXT, None, &address).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&address),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(key: &str) -> UnsubscribeSigner {
        UnsubscribeSigner::new(Secret::new(key))
    }

    #[test]
    fn a_token_verifies_to_its_address_and_scope() {
        for scope in [ConsentScope::FollowUps, ConsentScope::All] {
            let token = signer("k").token("Ada@Example.com", scope);
            assert_eq!(
                signer("k").verify(&token),
                Some(("ada@example.com".to_owned(), scope))
            );
        }
    }

    #[test]
    fn a_link_of_the_first_format_still_stops_everything() {
        let token = signer("k").unscoped_token("ada@example.com");
        assert_eq!(
            signer("k").verify(&token),
            Some(("ada@example.com".to_owned(), ConsentScope::All))
        );
    }

    #[test]
    fn a_token_for_another_address_scope_or_key_is_refused() {
        let token = signer("k").token("ada@example.com", ConsentScope::FollowUps);
        let mut parts = token.split('.');
        let (address, _, signature) = (parts.next().unwrap(), parts.next(), parts.next().unwrap());
        let eve = URL_SAFE_NO_PAD.encode("eve@example.com");
        for forged in [
            format!("{eve}.follow_ups.{signature}"),
            // A follow-up's link made to stop everything.
            format!("{address}.all.{signature}"),
            // Or presented in the first format.
            format!("{address}.{signature}"),
            format!("{address}.everything.{signature}"),
            format!("{token}.extra"),
            "garbage".to_owned(),
        ] {
            assert_eq!(signer("k").verify(&forged), None, "{forged}");
        }
        assert_eq!(signer("other").verify(&token), None);
    }

    #[test]
    fn an_answer_token_verifies_to_its_delivery_and_nothing_else_does() {
        let delivery = "0190a4c2-5b1e-7000-8000-000000000001";
        let token = signer("k").answer_token(delivery);
        assert_eq!(signer("k").verify_answer(&token).as_deref(), Some(delivery));
        let (_, signature) = token.split_once('.').unwrap();
        let unsubscribe = signer("k").token("ada@example.com", ConsentScope::All);
        for forged in [
            format!("0190a4c2-5b1e-7000-8000-000000000002.{signature}"),
            format!("{token}x"),
            delivery.to_owned(),
            unsubscribe.clone(),
        ] {
            assert_eq!(signer("k").verify_answer(&forged), None, "{forged}");
        }
        assert_eq!(signer("other").verify_answer(&token), None);
        assert_eq!(signer("k").verify(&token), None);
    }

    #[test]
    fn a_follow_ups_opt_out_stops_follow_ups_only() {
        let mut opt_outs = OptOuts::default();
        opt_outs.insert(
            ContactPoint::Email,
            "ada@example.com".into(),
            ConsentScope::FollowUps,
        );
        opt_outs.insert(
            ContactPoint::Email,
            "eve@example.com".into(),
            ConsentScope::All,
        );
        for kind in [
            AnnouncementKind::Initial,
            AnnouncementKind::Update,
            AnnouncementKind::Resolved,
            AnnouncementKind::Correction,
        ] {
            assert!(!opt_outs.stops(ContactPoint::Email, "Ada@example.com", kind));
            assert!(opt_outs.stops(ContactPoint::Email, "eve@example.com", kind));
        }
        assert!(opt_outs.stops(
            ContactPoint::Email,
            "ada@example.com",
            AnnouncementKind::FollowUp
        ));
        assert!(!opt_outs.stops(
            ContactPoint::Email,
            "bo@example.com",
            AnnouncementKind::FollowUp
        ));
    }
}
