//! Uptime Kuma's webhook notification (JSON body): `heartbeat` and
//! `monitor`, status 0 down and 1 up. A monitor is one source incident.

use serde_json::Value;

use super::signal::{ParseError, Parsed, Signal, SignalState, id, json, opt_text};

pub fn parse(body: &[u8]) -> Result<Parsed, ParseError> {
    let value = json(body)?;
    if !value.is_object() {
        return Err("the body must be a JSON object".into());
    }
    let heartbeat = value.get("heartbeat").filter(|h| !h.is_null());
    let Some(heartbeat) = heartbeat else {
        // The "Test" button sends only `msg`.
        return Ok(Parsed::nothing(
            "a notification without a heartbeat (a test message)",
        ));
    };
    let status = heartbeat
        .get("status")
        .and_then(Value::as_u64)
        .ok_or("`heartbeat.status` is missing (0 down, 1 up)")?;
    let state = match status {
        0 => SignalState::Firing,
        1 => SignalState::Resolved,
        2 => return Ok(Parsed::nothing("a pending monitor is not down yet")),
        3 => return Ok(Parsed::nothing("a monitor in maintenance is not a crisis")),
        other => return Err(format!("unknown heartbeat status {other} (0 down, 1 up)")),
    };
    let monitor_id = id(&value, "/monitor/id").or_else(|_| id(&value, "/heartbeat/monitorID"))?;
    let name = opt_text(&value, "/monitor/name")
        .map(str::to_owned)
        .unwrap_or_else(|| format!("Monitor {monitor_id}"));
    let mut signal = Signal::new(
        format!("monitor:{monitor_id}"),
        state,
        format!("{name} is down"),
    );
    if let Some(msg) = opt_text(heartbeat, "/msg") {
        signal.summary = format!("{name}: {msg}");
    }
    signal.labels.insert("monitor".into(), name.clone());
    if let Some(kind) = opt_text(&value, "/monitor/type") {
        signal.labels.insert("type".into(), kind.into());
    }
    signal.components.push(name);
    if let Some(url) = opt_text(&value, "/monitor/url") {
        signal.components.push(url.to_owned());
    }
    Ok(Parsed::one(signal))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_and_maintenance_heartbeats_are_not_crises_and_odd_ones_are_refused() {
        let pending = br#"{"heartbeat": {"monitorID": 1, "status": 2, "msg": "retrying"}, "monitor": {"id": 1, "name": "A"}}"#;
        assert!(parse(pending).unwrap().signals.is_empty());
        let maintenance = br#"{"heartbeat": {"monitorID": 1, "status": 3, "msg": ""}, "monitor": {"id": 1, "name": "A"}}"#;
        assert!(parse(maintenance).unwrap().signals.is_empty());
        let odd =
            br#"{"heartbeat": {"monitorID": 1, "status": 7}, "monitor": {"id": 1, "name": "A"}}"#;
        assert!(parse(odd).unwrap_err().contains("status 7"));
        assert!(parse(b"[]").is_err());
    }
}
