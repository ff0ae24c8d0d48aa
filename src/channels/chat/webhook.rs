//! What the webhook channels share: their section, reading the webhook
//! URL, and which parts of it are credentials.

use std::path::PathBuf;

use reqwest::Url;

use crate::channels::settings::{read_secret, secret, section};

section! {
    /// A Slack, Discord or Teams incoming webhook. Its URL carries its
    /// credential, so it is a secret too.
    pub struct WebhookSettings: broadcast {
        pub webhook_url_env: Option<String>,
        pub webhook_url_file: Option<PathBuf>,
        @locale,
    }
}

/// An incoming webhook: its URL is where to post and its credential.
pub(super) struct Webhook {
    pub url: Url,
}

impl Webhook {
    pub fn new(settings: &WebhookSettings) -> Result<Self, String> {
        Ok(Self {
            url: webhook_url(settings)?,
        })
    }

    /// What in the URL is its credential: the whole URL, and its path and
    /// query on their own (a page may quote just those).
    pub fn secrets(&self) -> Vec<&str> {
        url_secrets(&self.url)
    }

    /// The webhook's host, which answers without anything being posted.
    pub fn origin(&self) -> String {
        format!("{}/", self.url.origin().ascii_serialization())
    }
}

/// Reads a webhook URL from its secret and checks that it is an http(s)
/// URL. The URL is a credential: no error repeats it.
fn webhook_url(settings: &WebhookSettings) -> Result<Url, String> {
    let raw = read_secret(
        "webhook URL",
        &secret(&settings.webhook_url_env, &settings.webhook_url_file),
    )?;
    let invalid = |why: &str| format!("the webhook URL {why}");
    // `url::ParseError` describes the problem without quoting the input.
    let url = Url::parse(&raw).map_err(|e| invalid(&format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("must start with https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("has no host"));
    }
    Ok(url)
}

fn url_secrets(url: &Url) -> Vec<&str> {
    vec![url.as_str(), url.path(), url.query().unwrap_or_default()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::DeliveryError;
    use crate::channels::http::{redact, scrub};

    #[test]
    fn redaction_removes_the_url_and_its_parts_but_never_a_bare_slash() {
        let url = Url::parse("https://hooks.example/services/T1/B2/x?sig=abc").unwrap();
        let err = DeliveryError::permanent(
            "POST https://hooks.example/services/T1/B2/x?sig=abc failed at /services/T1/B2/x with sig=abc, see /",
        );
        assert_eq!(
            redact(err, &url_secrets(&url)),
            DeliveryError::permanent("POST [redacted] failed at [redacted] with [redacted], see /")
        );
        let root = Url::parse("https://hooks.example/").unwrap();
        assert_eq!(scrub("a/b", &url_secrets(&root)), "a/b");
    }
}
