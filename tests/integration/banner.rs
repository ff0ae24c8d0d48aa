use serde_json::{Value, json};

use crate::support::{SmtpServer, TestConfig, spawn_app};

#[tokio::test]
async fn the_banner_is_empty_without_a_crisis() {
    let app = spawn_app(TestConfig::new(1)).await;
    let banner = app.banner("en").await;
    assert_eq!(banner["crises"], json!([]));
    assert_eq!(banner["contacts"], json!([]));
}

#[tokio::test]
async fn the_banner_answers_304_to_a_matching_etag_and_changes_when_the_crisis_does() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    let id = app.declare("Payments are down").await;

    let first = app
        .http
        .get(app.url("/v1/banner?lang=en"))
        .send()
        .await
        .expect("GET");
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().expect("etag").to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let cache = first.headers()["cache-control"]
        .to_str()
        .expect("cache-control")
        .to_owned();
    assert_eq!(cache, "public, max-age=15");

    let again = app
        .http
        .get(app.url("/v1/banner?lang=en"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("GET");
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag.as_str());
    assert!(again.bytes().await.expect("body").is_empty());

    app.post(
        &format!("/v1/crises/{id}/updates"),
        &json!({"message": "Recovering."}),
    )
    .await;
    let changed = app
        .http
        .get(app.url("/v1/banner?lang=en"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("GET");
    assert_eq!(changed.status(), 200);
    let body: Value = changed.json().await.expect("JSON");
    assert!(
        body["crises"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Recovering.")
    );
}

#[tokio::test]
async fn the_banner_allows_configured_origins_only() {
    let app = spawn_app(TestConfig::new(1)).await;
    let allowed = app
        .http
        .get(app.url("/v1/banner"))
        .header("Origin", "https://www.example.com")
        .send()
        .await
        .expect("GET");
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://www.example.com"
    );
    let exposed = allowed.headers()["access-control-expose-headers"]
        .to_str()
        .expect("expose");
    assert!(exposed.to_ascii_lowercase().contains("etag"), "{exposed}");

    let other = app
        .http
        .get(app.url("/v1/banner"))
        .header("Origin", "https://evil.example.net")
        .send()
        .await
        .expect("GET");
    assert!(other.headers().get("access-control-allow-origin").is_none());

    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/v1/banner"))
        .header("Origin", "https://www.example.com")
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await
        .expect("OPTIONS");
    assert!(preflight.status().is_success());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://www.example.com"
    );
}

#[tokio::test]
async fn the_banner_speaks_the_readers_language_and_puts_the_worst_crisis_first() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    app.declare("Minor glitch").await;
    let critical = app
        .post(
            "/v1/crises",
            &json!({"kind": "natural_disaster", "severity": "critical", "title": "Flood", "summary": "Offices closed.",
                    "localized": {"bn": {"title": "বন্যা", "summary": "অফিস বন্ধ।"}}}),
        )
        .await;
    assert_eq!(critical.status(), 201);

    let by_header: Value = app
        .http
        .get(app.url("/v1/banner"))
        .header("Accept-Language", "fr;q=0.9, bn-BD;q=0.8, en;q=0.5")
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(by_header["lang"], "bn");
    assert_eq!(by_header["crises"][0]["title"], "বন্যা");
    assert_eq!(by_header["crises"][0]["role"], "alert");
    assert_eq!(by_header["crises"][1]["role"], "status");
    assert_eq!(by_header["labels"]["emergency"], "জরুরি");
    assert_eq!(by_header["contacts"][0]["label"], "জরুরি লাইন");

    let unknown = app.banner("xx").await;
    assert_eq!(
        unknown["lang"], "en",
        "unknown languages fall back to the default"
    );
}

#[tokio::test]
async fn the_embeddable_script_is_served_as_javascript() {
    let app = spawn_app(TestConfig::new(1)).await;
    let response = app
        .http
        .get(app.url("/banner.js"))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/javascript")
    );
    let script = response.text().await.expect("text");
    assert!(script.contains("v1/banner"));
    assert!(
        !script.contains("innerHTML"),
        "server text is never injected as HTML"
    );
}

#[tokio::test]
async fn health_answers_ok() {
    let app = spawn_app(TestConfig::new(1)).await;
    let health: Value = app
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(health["status"], "ok");
}
