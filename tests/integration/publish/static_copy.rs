//! The copy that outlives the daemon: nginx serving the mirror's directory
//! with the shipped deploy/nginx/crisis-mirror.conf, and banner.js on a
//! shop's page in headless Chromium showing the crisis from that copy once
//! the daemon is gone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use serde_json::Value;

use super::tools::nginx;
use super::{RESOURCES, bilingual, declare};
use crate::browser::rendered_dom;
use crate::support::{SmtpServer, TestApp, TestConfig, WAIT, spawn_app};

async fn app_with_mirror(smtp: &SmtpServer, origin: &str) -> (TestApp, PathBuf) {
    let mut config = TestConfig::new(smtp.port());
    config.cors_origins = vec![origin.to_owned()];
    let public = tempfile::tempdir().expect("temp dir").keep();
    config.extra = format!("{RESOURCES}\n[publish]\ndir = \"{}\"\n", public.display());
    (spawn_app(config).await, public)
}

async fn mirrored_once(dir: &Path, file: &str, text: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !std::fs::read_to_string(dir.join(file)).is_ok_and(|f| f.contains(text)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{file} never showed {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get_json(http: &reqwest::Client, url: &str) -> (String, Value) {
    let response = http.get(url).send().await.expect("GET");
    assert_eq!(response.status(), 200, "{url}");
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    (kind, response.json().await.expect("JSON"))
}

/// A shop's page on its own origin that loads banner.js from the mirror
/// and names the daemon, as deploy/nginx/crisis-mirror.conf says.
async fn shop_page(listener: tokio::net::TcpListener, mirror: String, daemon: String) {
    let page = format!(
        "<!doctype html><html lang=\"bn\"><head><meta charset=\"utf-8\"><title>Shop</title></head>\
         <body><main><h1>Shop</h1></main><script src=\"{mirror}/banner.js\" \
         data-api=\"{daemon}/\" defer></script></body></html>"
    );
    let router = Router::new().route("/", get(move || async move { Html(page) }));
    axum::serve(listener, router).await.expect("page server");
}

#[tokio::test]
async fn with_the_daemon_stopped_nginx_serves_its_banner_and_banner_js_shows_the_crisis_from_it() {
    let smtp = SmtpServer::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let (app, dir) = app_with_mirror(&smtp, &origin).await;
    declare(&app, &bilingual("Card payments are down")).await;
    mirrored_once(&dir, "banner-bn.json", "কার্ডে পেমেন্ট বন্ধ").await;
    let served = [
        ("en", app.banner("en").await),
        ("bn", app.banner("bn").await),
    ];

    let web = nginx(&dir).await;
    let http = reqwest::Client::new();
    for (lang, daemon_gave) in &served {
        let (kind, copy) = get_json(&http, &format!("{}/banner-{lang}.json", web.base)).await;
        assert_eq!(
            &copy, daemon_gave,
            "{lang}: nginx serves what the daemon gave"
        );
        assert!(kind.starts_with("application/json"), "{kind}");
    }
    let (_, default) = get_json(&http, &format!("{}/banner.json", web.base)).await;
    assert_eq!(
        default, served[0].1,
        "banner.json is the default language's"
    );
    let hidden = http
        .get(format!("{}/.banner-en.json.1.tmp", web.base))
        .send()
        .await
        .unwrap();
    assert_eq!(hidden.status(), 404, "temporary files are never served");

    let daemon = app.base.clone();
    app.stop().await;
    assert!(
        reqwest::get(format!("{daemon}/v1/banner")).await.is_err(),
        "the daemon is down"
    );
    let (_, copy) = get_json(&http, &format!("{}/banner-bn.json", web.base)).await;
    assert_eq!(copy, served[1].1, "the copy outlives the daemon");

    tokio::spawn(shop_page(listener, web.base.clone(), daemon));
    let dom = rendered_dom(&format!("{origin}/")).await;
    assert!(
        dom.contains("কার্ডে পেমেন্ট বন্ধ"),
        "the Bengali title from the copy: {dom}"
    );
    assert!(
        dom.contains("role=\"alert\""),
        "still announced as an alert: {dom}"
    );
    assert!(dom.contains("tel:+15550100"), "the emergency line: {dom}");
    std::fs::remove_dir_all(&dir).ok();
}
