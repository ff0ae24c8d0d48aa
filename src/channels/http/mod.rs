//! What every HTTP provider shares: one client with a clear User-Agent and
//! timeouts, the driver that owns the exchange (`HttpChannel`), and reading
//! a provider's answer into retry or don't-retry.

mod driver;

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::de::DeserializeOwned;

pub use driver::{Exchange, HttpChannel, Provider};

use super::{ChannelError, DeliveryError, Receipt};

pub const USER_AGENT: &str = concat!(
    "crisisd/",
    env!("CARGO_PKG_VERSION"),
    " (crisis notification daemon)"
);

/// Connecting must be quick; each channel sets its own request timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A fallback for any request that does not set its own.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The HTTP client every provider channel shares (one connection pool).
pub fn client() -> Result<reqwest::Client, ChannelError> {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| ChannelError::Config {
            channel: "(all)".into(),
            message: format!("cannot build the HTTP client: {e}"),
        })
}

/// A provider's whole answer to one request, its body with the provider's
/// secrets already taken out.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    /// `Retry-After`, when the provider sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        retry_after(&self.headers)
    }

    /// The start of the body, enough to say what went wrong.
    pub fn excerpt(&self) -> String {
        excerpt(&self.body)
    }

    /// A success's receipt, with the provider's id for the message read
    /// from its JSON body by `id`. A 2xx means the message exists; failing
    /// here would only send it again, so a body that cannot be read still
    /// counts as sent, without an id.
    pub fn receipt<T: DeserializeOwned>(&self, id: impl FnOnce(T) -> String) -> Receipt {
        Receipt {
            provider_ref: serde_json::from_str(&self.body).ok().map(id),
        }
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The start of a provider's answer, enough to say what went wrong.
pub fn excerpt(body: &str) -> String {
    const MAX: usize = 300;
    let body = body.trim();
    match body.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &body[..cut]),
        None => body.to_owned(),
    }
}

/// An absolute http(s) URL with a host.
pub fn is_http_url(url: &str) -> bool {
    reqwest::Url::parse(url)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// Throttling, timeouts and server errors: trying again later can help.
pub fn is_temporary(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
}

/// The usual reading of an HTTP failure: throttling, timeouts and server
/// errors are worth retrying (after `Retry-After` when given); any other
/// client error will fail the same way again.
pub fn classify(
    provider: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
) -> DeliveryError {
    let reason = format!("{provider} answered {status}: {}", excerpt(body));
    if is_temporary(status) {
        DeliveryError::Transient {
            reason,
            retry_after: retry_after(headers),
        }
    } else {
        DeliveryError::Permanent { reason }
    }
}

/// A request that got no answer: a timeout or a refused connection is
/// worth retrying; a request we could not even build is not. The URL is
/// left out of the reason: some providers put credentials in it.
pub fn request_failed(provider: &str, err: reqwest::Error) -> DeliveryError {
    let err = err.without_url();
    if err.is_builder() {
        DeliveryError::permanent(format!("{provider}: invalid request: {err}"))
    } else if err.is_timeout() {
        DeliveryError::transient(format!("{provider}: no answer in time: {err}"))
    } else {
        DeliveryError::transient(format!("{provider}: {err}"))
    }
}

/// Takes secrets (a webhook URL, a bot token) out of a text, in case a
/// provider or a proxy in between echoed them back. Done to a body before
/// it is cut to an excerpt, so a cut-off secret cannot slip through.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    // A path of "/" or "" is no secret, and replacing it would mangle
    // every text.
    secrets
        .iter()
        .filter(|s| s.len() > 1)
        .fold(text.to_owned(), |text, secret| {
            text.replace(secret, "[redacted]")
        })
}

/// `scrub` for an error's reason.
pub fn redact(err: DeliveryError, secrets: &[&str]) -> DeliveryError {
    match err {
        DeliveryError::Transient {
            reason,
            retry_after,
        } => DeliveryError::Transient {
            reason: scrub(&reason, secrets),
            retry_after,
        },
        DeliveryError::Permanent { reason } => DeliveryError::Permanent {
            reason: scrub(&reason, secrets),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_are_instance_urls() {
        assert!(is_http_url("https://mastodon.social"));
        assert!(is_http_url("http://127.0.0.1:8080"));
        assert!(!is_http_url("mastodon.social"));
        assert!(!is_http_url("ftp://mastodon.social"));
    }
}
