//! The generic source, signed per the Standard Webhooks specification. Its
//! body names the transition directly:
//!
//! ```json
//! {"type": "crisis.declare", "timestamp": "2026-11-23T03:00:00Z",
//!  "data": {"key": "inc-42", "kind": "outage", "severity": "critical",
//!           "title": "Payments are down", "summary": "...", "message": "..."}}
//! ```
//!
//! `crisis.update` changes a known incident (never declares);
//! `crisis.resolve` resolves it.

use serde::Deserialize;

use super::signal::{ParseError, Parsed, Signal, SignalState};
use crate::domain::{Kind, Severity};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    #[allow(dead_code)]
    timestamp: Option<String>,
    data: Data,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Data {
    key: String,
    #[serde(default)]
    kind: Option<Kind>,
    #[serde(default)]
    severity: Option<Severity>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

pub fn parse(body: &[u8]) -> Result<Parsed, ParseError> {
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|e| format!("the body is not a crisis event: {e}"))?;
    let data = envelope.data;
    if data.key.trim().is_empty() {
        return Err("`data.key` is empty".into());
    }
    let state = match envelope.kind.as_str() {
        "crisis.declare" => SignalState::Firing,
        "crisis.update" => SignalState::Continuing,
        "crisis.resolve" => SignalState::Resolved,
        other => {
            return Err(format!(
                "unknown type `{other}` (expected crisis.declare, crisis.update or crisis.resolve)"
            ));
        }
    };
    let title = match (&data.title, state) {
        (Some(title), _) => title.clone(),
        (None, SignalState::Firing) => return Err("`data.title` is needed to declare".into()),
        (None, _) => String::new(),
    };
    let mut signal = Signal::new(data.key, state, title);
    if let Some(summary) = data.summary {
        signal.summary = summary;
    }
    signal.message = data.message;
    signal.severity = data.severity;
    signal.kind = data.kind;
    Ok(Parsed::one(signal))
}
