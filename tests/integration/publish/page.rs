use std::time::Duration;

use serde_json::json;

use super::{app_with, bilingual, declare, get, resolve, update};
use crate::support::{PUBLIC_URL, SmtpServer};

#[tokio::test]
async fn without_a_crisis_the_page_is_calm_and_lists_every_way_to_reach_us() {
    let smtp = SmtpServer::start().await;
    let app = app_with(&smtp, "").await;
    let (status, kind, html) = get(&app, "/status/en").await;
    assert_eq!(status, 200);
    assert_eq!(kind, "text/html; charset=utf-8");
    assert!(html.contains("<h1>No active incidents</h1>"), "{html}");
    assert!(
        html.contains("Emergency line") && html.contains("Live chat"),
        "{html}"
    );
    assert!(html.contains(r#"href="tel:+15550100""#), "{html}");
    assert!(!html.contains("<script"), "no script on the page");
    assert!(
        html.contains(&format!(
            r#"<link rel="alternate" type="application/atom+xml" title="Announcements (Atom feed)" href="{PUBLIC_URL}/v1/feed.atom?lang=en">"#
        )),
        "{html}"
    );
    assert!(
        html.contains(&format!(r#"href="{PUBLIC_URL}/v1/cap.atom""#)),
        "{html}"
    );
    assert!(
        html.contains(&format!(
            r#"<link rel="alternate" hreflang="bn" href="{PUBLIC_URL}/status/bn">"#
        )),
        "{html}"
    );
    let (_, _, bengali) = get(&app, "/status/bn").await;
    assert!(bengali.contains(r#"<html lang="bn">"#), "{bengali}");
    assert!(bengali.contains("কোনো চলমান ঘটনা নেই"), "{bengali}");
}

#[tokio::test]
async fn the_page_shows_the_crisis_its_history_the_emergency_route_first_and_its_resources() {
    let smtp = SmtpServer::start().await;
    let app = app_with(&smtp, "").await;
    let id = declare(&app, &bilingual("Card payments are down")).await;
    update(
        &app,
        &id,
        &json!({"message": "A fix is rolling out.", "localized": {"bn": {"message": "সমাধান চালু হচ্ছে।"}}}),
    )
    .await;

    let (_, _, html) = get(&app, "/status/en").await;
    assert!(
        html.contains("<title>Card payments are down – Test Co.: service status</title>"),
        "{html}"
    );
    let emergency = html.find("In an emergency").expect("emergency section");
    let crisis = html
        .find(&format!(r#"id="crisis-{id}""#))
        .expect("the crisis");
    let directory = html.find("How to reach us").expect("directory");
    assert!(
        emergency < crisis && crisis < directory,
        "emergency route first: {html}"
    );
    assert!(html.contains("Card payments fail; cash works."), "{html}");
    assert!(
        html.contains("<h3>Latest update</h3>\n<p>A fix is rolling out.</p>"),
        "{html}"
    );
    let history = &html[html.find("What has happened so far").expect("history")..];
    let updated = history
        .find("<strong>Update</strong>. A fix is rolling out.")
        .expect("update in history");
    let declared = history
        .find("<strong>Declared</strong>. We are on it.")
        .expect("declaration in history");
    assert!(updated < declared, "newest first: {history}");
    assert!(
        html.contains(r#"<a href="https://www.gov.example/assistance">Emergency assistance</a>"#),
        "{html}"
    );
    assert!(
        !html.contains("Flood shelters"),
        "resources of another kind are left out"
    );
    assert!(html.contains("Best for: Technical problems"), "{html}");
    assert!(
        html.contains("Open 24/7") && html.contains("24/7"),
        "{html}"
    );
    assert!(
        html.contains(&format!("{PUBLIC_URL}/v1/crises/{id}/cap.xml?version=2")),
        "{html}"
    );

    let (_, _, bengali) = get(&app, "/status/bn").await;
    assert!(bengali.contains("<h2 id=\"crisis-"), "{bengali}");
    assert!(bengali.contains("কার্ডে পেমেন্ট বন্ধ"), "{bengali}");
    assert!(
        bengali.contains("সমাধান চালু হচ্ছে।") && bengali.contains("আমরা কাজ করছি।"),
        "{bengali}"
    );
    assert!(bengali.contains("জরুরি সরকারি সহায়তা"), "{bengali}");
    assert!(bengali.contains("জরুরি লাইন"), "{bengali}");

    resolve(
        &app,
        &id,
        &json!({"message": "All fixed.", "fall_back": true}),
    )
    .await;
    let (_, _, calm) = get(&app, "/status/en").await;
    assert!(calm.contains("No active incidents"), "{calm}");
}

#[tokio::test]
async fn the_language_comes_from_the_path_the_query_or_accept_language() {
    let smtp = SmtpServer::start().await;
    let app = app_with(&smtp, "").await;
    let (_, _, by_query) = get(&app, "/status?lang=eo").await;
    assert!(by_query.contains(r#"<html lang="eo">"#), "{by_query}");
    let by_header = app
        .http
        .get(app.url("/status"))
        .header("Accept-Language", "bn-BD, en;q=0.5")
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(by_header.contains(r#"<html lang="bn">"#), "{by_header}");
    let (_, _, default) = get(&app, "/status").await;
    assert!(default.contains(r#"<html lang="en">"#), "{default}");
    let (_, _, unknown) = get(&app, "/status/fr").await;
    assert!(
        unknown.contains(r#"<html lang="en">"#),
        "an unknown language gets the default"
    );
}

#[tokio::test]
async fn the_page_answers_304_to_its_etag_until_a_transition_changes_it() {
    let smtp = SmtpServer::start().await;
    let app = app_with(&smtp, "").await;
    let id = declare(&app, &bilingual("Card payments are down")).await;
    let first = app
        .http
        .get(app.url("/status/en"))
        .send()
        .await
        .expect("GET");
    let etag = first.headers()["etag"].to_str().expect("etag").to_owned();
    assert_eq!(first.headers()["cache-control"], "public, max-age=15");
    let again = app
        .http
        .get(app.url("/status/en"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("GET");
    assert_eq!(again.status(), 304);
    update(
        &app,
        &id,
        &json!({"message": "Recovering.", "fall_back": true}),
    )
    .await;
    // A page rendered within the last second may be served once more; the
    // transition drops it at once.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let changed = app
        .http
        .get(app.url("/status/en"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("GET");
    assert_eq!(changed.status(), 200);
    assert!(changed.text().await.expect("body").contains("Recovering."));
}
