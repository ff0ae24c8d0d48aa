//! Previews render every channel's message without sending anything.

use serde_json::{Value, json};

use crate::support::{SmtpServer, TOKEN, TestConfig, spawn_app};

#[tokio::test]
async fn previewing_sms_works_before_a_gateway_is_configured_and_shows_encoding_and_segments() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    let response = app
        .post(
            "/v1/preview",
            &json!({"kind": "outage", "severity": "critical", "title": "Payments are down",
                    "summary": "Card payments fail.", "channel": "sms"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    let previews = body["previews"].as_array().expect("previews");
    let locales: Vec<&str> = previews
        .iter()
        .filter_map(|p| p["locale"].as_str())
        .collect();
    assert_eq!(locales, ["bn", "en", "eo"]);
    for preview in previews {
        let sms = &preview["measurement"]["sms"];
        let text = preview["text"].as_str().expect("text");
        let info = crisisd::message::sms::analyze(text);
        assert_eq!(sms["segments"], info.segments, "{preview}");
        assert_eq!(preview["measurement"]["unit"], "segments");
        assert!(preview["measurement"]["fits"].as_bool().expect("fits"));
    }
    let bengali = &previews[0];
    assert_eq!(bengali["measurement"]["sms"]["encoding"], "ucs2");
    assert_eq!(previews[1]["measurement"]["sms"]["encoding"], "gsm7");

    assert!(smtp.accepted().is_empty(), "nothing was sent");
    assert_eq!(
        app.get_json("/v1/crises").await["crises"],
        json!([]),
        "nothing was declared"
    );
}

#[tokio::test]
async fn previewing_every_configured_channel_includes_email_with_its_subject() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    let body: Value = app
        .post(
            "/v1/preview",
            &json!({"kind": "outage", "severity": "major", "title": "Payments are down",
                    "summary": "Card payments fail.", "lang": "eo", "announcement": "resolved",
                    "message": "Ĉio funkcias denove."}),
        )
        .await
        .json()
        .await
        .expect("JSON");
    let previews = body["previews"].as_array().expect("previews");
    assert_eq!(previews.len(), 1);
    assert_eq!(previews[0]["channel"], "email");
    assert_eq!(previews[0]["locale"], "eo");
    assert!(
        previews[0]["subject"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    assert!(
        previews[0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Ĉio funkcias denove.")
    );
}

#[tokio::test]
async fn previewing_an_unknown_channel_says_what_is_known() {
    let app = spawn_app(TestConfig::new(1)).await;
    let response = app
        .post(
            "/v1/preview",
            &json!({"kind": "outage", "severity": "major", "title": "t", "summary": "s", "channel": "pager"}),
        )
        .await;
    assert_eq!(response.status(), 400);
    let message = response.json::<Value>().await.expect("JSON")["error"]["message"].clone();
    assert!(
        message.as_str().unwrap_or_default().contains("mastodon"),
        "{message}"
    );
}

#[tokio::test]
async fn the_cli_prints_each_channels_text_with_its_length() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_crisisd"))
        .args([
            "preview",
            "--kind",
            "outage",
            "--severity",
            "major",
            "--title",
            "Payments are down",
            "--summary",
            "Card payments fail.",
            "--channel",
            "social",
            "--url",
            &app.base,
        ])
        .env("CRISISD_TOKEN", TOKEN)
        .output()
        .await
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("social (social) · en"), "{text}");
    assert!(text.contains("of 300 graphemes"), "{text}");
    assert!(text.contains("Payments are down"), "{text}");
}
