use std::time::Duration;

use crisisd::channels::{Channel, DeliveryError, HttpChannel, Vonage, VonageSettings};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{secret_file, text_delivery};

fn channel(
    server: &MockServer,
    secret: &tempfile::NamedTempFile,
    timeout: Duration,
) -> HttpChannel<Vonage> {
    let settings = VonageSettings {
        name: "vonage".into(),
        api_key: "key123".into(),
        api_secret_env: None,
        api_secret_file: Some(secret.path().to_path_buf()),
        from: "ExampleCo".into(),
        base_url: server.uri(),
        status_callback: None,
        signature_secret_env: None,
        signature_secret_file: None,
        max_segments: 3,
        concurrency: 2,
        rate_per_second: None,
        burst: None,
        timeout,
    };
    HttpChannel::<Vonage>::from_settings(&settings, reqwest::Client::new()).expect("channel")
}

fn answer(status: &str, error_text: Option<&str>) -> ResponseTemplate {
    let mut message = serde_json::json!({"to": "8801712345678", "status": status, "message-id": "0A0000000123ABCD1"});
    if let Some(text) = error_text {
        message["error-text"] = text.into();
    }
    ResponseTemplate::new(200)
        .set_body_json(serde_json::json!({"message-count": "1", "messages": [message]}))
}

async fn sent_form(server: &MockServer) -> Vec<(String, String)> {
    let requests = server.received_requests().await.expect("recorded");
    serde_urlencoded::from_bytes(&requests[0].body).expect("form")
}

#[tokio::test]
async fn bengali_text_is_sent_as_unicode_with_our_id_as_client_ref() {
    let server = MockServer::start().await;
    let secret = secret_file("s3cret");
    Mock::given(method("POST"))
        .and(path("/sms/json"))
        .respond_with(answer("0", None))
        .expect(1)
        .mount(&server)
        .await;
    let delivery = text_delivery("vonage", "+8801712345678", "পেমেন্ট বন্ধ");
    let receipt = channel(&server, &secret, Duration::from_secs(5))
        .send(&delivery)
        .await
        .expect("sent");
    assert_eq!(receipt.provider_ref.as_deref(), Some("0A0000000123ABCD1"));

    let form = sent_form(&server).await;
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(field("api_key"), Some("key123"));
    assert_eq!(field("api_secret"), Some("s3cret"));
    assert_eq!(
        field("to"),
        Some("8801712345678"),
        "international format without +"
    );
    assert_eq!(field("from"), Some("ExampleCo"));
    assert_eq!(field("text"), Some("পেমেন্ট বন্ধ"));
    assert_eq!(field("type"), Some("unicode"));
    assert_eq!(field("client-ref"), Some(delivery.id.to_string().as_str()));
}

#[tokio::test]
async fn gsm_text_is_sent_as_text() {
    let server = MockServer::start().await;
    let secret = secret_file("s");
    Mock::given(method("POST"))
        .respond_with(answer("0", None))
        .mount(&server)
        .await;
    channel(&server, &secret, Duration::from_secs(5))
        .send(&text_delivery(
            "vonage",
            "+4915112345678",
            "Payments are down. Info: https://status.example.com",
        ))
        .await
        .expect("sent");
    assert!(
        sent_form(&server)
            .await
            .contains(&("type".into(), "text".into()))
    );
}

#[tokio::test]
async fn status_1_throttled_is_transient() {
    let server = MockServer::start().await;
    let secret = secret_file("s");
    Mock::given(method("POST"))
        .respond_with(answer(
            "1",
            Some("Throughput Rate Exceeded - please wait [ 1000 ] and retry"),
        ))
        .mount(&server)
        .await;
    let err = channel(&server, &secret, Duration::from_secs(5))
        .send(&text_delivery("vonage", "+15005550006", "x"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DeliveryError::Transient { reason, .. } if reason.contains("Throughput")),
        "{err:?}"
    );
}

#[tokio::test]
async fn other_statuses_are_permanent_with_the_error_text() {
    let server = MockServer::start().await;
    let secret = secret_file("s");
    Mock::given(method("POST"))
        .respond_with(answer("3", Some("Invalid to address")))
        .mount(&server)
        .await;
    let err = channel(&server, &secret, Duration::from_secs(5))
        .send(&text_delivery("vonage", "+1", "x"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DeliveryError::Permanent { reason } if reason.contains("Invalid to address")),
        "{err:?}"
    );
}
