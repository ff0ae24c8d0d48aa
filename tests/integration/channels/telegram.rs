use std::time::Duration;

use crisisd::channels::{
    Channel, ChannelError, DeliveryError, HttpChannel, Telegram, TelegramSettings,
};
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{reason, secret_file, text_delivery};

const TOKEN: &str = "123456789:AAHsecretTOKENsecret-xyz_0123456789";
const SEND_PATH: &str = "/bot123456789:AAHsecretTOKENsecret-xyz_0123456789/sendMessage";
const GET_ME_PATH: &str = "/bot123456789:AAHsecretTOKENsecret-xyz_0123456789/getMe";
const CHAT: &str = "-1001234567890";

fn settings(
    api_base: &str,
    token: &tempfile::NamedTempFile,
    timeout: Duration,
) -> TelegramSettings {
    TelegramSettings {
        name: "telegram-news".into(),
        bot_token_env: None,
        bot_token_file: Some(token.path().to_path_buf()),
        chat_id: CHAT.into(),
        api_base: api_base.into(),
        locale: None,
        concurrency: 1,
        rate_per_second: None,
        burst: None,
        timeout,
    }
}

fn channel(
    server: &MockServer,
    timeout: Duration,
) -> (HttpChannel<Telegram>, tempfile::NamedTempFile) {
    let token = secret_file(TOKEN);
    let channel = HttpChannel::<Telegram>::from_settings(
        &settings(&server.uri(), &token, timeout),
        reqwest::Client::new(),
    )
    .expect("channel");
    (channel, token)
}

fn failure(code: u16, description: &str) -> ResponseTemplate {
    ResponseTemplate::new(code).set_body_json(serde_json::json!({
        "ok": false, "error_code": code, "description": description
    }))
}

#[tokio::test]
async fn a_message_is_sent_as_plain_text_to_the_configured_chat() {
    let server = MockServer::start().await;
    let text = "*Payments are down* <b>not html</b> [not](markdown)\nhttps://status.example.com";
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        // Exactly these fields: no parse_mode, so nothing needs escaping.
        .and(body_json(serde_json::json!({
            "chat_id": CHAT,
            "text": text,
            "disable_web_page_preview": true,
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "ok": true,
            "result": {
                "message_id": 4711, "date": 1_764_000_000,
                "chat": {"id": -1_001_234_567_890_i64, "type": "channel", "title": "Status"},
                "text": text
            }
        })))
        .expect(1)
        .mount(&server)
        .await;

    let (telegram, _token) = channel(&server, Duration::from_secs(5));
    let receipt = telegram
        .send(&text_delivery("telegram-news", "", text))
        .await
        .expect("sent");
    assert_eq!(receipt.provider_ref.as_deref(), Some("4711"));
    assert_eq!(telegram.name(), "telegram-news");
    assert_eq!(telegram.concurrency(), 1);
}

#[tokio::test]
async fn flood_control_is_transient_after_telegrams_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "5")
                .set_body_json(serde_json::json!({
                    "ok": false, "error_code": 429,
                    "description": "Too Many Requests: retry after 35",
                    "parameters": {"retry_after": 35}
                })),
        )
        .mount(&server)
        .await;
    let (telegram, _token) = channel(&server, Duration::from_secs(5));
    let err = telegram
        .send(&text_delivery("telegram-news", "", "x"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        DeliveryError::Transient {
            reason: "Telegram error 429: Too Many Requests: retry after 35".into(),
            retry_after: Some(Duration::from_secs(35)),
        }
    );
}

#[tokio::test]
async fn a_missing_chat_or_a_blocked_bot_is_permanent_with_telegrams_description() {
    for (code, description) in [
        (400, "Bad Request: chat not found"),
        (403, "Forbidden: bot was blocked by the user"),
        (403, "Forbidden: bot was kicked from the supergroup chat"),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(failure(code, description))
            .mount(&server)
            .await;
        let (telegram, _token) = channel(&server, Duration::from_secs(5));
        let err = telegram
            .send(&text_delivery("telegram-news", "", "x"))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            DeliveryError::Permanent {
                reason: format!("Telegram error {code}: {description}")
            }
        );
    }
}

#[tokio::test]
async fn a_wrong_bot_token_is_retried_with_a_hint_and_without_the_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(failure(401, "Unauthorized"))
        .mount(&server)
        .await;
    let (telegram, _token) = channel(&server, Duration::from_secs(5));
    let err = telegram
        .send(&text_delivery("telegram-news", "", "x"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        DeliveryError::Transient {
            reason: "Telegram error 401: Unauthorized (check the bot token)".into(),
            retry_after: None,
        }
    );
}

#[tokio::test]
async fn no_error_reason_contains_the_bot_token_even_cut_off() {
    let server = MockServer::start().await;
    // A proxy page quoting the URL, placed so that the 300-character
    // excerpt of the body would end in the middle of the token.
    let quoted = format!("upstream {}/bot123456789:AAHsecretTOK", server.uri());
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(504).set_body_string(format!(
            "{}upstream {}{SEND_PATH} timed out",
            "-".repeat(300 - quoted.len()),
            server.uri()
        )))
        .mount(&server)
        .await;
    let (telegram, _token) = channel(&server, Duration::from_secs(5));
    let echoed = telegram
        .send(&text_delivery("telegram-news", "", "x"))
        .await
        .unwrap_err();
    assert!(
        matches!(echoed, DeliveryError::Transient { .. }),
        "{echoed:?}"
    );
    // Neither the token nor a cut-off start of its secret half.
    assert!(!reason(&echoed).contains("AAHsecret"), "{echoed:?}");
}

#[tokio::test]
async fn the_healthcheck_reports_a_revoked_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(GET_ME_PATH))
        .respond_with(failure(401, "Unauthorized"))
        .mount(&server)
        .await;
    let (telegram, _token) = channel(&server, Duration::from_secs(5));
    let err = telegram.healthcheck().await.unwrap_err();
    assert!(
        matches!(&err, DeliveryError::Transient { reason, .. } if reason.contains("check the bot token")),
        "{err:?}"
    );
}

#[tokio::test]
async fn settings_that_cannot_work_are_config_errors_that_do_not_repeat_the_token() {
    let good_token = secret_file(TOKEN);
    let not_a_token = secret_file("123456789:AAHsecret/../sendPhoto");
    for (api_base, token) in [
        ("ftp://api.telegram.org", &good_token),
        ("api.telegram.org", &good_token),
        ("https://api.telegram.org", &not_a_token),
    ] {
        let err = HttpChannel::<Telegram>::from_settings(
            &settings(api_base, token, Duration::from_secs(5)),
            reqwest::Client::new(),
        )
        .err()
        .expect("config error");
        let ChannelError::Config { channel, message } = err;
        assert_eq!(channel, "telegram-news");
        assert!(!message.contains("AAHsecret"), "{message}");
    }
}
