//! Inbound webhooks against the real daemon: every source's documented
//! payload shapes, its signatures, holds, proposals and the webhook log.

mod cli;
mod control;
mod fatigue;
mod flood;
mod signed;
mod unsigned;

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::support::{SmtpServer, TestApp, TestConfig, spawn_app_in};

/// A daemon with `hooks` (TOML; `{dir}` is its directory, where `secrets`
/// are written as files) and its SMTP server.
pub async fn start(hooks: &str, secrets: &[(&str, &str)]) -> (TestApp, SmtpServer) {
    let smtp = SmtpServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    for (file, secret) in secrets {
        std::fs::write(dir.path().join(file), secret).unwrap();
    }
    let mut config = TestConfig::new(smtp.port());
    config.extra = hooks.replace("{dir}", &dir.path().display().to_string());
    (spawn_app_in(config, dir).await, smtp)
}

/// POSTs raw bytes to a hook with headers.
pub async fn send(
    app: &TestApp,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, Value) {
    let mut request = app.http.post(app.url(path)).body(body.to_vec());
    request = request.header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub fn hmac_hex(key: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

pub fn hmac_base64(key: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for part in parts {
        mac.update(part);
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Active crises, as the API lists them.
pub async fn active(app: &TestApp) -> Vec<Value> {
    app.get_json("/v1/crises?status=active").await["crises"]
        .as_array()
        .unwrap()
        .clone()
}

pub async fn all_crises(app: &TestApp) -> Vec<Value> {
    app.get_json("/v1/crises?status=all").await["crises"]
        .as_array()
        .unwrap()
        .clone()
}

/// The crisis id in a transition line such as `declared <id>`.
pub fn id_in(receipt: &Value, verb: &str) -> String {
    let lines = receipt["transitions"].as_array().unwrap();
    let line = lines
        .iter()
        .filter_map(Value::as_str)
        .find(|l| l.starts_with(verb))
        .unwrap_or_else(|| panic!("no `{verb}` in {receipt:#}"));
    line[verb.len()..]
        .trim()
        .split([' ', ':'])
        .next()
        .unwrap()
        .to_owned()
}

pub async fn crisis(app: &TestApp, id: &str) -> Value {
    app.get_json(&format!("/v1/crises/{id}")).await
}

/// Long enough for a wrongly sent email to have arrived at the loopback
/// SMTP server (a declaration's first email takes milliseconds).
pub const QUIET: Duration = Duration::from_millis(500);
