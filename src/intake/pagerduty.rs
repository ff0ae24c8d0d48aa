//! PagerDuty generic webhooks (v3): one event per POST, signed in
//! `X-PagerDuty-Signature`. Incidents are keyed by their id; urgency gives
//! the severity.

use serde_json::Value;

use super::signal::{ParseError, Parsed, Signal, SignalState, json, opt_text, text};

pub fn parse(body: &[u8]) -> Result<Parsed, ParseError> {
    let value = json(body)?;
    let event_type = text(&value, "/event/event_type")?;
    let event_id = text(&value, "/event/id")?.to_owned();
    let state = match event_type {
        "incident.triggered" | "incident.reopened" => SignalState::Firing,
        "incident.acknowledged"
        | "incident.unacknowledged"
        | "incident.escalated"
        | "incident.reassigned"
        | "incident.delegated"
        | "incident.priority_updated"
        | "incident.responder.added"
        | "incident.responder.replied"
        | "incident.status_update_published"
        | "incident.annotated" => SignalState::Continuing,
        "incident.resolved" => SignalState::Resolved,
        other => {
            return Ok(Parsed {
                delivery_id: Some(event_id),
                ..Parsed::nothing(format!("`{other}` events do not change crises"))
            });
        }
    };
    let key = text(&value, "/event/data/id")?;
    let title = text(&value, "/event/data/title")?;
    let mut signal = Signal::new(key, state, title);
    if let Some(urgency) = opt_text(&value, "/event/data/urgency") {
        signal.severity_word = Some(urgency.to_lowercase());
        signal.labels.insert("urgency".into(), urgency.into());
    }
    if let Some(priority) = opt_text(&value, "/event/data/priority/summary") {
        signal.labels.insert("priority".into(), priority.into());
    }
    for field in ["summary", "id"] {
        if let Some(service) = value
            .pointer(&format!("/event/data/service/{field}"))
            .and_then(Value::as_str)
        {
            signal.components.push(service.to_owned());
            if field == "summary" {
                signal.labels.insert("service".into(), service.into());
            }
        }
    }
    signal
        .labels
        .insert("event_type".into(), event_type.to_owned());
    Ok(Parsed {
        delivery_id: Some(event_id),
        ..Parsed::one(signal)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_about_other_resources_change_nothing_but_keep_their_id() {
        let ping = br#"{"event": {"id": "01ABC", "event_type": "pagey.ping", "resource_type": "pagey",
            "occurred_at": "2021-12-08T22:10:30.000Z", "data": {"message": "Hello from your friend Pagey!", "type": "ping"}}}"#;
        let parsed = parse(ping).unwrap();
        assert!(parsed.signals.is_empty());
        assert_eq!(parsed.delivery_id.as_deref(), Some("01ABC"));
    }
}
