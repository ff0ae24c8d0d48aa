//! The crisis page as a reader meets it, in headless Chromium (Playwright
//! and axe-core): on a phone (390x844) and a laptop (1280x900), in English
//! and Bengali, the crisis's title and the emergency route are on the first
//! screen, nothing runs off the side, and axe-core finds nothing. The
//! screenshots are kept under target/screenshots/ for people to look at.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::{app_with, bilingual, declare};
use crate::support::{SmtpServer, run_browser_script};

fn shots(lang: &str) -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("target/screenshots/status-{lang}"));
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

fn check(view: &Value, lang: &str, title: &str) {
    let (width, height) = (
        view["width"].as_f64().unwrap(),
        view["height"].as_f64().unwrap(),
    );
    let at = format!("{lang} at {width}x{height}");
    assert_eq!(view["status"], 200, "{at}");
    assert_eq!(view["lang"], lang, "{at}");
    for (what, place) in [
        ("the title", &view["title"]),
        ("the emergency route", &view["emergency"]),
    ] {
        let bottom = place["bottom"]
            .as_f64()
            .unwrap_or_else(|| panic!("{at}: {what} ({title}) is not shown: {view:#}"));
        assert!(
            bottom <= height,
            "{at}: {what} is below the first screen: {view:#}"
        );
    }
    assert!(
        view["scrollWidth"].as_f64().unwrap() <= width,
        "{at}: the page runs off the side: {view:#}"
    );
    assert_eq!(
        view["violations"],
        json!([]),
        "{at}: axe-core: {:#}",
        view["violations"]
    );
    assert!(
        PathBuf::from(view["screenshot"].as_str().unwrap()).exists(),
        "{at}"
    );
}

#[tokio::test]
async fn on_a_phone_and_a_laptop_the_page_shows_the_crisis_and_the_emergency_route_first() {
    let smtp = SmtpServer::start().await;
    let app = app_with(&smtp, "").await;
    declare(&app, &bilingual("Card payments are down")).await;
    for (lang, title, emergency) in [
        ("en", "Card payments are down", "+1 555 0100"),
        ("bn", "কার্ডে পেমেন্ট বন্ধ", "+1 555 0100"),
    ] {
        let seen = run_browser_script(
            "status.js",
            &json!({
                "url": app.url(&format!("/status/{lang}")),
                "title": title,
                "emergency": emergency,
                "viewports": [[390, 844], [1280, 900]],
                "shots": shots(lang),
            }),
        )
        .await;
        for view in seen["views"].as_array().expect("views") {
            check(view, lang, title);
        }
    }
}
