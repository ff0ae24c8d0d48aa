//! A hook's mapping rules: which signals may become crises (components,
//! label matchers, a minimum severity), and the crisis fields each one
//! gives (severity from the source's own word, kind).

use std::collections::BTreeMap;

use regex::Regex;

use super::signal::Signal;
use crate::config::{HookSettings, HookSource};
use crate::domain::{
    Crisis, CrisisUpdate, Declaration, Kind, MAX_MESSAGE_CHARS, MAX_SUMMARY_CHARS, MAX_TITLE_CHARS,
    Severity,
};

#[derive(Debug, Clone)]
enum Op {
    Equal(String),
    NotEqual(String),
    Matches(Regex),
    NotMatches(Regex),
}

/// `name="value"`, `name!="value"`, `name=~"regex"`, `name!~"regex"`, as
/// Alertmanager writes them; a missing label reads as empty.
#[derive(Debug, Clone)]
pub struct Matcher {
    label: String,
    op: Op,
}

impl Matcher {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "matcher `{text}` should look like name=\"value\", name!=\"value\", name=~\"regex\" or name!~\"regex\""
            )
        };
        let at = text.find(['=', '!']).ok_or_else(bad)?;
        let label = text[..at].trim();
        let rest = &text[at..];
        let (op, value) = ["=~", "!~", "!=", "="]
            .iter()
            .find_map(|op| rest.strip_prefix(op).map(|v| (*op, v)))
            .ok_or_else(bad)?;
        let valid_label =
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_label {
            return Err(bad());
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value)
            .to_owned();
        let regex = |v: &str| {
            Regex::new(&format!("^(?:{v})$"))
                .map_err(|e| format!("matcher `{text}`: invalid regex: {e}"))
        };
        let op = match op {
            "=" => Op::Equal(value),
            "!=" => Op::NotEqual(value),
            "=~" => Op::Matches(regex(&value)?),
            _ => Op::NotMatches(regex(&value)?),
        };
        Ok(Self {
            label: label.to_owned(),
            op,
        })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.label).map(String::as_str).unwrap_or("");
        match &self.op {
            Op::Equal(v) => value == v,
            Op::NotEqual(v) => value != v,
            Op::Matches(r) => r.is_match(value),
            Op::NotMatches(r) => !r.is_match(value),
        }
    }
}

