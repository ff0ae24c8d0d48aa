//! Prometheus Alertmanager (webhook version 4) and Grafana alerting, which
//! sends the same shape with a few fields of its own. Each alert is its
//! own source incident, keyed by its fingerprint: one POST may carry
//! firing and resolved alerts side by side.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::signal::{ParseError, Parsed, Signal, SignalState, json, labels, opt_text};

/// Which of the two sends it: Alertmanager insists on version 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Alertmanager,
    Grafana,
}

pub fn parse(body: &[u8], flavor: Flavor, severity_label: &str) -> Result<Parsed, ParseError> {
    let value = json(body)?;
    if flavor == Flavor::Alertmanager {
        match value.get("version").and_then(Value::as_str) {
            Some("4") => {}
            Some(other) => {
                return Err(format!(
                    "Alertmanager webhook version `{other}` is not supported (expected \"4\")"
                ));
            }
            None => return Err("`version` is missing (Alertmanager sends \"4\")".into()),
        }
    }
    let alerts = value
        .get("alerts")
        .and_then(Value::as_array)
        .ok_or("`alerts` is missing or not an array")?;
    let mut parsed = Parsed {
        group_key: opt_text(&value, "/groupKey").map(str::to_owned),
        group_title: opt_text(&value, "/commonAnnotations/summary")
            .or_else(|| opt_text(&value, "/commonAnnotations/title"))
            .map(str::to_owned),
        ..Parsed::default()
    };
    for (i, alert) in alerts.iter().enumerate() {
        parsed
            .signals
            .push(signal(alert, severity_label).map_err(|e| format!("alerts[{i}]: {e}"))?);
    }
    if parsed.signals.is_empty() {
        parsed.note = Some("no alerts in the notification".into());
    }
    Ok(parsed)
}

fn signal(alert: &Value, severity_label: &str) -> Result<Signal, ParseError> {
    let state = match alert.get("status").and_then(Value::as_str) {
        Some("firing") => SignalState::Firing,
        Some("resolved") => SignalState::Resolved,
        Some(other) => {
            return Err(format!(
                "unknown status `{other}` (expected firing or resolved)"
            ));
        }
        None => return Err("`status` is missing".into()),
    };
    let labels = labels(alert.get("labels"));
    if labels.is_empty() {
        return Err("`labels` is missing or empty".into());
    }
    let key = match opt_text(alert, "/fingerprint") {
        Some(fingerprint) => fingerprint.to_owned(),
        // Alertmanager's fingerprint is a hash of the label set; without
        // one, a hash of the labels identifies the alert just as well.
        None => {
            let mut hasher = Sha256::new();
            for (k, v) in &labels {
                hasher.update(k.as_bytes());
                hasher.update([0]);
                hasher.update(v.as_bytes());
                hasher.update([0]);
            }
            format!("{:x}", hasher.finalize())[..16].to_owned()
        }
    };
    let name = labels
        .get("alertname")
        .cloned()
        .unwrap_or_else(|| "Alert".to_owned());
    let title = opt_text(alert, "/annotations/summary")
        .or_else(|| opt_text(alert, "/annotations/title"))
        .map(str::to_owned)
        .unwrap_or(name);
    let mut signal = Signal::new(key, state, title);
    if let Some(description) = opt_text(alert, "/annotations/description") {
        signal.summary = description.to_owned();
    }
    signal.severity_word = labels.get(severity_label).map(|s| s.to_lowercase());
    signal.labels = labels;
    Ok(signal)
}
