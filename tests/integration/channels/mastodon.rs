//! Mastodon against a loopback server that answers as
//! `POST /api/v1/statuses` and `GET /api/v1/accounts/verify_credentials` do.

use std::collections::HashMap;
use std::time::Duration;

use crisisd::channels::{
    Channel, ChannelError, DeliveryError, HttpChannel, Mastodon, MastodonSettings,
    MastodonVisibility,
};
use crisisd::outbox::Delivery;
use serde_json::json;
use wiremock::matchers::{bearer_token, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::secret_file;

const TOKEN: &str = "mastodon-test-token";
const STATUSES: &str = "/api/v1/statuses";

fn settings(server: &MockServer) -> MastodonSettings {
    MastodonSettings {
        name: "mastodon-main".into(),
        instance_url: format!("{}/", server.uri()),
        access_token_env: None,
        access_token_file: None,
        visibility: MastodonVisibility::Unlisted,
        locale: None,
        max_characters: 500,
        concurrency: 1,
        rate_per_second: None,
        burst: None,
        timeout: Duration::from_secs(5),
    }
}

fn channel_with(mut settings: MastodonSettings) -> HttpChannel<Mastodon> {
    let token = secret_file(TOKEN);
    settings.access_token_file = Some(token.path().to_owned());
    HttpChannel::<Mastodon>::from_settings(&settings, reqwest::Client::new()).unwrap()
}

fn channel(server: &MockServer) -> HttpChannel<Mastodon> {
    channel_with(settings(server))
}

/// A delivery whose message is in `language`.
fn delivery_in(language: &str, text: &str) -> Delivery {
    super::delivery_in("mastodon-main", language, text)
}

fn status(id: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": id,
        "url": format!("https://mastodon.example/@crisis/{id}"),
        "visibility": "unlisted",
        "content": "<p>…</p>",
    }))
}

/// The form fields of the one request the server received.
async fn only_form(server: &MockServer) -> HashMap<String, String> {
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(
        requests[0].headers.get("content-type").unwrap(),
        "application/x-www-form-urlencoded"
    );
    serde_urlencoded::from_bytes(&requests[0].body).unwrap()
}

#[tokio::test]
async fn a_post_carries_the_token_the_text_and_the_delivery_id_as_idempotency_key() {
    let server = MockServer::start().await;
    let text = "বন্যা: অফিস বন্ধ। https://status.example.com/bn";
    let delivery = delivery_in("bn", text);
    Mock::given(method("POST"))
        .and(path(STATUSES))
        .and(bearer_token(TOKEN))
        .and(header("Idempotency-Key", delivery.id.to_string().as_str()))
        .respond_with(status("110000000000000001"))
        .expect(1)
        .mount(&server)
        .await;

    channel(&server).send(&delivery).await.unwrap();

    let form = only_form(&server).await;
    let expected: HashMap<String, String> = [
        ("status", text),
        ("visibility", "unlisted"),
        ("language", "bn"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(form, expected);
}

#[tokio::test]
async fn a_regional_locale_is_sent_as_its_two_letter_language() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STATUSES))
        .respond_with(status("1"))
        .mount(&server)
        .await;

    channel(&server)
        .send(&delivery_in("pt-BR", "Pagamentos fora do ar."))
        .await
        .unwrap();

    assert_eq!(only_form(&server).await["language"], "pt");
}

#[tokio::test]
async fn an_accepted_post_returns_the_status_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STATUSES))
        .respond_with(status("110000000000000042"))
        .mount(&server)
        .await;

    let receipt = channel(&server)
        .send(&delivery_in("en", "Payments are down."))
        .await
        .unwrap();

    assert_eq!(receipt.provider_ref.as_deref(), Some("110000000000000042"));
}

#[tokio::test]
async fn throttling_without_retry_after_waits_until_the_rate_limit_resets() {
    let server = MockServer::start().await;
    let reset = (chrono::Utc::now() + chrono::Duration::seconds(120))
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    Mock::given(method("POST"))
        .and(path(STATUSES))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("X-RateLimit-Limit", "300")
                .insert_header("X-RateLimit-Remaining", "0")
                .insert_header("X-RateLimit-Reset", reset.as_str())
                .set_body_json(json!({ "error": "Too many requests" })),
        )
        .mount(&server)
        .await;

    let err = channel(&server)
        .send(&delivery_in("en", "Payments are down."))
        .await
        .unwrap_err();

    let DeliveryError::Transient {
        retry_after: Some(after),
        ..
    } = err
    else {
        panic!("expected a transient error with a wait, got {err:?}");
    };
    assert!(
        after > Duration::from_secs(100) && after <= Duration::from_secs(120),
        "{after:?}"
    );
}

#[tokio::test]
async fn a_post_mastodon_rejects_is_permanent_with_its_reason() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STATUSES))
        .respond_with(ResponseTemplate::new(422).set_body_json(
            json!({ "error": "Validation failed: Text character limit of 500 exceeded" }),
        ))
        .mount(&server)
        .await;

    let err = channel(&server)
        .send(&delivery_in("en", &"a".repeat(600)))
        .await
        .unwrap_err();

    let DeliveryError::Permanent { reason } = err else {
        panic!("expected a permanent error, got {err:?}");
    };
    assert!(
        reason.contains("Validation failed: Text character limit of 500 exceeded"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_refused_token_is_transient_and_says_to_check_it_without_showing_it() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STATUSES))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({ "error": "The access token is invalid" })),
        )
        .mount(&server)
        .await;

    let err = channel(&server)
        .send(&delivery_in("en", "Payments are down."))
        .await
        .unwrap_err();

    let DeliveryError::Transient { reason, .. } = err else {
        panic!("expected a transient error, got {err:?}");
    };
    assert!(reason.contains("The access token is invalid"), "{reason}");
    assert!(reason.contains("check the access token"), "{reason}");
    assert!(!reason.contains(TOKEN), "{reason}");
}

#[tokio::test]
async fn the_healthcheck_verifies_the_credentials_without_posting() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/accounts/verify_credentials"))
        .and(bearer_token(TOKEN))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "id": "1", "acct": "crisis" })),
        )
        .expect(1)
        .mount(&server)
        .await;

    channel(&server).healthcheck().await.unwrap();
}

#[tokio::test]
async fn a_healthcheck_with_a_refused_token_fails() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/accounts/verify_credentials"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({ "error": "The access token is invalid" })),
        )
        .mount(&server)
        .await;

    let err = channel(&server).healthcheck().await.unwrap_err();

    assert!(matches!(err, DeliveryError::Transient { .. }), "{err:?}");
}

#[tokio::test]
async fn an_instance_url_that_is_not_http_is_a_config_error() {
    let server = MockServer::start().await;
    let token = secret_file(TOKEN);
    let mut settings = settings(&server);
    settings.instance_url = "mastodon.social".into();
    settings.access_token_file = Some(token.path().to_owned());

    let err = HttpChannel::<Mastodon>::from_settings(&settings, reqwest::Client::new())
        .err()
        .unwrap();

    let ChannelError::Config { channel, message } = err;
    assert_eq!(channel, "mastodon-main");
    assert!(message.contains("instance_url"), "{message}");
}
