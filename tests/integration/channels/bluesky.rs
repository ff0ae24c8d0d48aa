//! Bluesky against a loopback server that answers as a PDS does:
//! `com.atproto.server.createSession`, `refreshSession` and
//! `com.atproto.repo.createRecord`.

use std::time::Duration;

use crisisd::channels::{
    Bluesky, BlueskySettings, Channel, ChannelError, DeliveryError, HttpChannel,
};
use crisisd::outbox::Delivery;
use serde_json::{Value, json};
use wiremock::matchers::{bearer_token, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::secret_file;

const HANDLE: &str = "crisis.example.com";
const APP_PASSWORD: &str = "abcd-efgh-ijkl-mnop";
const DID: &str = "did:plc:u5cwb2mwiv2bfq53cjufe6yn";
const CREATE_SESSION: &str = "/xrpc/com.atproto.server.createSession";
const REFRESH_SESSION: &str = "/xrpc/com.atproto.server.refreshSession";
const CREATE_RECORD: &str = "/xrpc/com.atproto.repo.createRecord";
const POST_URI: &str = "at://did:plc:u5cwb2mwiv2bfq53cjufe6yn/app.bsky.feed.post/3k4duaz5vfs2b";

fn settings(server: &MockServer) -> BlueskySettings {
    BlueskySettings {
        name: "bluesky-main".into(),
        service: server.uri(),
        identifier: HANDLE.into(),
        app_password_env: None,
        app_password_file: None,
        locale: None,
        concurrency: 1,
        rate_per_second: None,
        burst: None,
        timeout: Duration::from_secs(5),
    }
}

fn channel_with(mut settings: BlueskySettings) -> HttpChannel<Bluesky> {
    let password = secret_file(APP_PASSWORD);
    settings.app_password_file = Some(password.path().to_owned());
    HttpChannel::<Bluesky>::from_settings(&settings, reqwest::Client::new()).unwrap()
}

fn channel(server: &MockServer) -> HttpChannel<Bluesky> {
    channel_with(settings(server))
}

/// A delivery whose message is in `language`.
fn delivery_in(language: &str, text: &str) -> Delivery {
    super::delivery_in("bluesky-main", language, text)
}

/// A session as createSession and refreshSession answer it.
fn session(access: &str, refresh: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "accessJwt": access,
        "refreshJwt": refresh,
        "handle": HANDLE,
        "did": DID,
        "active": true,
    }))
}

fn created() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "uri": POST_URI,
        "cid": "bafyreibjifzpqj6o6wcq3hejh7y4z4z2vmiklkvykc57tw3pcbx3kxifpm",
    }))
}

fn xrpc_error(status: u16, error: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "error": error, "message": message }))
}

/// Logging in works and gives `access-1` / `refresh-1`.
async fn mount_login(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path(CREATE_SESSION))
        .respond_with(session("access-1", "refresh-1"))
        .mount(server)
        .await;
}

/// The paths the server was asked for, in order.
async fn paths(server: &MockServer) -> Vec<String> {
    let requests = server.received_requests().await.unwrap();
    requests.iter().map(|r| r.url.path().to_owned()).collect()
}

#[tokio::test]
async fn a_post_logs_in_with_the_app_password_and_creates_a_record_with_link_facets() {
    let server = MockServer::start().await;
    mount_login(&server).await;
    Mock::given(method("POST"))
        .and(path(CREATE_RECORD))
        .and(bearer_token("access-1"))
        .respond_with(created())
        .expect(1)
        .mount(&server)
        .await;
    // Bengali before the link: byte offsets, not characters, place it.
    let text = "বন্যা: https://status.example.com/x. সাহায্য: https://help.example.com";

    channel(&server)
        .send(&delivery_in("bn", text))
        .await
        .unwrap();

    let requests = server.received_requests().await.unwrap();
    assert_eq!(paths(&server).await, [CREATE_SESSION, CREATE_RECORD]);
    let login: Value = requests[0].body_json().unwrap();
    assert_eq!(
        login,
        json!({ "identifier": HANDLE, "password": APP_PASSWORD })
    );

    let mut body: Value = requests[1].body_json().unwrap();
    let created_at = body["record"]["createdAt"].take();
    let created_at = chrono::DateTime::parse_from_rfc3339(created_at.as_str().unwrap()).unwrap();
    assert!(
        (chrono::Utc::now() - created_at.to_utc())
            .num_seconds()
            .abs()
            < 60,
        "{created_at}"
    );
    // "বন্যা: " is 17 bytes; "https://status.example.com/x" 28 more; the
    // full stop is not part of the link; ". সাহায্য: " is 25 bytes more.
    assert_eq!(
        body,
        json!({
            "repo": DID,
            "collection": "app.bsky.feed.post",
            "record": {
                "$type": "app.bsky.feed.post",
                "text": text,
                "createdAt": null,
                "langs": ["bn"],
                "facets": [
                    {
                        "index": { "byteStart": 17, "byteEnd": 45 },
                        "features": [{ "$type": "app.bsky.richtext.facet#link", "uri": "https://status.example.com/x" }],
                    },
                    {
                        "index": { "byteStart": 70, "byteEnd": 94 },
                        "features": [{ "$type": "app.bsky.richtext.facet#link", "uri": "https://help.example.com" }],
                    },
                ],
            },
        })
    );
    assert_eq!(&text.as_bytes()[17..45], b"https://status.example.com/x");
    assert_eq!(&text.as_bytes()[70..94], b"https://help.example.com");
}

