use std::time::Duration;

use crisisd::channels::{Channel, DeliveryError, Discord, HttpChannel, WebhookSettings};
use wiremock::matchers::{body_json, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{secret_file, text_delivery};

/// A Discord webhook path: `/api/webhooks/{id}/{token}`; the token is the
/// credential.
const HOOK_PATH: &str = "/api/webhooks/112233445566778899/SECRETtokenSECRET";

fn channel(url: &tempfile::NamedTempFile, timeout: Duration) -> HttpChannel<Discord> {
    let settings = WebhookSettings {
        name: "discord-community".into(),
        webhook_url_env: None,
        webhook_url_file: Some(url.path().to_path_buf()),
        locale: None,
        concurrency: 2,
        rate_per_second: None,
        burst: None,
        timeout,
    };
    HttpChannel::<Discord>::from_settings(&settings, reqwest::Client::new()).expect("channel")
}

fn hook(server: &MockServer) -> tempfile::NamedTempFile {
    secret_file(&format!("{}{HOOK_PATH}", server.uri()))
}

/// The message object Discord answers with when `wait=true`.
fn created_message(id: &str, content: &str) -> serde_json::Value {
    serde_json::json!({
        "id": id, "type": 0, "content": content, "channel_id": "998877665544332211",
        "author": {"id": "112233445566778899", "username": "Status", "bot": true},
        "webhook_id": "112233445566778899", "mentions": [], "mention_everyone": false,
    })
}

#[tokio::test]
async fn a_message_is_posted_with_no_mentions_and_waits_for_the_created_message() {
    let server = MockServer::start().await;
    let url = hook(&server);
    let text = "@everyone *Payments are down*\nDetails: https://status.example.com";
    Mock::given(method("POST"))
        .and(path(HOOK_PATH))
        .and(query_param("wait", "true"))
        .and(body_json(serde_json::json!({
            "content": text,
            "allowed_mentions": {"parse": []},
        })))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(created_message("1234567890123456789", text)),
        )
        .expect(1)
        .mount(&server)
        .await;

    let discord = channel(&url, Duration::from_secs(5));
    let receipt = discord
        .send(&text_delivery("discord-community", "", text))
        .await
        .expect("sent");
    assert_eq!(receipt.provider_ref.as_deref(), Some("1234567890123456789"));
    assert_eq!(discord.name(), "discord-community");
    assert_eq!(discord.concurrency(), 2);
}

#[tokio::test]
async fn wait_is_added_to_a_webhook_url_that_already_has_a_query() {
    let server = MockServer::start().await;
    let url = secret_file(&format!("{}{HOOK_PATH}?thread_id=42", server.uri()));
    Mock::given(method("POST"))
        .and(path(HOOK_PATH))
        .and(query_param("thread_id", "42"))
        .and(query_param("wait", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_json(created_message("77", "x")))
        .expect(1)
        .mount(&server)
        .await;

    channel(&url, Duration::from_secs(5))
        .send(&text_delivery("discord-community", "", "x"))
        .await
        .expect("sent");
    let requests = server.received_requests().await.expect("recorded");
    assert_eq!(requests[0].url.query(), Some("thread_id=42&wait=true"));
}

#[tokio::test]
async fn a_rate_limit_waits_as_long_as_the_body_says() {
    let server = MockServer::start().await;
    let url = hook(&server);
    // The header is rounded up to whole seconds; the body is exact.
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "2")
                .set_body_json(serde_json::json!({
                    "message": "You are being rate limited.", "retry_after": 1.5, "global": false
                })),
        )
        .mount(&server)
        .await;
    let err = channel(&url, Duration::from_secs(5))
        .send(&text_delivery("discord-community", "", "x"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DeliveryError::Transient { retry_after: Some(d), reason }
            if *d == Duration::from_millis(1500) && reason.contains("You are being rate limited.")),
        "{err:?}"
    );
}

#[tokio::test]
async fn content_discord_rejects_is_permanent_with_its_message_and_the_field() {
    let server = MockServer::start().await;
    let url = hook(&server);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "message": "Invalid Form Body",
            "code": 50035,
            "errors": {"content": {"_errors": [
                {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}
            ]}}
        })))
        .mount(&server)
        .await;
    let err = channel(&url, Duration::from_secs(5))
        .send(&text_delivery("discord-community", "", &"x".repeat(2001)))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        DeliveryError::Permanent {
            reason:
                "Discord error 50035: Invalid Form Body (content: Must be 2000 or fewer in length.)"
                    .into()
        }
    );
}

#[tokio::test]
async fn an_unknown_webhook_is_permanent() {
    let server = MockServer::start().await;
    let url = hook(&server);
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(serde_json::json!({"message": "Unknown Webhook", "code": 10015})),
        )
        .mount(&server)
        .await;
    let err = channel(&url, Duration::from_secs(5))
        .send(&text_delivery("discord-community", "", "x"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        DeliveryError::Permanent {
            reason: "Discord error 10015: Unknown Webhook".into()
        }
    );
}

#[tokio::test]
async fn the_healthcheck_reports_a_deleted_webhook() {
    let server = MockServer::start().await;
    let url = hook(&server);
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(serde_json::json!({"message": "Unknown Webhook", "code": 10015})),
        )
        .mount(&server)
        .await;
    let err = channel(&url, Duration::from_secs(5))
        .healthcheck()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DeliveryError::Permanent { reason } if reason.contains("Unknown Webhook")),
        "{err:?}"
    );
}