/// What each source's severity words mean unless the hook says otherwise.
fn default_severity_map(source: HookSource) -> BTreeMap<String, Severity> {
    let pairs: &[(&str, Severity)] = match source {
        HookSource::Statuspage => &[
            ("none", Severity::Minor),
            ("maintenance", Severity::Minor),
            ("minor", Severity::Minor),
            ("major", Severity::Major),
            ("critical", Severity::Critical),
            ("degraded_performance", Severity::Minor),
            ("partial_outage", Severity::Major),
            ("major_outage", Severity::Critical),
        ],
        HookSource::Instatus => &[
            ("degradedperformance", Severity::Minor),
            ("partialoutage", Severity::Major),
            ("majoroutage", Severity::Critical),
        ],
        HookSource::Alertmanager | HookSource::Grafana => &[
            ("info", Severity::Minor),
            ("warning", Severity::Minor),
            ("minor", Severity::Minor),
            ("error", Severity::Major),
            ("major", Severity::Major),
            ("critical", Severity::Critical),
            ("page", Severity::Critical),
        ],
        HookSource::Pagerduty => &[("low", Severity::Major), ("high", Severity::Critical)],
        HookSource::Betterstack | HookSource::UptimeKuma | HookSource::Standard => &[],
    };
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[derive(Debug, Clone)]
pub struct Rules {
    kind: Kind,
    kind_label: Option<String>,
    severity: Severity,
    severity_map: BTreeMap<String, Severity>,
    min_severity: Option<Severity>,
    components: Vec<String>,
    matchers: Vec<Matcher>,
}

fn clip(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut clipped: String = text.chars().take(max - 1).collect();
    clipped.push('…');
    clipped
}

impl Rules {
    pub fn new(hook: &HookSettings) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let matchers = hook
            .matchers
            .iter()
            .filter_map(|m| Matcher::parse(m).map_err(|e| problems.push(e)).ok())
            .collect();
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut severity_map = default_severity_map(hook.source);
        severity_map.extend(
            hook.severity_map
                .iter()
                .map(|(k, v)| (k.to_lowercase(), *v)),
        );
        Ok(Self {
            kind: hook.kind,
            kind_label: hook.kind_label.clone(),
            severity: hook.severity,
            severity_map,
            min_severity: hook.min_severity,
            components: hook.components.clone(),
            matchers,
        })
    }

    /// The severity the signal states, if it states one this hook knows.
    pub(super) fn stated_severity(&self, signal: &Signal) -> Option<Severity> {
        signal.severity.or_else(|| {
            signal
                .severity_word
                .as_ref()
                .and_then(|w| self.severity_map.get(w).copied())
        })
    }

    fn stated_kind(&self, signal: &Signal) -> Option<Kind> {
        signal.kind.or_else(|| {
            let label = self.kind_label.as_ref()?;
            signal.labels.get(label)?.parse().ok()
        })
    }

    /// Why a signal may not become a crisis, if it may not.
    pub fn refusal(&self, signal: &Signal) -> Option<String> {
        if !self.components.is_empty()
            && !signal.components.iter().any(|c| {
                self.components
                    .iter()
                    .any(|want| want.eq_ignore_ascii_case(c))
            })
        {
            return Some(format!(
                "touches none of the components {:?}",
                self.components
            ));
        }
        if let Some(matcher) = self.matchers.iter().find(|m| !m.matches(&signal.labels)) {
            return Some(format!(
                "label matcher on `{}` does not hold",
                matcher.label
            ));
        }
        let severity = self.stated_severity(signal).unwrap_or(self.severity);
        if let Some(min) = self.min_severity
            && severity.rank() < min.rank()
        {
            return Some(format!("severity {severity} is below min_severity {min}"));
        }
        None
    }

    pub fn declaration(&self, signal: &Signal) -> Declaration {
        let title = clip(&signal.title, MAX_TITLE_CHARS);
        let summary = if signal.summary.trim().is_empty() {
            title.clone()
        } else {
            clip(&signal.summary, MAX_SUMMARY_CHARS)
        };
        Declaration {
            kind: self.stated_kind(signal).unwrap_or(self.kind),
            severity: self.stated_severity(signal).unwrap_or(self.severity),
            title,
            summary,
            localized: BTreeMap::new(),
            message: signal
                .message
                .as_deref()
                .filter(|m| !m.trim().is_empty())
                .map(|m| clip(m, MAX_MESSAGE_CHARS)),
            separate: false,
            // A monitoring system reports real incidents.
            drill: false,
            audience: Default::default(),
            channels: Vec::new(),
        }
    }

    /// A held or proposed declaration brought up to date with what the
    /// source now says; what the signal does not state is kept.
    pub fn refresh(&self, signal: &Signal, current: &Declaration) -> Declaration {
        let wanted = self.declaration(signal);
        let stated = |text: &str| !text.trim().is_empty();
        Declaration {
            kind: self.stated_kind(signal).unwrap_or(current.kind),
            severity: self.stated_severity(signal).unwrap_or(current.severity),
            title: if stated(&signal.title) {
                wanted.title
            } else {
                current.title.clone()
            },
            summary: if stated(&signal.summary) {
                wanted.summary
            } else {
                current.summary.clone()
            },
            localized: current.localized.clone(),
            message: wanted.message.or_else(|| current.message.clone()),
            separate: false,
            drill: current.drill,
            audience: current.audience.clone(),
            channels: current.channels.clone(),
        }
    }

    /// What the signal changes about `crisis`, or `None` when nothing: a
    /// repeated notification sends nothing.
    pub fn update(&self, signal: &Signal, crisis: &Crisis) -> Option<CrisisUpdate> {
        let wanted = self.declaration(signal);
        let mut update = CrisisUpdate::default();
        if let Some(kind) = self.stated_kind(signal).filter(|k| *k != crisis.kind) {
            update.kind = Some(kind);
        }
        if let Some(severity) = self
            .stated_severity(signal)
            .filter(|s| *s != crisis.severity)
        {
            update.severity = Some(severity);
        }
        if !wanted.title.is_empty() && wanted.title != crisis.title {
            update.title = Some(wanted.title);
        }
        if !wanted.summary.is_empty() && wanted.summary != crisis.summary {
            update.summary = Some(wanted.summary);
        }
        if wanted.message.is_some() && wanted.message != crisis.last_message {
            update.message = wanted.message;
        }
        // A source writes in one language and cannot say what readers of
        // another should read: they read its text, not an outdated
        // translation.
        update.fall_back = true;
        let unchanged = update.kind.is_none()
            && update.severity.is_none()
            && update.title.is_none()
            && update.summary.is_none()
            && update.message.is_none();
        (!unchanged).then_some(update)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn matchers_read_like_alertmanager_ones() {
        let l = labels(&[("severity", "critical"), ("team", "payments")]);
        assert!(Matcher::parse("severity=\"critical\"").unwrap().matches(&l));
        assert!(Matcher::parse("team=~\"pay.*\"").unwrap().matches(&l));
        assert!(!Matcher::parse("team=~\"pay\"").unwrap().matches(&l));
        assert!(Matcher::parse("env!=\"staging\"").unwrap().matches(&l));
        assert!(
            !Matcher::parse("severity!~\"crit.*|page\"")
                .unwrap()
                .matches(&l)
        );
        assert!(Matcher::parse("severity").is_err());
        assert!(Matcher::parse("team=~\"(\"").is_err());
    }
}

#[cfg(test)]
mod refresh_tests {
    use super::*;
    use crate::intake::signal::SignalState;

    fn hook() -> HookSettings {
        toml::from_str(
            "name = \"h\"\nsource = \"standard\"\nsecret_env = \"X\"\nseverity = \"minor\"\n",
        )
        .unwrap()
    }

    #[test]
    fn what_a_signal_leaves_out_is_kept_and_what_it_states_replaces() {
        let rules = Rules::new(&hook()).unwrap();
        let mut first = Signal::new("k", SignalState::Firing, "Payments are down");
        first.severity = Some(Severity::Critical);
        first.message = Some("Looking.".into());
        let declared = rules.declaration(&first);
        assert_eq!(declared.severity, Severity::Critical);
        assert_eq!(declared.summary, "Payments are down", "the title stands in");

        let mut later = Signal::new("k", SignalState::Continuing, "");
        later.summary = String::new();
        later.message = Some("Fix rolling out.".into());
        let refreshed = rules.refresh(&later, &declared);
        assert_eq!(refreshed.title, "Payments are down");
        assert_eq!(
            refreshed.severity,
            Severity::Critical,
            "not reset to the default"
        );
        assert_eq!(refreshed.message.as_deref(), Some("Fix rolling out."));
    }
}