#[tokio::test]
async fn an_accepted_post_returns_the_record_uri() {
    let server = MockServer::start().await;
    mount_login(&server).await;
    Mock::given(method("POST"))
        .and(path(CREATE_RECORD))
        .respond_with(created())
        .mount(&server)
        .await;

    let receipt = channel(&server)
        .send(&delivery_in("en", "Payments are down."))
        .await
        .unwrap();

    assert_eq!(receipt.provider_ref.as_deref(), Some(POST_URI));
}

#[tokio::test]
async fn two_posts_log_in_only_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(CREATE_SESSION))
        .respond_with(session("access-1", "refresh-1"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(CREATE_RECORD))
        .and(bearer_token("access-1"))
        .respond_with(created())
        .expect(2)
        .mount(&server)
        .await;
    let channel = channel(&server);

    channel
        .send(&delivery_in("en", "Payments are down."))
        .await
        .unwrap();
    channel
        .send(&delivery_in("en", "Payments are back."))
        .await
        .unwrap();

    assert_eq!(
        paths(&server).await,
        [CREATE_SESSION, CREATE_RECORD, CREATE_RECORD]
    );
}

#[tokio::test]
async fn an_expired_token_is_refreshed_and_the_post_retried_once() {
    let server = MockServer::start().await;
    mount_login(&server).await;
    Mock::given(method("POST"))
        .and(path(CREATE_RECORD))
        .and(bearer_token("access-1"))
        .respond_with(xrpc_error(400, "ExpiredToken", "Token has expired"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(REFRESH_SESSION))
        .and(bearer_token("refresh-1"))
        .respond_with(session("access-2", "refresh-2"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(CREATE_RECORD))
        .and(bearer_token("access-2"))
        .respond_with(created())
        .expect(2)
        .mount(&server)
        .await;
    let channel = channel(&server);

    let receipt = channel
        .send(&delivery_in("en", "Payments are down."))
        .await
        .unwrap();
    // The refreshed session is kept: the next post neither logs in nor refreshes.
    channel
        .send(&delivery_in("en", "Payments are back."))
        .await
        .unwrap();

    assert_eq!(receipt.provider_ref.as_deref(), Some(POST_URI));
    assert_eq!(
        paths(&server).await,
        [
            CREATE_SESSION,
            CREATE_RECORD,
            REFRESH_SESSION,
            CREATE_RECORD,
            CREATE_RECORD
        ]
    );
    // The same post both times.
    let requests = server.received_requests().await.unwrap();
    let first: Value = requests[1].body_json().unwrap();
    let retried: Value = requests[3].body_json().unwrap();
    assert_eq!(first, retried);
}

#[tokio::test]
async fn a_refused_refresh_logs_in_again_and_the_post_goes_through() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(CREATE_SESSION))
        .respond_with(session("access-1", "refresh-1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(CREATE_SESSION))
        .respond_with(session("access-2", "refresh-2"))
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(CREATE_RECORD))
        .and(bearer_token("access-1"))
        .respond_with(xrpc_error(400, "ExpiredToken", "Token has expired"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(REFRESH_SESSION))
        .respond_with(xrpc_error(400, "ExpiredToken", "Token has been revoked"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(CREATE_RECORD))
        .and(bearer_token("access-2"))
        .respond_with(created())
        .expect(1)
        .mount(&server)
        .await;

    channel(&server)
        .send(&delivery_in("en", "Payments are down."))
        .await
        .unwrap();

    assert_eq!(
        paths(&server).await,
        [
            CREATE_SESSION,
            CREATE_RECORD,
            REFRESH_SESSION,
            CREATE_SESSION,
            CREATE_RECORD
        ]
    );
}

#[tokio::test]
async fn a_token_refused_again_after_renewal_is_transient_and_not_retried_further() {
    let server = MockServer::start().await;
    mount_login(&server).await;
    Mock::given(method("POST"))
        .and(path(REFRESH_SESSION))
        .respond_with(session("access-2", "refresh-2"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(CREATE_RECORD))
        .respond_with(xrpc_error(400, "ExpiredToken", "Token has expired"))
        .expect(2)
        .mount(&server)
        .await;

    let err = channel(&server)
        .send(&delivery_in("en", "Payments are down."))
        .await
        .unwrap_err();

    assert!(matches!(err, DeliveryError::Transient { .. }), "{err:?}");
}

#[tokio::test]
async fn a_throttled_login_waits_until_the_rate_limit_resets_and_posts_nothing() {
    let server = MockServer::start().await;
    let reset = chrono::Utc::now().timestamp() + 300;
    Mock::given(method("POST"))
        .and(path(CREATE_SESSION))
        .respond_with(
            xrpc_error(429, "RateLimitExceeded", "Rate Limit Exceeded")
                .insert_header("ratelimit-limit", "30")
                .insert_header("ratelimit-remaining", "0")
                .insert_header("ratelimit-reset", reset.to_string().as_str())
                .insert_header("ratelimit-policy", "30;w=300"),
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
        after > Duration::from_secs(290) && after <= Duration::from_secs(300),
        "{after:?}"
    );
    assert_eq!(paths(&server).await, [CREATE_SESSION]);
}

#[tokio::test]
async fn refused_credentials_are_transient_and_say_so_without_the_password() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(CREATE_SESSION))
        .respond_with(xrpc_error(
            401,
            "AuthenticationRequired",
            "Invalid identifier or password",
        ))
        .mount(&server)
        .await;

    let err = channel(&server)
        .send(&delivery_in("en", "Payments are down."))
        .await
        .unwrap_err();

    let DeliveryError::Transient { reason, .. } = err else {
        panic!("expected a transient error, got {err:?}");
    };
    assert!(
        reason.contains("Invalid identifier or password"),
        "{reason}"
    );
    assert!(reason.contains("app password"), "{reason}");
    assert!(!reason.contains(APP_PASSWORD), "{reason}");
}

#[tokio::test]
async fn a_failed_login_is_tried_again_on_the_next_post() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(CREATE_SESSION))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_login(&server).await;
    Mock::given(method("POST"))
        .and(path(CREATE_RECORD))
        .respond_with(created())
        .mount(&server)
        .await;
    let channel = channel(&server);

    let first = channel.send(&delivery_in("en", "Payments are down.")).await;
    let second = channel.send(&delivery_in("en", "Payments are down.")).await;

    assert!(
        matches!(first, Err(DeliveryError::Transient { .. })),
        "{first:?}"
    );
    assert!(second.is_ok(), "{second:?}");
    assert_eq!(
        paths(&server).await,
        [CREATE_SESSION, CREATE_SESSION, CREATE_RECORD]
    );
}

