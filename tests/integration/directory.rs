//! The live directory: an entry marked unavailable (by the API, the CLI or
//! its health probe) shows so on the banner and in every new message, with
//! the entry to use instead, and is restored when marked available.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::cli::{crisisd, stderr, stdout};
use crate::support::{SmtpServer, TestApp, TestConfig, WAIT, spawn_app, spawn_app_in};

/// A third entry, open always: the one a closed-down chat points to.
const PORTAL: &str = r#"
[[directory]]
id = "portal"
type = "portal"
address = "https://example.com/account"
label = { en = "Customer portal", bn = "গ্রাহক পোর্টাল", eo = "Klienta portalo" }
best_for = { en = "Rescheduling deliveries", bn = "ডেলিভারির সময় পরিবর্তন", eo = "Ŝanĝi liverojn" }
hours = { time_zone = "UTC", always_open = true }
"#;

async fn put(app: &TestApp, entry: &str, body: &Value) -> reqwest::Response {
    app.http
        .put(app.url(&format!("/v1/directory/{entry}/availability")))
        .bearer_auth(crate::support::TOKEN)
        .json(body)
        .send()
        .await
        .expect("PUT availability")
}

fn contact<'a>(banner: &'a Value, id: &str) -> &'a Value {
    banner["contacts"]
        .as_array()
        .expect("contacts")
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {banner}"))
}

