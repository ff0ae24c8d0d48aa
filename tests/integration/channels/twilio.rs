use std::time::Duration;

use crisisd::channels::{Channel, DeliveryError, HttpChannel, Twilio, TwilioSettings};
use wiremock::matchers::{basic_auth, body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{secret_file, text_delivery};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const PATH: &str = "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json";

fn channel(
    server: &MockServer,
    token: &tempfile::NamedTempFile,
    timeout: Duration,
) -> HttpChannel<Twilio> {
    let settings = TwilioSettings {
        name: "sms".into(),
        account_sid: SID.into(),
        auth_token_env: None,
        auth_token_file: Some(token.path().to_path_buf()),
        from: Some("+15005550006".into()),
        messaging_service_sid: None,
        base_url: server.uri(),
        status_callback: None,
        max_segments: 3,
        concurrency: 2,
        rate_per_second: None,
        burst: None,
        timeout,
    };
    HttpChannel::<Twilio>::from_settings(&settings, reqwest::Client::new()).expect("channel")
}

#[tokio::test]
async fn a_message_is_a_form_post_with_basic_auth_and_to_from_body() {
    let server = MockServer::start().await;
    let token = secret_file("auth-token-123");
    Mock::given(method("POST"))
        .and(path(PATH))
        .and(basic_auth(SID, "auth-token-123"))
        .and(body_string_contains("To=%2B8801712345678"))
        .and(body_string_contains("From=%2B15005550006"))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({
            "sid": "SM1234567890abcdef1234567890abcdef", "status": "queued"
        })))
        .expect(1)
        .mount(&server)
        .await;

    let receipt = channel(&server, &token, Duration::from_secs(5))
        .send(&text_delivery(
            "sms",
            "+8801712345678",
            "পেমেন্ট বন্ধ। Details: https://status.example.com",
        ))
        .await
        .expect("sent");
    assert_eq!(
        receipt.provider_ref.as_deref(),
        Some("SM1234567890abcdef1234567890abcdef")
    );

    let requests = server.received_requests().await.expect("recorded");
    let form: Vec<(String, String)> =
        serde_urlencoded::from_bytes(&requests[0].body).expect("form");
    assert!(form.contains(&(
        "Body".into(),
        "পেমেন্ট বন্ধ। Details: https://status.example.com".into()
    )));
}

#[tokio::test]
async fn an_invalid_number_is_permanent_with_twilios_reason() {
    let server = MockServer::start().await;
    let token = secret_file("t");
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "code": 21211, "message": "The 'To' number +1555 is not a valid phone number.",
            "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400
        })))
        .mount(&server)
        .await;
    let err = channel(&server, &token, Duration::from_secs(5))
        .send(&text_delivery("sms", "+1555", "x"))
        .await
        .unwrap_err();
    match err {
        DeliveryError::Permanent { reason } => {
            assert!(
                reason.contains("21211") && reason.contains("not a valid phone number"),
                "{reason}"
            )
        }
        other => panic!("expected permanent, got {other:?}"),
    }
}

#[tokio::test]
async fn throttling_is_transient_with_the_retry_after() {
    let server = MockServer::start().await;
    let token = secret_file("t");
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "30")
                .set_body_json(serde_json::json!({"code": 20429, "message": "Too Many Requests", "status": 429})),
        )
        .mount(&server)
        .await;
    let err = channel(&server, &token, Duration::from_secs(5))
        .send(&text_delivery("sms", "+15005550006", "x"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DeliveryError::Transient { retry_after: Some(d), reason } if *d == Duration::from_secs(30) && reason.contains("20429")),
        "{err:?}"
    );
}

#[tokio::test]
async fn wrong_credentials_are_retried_not_killed() {
    let server = MockServer::start().await;
    let token = secret_file("wrong");
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
            "code": 20003, "message": "Authenticate", "status": 401
        })))
        .mount(&server)
        .await;
    let err = channel(&server, &token, Duration::from_secs(5))
        .send(&text_delivery("sms", "+15005550006", "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, DeliveryError::Transient { .. }), "{err:?}");
}

#[tokio::test]
async fn a_messaging_service_replaces_from() {
    let server = MockServer::start().await;
    let token = secret_file("t");
    Mock::given(method("POST"))
        .and(body_string_contains("MessagingServiceSid=MG123"))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"sid": "SM1"})))
        .expect(1)
        .mount(&server)
        .await;
    let settings = TwilioSettings {
        name: "sms".into(),
        account_sid: SID.into(),
        auth_token_env: None,
        auth_token_file: Some(token.path().to_path_buf()),
        from: None,
        messaging_service_sid: Some("MG123".into()),
        base_url: server.uri(),
        status_callback: None,
        max_segments: 3,
        concurrency: 2,
        rate_per_second: None,
        burst: None,
        timeout: Duration::from_secs(5),
    };
    let channel =
        HttpChannel::<Twilio>::from_settings(&settings, reqwest::Client::new()).expect("channel");
    channel
        .send(&text_delivery("sms", "+15005550006", "x"))
        .await
        .expect("sent");
}
