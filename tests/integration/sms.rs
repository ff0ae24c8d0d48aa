//! SMS through the whole daemon: declared, planned per subscriber with a
//! phone number, fitted, sent to a Twilio API on loopback.

use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{SmtpServer, TestApp, TestConfig, WAIT, spawn_app};

pub const SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const MESSAGES: &str = "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json";

/// A config section for a Twilio channel named `sms` at `server`, with its
/// auth token in a file in `dir`.
pub fn twilio_section(server: &MockServer, dir: &std::path::Path, max_segments: usize) -> String {
    let token = dir.join("twilio-token");
    std::fs::write(&token, "twilio-auth-token").expect("write token");
    format!(
        "[[channels.twilio]]\nname = \"sms\"\naccount_sid = \"{SID}\"\nauth_token_file = \"{}\"\n\
         from = \"+15005550006\"\nbase_url = \"{}\"\nmax_segments = {max_segments}\ntimeout = \"2s\"\n",
        token.display(),
        server.uri()
    )
}

pub async fn sms_app(smtp: &SmtpServer, twilio: &MockServer) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = TestConfig::new(smtp.port());
    config.extra = twilio_section(twilio, dir.path(), 3);
    crate::support::spawn_app_in(config, dir).await
}

/// The `Body` and `To` of every message Twilio received.
pub async fn sent_sms(server: &MockServer) -> Vec<(String, String)> {
    server
        .received_requests()
        .await
        .expect("recorded")
        .iter()
        .filter(|r| r.url.path() == MESSAGES)
        .map(|r| {
            let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&r.body).expect("form");
            let field = |name: &str| {
                form.iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            (field("To"), field("Body"))
        })
        .collect()
}

async fn wait_for_sms(server: &MockServer, n: usize) -> Vec<(String, String)> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let sent = sent_sms(server).await;
        if sent.len() >= n {
            return sent;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {n} SMS, Twilio got {}",
            sent.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn accepted() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({"sid": "SM0123", "status": "queued"}))
}

#[tokio::test]
async fn a_crisis_texts_every_subscriber_with_a_phone_in_their_language_within_the_segment_limit() {
    let smtp = SmtpServer::start().await;
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(accepted())
        .mount(&twilio)
        .await;
    let app = sms_app(&smtp, &twilio).await;
    let id = app.declare("Payments are down").await;

    let mut sent = wait_for_sms(&twilio, 2).await;
    sent.sort();
    assert_eq!(sent.len(), 2, "the Esperanto reader has no phone");
    let (english, bengali) = (&sent[0], &sent[1]);
    assert_eq!(english.0, "+14155550101");
    assert_eq!(bengali.0, "+8801712345678");
    assert!(
        english.1.contains("Payments are down") && english.1.contains("+1 555 0100"),
        "{}",
        english.1
    );
    assert!(
        bengali
            .1
            .chars()
            .any(|c| ('\u{0980}'..='\u{09FF}').contains(&c)),
        "{}",
        bengali.1
    );
    for (_, body) in &sent {
        let info = crisisd::message::sms::analyze(body);
        assert!(info.segments <= 3, "{info:?}: {body}");
        assert!(
            body.contains("https://status.example.com"),
            "every form links to the full text: {body}"
        );
    }
    let detail = app
        .wait_until(&id, WAIT, |d| {
            d["deliveries"]["sms"]["sent"] == 2 && d["deliveries"]["email"]["sent"] == 3
        })
        .await;
    assert_eq!(detail["deliveries"]["sms"]["dead"], 0);
}

#[tokio::test]
async fn a_throttled_sms_is_retried_after_the_providers_retry_after_not_before() {
    let smtp = SmtpServer::start().await;
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "2")
                .set_body_json(json!({"code": 20429, "message": "Too Many Requests"})),
        )
        .up_to_n_times(2)
        .mount(&twilio)
        .await;
    Mock::given(method("POST"))
        .respond_with(accepted())
        .mount(&twilio)
        .await;
    let app = sms_app(&smtp, &twilio).await;
    let started = tokio::time::Instant::now();
    let id = app.declare("Payments are down").await;

    // Both first attempts are throttled. The policy's own backoff (100 ms)
    // would retry long before the provider's two seconds.
    wait_for_sms(&twilio, 2).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        sent_sms(&twilio).await.len(),
        2,
        "no retry before Retry-After"
    );
    app.wait_until(&id, WAIT, |d| d["deliveries"]["sms"]["sent"] == 2)
        .await;
    assert!(started.elapsed() >= Duration::from_secs(2));
}

#[tokio::test]
async fn a_refused_number_ends_dead_with_twilios_reason() {
    let smtp = SmtpServer::start().await;
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "code": 21614, "message": "'To' number is not a valid mobile number", "status": 400
        })))
        .mount(&twilio)
        .await;
    let app = sms_app(&smtp, &twilio).await;
    let id = app.declare("Payments are down").await;
    let detail = app
        .wait_until(&id, WAIT, |d| d["deliveries"]["sms"]["dead"] == 2)
        .await;
    let reasons: Vec<&str> = detail["dead"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["reason"].as_str())
        .collect();
    assert!(reasons.iter().all(|r| r.contains("21614")), "{reasons:?}");
}

#[tokio::test]
async fn check_config_says_when_even_the_short_sms_does_not_fit() {
    let twilio = MockServer::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = TestConfig::new(1);
    // One segment is 70 UCS-2 units: no Bengali message fits that.
    config.extra = twilio_section(&twilio, dir.path(), 1);
    let path = dir.path().join("crisisd.toml");
    std::fs::write(&path, config.write(dir.path())).expect("write config");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_crisisd"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .await
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("channel `sms`: the bn initial message does not fit"),
        "{err}"
    );
    assert!(err.contains("segments"), "{err}");
}

#[tokio::test]
async fn without_a_phone_channel_nobody_is_texted() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    let id = app.declare("Payments are down").await;
    let detail = app
        .wait_until(&id, WAIT, |d| d["deliveries"]["email"]["sent"] == 3)
        .await;
    assert!(detail["deliveries"].get("sms").is_none());
}
