//! Instatus: incident, maintenance and component webhooks, signed with a
//! hex HMAC-SHA256 of the body; statuses are UPPERCASE words.

use serde_json::Value;

use super::signal::{ParseError, Parsed, Signal, SignalState, json, opt_text, text};
use super::statuspage::{ComponentStatus, component};

pub fn parse(body: &[u8]) -> Result<Parsed, ParseError> {
    let value = json(body)?;
    if value.get("incident").is_some_and(Value::is_object) {
        incident(&value)
    } else if value.get("maintenance").is_some_and(Value::is_object) {
        Ok(Parsed::nothing("maintenance is not a crisis"))
    } else if value.get("component_update").is_some_and(Value::is_object) {
        component(&value, COMPONENT_STATUSES)
    } else {
        Err("an Instatus webhook has an `incident`, `maintenance` or `component_update` object; this has none".into())
    }
}

fn incident(value: &Value) -> Result<Parsed, ParseError> {
    let key = text(value, "/incident/id")?;
    let name = text(value, "/incident/name")?;
    let status = text(value, "/incident/status")?;
    let state = match status {
        "INVESTIGATING" | "IDENTIFIED" | "MONITORING" => SignalState::Firing,
        "RESOLVED" => SignalState::Resolved,
        other => {
            return Err(format!(
                "unknown incident status `{other}` (Instatus sends INVESTIGATING, IDENTIFIED, MONITORING or RESOLVED)"
            ));
        }
    };
    let mut signal = Signal::new(key, state, name);
    // Instatus lists the updates oldest first.
    let latest = value
        .pointer("/incident/incident_updates")
        .and_then(Value::as_array)
        .and_then(|updates| updates.last())
        .and_then(|u| u.get("body"))
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty());
    if let Some(body) = latest {
        signal.summary = body.to_owned();
        signal.message = Some(body.to_owned());
    }
    if let Some(impact) = opt_text(value, "/incident/impact") {
        signal.severity_word = Some(impact.to_lowercase());
        signal.labels.insert("impact".into(), impact.into());
    }
    signal.labels.insert("status".into(), status.into());
    Ok(Parsed::one(signal))
}

const COMPONENT_STATUSES: &[ComponentStatus] = &[
    ("OPERATIONAL", Some(SignalState::Resolved), "operational"),
    (
        "DEGRADEDPERFORMANCE",
        Some(SignalState::Firing),
        "degraded performance",
    ),
    ("PARTIALOUTAGE", Some(SignalState::Firing), "partial outage"),
    ("MAJOROUTAGE", Some(SignalState::Firing), "major outage"),
    ("UNDERMAINTENANCE", None, "under maintenance"),
];
