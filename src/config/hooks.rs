//! `[[hooks]]`: inbound webhooks from status pages and alerting systems,
//! each turning one source's events into crisis transitions.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::SecretSource;
use crate::domain::{Kind, Severity};

/// Which system sends the webhook; picks the payload parser and the
/// default authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookSource {
    Statuspage,
    Alertmanager,
    Grafana,
    Betterstack,
    Instatus,
    Pagerduty,
    UptimeKuma,
    Standard,
}

impl HookSource {
    pub fn as_str(&self) -> &'static str {
        match self {
            HookSource::Statuspage => "statuspage",
            HookSource::Alertmanager => "alertmanager",
            HookSource::Grafana => "grafana",
            HookSource::Betterstack => "betterstack",
            HookSource::Instatus => "instatus",
            HookSource::Pagerduty => "pagerduty",
            HookSource::UptimeKuma => "uptime_kuma",
            HookSource::Standard => "standard",
        }
    }

    /// How a request proves it came from the source when `auth` is not set:
    /// the source's own signature where it signs, a shared token otherwise.
    pub fn default_auth(&self) -> HookAuth {
        match self {
            HookSource::Grafana
            | HookSource::Instatus
            | HookSource::Pagerduty
            | HookSource::Standard => HookAuth::Signature,
            HookSource::Statuspage
            | HookSource::Alertmanager
            | HookSource::Betterstack
            | HookSource::UptimeKuma => HookAuth::Token,
        }
    }

    /// Whether the source can sign its requests at all.
    pub fn signs(&self) -> bool {
        self.default_auth() == HookAuth::Signature
    }
}

/// What the hook does with a source incident that should become a crisis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookMode {
    /// Declare it (after `declare_after`, if set).
    #[default]
    Declare,
    /// Propose it: nothing is sent until someone confirms it.
    Propose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookAuth {
    /// The source's HMAC signature (Grafana, Instatus, PagerDuty, Standard
    /// Webhooks).
    Signature,
    /// The secret as `Authorization: Bearer <secret>`, as the password of
    /// `Authorization: Basic`, or as `?token=<secret>` in the URL.
    Token,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookSettings {
    /// Served at `POST /v1/hooks/<name>`; letters, digits, `-` and `_`.
    pub name: String,
    pub source: HookSource,
    pub secret_env: Option<String>,
    pub secret_file: Option<PathBuf>,
    /// Default: `signature` for sources that sign, `token` for the others.
    pub auth: Option<HookAuth>,
    #[serde(default)]
    pub mode: HookMode,
    /// Wait this long before declaring (or proposing); a resolution from
    /// the source in the meantime cancels it. `0s`: at once.
    #[serde(default, with = "humantime_serde")]
    pub declare_after: Duration,
    /// Send an update when the source changes what it says about an open
    /// incident (severity, title, a new status message).
    #[serde(default = "yes")]
    pub update: bool,
    /// Resolve the crisis when the source resolves its incident.
    #[serde(default = "yes")]
    pub resolve: bool,
    /// Kind of the crises this hook declares.
    #[serde(default = "default_kind")]
    pub kind: Kind,
    /// A label whose value, when it names a kind, overrides `kind`.
    pub kind_label: Option<String>,
    /// Severity when the source's word for it is missing or not mapped.
    #[serde(default = "default_severity")]
    pub severity: Severity,
    /// The source's severity words (Statuspage impact, the Alertmanager
    /// `severity` label, PagerDuty urgency, ...) mapped to crisis
    /// severities; merged over the source's defaults.
    #[serde(default)]
    pub severity_map: BTreeMap<String, Severity>,
    /// For Alertmanager and Grafana: the label that carries the severity.
    #[serde(default = "default_severity_label")]
    pub severity_label: String,
    /// Incidents below this severity are ignored.
    pub min_severity: Option<Severity>,
    /// Only incidents touching one of these components (Statuspage and
    /// Instatus component names or ids, the Uptime Kuma monitor, the
    /// Better Stack monitor name, the PagerDuty service).
    #[serde(default)]
    pub components: Vec<String>,
    /// Label matchers, all of which must hold: `name="value"`,
    /// `name!="value"`, `name=~"regex"`, `name!~"regex"`.
    #[serde(default)]
    pub matchers: Vec<String>,
    /// Grafana: the header carrying the HMAC signature.
    pub signature_header: Option<String>,
    /// Grafana: the header carrying the signed Unix timestamp, when Grafana
    /// is configured with one.
    pub timestamp_header: Option<String>,
    /// How far a signed timestamp may be from now.
    #[serde(default = "default_tolerance", with = "humantime_serde")]
    pub tolerance: Duration,
    /// Crises one request may open (a storm: 30 alerts in one POST);
    /// further new incidents are proposed for a person to confirm, and the
    /// webhook log says so. `[fatigue] max_webhook_crises` caps all hooks.
    #[serde(default = "default_max_new_crises")]
    pub max_new_crises: u32,
    /// Alertmanager and Grafana: one crisis per group of alerts rather
    /// than per alert fingerprint. `["groupKey"]`: the notification's
    /// `groupKey`; otherwise the label names whose values make the group.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Which changes of an open incident message the readers; any other
    /// change updates the stored crisis, the banner and the page only.
    #[serde(default = "default_notify_on")]
    pub notify_on: Vec<Noteworthy>,
}

/// A change to an open incident that `notify_on` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Noteworthy {
    Kind,
    Severity,
    /// A new status message from the source.
    Status,
    Title,
    /// The summary (Alertmanager's `description`).
    Description,
}

/// `group_by` naming the notification's own group key.
pub const GROUP_KEY: &str = "groupKey";

fn default_max_new_crises() -> u32 {
    3
}

fn default_notify_on() -> Vec<Noteworthy> {
    vec![Noteworthy::Severity, Noteworthy::Status, Noteworthy::Title]
}

fn yes() -> bool {
    true
}

fn default_kind() -> Kind {
    Kind::Outage
}

fn default_severity() -> Severity {
    Severity::Major
}

fn default_severity_label() -> String {
    "severity".into()
}

fn default_tolerance() -> Duration {
    Duration::from_secs(300)
}

impl HookSettings {
    pub fn secret(&self) -> SecretSource {
        SecretSource {
            env: self.secret_env.clone(),
            file: self.secret_file.clone(),
        }
    }

    pub fn auth(&self) -> HookAuth {
        self.auth.unwrap_or(self.source.default_auth())
    }
}
