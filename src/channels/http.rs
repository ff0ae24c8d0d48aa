//! What every HTTP provider shares: one client with a clear User-Agent and
//! timeouts, and reading a provider's answer into retry or don't-retry.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::{ChannelError, DeliveryError};

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
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
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

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(retry_after: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(retry_after).unwrap());
        headers
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        assert_eq!(retry_after(&headers("30")), Some(Duration::from_secs(30)));
        let later =
            httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(120));
        let parsed = retry_after(&headers(&later)).unwrap();
        assert!(
            parsed > Duration::from_secs(100) && parsed <= Duration::from_secs(120),
            "{parsed:?}"
        );
        assert_eq!(retry_after(&headers("soon")), None);
    }

    #[test]
    fn throttling_and_server_errors_are_transient_and_client_errors_permanent() {
        let throttled = classify(
            "p",
            StatusCode::TOO_MANY_REQUESTS,
            &headers("7"),
            "slow down",
        );
        assert_eq!(
            throttled,
            DeliveryError::Transient {
                reason: "p answered 429 Too Many Requests: slow down".into(),
                retry_after: Some(Duration::from_secs(7)),
            }
        );
        assert!(matches!(
            classify("p", StatusCode::BAD_GATEWAY, &HeaderMap::new(), ""),
            DeliveryError::Transient { .. }
        ));
        assert!(matches!(
            classify(
                "p",
                StatusCode::BAD_REQUEST,
                &HeaderMap::new(),
                "bad number"
            ),
            DeliveryError::Permanent { .. }
        ));
    }
}
