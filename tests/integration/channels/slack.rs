use std::time::Duration;

use crisisd::channels::{
    Channel, ChannelError, DeliveryError, HttpChannel, Slack, WebhookSettings,
};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{secret_file, text_delivery};

/// The part of a Slack webhook URL that is its credential.
const HOOK_PATH: &str = "/services/T0000SECRET/B0000SECRET/XXXXsecretXXXX";

fn settings(url: &tempfile::NamedTempFile, timeout: Duration) -> WebhookSettings {
    WebhookSettings {
        name: "slack-ops".into(),
        webhook_url_env: None,
        webhook_url_file: Some(url.path().to_path_buf()),
        locale: None,
        concurrency: 0,
        rate_per_second: None,
        burst: None,
        timeout,
    }
}

fn channel(url: &tempfile::NamedTempFile, timeout: Duration) -> HttpChannel<Slack> {
    HttpChannel::<Slack>::from_settings(&settings(url, timeout), reqwest::Client::new())
        .expect("channel")
}

fn hook(server: &MockServer) -> tempfile::NamedTempFile {
    secret_file(&format!("{}{HOOK_PATH}", server.uri()))
}

#[tokio::test]
async fn a_message_is_posted_as_json_text_to_the_webhook_url() {
    let server = MockServer::start().await;
    let url = hook(&server);
    Mock::given(method("POST"))
        .and(path(HOOK_PATH))
        .and(header("content-type", "application/json"))
        .and(body_json(serde_json::json!({
            "text": "*Payments are down*\nCard payments fail. Details: https://status.example.com"
        })))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .expect(1)
        .mount(&server)
        .await;

    let receipt = channel(&url, Duration::from_secs(5))
        .send(&text_delivery(
            "slack-ops",
            "",
            "*Payments are down*\nCard payments fail. Details: https://status.example.com",
        ))
        .await
        .expect("sent");
    // Slack's `ok` carries no message id.
    assert_eq!(receipt.provider_ref, None);
}

#[tokio::test]
async fn slacks_control_characters_are_escaped_so_nobody_is_pinged() {
    let server = MockServer::start().await;
    let url = hook(&server);
    Mock::given(method("POST"))
        .and(body_json(serde_json::json!({
            "text": "Tea &amp; coffee &lt;!channel&gt; are free"
        })))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .expect(1)
        .mount(&server)
        .await;

    channel(&url, Duration::from_secs(5))
        .send(&text_delivery(
            "slack-ops",
            "",
            "Tea & coffee <!channel> are free",
        ))
        .await
        .expect("sent");
}

#[tokio::test]
async fn a_revoked_webhook_is_permanent_and_says_to_replace_it() {
    let server = MockServer::start().await;
    let url = hook(&server);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(404).set_body_string("no_service"))
        .mount(&server)
        .await;
    let err = channel(&url, Duration::from_secs(5))
        .send(&text_delivery("slack-ops", "", "x"))
        .await
        .unwrap_err();
    match err {
        DeliveryError::Permanent { reason } => {
            assert!(
                reason.contains("no_service") && reason.contains("revoked"),
                "{reason}"
            )
        }
        other => panic!("expected permanent, got {other:?}"),
    }
}

#[tokio::test]
async fn a_webhook_url_that_is_not_http_is_a_config_error_that_does_not_repeat_it() {
    for bad in [
        "ftp://hooks.slack.com/services/T0/B0/SECRETPART",
        "hooks.slack.com/services/T0/B0/SECRETPART",
    ] {
        let url = secret_file(bad);
        let err = HttpChannel::<Slack>::from_settings(
            &settings(&url, Duration::from_secs(5)),
            reqwest::Client::new(),
        )
        .err()
        .expect("config error");
        let ChannelError::Config { channel, message } = err;
        assert_eq!(channel, "slack-ops");
        assert!(
            message.contains("webhook URL") && !message.contains("SECRETPART"),
            "{message}"
        );
    }
}
