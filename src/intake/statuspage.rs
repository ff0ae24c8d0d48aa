//! Atlassian Statuspage: incident and component webhooks (unsigned, so the
//! hook authenticates with a token). Statuspage tells them apart only by
//! which top-level key is present.

use serde_json::Value;

use super::signal::{ParseError, Parsed, Signal, SignalState, json, opt_text, text};

pub fn parse(body: &[u8]) -> Result<Parsed, ParseError> {
    let value = json(body)?;
    if value.get("incident").is_some_and(Value::is_object) {
        incident(&value)
    } else if value.get("component_update").is_some_and(Value::is_object) {
        component(&value, COMPONENT_STATUSES)
    } else {
        Err("a Statuspage webhook has an `incident` or a `component_update` object; this has neither".into())
    }
}

fn incident(value: &Value) -> Result<Parsed, ParseError> {
    let key = text(value, "/incident/id")?;
    let name = text(value, "/incident/name")?;
    let status = text(value, "/incident/status")?;
    if opt_text(value, "/incident/scheduled_for").is_some() {
        return Ok(Parsed::nothing("scheduled maintenance is not a crisis"));
    }
    let state = match status {
        "investigating" | "identified" | "monitoring" => SignalState::Firing,
        "resolved" | "postmortem" => SignalState::Resolved,
        "scheduled" | "in_progress" | "verifying" | "completed" => {
            return Ok(Parsed::nothing("scheduled maintenance is not a crisis"));
        }
        other => return Err(format!("unknown incident status `{other}`")),
    };
    let mut signal = Signal::new(key, state, name);
    // The newest update first, as Statuspage lists them.
    let latest = value
        .pointer("/incident/incident_updates/0/body")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty());
    if let Some(body) = latest {
        signal.summary = body.to_owned();
        signal.message = Some(body.to_owned());
    }
    let impact = opt_text(value, "/incident/impact_override")
        .or_else(|| opt_text(value, "/incident/impact"))
        .unwrap_or("none");
    signal.severity_word = Some(impact.to_lowercase());
    signal.labels.insert("impact".into(), impact.into());
    signal.labels.insert("status".into(), status.into());
    if let Some(components) = value
        .pointer("/incident/components")
        .and_then(Value::as_array)
    {
        for component in components {
            for field in ["id", "name"] {
                if let Some(s) = component.get(field).and_then(Value::as_str) {
                    signal.components.push(s.to_owned());
                }
            }
        }
    }
    Ok(Parsed::one(signal))
}

/// A component status in one source's words: the word, what it means
/// (`None`: maintenance, not a crisis) and how to say it.
pub(super) type ComponentStatus = (&'static str, Option<SignalState>, &'static str);

const COMPONENT_STATUSES: &[ComponentStatus] = &[
    ("operational", Some(SignalState::Resolved), "operational"),
    (
        "degraded_performance",
        Some(SignalState::Firing),
        "degraded performance",
    ),
    (
        "partial_outage",
        Some(SignalState::Firing),
        "partial outage",
    ),
    ("major_outage", Some(SignalState::Firing), "major outage"),
    ("under_maintenance", None, "under maintenance"),
];

/// A component webhook (Statuspage's shape, which Instatus shares): one
/// source incident per component.
pub(super) fn component(value: &Value, statuses: &[ComponentStatus]) -> Result<Parsed, ParseError> {
    let id =
        text(value, "/component_update/component_id").or_else(|_| text(value, "/component/id"))?;
    let new_status = text(value, "/component_update/new_status")?;
    let name = opt_text(value, "/component/name").unwrap_or(id);
    let (_, state, words) = statuses
        .iter()
        .find(|(word, _, _)| *word == new_status)
        .ok_or_else(|| format!("unknown component status `{new_status}`"))?;
    let Some(state) = state else {
        return Ok(Parsed::nothing(format!(
            "a component {words} is not a crisis"
        )));
    };
    let mut signal = Signal::new(
        format!("component:{id}"),
        *state,
        format!("{name}: {words}"),
    );
    signal.severity_word = Some(new_status.to_lowercase());
    signal.labels.insert("component".into(), name.into());
    signal.labels.insert("status".into(), new_status.into());
    signal.components = vec![id.to_owned(), name.to_owned()];
    Ok(Parsed::one(signal))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_maintenance_and_components_under_maintenance_are_not_crises() {
        let maintenance =
            br#"{"incident": {"id": "m1", "name": "DB upgrade", "status": "in_progress",
            "impact": "maintenance", "scheduled_for": "2026-11-23T02:00:00Z"}}"#;
        let parsed = parse(maintenance).unwrap();
        assert!(parsed.signals.is_empty() && parsed.note.is_some());
        let component =
            br#"{"component_update": {"component_id": "c1", "new_status": "under_maintenance"},
            "component": {"id": "c1", "name": "API"}}"#;
        assert!(parse(component).unwrap().signals.is_empty());
    }

    #[test]
    fn an_unknown_status_or_shape_is_refused_with_what_is_wrong() {
        let odd = br#"{"incident": {"id": "i1", "name": "X", "status": "exploding"}}"#;
        assert_eq!(
            parse(odd).unwrap_err(),
            "unknown incident status `exploding`"
        );
        let missing = br#"{"incident": {"id": "i1", "status": "investigating"}}"#;
        assert_eq!(parse(missing).unwrap_err(), "`incident.name` is missing");
        assert!(parse(b"{}").unwrap_err().contains("neither"));
    }
}
