//! Better Stack (Better Uptime) incident webhooks: `started`,
//! `acknowledged`, `resolved`. Unsigned, so the hook uses a token.

use serde_json::Value;

use super::signal::{ParseError, Parsed, Signal, SignalState, id, json, opt_text, text};

pub fn parse(body: &[u8]) -> Result<Parsed, ParseError> {
    let value = json(body)?;
    let event = text(&value, "/event")?;
    let state = match event {
        "started" => SignalState::Firing,
        "acknowledged" => SignalState::Continuing,
        "resolved" => SignalState::Resolved,
        other => {
            return Err(format!(
                "unknown event `{other}` (expected started, acknowledged or resolved)"
            ));
        }
    };
    match value.pointer("/data/type").and_then(Value::as_str) {
        Some("incident") | None => {}
        Some(other) => {
            return Ok(Parsed::nothing(format!(
                "`{other}` webhooks do not change crises"
            )));
        }
    }
    let key = id(&value, "/data/id")?;
    let name = text(&value, "/data/attributes/name")?;
    let mut signal = Signal::new(key, state, name);
    if let Some(cause) = opt_text(&value, "/data/attributes/cause") {
        signal.summary = format!("{name}: {cause}");
        signal.labels.insert("cause".into(), cause.into());
    }
    signal.components.push(name.to_owned());
    if let Some(url) = opt_text(&value, "/data/attributes/url") {
        signal.components.push(url.to_owned());
    }
    if let Ok(monitor) = id(&value, "/data/relationships/monitor/data/id") {
        signal.labels.insert("monitor".into(), monitor);
    }
    Ok(Parsed::one(signal))
}
