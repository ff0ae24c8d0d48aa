//! What every source's payload is reduced to: signals about source
//! incidents, each keyed by the source's own incident id.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::domain::{Kind, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalState {
    /// The incident is happening: declare it, or update it when known.
    Firing,
    /// The incident goes on (acknowledged, or an update the source names):
    /// update it when known, never declare.
    Continuing,
    /// The source says it is over.
    Resolved,
}

impl SignalState {
    pub fn as_str(&self) -> &'static str {
        match self {
            SignalState::Firing => "firing",
            SignalState::Continuing => "continuing",
            SignalState::Resolved => "resolved",
        }
    }
}

/// One source incident, as one payload describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    /// The source's incident id, alert fingerprint or monitor id: one key,
    /// one crisis.
    pub key: String,
    pub state: SignalState,
    pub title: String,
    pub summary: String,
    pub message: Option<String>,
    /// The source's word for how bad it is (impact, `severity` label,
    /// urgency), lower-cased; mapped by the hook's `severity_map`.
    pub severity_word: Option<String>,
    /// Set only by sources that name crisis fields directly (`standard`).
    pub severity: Option<Severity>,
    pub kind: Option<Kind>,
    /// Labels for `matchers` and `kind_label`.
    pub labels: BTreeMap<String, String>,
    /// Names and ids of what it touches, for the `components` filter.
    pub components: Vec<String>,
}

impl Signal {
    pub fn new(key: impl Into<String>, state: SignalState, title: impl Into<String>) -> Self {
        let title = title.into();
        Self {
            key: key.into(),
            state,
            summary: title.clone(),
            title,
            message: None,
            severity_word: None,
            severity: None,
            kind: None,
            labels: BTreeMap::new(),
            components: Vec::new(),
        }
    }
}

/// A payload reduced to its signals; `note` says why there are none (a
/// test notification, a maintenance window).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub signals: Vec<Signal>,
    /// The source's id for this delivery, when it has one: a repeat is
    /// ignored.
    pub delivery_id: Option<String>,
    pub note: Option<String>,
    /// Alertmanager and Grafana: the notification's `groupKey` and its
    /// `commonAnnotations.summary`, for hooks that key crises by group.
    pub group_key: Option<String>,
    pub group_title: Option<String>,
}

impl Parsed {
    pub fn one(signal: Signal) -> Self {
        Self {
            signals: vec![signal],
            ..Self::default()
        }
    }

    pub fn nothing(note: impl Into<String>) -> Self {
        Self {
            note: Some(note.into()),
            ..Self::default()
        }
    }
}

/// Why a payload could not be understood (422).
pub type ParseError = String;

/// The body as JSON, or what is wrong with it.
pub fn json(body: &[u8]) -> Result<Value, ParseError> {
    serde_json::from_slice(body).map_err(|e| format!("the body is not valid JSON: {e}"))
}

/// A required string at a JSON pointer, or a message naming it.
pub fn text<'a>(value: &'a Value, pointer: &str) -> Result<&'a str, ParseError> {
    match value.pointer(pointer) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        Some(Value::String(_)) => Err(format!("`{}` is empty", dotted(pointer))),
        Some(Value::Null) | None => Err(format!("`{}` is missing", dotted(pointer))),
        Some(_) => Err(format!("`{}` must be a string", dotted(pointer))),
    }
}

/// An optional, non-empty string at a JSON pointer.
pub fn opt_text<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// A string or number id at a JSON pointer.
pub fn id(value: &Value, pointer: &str) -> Result<String, ParseError> {
    match value.pointer(pointer) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(format!(
            "`{}` is missing (a string or number id)",
            dotted(pointer)
        )),
    }
}

fn dotted(pointer: &str) -> String {
    pointer.trim_start_matches('/').replace('/', ".")
}

/// Labels from a JSON object of strings (other values are skipped).
pub fn labels(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}
