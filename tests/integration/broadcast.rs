//! Social and chat channels get one message per announcement and account,
//! in the account's language, not one per subscriber.

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{SmtpServer, TestConfig, WAIT, spawn_app_in};

/// The POSTs a server received (healthchecks are GETs).
async fn posts_to(server: &MockServer) -> Vec<wiremock::Request> {
    let requests = server.received_requests().await.expect("recorded");
    requests
        .into_iter()
        .filter(|r| r.method == wiremock::http::Method::POST)
        .collect()
}

#[tokio::test]
async fn each_social_and_chat_account_gets_one_post_per_announcement_in_its_language() {
    let smtp = SmtpServer::start().await;
    let mastodon = MockServer::start().await;
    let discord = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/statuses"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "1", "url": "https://m.example/@co/1"})),
        )
        .mount(&mastodon)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/webhooks/1/abc"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "99"})))
        .mount(&discord)
        .await;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("mastodon-token"), "m-token").expect("write");
    std::fs::write(
        dir.path().join("discord-url"),
        format!("{}/api/webhooks/1/abc", discord.uri()),
    )
    .expect("write");
    let mut config = TestConfig::new(smtp.port());
    config.extra = format!(
        "[[channels.mastodon]]\nname = \"mastodon-bn\"\ninstance_url = \"{}\"\naccess_token_file = \"{}\"\nlocale = \"bn\"\n\n\
         [[channels.discord]]\nname = \"discord\"\nwebhook_url_file = \"{}\"\n",
        mastodon.uri(),
        dir.path().join("mastodon-token").display(),
        dir.path().join("discord-url").display(),
    );
    let app = spawn_app_in(config, dir).await;

    let id = app.declare("Payments are down").await;
    let detail = app
        .wait_until(&id, WAIT, |d| {
            d["deliveries"]["mastodon-bn"]["sent"] == 1
                && d["deliveries"]["discord"]["sent"] == 1
                && d["deliveries"]["email"]["sent"] == 3
        })
        .await;
    assert_eq!(
        detail["deliveries"]["email"]["dead"], 0,
        "email still goes to every subscriber"
    );

    let posts = posts_to(&mastodon).await;
    assert_eq!(posts.len(), 1, "one post, not one per subscriber");
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&posts[0].body).expect("form");
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(field("language"), "bn");
    assert!(
        field("status")
            .chars()
            .any(|c| ('\u{0980}'..='\u{09FF}').contains(&c)),
        "{}",
        field("status")
    );
    assert!(field("status").contains("https://status.example.com"));
    let messages = posts_to(&discord).await;
    assert_eq!(messages.len(), 1);
    let body: serde_json::Value = serde_json::from_slice(&messages[0].body).expect("JSON");
    assert!(
        body["content"]
            .as_str()
            .unwrap_or_default()
            .contains("Payments are down")
    );
    assert!(body["content"].as_str().unwrap_or_default().chars().count() <= 2000);

    app.post(
        &format!("/v1/crises/{id}/resolve"),
        &json!({"message": "All good."}),
    )
    .await;
    app.wait_until(&id, WAIT, |d| d["deliveries"]["mastodon-bn"]["sent"] == 2)
        .await;
    assert_eq!(
        posts_to(&mastodon).await.len(),
        2,
        "the all-clear is posted too"
    );
}
