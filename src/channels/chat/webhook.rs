//! What the webhook channels share: reading the webhook URL, reaching its
//! host without posting, and keeping credentials out of error reasons.

use std::time::Duration;

use reqwest::Url;

use crate::channels::{ChannelError, DeliveryError, http, read_secret};
use crate::config::WebhookSettings;

/// Reads a webhook URL from its secret and checks that it is an http(s)
/// URL. The URL is a credential: no error repeats it.
pub(super) fn webhook_url(settings: &WebhookSettings) -> Result<Url, ChannelError> {
    let raw = read_secret(&settings.name, "webhook URL", &settings.webhook_url())?;
    let invalid = |why: String| ChannelError::Config {
        channel: settings.name.clone(),
        message: format!("the webhook URL {why}"),
    };
    // `url::ParseError` describes the problem without quoting the input.
    let url = Url::parse(&raw).map_err(|e| invalid(format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("must start with https://".into()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("has no host".into()));
    }
    Ok(url)
}

/// Checks that a webhook's host resolves and answers HTTP(S) within the
/// timeout, without posting anything: a HEAD on the URL's origin, whose
/// status does not matter (the origin itself is not an API).
pub(super) async fn reach_origin(
    provider: &str,
    http: &reqwest::Client,
    url: &Url,
    timeout: Duration,
) -> Result<(), DeliveryError> {
    let origin = format!("{}/", url.origin().ascii_serialization());
    http.head(origin)
        .timeout(timeout)
        .send()
        .await
        .map(drop)
        .map_err(|e| http::request_failed(provider, e))
}

/// What in a webhook URL is its credential: the whole URL, and its path
/// and query on their own (a page may quote just those).
pub(super) fn url_secrets(url: &Url) -> [&str; 3] {
    [url.as_str(), url.path(), url.query().unwrap_or_default()]
}

/// Takes secrets (a webhook URL, a bot token) out of a text, in case a
/// provider or a proxy in between echoed them back. Done to a body before
/// it is cut to an excerpt, so a cut-off secret cannot slip through.
pub(super) fn scrub(text: &str, secrets: &[&str]) -> String {
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
pub(super) fn redact(err: DeliveryError, secrets: &[&str]) -> DeliveryError {
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
