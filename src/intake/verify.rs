//! Proof that a webhook came from its source: HMAC signatures over the raw
//! body (checked in constant time by `Mac::verify_slice`), signed
//! timestamps within a tolerance, or a shared token.

use std::time::Duration;

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{HookAuth, HookSettings, HookSource};
use crate::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

pub const GRAFANA_SIGNATURE_HEADER: &str = "x-grafana-alerting-signature";
pub const INSTATUS_SIGNATURE_HEADER: &str = "x-instatus-webhook-signature";
pub const PAGERDUTY_SIGNATURE_HEADER: &str = "x-pagerduty-signature";
pub const STANDARD_ID_HEADER: &str = "webhook-id";
pub const STANDARD_TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const STANDARD_SIGNATURE_HEADER: &str = "webhook-signature";

/// Why a request was refused (401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "missing credentials: send the hook's secret as a bearer token, as the basic-auth password, or as ?token="
    )]
    MissingToken,
    #[error("wrong credentials")]
    WrongToken,
    #[error("missing signature header `{0}`")]
    MissingHeader(String),
    #[error("header `{0}` is not readable: {1}")]
    BadHeader(String, &'static str),
    #[error("the signature does not match the body")]
    BadSignature,
    #[error("the signed timestamp {0} is more than {1} seconds from now")]
    Stale(i64, u64),
}

/// A secret that cannot be used, found when the config is checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SecretFormatError(String);

/// How one hook checks its requests.
#[derive(Clone)]
pub enum Verifier {
    /// SHA-256 of the token, so comparing digests is constant-time
    /// whatever the lengths.
    Token([u8; 32]),
    /// Hex HMAC-SHA256 of the body, or of `timestamp:body` when a
    /// timestamp header is named (Grafana, Instatus).
    HexBody {
        key: Vec<u8>,
        header: String,
        timestamp_header: Option<String>,
        tolerance: Duration,
    },
    /// `X-PagerDuty-Signature: v1=<hex>[,v1=<hex>...]`.
    PagerDuty { key: Vec<u8> },
    /// Standard Webhooks: base64 HMAC-SHA256 of `id.timestamp.body` with
    /// the base64-decoded `whsec_` secret.
    Standard { key: Vec<u8>, tolerance: Duration },
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            Verifier::Token(_) => "token",
            Verifier::HexBody { .. } => "hmac-hex",
            Verifier::PagerDuty { .. } => "pagerduty",
            Verifier::Standard { .. } => "standard-webhooks",
        };
        write!(f, "Verifier({kind}, [redacted])")
    }
}

/// The key of a Standard Webhooks secret: base64 after `whsec_`.
pub fn standard_key(secret: &str) -> Result<Vec<u8>, SecretFormatError> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = BASE64.decode(encoded.trim()).map_err(|_| {
        SecretFormatError("a Standard Webhooks secret is `whsec_` followed by base64".into())
    })?;
    if key.len() < 24 {
        return Err(SecretFormatError(format!(
            "a Standard Webhooks secret should hold 24 to 64 bytes of key, not {}",
            key.len()
        )));
    }
    Ok(key)
}

impl Verifier {
    pub fn new(hook: &HookSettings, secret: &Secret) -> Result<Self, SecretFormatError> {
        let raw = secret.expose().as_bytes().to_vec();
        if hook.auth() == HookAuth::Token {
            return Ok(Verifier::Token(Sha256::digest(&raw).into()));
        }
        Ok(match hook.source {
            HookSource::Grafana => Verifier::HexBody {
                key: raw,
                header: hook
                    .signature_header
                    .clone()
                    .unwrap_or_else(|| GRAFANA_SIGNATURE_HEADER.into()),
                timestamp_header: hook.timestamp_header.clone(),
                tolerance: hook.tolerance,
            },
            HookSource::Instatus => Verifier::HexBody {
                key: raw,
                header: INSTATUS_SIGNATURE_HEADER.into(),
                timestamp_header: None,
                tolerance: hook.tolerance,
            },
            HookSource::Pagerduty => Verifier::PagerDuty { key: raw },
            HookSource::Standard => Verifier::Standard {
                key: standard_key(secret.expose())?,
                tolerance: hook.tolerance,
            },
            other => {
                return Err(SecretFormatError(format!(
                    "{} does not sign its webhooks; use auth = \"token\"",
                    other.as_str()
                )));
            }
        })
    }

