//! `[console]`: the web console for comms staff, served at `/console` on
//! the daemon's listener.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::domain::{Kind, LocalizedText, Severity};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSettings {
    /// Serve `/console` (accounts are added with `crisisd user add`).
    pub enabled: bool,
    /// A session ends after this long without a request.
    #[serde(with = "humantime_serde")]
    pub session_idle: Duration,
    /// Sign people in by a header an authenticating reverse proxy sets;
    /// off unless given.
    pub trusted_header: Option<TrustedHeader>,
    /// Which announcements need a second person's approval.
    pub two_person: TwoPersonRule,
    /// Prepared texts to start a declaration from, per crisis kind.
    pub templates: Vec<PreparedTemplate>,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            session_idle: Duration::from_secs(30 * 60),
            trusted_header: None,
            two_person: TwoPersonRule::default(),
            templates: Vec::new(),
        }
    }
}

/// Single sign-on through a reverse proxy: a request from one of
/// `proxies` carrying `header` is signed in as the account it names (the
/// account must exist, with its role). Requests from anywhere else never
/// have the header read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedHeader {
    /// E.g. `X-Forwarded-User` or `Remote-User`.
    pub header: String,
    /// The proxy's addresses as the daemon sees them.
    pub proxies: Vec<IpAddr>,
}

/// An announcement needs an approver other than its author when its
/// severity is listed, or, for a webhook's proposal, when its source is:
/// `webhook` (every hook) or `webhook:NAME` (the `[[hooks]]` entry NAME).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TwoPersonRule {
    pub severities: Vec<Severity>,
    pub sources: Vec<String>,
}

impl Default for TwoPersonRule {
    fn default() -> Self {
        Self {
            severities: vec![Severity::Critical],
            sources: Vec::new(),
        }
    }
}

impl TwoPersonRule {
    pub fn applies(&self, severity: Severity) -> bool {
        self.severities.contains(&severity)
    }

    /// Whether a proposal of the hook `hook` needs an approver.
    pub fn applies_to_hook(&self, hook: &str, severity: Severity) -> bool {
        self.applies(severity)
            || self
                .sources
                .iter()
                .any(|s| s == "webhook" || s.strip_prefix("webhook:") == Some(hook))
    }
}

/// The text a declaration of `kind` starts from; staff edit it before
/// sending.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreparedTemplate {
    pub kind: Kind,
    /// Shown in the list of templates; default: the kind.
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default = "default_severity")]
    pub severity: Severity,
    pub title: String,
    pub summary: String,
    #[serde(default)]
    pub message: Option<String>,
    /// Title and summary in the other locales.
    #[serde(default)]
    pub localized: BTreeMap<String, LocalizedText>,
}

fn default_severity() -> Severity {
    Severity::Major
}

impl ConsoleSettings {
    /// What is wrong with the section, each as one sentence.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.session_idle < Duration::from_secs(60) {
            problems.push("console.session_idle must be at least 1m".to_owned());
        }
        if let Some(trusted) = &self.trusted_header {
            if axum::http::HeaderName::from_bytes(trusted.header.as_bytes()).is_err() {
                problems.push(format!(
                    "console.trusted_header.header `{}` is not a header name",
                    trusted.header
                ));
            }
            if trusted.proxies.is_empty() {
                problems.push(
                    "console.trusted_header.proxies must name the proxy's addresses".to_owned(),
                );
            }
        }
        for (i, template) in self.templates.iter().enumerate() {
            if template.title.trim().is_empty() || template.summary.trim().is_empty() {
                problems.push(format!(
                    "console.templates[{i}] ({}) needs a title and a summary",
                    template.kind
                ));
            }
        }
        problems
    }
}
