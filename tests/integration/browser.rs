//! banner.js in a real browser: headless Chromium loads a page on another
//! origin that embeds the script, and the notice must appear (or not).

use std::process::Stdio;
use std::time::Duration;

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use serde_json::json;
use tokio::process::Command;

use crate::support::{SmtpServer, TestApp, TestConfig, run_browser_script, spawn_app};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Serves a shop page on its own loopback origin that embeds the banner.
async fn serve_page(listener: tokio::net::TcpListener, daemon: String, lang: &'static str) {
    let page = format!(
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\"><title>Shop</title></head>\
         <body><main><h1>Shop</h1></main><script src=\"{daemon}/banner.js\" defer></script></body></html>"
    );
    let router = Router::new().route("/", get(move || async move { Html(page) }));
    axum::serve(listener, router).await.expect("page server");
}

/// The page's DOM after its scripts ran (virtual time: timers up to 5 s run).
pub(crate) async fn rendered_dom(url: &str) -> String {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: `apt-get install chromium` (.ci/run installs it)"
    );
    let profile = tempfile::tempdir().expect("profile dir");
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--virtual-time-budget=5000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("chromium finished in time")
    .expect("run chromium");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A daemon whose banner may be fetched from the page's origin, and that
/// page's URL.
async fn daemon_and_page(smtp: &SmtpServer, lang: &'static str) -> (TestApp, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind page");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let mut config = TestConfig::new(smtp.port());
    config.cors_origins = vec![origin.clone()];
    let app = spawn_app(config).await;
    tokio::spawn(serve_page(listener, app.base.clone(), lang));
    (app, format!("{origin}/"))
}

#[tokio::test]
async fn an_embedding_page_shows_an_accessible_alert_in_its_language_for_a_critical_crisis() {
    let smtp = SmtpServer::start().await;
    let (app, page) = daemon_and_page(&smtp, "bn").await;
    let declared = app
        .post(
            "/v1/crises",
            &json!({"kind": "natural_disaster", "severity": "critical", "title": "Flood", "summary": "Offices closed.",
                    "localized": {"bn": {"title": "বন্যা", "summary": "অফিস বন্ধ।"}}}),
        )
        .await;
    assert_eq!(declared.status(), 201);

    let dom = rendered_dom(&page).await;
    assert!(
        dom.contains("role=\"alert\""),
        "a critical crisis is announced as an alert: {dom}"
    );
    assert!(dom.contains("বন্যা"), "the Bengali title: {dom}");
    assert!(
        dom.contains("জরুরি লাইন"),
        "the emergency line's Bengali label: {dom}"
    );
    assert!(
        dom.contains("tel:+15550100"),
        "the emergency line is a link: {dom}"
    );
    assert!(
        dom.contains("<button"),
        "the notice can be dismissed: {dom}"
    );
}

#[tokio::test]
async fn an_embedding_page_shows_nothing_without_a_crisis() {
    let smtp = SmtpServer::start().await;
    let (_app, page) = daemon_and_page(&smtp, "en").await;
    let dom = rendered_dom(&page).await;
    assert!(dom.contains("<h1>Shop</h1>"), "the page rendered: {dom}");
    assert!(
        !dom.contains("role=\"alert\"") && !dom.contains("role=\"status\""),
        "{dom}"
    );
}

/// A phone (390x844) meets a critical crisis with a long summary and a
/// message, and a second, minor one: measured and checked in Chromium with
/// Playwright and axe-core.
#[tokio::test]
async fn on_a_phone_the_banner_is_compact_accessible_and_hands_focus_back_to_the_page() {
    let smtp = SmtpServer::start().await;
    let (app, page) = daemon_and_page(&smtp, "en").await;
    let summary = "Card payments fail for most customers since 09:10; cash on delivery still \
                   works, and orders placed before the outage are not affected.";
    let message = "Pay by bank transfer until we are back; no order will be cancelled.";
    for (severity, title) in [
        ("critical", "Card payments are failing"),
        ("minor", "Slow order tracking"),
    ] {
        let declared = app
            .post(
                "/v1/crises",
                &json!({"kind": "outage", "severity": severity, "title": title,
                        "summary": summary, "message": message}),
            )
            .await;
        assert_eq!(declared.status(), 201);
    }

    let seen = run_browser_script(
        "banner.js",
        &json!({"url": page, "width": 390, "height": 844}),
    )
    .await;

    let collapsed = &seen["collapsed"];
    let height = collapsed["height"].as_f64().expect("height");
    assert!(
        height <= 844.0 / 3.0,
        "two notices take {height} px of 844 collapsed: {seen:#}"
    );
    for notice in collapsed["notices"].as_array().expect("notices") {
        assert_eq!(notice["expanded"], "false", "phones start collapsed");
        assert!(
            notice["text"].as_str().unwrap().contains("+1 555 0100"),
            "the emergency line shows collapsed: {notice}"
        );
    }
    let expanded = &seen["expanded"];
    let critical = expanded["notices"][0]["text"].as_str().expect("text");
    for part in [summary, message, "Full details and updates", "Live chat"] {
        assert!(critical.contains(part), "expanded shows {part}: {critical}");
    }
    assert!(
        !critical.contains("Emergency – Emergency line"),
        "the label is not repeated: {critical}"
    );
    assert!(
        expanded["links"].as_array().unwrap().iter().any(|l| l
            .as_str()
            .unwrap()
            .starts_with("https://status.example.com")),
        "{expanded:#}"
    );
    for state in ["collapsed", "expanded"] {
        for address in seen[state]["addresses"].as_array().expect("addresses") {
            assert_eq!(address["lines"], 1, "{state}: a number wraps: {address}");
        }
        assert_eq!(
            seen["violations"][state],
            json!([]),
            "axe-core, {state}: {:#}",
            seen["violations"][state]
        );
    }
    let focus = seen["focusAfterDismiss"].as_array().expect("focus");
    assert_eq!(focus.len(), 2, "{seen:#}");
    assert!(
        focus[0]
            .as_str()
            .unwrap()
            .starts_with("button[Dismiss this notice: "),
        "the next notice's dismiss button: {focus:?}"
    );
    assert_ne!(
        focus[1], "body",
        "the last dismissal hands focus to the page"
    );
    assert_eq!(seen["bannerGone"], true);
}
