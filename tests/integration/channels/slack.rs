use std::time::Duration;

use crisisd::channels::{Channel, ChannelError, DeliveryError, SlackChannel};
use crisisd::config::WebhookSettings;
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

fn channel(url: &tempfile::NamedTempFile, timeout: Duration) -> SlackChannel {
    SlackChannel::from_settings(&settings(url, timeout), reqwest::Client::new()).expect("channel")
}

fn hook(server: &MockServer) -> tempfile::NamedTempFile {
    secret_file(&format!("{}{HOOK_PATH}", server.uri()))
}

/// An http URL on a loopback port nothing listens on.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

fn reason(err: &DeliveryError) -> &str {
    match err {
        DeliveryError::Transient { reason, .. } | DeliveryError::Permanent { reason } => reason,
    }
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
async fn slacks_error_codes_are_permanent_and_name_the_problem() {
    for (status, code) in [
        (400, "invalid_payload"),
        (400, "no_text"),
        (403, "action_prohibited"),
        (404, "channel_not_found"),
        (410, "channel_is_archived"),
    ] {
        let server = MockServer::start().await;
        let url = hook(&server);
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_string(code))
            .mount(&server)
            .await;
        let err = channel(&url, Duration::from_secs(5))
            .send(&text_delivery("slack-ops", "", "x"))
            .await
            .unwrap_err();
        match err {
            DeliveryError::Permanent { reason } => {
                assert!(
                    reason.contains(code) && reason.contains(&status.to_string()),
                    "{reason}"
                )
            }
            other => panic!("{status} {code}: expected permanent, got {other:?}"),
        }
    }
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
async fn throttling_is_transient_with_the_retry_after() {
    let server = MockServer::start().await;
    let url = hook(&server);
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "30")
                .set_body_string("rate_limited"),
        )
        .mount(&server)
        .await;
    let err = channel(&url, Duration::from_secs(5))
        .send(&text_delivery("slack-ops", "", "x"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        DeliveryError::Transient {
            reason: "Slack answered 429 Too Many Requests: rate_limited".into(),
            retry_after: Some(Duration::from_secs(30)),
        }
    );
}

#[tokio::test]
async fn server_errors_and_timeouts_are_transient() {
    let server = MockServer::start().await;
    let url = hook(&server);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("rollup_error"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("ok")
                .set_delay(Duration::from_millis(800)),
        )
        .mount(&server)
        .await;
    let channel = channel(&url, Duration::from_millis(200));
    let delivery = text_delivery("slack-ops", "", "x");

    let server_error = channel.send(&delivery).await.unwrap_err();
    assert!(
        matches!(&server_error, DeliveryError::Transient { reason, .. } if reason.contains("rollup_error")),
        "{server_error:?}"
    );
    let timeout = channel.send(&delivery).await.unwrap_err();
    assert!(
        matches!(&timeout, DeliveryError::Transient { reason, .. } if reason.contains("no answer in time")),
        "{timeout:?}"
    );
}

#[tokio::test]
async fn no_error_reason_contains_the_webhook_url() {
    let server = MockServer::start().await;
    let url = hook(&server);
    let full_url = format!("{}{HOOK_PATH}", server.uri());
    // A proxy error page that quotes the URL it could not reach.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(502).set_body_string(format!(
            "<h1>Bad gateway</h1> upstream {full_url} failed; path {HOOK_PATH}"
        )))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(800)))
        .mount(&server)
        .await;
    let slack = channel(&url, Duration::from_millis(200));
    let delivery = text_delivery("slack-ops", "", "x");
    let echoed = slack.send(&delivery).await.unwrap_err();
    let timed_out = slack.send(&delivery).await.unwrap_err();

    let unreachable_url = secret_file(&format!("{}{HOOK_PATH}", closed_port()));
    let refused = channel(&unreachable_url, Duration::from_secs(5))
        .send(&delivery)
        .await
        .unwrap_err();

    for err in [&echoed, &timed_out, &refused] {
        assert!(matches!(err, DeliveryError::Transient { .. }), "{err:?}");
        assert!(!reason(err).contains("SECRET"), "{err:?}");
    }
    assert!(reason(&echoed).contains("Bad gateway"), "{echoed:?}");
}

#[tokio::test]
async fn the_healthcheck_reaches_slacks_host_without_posting() {
    let server = MockServer::start().await;
    let url = hook(&server);
    // No mock: the server answers 404 to everything, which still proves
    // the host answers.
    channel(&url, Duration::from_secs(5))
        .healthcheck()
        .await
        .expect("healthy");
    let requests = server.received_requests().await.expect("recorded");
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method.as_str(), "HEAD");
    assert_eq!(requests[0].url.path(), "/");

    let unreachable_url = secret_file(&format!("{}{HOOK_PATH}", closed_port()));
    let err = channel(&unreachable_url, Duration::from_secs(5))
        .healthcheck()
        .await
        .unwrap_err();
    assert!(matches!(&err, DeliveryError::Transient { .. }), "{err:?}");
    assert!(!reason(&err).contains("SECRET"), "{err:?}");
}

#[tokio::test]
async fn name_and_concurrency_come_from_the_settings() {
    let url = secret_file("https://hooks.slack.com/services/T0/B0/x");
    let slack = channel(&url, Duration::from_secs(5));
    assert_eq!(slack.name(), "slack-ops");
    // Configured 0: one at a time is the least that still sends.
    assert_eq!(slack.concurrency(), 1);
}

#[tokio::test]
async fn a_webhook_url_that_is_not_http_is_a_config_error_that_does_not_repeat_it() {
    for bad in [
        "ftp://hooks.slack.com/services/T0/B0/SECRETPART",
        "hooks.slack.com/services/T0/B0/SECRETPART",
    ] {
        let url = secret_file(bad);
        let err = SlackChannel::from_settings(
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