/// Polls the banner until `check` holds for the contact `id`.
async fn banner_until(app: &TestApp, id: &str, within: Duration, check: impl Fn(&Value) -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let banner = app.banner("en").await;
        if check(contact(&banner, id)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: {banner:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_entry_marked_down_shows_so_with_the_alternative_in_the_banner_and_new_email() {
    let smtp = SmtpServer::start().await;
    let mut config = TestConfig::new(smtp.port());
    config.extra = PORTAL.to_owned();
    let app = spawn_app(config).await;
    app.declare("Payments are down").await;
    smtp.wait_for(3, WAIT).await;

    let answer = put(
        &app,
        "chat",
        &json!({"available": false, "reason": "vendor outage"}),
    )
    .await;
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.expect("JSON");
    assert_eq!(body["changed"], true);

    let banner = app.banner("en").await;
    let chat = contact(&banner, "chat");
    assert_eq!(chat["available"], false, "{banner:#}");
    assert_eq!(chat["instead"], "portal");
    assert_eq!(
        chat["best_for"],
        "Technical problems. Unavailable now; use instead: Customer portal https://example.com/account"
    );
    let ids: Vec<&str> = banner["contacts"]
        .as_array()
        .expect("contacts")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        ["emergency-line", "portal", "chat"],
        "the unavailable one last"
    );
    let bengali = app.banner("bn").await;
    assert!(
        contact(&bengali, "chat")["best_for"]
            .as_str()
            .is_some_and(|b| b.contains("এখন পাওয়া যাচ্ছে না") && b.contains("গ্রাহক পোর্টাল")),
        "{bengali:#}"
    );

    app.declare("Deliveries are late").await;
    let mail = smtp.wait_for(6, WAIT).await;
    let english = mail[3..]
        .iter()
        .find(|m| m.to.iter().any(|t| t == "ada@example.com"))
        .expect("Ada's email");
    let text = english.text();
    assert!(
        text.contains("* Live chat (unavailable now)")
            && text.contains(
                "Unavailable now; use instead: Customer portal https://example.com/account"
            ),
        "{text}"
    );
    assert!(
        english.html().contains("unavailable now"),
        "the HTML part too"
    );

    let restored = put(&app, "chat", &json!({"available": true})).await;
    assert_eq!(restored.status(), 200);
    let banner = app.banner("en").await;
    assert_eq!(contact(&banner, "chat")["available"], true);
    assert_eq!(contact(&banner, "chat")["best_for"], "Technical problems");
    app.declare("Phones are down").await;
    let mail = smtp.wait_for(9, WAIT).await;
    assert!(
        mail[6..]
            .iter()
            .all(|m| !m.text().contains("Unavailable now")),
        "restored in new messages"
    );
}

#[tokio::test]
async fn an_unknown_entry_is_refused_with_the_list_and_the_state_survives_a_restart() {
    let smtp = SmtpServer::start().await;
    let mut config = TestConfig::new(smtp.port());
    config.extra = PORTAL.to_owned();
    let app = spawn_app(config.clone()).await;
    let refused = put(&app, "fax", &json!({"available": false})).await;
    assert_eq!(refused.status(), 404);
    let message = refused.json::<Value>().await.expect("JSON")["error"]["message"].clone();
    assert_eq!(
        message,
        "the directory has no entry `fax`; it has: emergency-line, chat, portal"
    );
    let bad = put(&app, "chat", &json!({"available": "no"})).await;
    assert_eq!(bad.status(), 400);

    assert_eq!(
        put(&app, "chat", &json!({"available": false}))
            .await
            .status(),
        200
    );
    let dir = app.stop().await;
    let app = spawn_app_in(config, dir).await;
    app.declare("Payments are down").await;
    let banner = app.banner("en").await;
    assert_eq!(contact(&banner, "chat")["available"], false, "{banner:#}");
    let listed = app.get_json("/v1/directory").await;
    let chat = &listed["entries"][1];
    assert_eq!(chat["id"], "chat");
    assert_eq!(chat["last_change"]["changed_by"], "api:tests");
}

#[tokio::test]
async fn a_failing_health_url_marks_its_entry_down_and_a_recovered_one_up_again() {
    let health = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/healthz"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&health)
        .await;
    let smtp = SmtpServer::start().await;
    let mut config = TestConfig::new(smtp.port());
    config.extra = format!(
        "{PORTAL}health = {{ url = \"{}/healthz\", interval = \"100ms\", timeout = \"100ms\", \
         down_after = 2, up_after = 2 }}\n",
        health.uri()
    );
    let app = spawn_app(config).await;
    app.declare("Payments are down").await;
    banner_until(&app, "portal", WAIT, |c| c["available"] == true).await;

    health.reset().await;
    Mock::given(method("GET"))
        .and(path("/healthz"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&health)
        .await;
    banner_until(&app, "portal", WAIT, |c| c["available"] == false).await;
    let listed = app.get_json("/v1/directory").await;
    let portal = &listed["entries"][2];
    assert_eq!(portal["last_change"]["changed_by"], "probe");
    assert_eq!(
        portal["last_change"]["reason"],
        "health probe answered 503 Service Unavailable"
    );

    // Healthy again: restored after two successes.
    health.reset().await;
    Mock::given(method("GET"))
        .and(path("/healthz"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&health)
        .await;
    banner_until(&app, "portal", WAIT, |c| c["available"] == true).await;
}

#[tokio::test]
async fn the_cli_marks_an_entry_down_lists_it_and_brings_it_up() {
    let smtp = SmtpServer::start().await;
    let mut config = TestConfig::new(smtp.port());
    config.extra = PORTAL.to_owned();
    let app = spawn_app(config).await;

    let down = crisisd(
        &app,
        &["directory", "down", "chat", "--reason", "vendor outage"],
    )
    .await;
    assert!(down.status.success(), "{}", stderr(&down));
    assert_eq!(stderr(&down), "chat is now unavailable.\n");
    let listed = crisisd(&app, &["directory", "list"]).await;
    let text = stdout(&listed);
    let chat = text
        .lines()
        .find(|l| l.contains("chat"))
        .expect("chat listed");
    assert!(chat.starts_with("DOWN chat"), "{text}");
    assert!(
        chat.contains("by cli:alice (token tests): vendor outage"),
        "{chat}"
    );
    assert!(chat.ends_with("→ shown instead: portal"), "{chat}");

    let again = crisisd(
        &app,
        &["directory", "down", "chat", "--reason", "vendor outage"],
    )
    .await;
    assert!(
        stderr(&again).contains("was already unavailable"),
        "{}",
        stderr(&again)
    );
    let unknown = crisisd(&app, &["directory", "down", "fax"]).await;
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("it has: emergency-line, chat, portal"));

    let up = crisisd(&app, &["directory", "up", "chat"]).await;
    assert!(up.status.success(), "{}", stderr(&up));
    assert!(
        stdout(&up).lines().any(|l| l.starts_with("up   chat")),
        "{}",
        stdout(&up)
    );
    let listed = app.get_json("/v1/directory").await;
    assert_eq!(listed["entries"][1]["id"], "chat");
    assert_eq!(listed["entries"][1]["available"], true);
}
