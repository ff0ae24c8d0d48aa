use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{SmtpServer, TOKEN, TestConfig, WAIT, declaration, spawn_app};

/// The greeting of each shipped locale's email, as the templates write it.
fn greeting(locale: &str) -> &'static str {
    match locale {
        "bn" => "প্রিয় রহিম আহমেদ",
        "eo" => "Kara Ludoviko Zamenhof",
        _ => "Hello Ada Lovelace",
    }
}

#[tokio::test]
async fn declaring_via_the_api_emails_every_recipient_in_their_language_and_resolving_sends_the_all_clear()
 {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;

    let id = app.declare("Payments are down").await;

    let messages = smtp.wait_for(3, WAIT).await;
    let recipients: BTreeSet<String> = messages.iter().flat_map(|m| m.to.clone()).collect();
    assert_eq!(
        recipients,
        BTreeSet::from([
            "ada@example.com".into(),
            "rahim@example.org".into(),
            "ludoviko@example.net".into()
        ])
    );
    for message in &messages {
        let locale = message
            .header("Content-Language")
            .expect("Content-Language");
        let text = message.text();
        assert!(text.contains(greeting(&locale)), "{locale} text: {text}");
        assert!(text.contains("Payments are down"), "title in {locale}");
        assert!(
            text.contains("+1 555 0100"),
            "the emergency line in {locale}"
        );
        // minijinja escapes `/` in HTML as `&#x2f;`, which is valid HTML.
        let html = message.html().replace("&#x2f;", "/");
        assert!(
            html.contains("href=\"https://example.com/chat\""),
            "chat link in {locale} HTML: {html}"
        );
        assert!(message.message_id().ends_with("@example.com>"));
    }
    let bengali = messages
        .iter()
        .find(|m| m.to == ["rahim@example.org"])
        .expect("Bengali reader");
    assert!(
        bengali
            .subject()
            .chars()
            .any(|c| ('\u{0980}'..='\u{09FF}').contains(&c)),
        "Bengali subject: {}",
        bengali.subject()
    );

    let banner = app.banner("en").await;
    assert_eq!(banner["crises"][0]["id"], id.as_str());
    assert_eq!(banner["crises"][0]["title"], "Payments are down");

    let detail = app
        .wait_until(&id, WAIT, |d| d["deliveries"]["email"]["sent"] == 3)
        .await;
    assert_eq!(
        detail["events"][0]["actor"],
        json!({"source": "api", "name": "tests"})
    );
    assert!(
        messages.iter().all(|m| m.from == "support@example.com"),
        "envelope sender"
    );

    let response = app
        .post(
            &format!("/v1/crises/{id}/resolve"),
            &json!({"message": "Payments work again."}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let messages = smtp.wait_for(6, WAIT).await;
    let all_clear = &messages[3..];
    assert!(
        all_clear
            .iter()
            .all(|m| m.text().contains("Payments work again."))
    );
    assert_eq!(app.banner("en").await["crises"], json!([]));
    let detail = app
        .wait_until(&id, WAIT, |d| d["deliveries"]["email"]["sent"] == 6)
        .await;
    assert_eq!(detail["status"], "resolved");
    assert_eq!(detail["events"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn an_update_reaches_everyone_and_is_in_the_audit_trail() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    let id = app.declare("Payments are down").await;
    smtp.wait_for(3, WAIT).await;

    let response = app
        .post(
            &format!("/v1/crises/{id}/updates"),
            &json!({"message": "A fix is rolling out.", "severity": "critical", "kind": "security"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["crisis"]["status"], "updated");
    assert_eq!(body["announcement"], "update");

    let messages = smtp.wait_for(6, WAIT).await;
    assert!(
        messages[3..]
            .iter()
            .all(|m| m.text().contains("A fix is rolling out."))
    );
    let detail = app.get_json(&format!("/v1/crises/{id}")).await;
    assert_eq!(detail["severity"], "critical");
    assert_eq!(detail["kind"], "security");
    assert_eq!(detail["version"], 2);
    assert_eq!(
        detail["updated_at"], body["crisis"]["updated_at"],
        "the answer and the stored crisis show the same time"
    );
    assert_eq!(detail["events"][1]["status"], "updated");
    assert_eq!(detail["events"][1]["message"], "A fix is rolling out.");
}

#[tokio::test]
async fn a_retried_request_with_the_same_idempotency_key_declares_once() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    let send = |body: Value| {
        app.http
            .post(app.url("/v1/crises"))
            .bearer_auth(TOKEN)
            .header("Idempotency-Key", "declare-1")
            .json(&body)
            .send()
    };

    let first = send(declaration("Payments are down")).await.expect("first");
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.expect("JSON");
    let second = send(declaration("Payments are down"))
        .await
        .expect("second");
    assert_eq!(second.status(), 201);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    let second: Value = second.json().await.expect("JSON");
    assert_eq!(first, second);

    let reused = send(declaration("Something else")).await.expect("third");
    assert_eq!(reused.status(), 422);

    let list = app.get_json("/v1/crises").await;
    assert_eq!(list["crises"].as_array().map(Vec::len), Some(1));
    smtp.wait_for(3, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        smtp.accepted().len(),
        3,
        "one declaration, one email per recipient"
    );
}

#[tokio::test]
async fn requests_without_a_valid_token_are_refused_with_401() {
    let app = spawn_app(TestConfig::new(1)).await;
    let wrong = app
        .http
        .post(app.url("/v1/crises"))
        .bearer_auth("not-the-token")
        .json(&declaration("x"))
        .send()
        .await
        .expect("POST");
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.expect("JSON error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("bearer token")
    );

    let missing = app
        .http
        .get(app.url("/v1/crises"))
        .send()
        .await
        .expect("GET");
    assert_eq!(missing.status(), 401);
    assert_eq!(app.get_json("/v1/crises").await["crises"], json!([]));
}

#[tokio::test]
async fn malformed_json_gets_400_with_a_message_that_says_what_is_wrong() {
    let app = spawn_app(TestConfig::new(1)).await;
    let post_raw = |body: &'static str| {
        app.http
            .post(app.url("/v1/crises"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    let broken = post_raw(r#"{"kind": "outage", "#).await.expect("POST");
    assert_eq!(broken.status(), 400);
    let message = broken.json::<Value>().await.expect("JSON")["error"]["message"].clone();
    assert!(
        message.as_str().unwrap_or_default().contains("line 1"),
        "{message}"
    );

    let unknown_kind =
        post_raw(r#"{"kind": "meteor", "severity": "major", "title": "t", "summary": "s"}"#)
            .await
            .expect("POST");
    assert_eq!(unknown_kind.status(), 400);
    let message = unknown_kind.json::<Value>().await.expect("JSON")["error"]["message"].clone();
    assert!(
        message.as_str().unwrap_or_default().contains("meteor"),
        "{message}"
    );
    assert!(
        message
            .as_str()
            .unwrap_or_default()
            .contains("natural_disaster"),
        "{message}"
    );

    let empty_title =
        post_raw(r#"{"kind": "outage", "severity": "major", "title": " ", "summary": "s"}"#)
            .await
            .expect("POST");
    assert_eq!(empty_title.status(), 400);

    assert_eq!(
        app.get_json("/v1/crises").await["crises"],
        json!([]),
        "nothing was declared"
    );
}

#[tokio::test]
async fn an_oversized_body_gets_413() {
    let mut config = TestConfig::new(1);
    config.max_body_bytes = 1024;
    let app = spawn_app(config).await;
    let response = app
        .post("/v1/crises", &json!({"kind": "outage", "severity": "major", "title": "t", "summary": "x".repeat(5000)}))
        .await;
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.expect("JSON error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("1024")
    );
}

#[tokio::test]
async fn transitions_that_make_no_sense_are_refused() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;

    let unknown = app
        .post(
            "/v1/crises/01a20609-6c08-7652-9026-f4ebeff9bbf9/resolve",
            &json!({}),
        )
        .await;
    assert_eq!(unknown.status(), 404);

    let id = app.declare("Payments are down").await;
    assert_eq!(
        app.post(&format!("/v1/crises/{id}/resolve"), &json!({}))
            .await
            .status(),
        200
    );
    let again = app
        .post(&format!("/v1/crises/{id}/resolve"), &json!({}))
        .await;
    assert_eq!(again.status(), 409);
    let message = again.json::<Value>().await.expect("JSON")["error"]["message"].clone();
    assert!(
        message
            .as_str()
            .unwrap_or_default()
            .contains("already resolved"),
        "{message}"
    );
    let update = app
        .post(
            &format!("/v1/crises/{id}/updates"),
            &json!({"message": "late"}),
        )
        .await;
    assert_eq!(update.status(), 409);

    let empty_update = app.declare("Second").await;
    let response = app
        .post(&format!("/v1/crises/{empty_update}/updates"), &json!({}))
        .await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn several_crises_may_be_active_at_once_and_the_list_filters_by_status() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    let first = app.declare("Payments are down").await;
    let _second = app.declare("Storm in the north").await;
    app.post(&format!("/v1/crises/{first}/resolve"), &json!({}))
        .await;

    let active = app.get_json("/v1/crises?status=active").await;
    assert_eq!(active["crises"].as_array().map(Vec::len), Some(1));
    assert_eq!(active["crises"][0]["title"], "Storm in the north");
    let all = app.get_json("/v1/crises").await;
    assert_eq!(all["crises"].as_array().map(Vec::len), Some(2));
    let bad = app
        .http
        .get(app.url("/v1/crises?status=sleeping"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET");
    assert_eq!(bad.status(), 400);
}