#[tokio::test]
async fn an_invalid_post_is_permanent_with_blueskys_message() {
    let server = MockServer::start().await;
    mount_login(&server).await;
    Mock::given(method("POST"))
        .and(path(CREATE_RECORD))
        .respond_with(xrpc_error(
            400,
            "InvalidRequest",
            "Invalid app.bsky.feed.post record: Record/text must not be longer than 300 graphemes",
        ))
        .mount(&server)
        .await;

    let err = channel(&server)
        .send(&delivery_in("en", &"a".repeat(400)))
        .await
        .unwrap_err();

    let DeliveryError::Permanent { reason } = err else {
        panic!("expected a permanent error, got {err:?}");
    };
    assert!(
        reason.contains("must not be longer than 300 graphemes"),
        "{reason}"
    );
}

#[tokio::test]
async fn the_healthcheck_logs_in_once_and_posts_reuse_that_session() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(CREATE_SESSION))
        .respond_with(session("access-1", "refresh-1"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(CREATE_RECORD))
        .and(bearer_token("access-1"))
        .respond_with(created())
        .expect(1)
        .mount(&server)
        .await;
    let channel = channel(&server);

    channel.healthcheck().await.unwrap();
    channel.healthcheck().await.unwrap();
    channel
        .send(&delivery_in("en", "Payments are down."))
        .await
        .unwrap();

    assert_eq!(paths(&server).await, [CREATE_SESSION, CREATE_RECORD]);
}

#[tokio::test]
async fn a_service_that_is_not_http_is_a_config_error() {
    let server = MockServer::start().await;
    let password = secret_file(APP_PASSWORD);
    let mut settings = settings(&server);
    settings.service = "bsky.social".into();
    settings.app_password_file = Some(password.path().to_owned());

    let err = HttpChannel::<Bluesky>::from_settings(&settings, reqwest::Client::new())
        .err()
        .unwrap();

    let ChannelError::Config { channel, message } = err;
    assert_eq!(channel, "bluesky-main");
    assert!(message.contains("service"), "{message}");
}