    /// Checks a request; `Ok` carries the source's delivery id when the
    /// scheme has one (Standard Webhooks' `webhook-id`).
    pub fn verify(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<String>, VerifyError> {
        match self {
            Verifier::Token(digest) => {
                let presented = presented_token(headers, query).ok_or(VerifyError::MissingToken)?;
                let candidate: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
                if bool::from(candidate.ct_eq(digest)) {
                    Ok(None)
                } else {
                    Err(VerifyError::WrongToken)
                }
            }
            Verifier::HexBody {
                key,
                header,
                timestamp_header,
                tolerance,
            } => {
                let signature = header_text(headers, header)?;
                let mut mac = mac(key);
                if let Some(ts_header) = timestamp_header {
                    let timestamp = header_text(headers, ts_header)?;
                    check_timestamp(ts_header, timestamp, *tolerance, now)?;
                    mac.update(timestamp.trim().as_bytes());
                    mac.update(b":");
                }
                mac.update(body);
                let expected = hex::decode(signature.trim().trim_start_matches("sha256="))
                    .map_err(|_| VerifyError::BadSignature)?;
                mac.verify_slice(&expected)
                    .map(|()| None)
                    .map_err(|_| VerifyError::BadSignature)
            }
            Verifier::PagerDuty { key } => verify_pagerduty(key, headers, body),
            Verifier::Standard { key, tolerance } => {
                verify_standard(key, *tolerance, headers, body, now)
            }
        }
    }
}

/// PagerDuty's `v1=` signatures: during a secret rotation it sends one per
/// secret, and one match is enough.
fn verify_pagerduty(
    key: &[u8],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<String>, VerifyError> {
    let header = header_text(headers, PAGERDUTY_SIGNATURE_HEADER)?;
    let mut mac = mac(key);
    mac.update(body);
    let candidates = header
        .split(',')
        .filter_map(|candidate| candidate.trim().strip_prefix("v1="))
        .filter_map(|signature| hex::decode(signature).ok());
    any_matches(&mac, candidates)
        .then_some(None)
        .ok_or(VerifyError::BadSignature)
}

/// Standard Webhooks: `v1,` signatures over id, timestamp and body, the
/// timestamp within the tolerance.
fn verify_standard(
    key: &[u8],
    tolerance: Duration,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Option<String>, VerifyError> {
    let id = header_text(headers, STANDARD_ID_HEADER)?;
    let timestamp = header_text(headers, STANDARD_TIMESTAMP_HEADER)?;
    let signatures = header_text(headers, STANDARD_SIGNATURE_HEADER)?;
    check_timestamp(STANDARD_TIMESTAMP_HEADER, timestamp, tolerance, now)?;
    let mut mac = mac(key);
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let candidates = signatures
        .split(' ')
        .filter_map(|candidate| candidate.strip_prefix("v1,"))
        .filter_map(|encoded| BASE64.decode(encoded).ok());
    any_matches(&mac, candidates)
        .then(|| Some(id.to_owned()))
        .ok_or(VerifyError::BadSignature)
}

/// Whether one of the signatures is the MAC's, each compared in constant
/// time and all of them compared.
fn any_matches(mac: &HmacSha256, signatures: impl Iterator<Item = Vec<u8>>) -> bool {
    signatures.fold(false, |matched, signature| {
        mac.clone().verify_slice(&signature).is_ok() | matched
    })
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; this cannot fail.
    HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, VerifyError> {
    headers
        .get(name)
        .ok_or_else(|| VerifyError::MissingHeader(name.to_owned()))?
        .to_str()
        .map_err(|_| VerifyError::BadHeader(name.to_owned(), "not visible ASCII"))
}

fn check_timestamp(
    header: &str,
    value: &str,
    tolerance: Duration,
    now: DateTime<Utc>,
) -> Result<(), VerifyError> {
    let seconds: i64 = value
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadHeader(header.to_owned(), "not a Unix timestamp"))?;
    let tolerance_s = tolerance.as_secs();
    if now.timestamp().abs_diff(seconds) > tolerance_s {
        return Err(VerifyError::Stale(seconds, tolerance_s));
    }
    Ok(())
}

/// The token a request presents: bearer, basic-auth password, or `token`
/// query parameter.
fn presented_token(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(value) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some((scheme, credentials)) = value.split_once(' ')
    {
        if scheme.eq_ignore_ascii_case("bearer") {
            return Some(credentials.trim().to_owned());
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = BASE64.decode(credentials.trim()).ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (_, password) = text.split_once(':')?;
            return Some(password.to_owned());
        }
    }
    let query = query?;
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn the_standard_webhooks_test_vector_verifies_and_a_flipped_byte_does_not() {
        let verifier = Verifier::Standard {
            key: standard_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap(),
            tolerance: Duration::from_secs(300),
        };
        let h = headers(&[
            ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
            ("webhook-timestamp", "1614265330"),
            (
                "webhook-signature",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
        ]);
        let at = DateTime::from_timestamp(1_614_265_330, 0).unwrap();
        assert_eq!(
            verifier.verify(&h, None, br#"{"test": 2432232314}"#, at),
            Ok(Some("msg_p5jXN8AQM9LWM0D4loKWxJek".into()))
        );
        assert_eq!(
            verifier.verify(&h, None, br#"{"test": 2432232315}"#, at),
            Err(VerifyError::BadSignature)
        );
        let late = at + chrono::TimeDelta::seconds(301);
        assert!(matches!(
            verifier.verify(&h, None, br#"{"test": 2432232314}"#, late),
            Err(VerifyError::Stale(..))
        ));
    }

    #[test]
    fn a_token_is_taken_from_bearer_basic_or_the_query() {
        let verifier = Verifier::Token(Sha256::digest(b"s3cret").into());
        let now = Utc::now();
        let bearer = headers(&[("authorization", "Bearer s3cret")]);
        assert_eq!(verifier.verify(&bearer, None, b"", now), Ok(None));
        let basic = headers(&[("authorization", "Basic YWxlcnRtYW5hZ2VyOnMzY3JldA==")]);
        assert_eq!(verifier.verify(&basic, None, b"", now), Ok(None));
        assert_eq!(
            verifier.verify(&HeaderMap::new(), Some("token=s3cret"), b"", now),
            Ok(None)
        );
        assert_eq!(
            verifier.verify(&HeaderMap::new(), Some("token=s3creT"), b"", now),
            Err(VerifyError::WrongToken)
        );
        assert_eq!(
            verifier.verify(&HeaderMap::new(), None, b"", now),
            Err(VerifyError::MissingToken)
        );
    }
}
