//! Published where people look: the crisis page, CAP 1.2, the Atom feeds
//! and the static mirror, each checked with the tools partners use
//! (xmllint against the OASIS schema, Python's feedparser).

mod cap;
mod feed;
mod mirror;
mod page;
mod reader;
mod s3;
mod static_copy;
mod tools;

use crate::support::{SmtpServer, TestApp, TestConfig, spawn_app};
use serde_json::{Value, json};

/// Resources for outages, in English and Bengali.
pub const RESOURCES: &str = r#"
[[follow_ups.resources]]
id = "gov-aid"
url = "https://www.gov.example/assistance"
category = "government_assistance"
kinds = ["outage"]
text = { en = { title = "Emergency assistance", description = "Payments for households hit by the outage." }, bn = { title = "জরুরি সরকারি সহায়তা", description = "বিভ্রাটে ক্ষতিগ্রস্ত পরিবারের জন্য অর্থসহায়তা।" } }

[[follow_ups.resources]]
id = "flood-shelters"
url = "https://www.gov.example/shelters"
category = "community_groups"
kinds = ["natural_disaster"]
text = { en = { title = "Flood shelters", description = "Where to stay dry." } }
"#;

pub async fn app_with(smtp: &SmtpServer, extra: &str) -> TestApp {
    let mut config = TestConfig::new(smtp.port());
    config.extra = format!("{RESOURCES}\n{extra}");
    spawn_app(config).await
}

/// A declaration with Bengali text.
pub fn bilingual(title: &str) -> Value {
    json!({
        "kind": "outage",
        "severity": "critical",
        "title": title,
        "summary": "Card payments fail; cash works.",
        "message": "We are on it.",
        "localized": {"bn": {
            "title": "কার্ডে পেমেন্ট বন্ধ",
            "summary": "কার্ডে পেমেন্ট হচ্ছে না; নগদ চলছে।",
            "message": "আমরা কাজ করছি।"
        }}
    })
}

pub async fn declare(app: &TestApp, body: &Value) -> String {
    let response = app.post("/v1/crises", body).await;
    assert_eq!(response.status(), 201, "declare");
    let body: Value = response.json().await.expect("JSON");
    body["crisis"]["id"].as_str().expect("id").to_owned()
}

pub async fn update(app: &TestApp, id: &str, body: &Value) {
    let response = app.post(&format!("/v1/crises/{id}/updates"), body).await;
    assert!(
        response.status().is_success(),
        "update: {}",
        response.status()
    );
}

pub async fn resolve(app: &TestApp, id: &str, body: &Value) {
    let response = app.post(&format!("/v1/crises/{id}/resolve"), body).await;
    assert!(
        response.status().is_success(),
        "resolve: {}",
        response.status()
    );
}

/// A public GET: status, content type and body.
pub async fn get(app: &TestApp, path: &str) -> (u16, String, String) {
    let response = app.http.get(app.url(path)).send().await.expect("GET");
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().expect("type").to_owned())
        .unwrap_or_default();
    let body = response.text().await.expect("body");
    // The templates escape `/` and `'` in HTML, as browsers read them.
    let body = body.replace("&#x2f;", "/").replace("&#x27;", "'");
    (status, kind, body)
}
