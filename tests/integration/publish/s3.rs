//! The copy in an S3-compatible bucket, against moto in server mode on
//! loopback: every file put with its content type and cache lifetime, a
//! server that is down retried until it answers, and /readyz and /metrics
//! saying so meanwhile without taking the daemon out of service.

use std::time::Duration;

use rusty_s3::actions::{GetObject, S3Action};
use rusty_s3::{Bucket, Credentials, UrlStyle};
use serde_json::Value;

use super::tools::{free_port, moto};
use super::{RESOURCES, bilingual, declare};
use crate::support::{SmtpServer, TestApp, TestConfig, WAIT, spawn_app};

/// Polls /readyz until the S3 target's state is `ok`; panics after `WAIT`.
async fn s3_state_becomes(app: &TestApp, ok: bool) -> (u16, Value) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = app.readyz().await;
        if body["publish"]["s3"]["ok"] == ok && (ok || body["publish"]["s3"]["failures"] != 0) {
            return (status, body);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "s3 never ok={ok}: {body:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every key in the bucket (moto answers ListObjectsV2 without signing).
async fn keys(http: &reqwest::Client, base: &str) -> Vec<String> {
    let listing = http
        .get(format!("{base}/crisis?list-type=2&max-keys=1000"))
        .send()
        .await
        .expect("list")
        .text()
        .await
        .expect("XML");
    let mut keys: Vec<String> = listing
        .split("<Key>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_owned()))
        .collect();
    keys.sort();
    keys
}

/// An object as a CDN in front of the bucket reads it (a signed GET).
async fn object(http: &reqwest::Client, base: &str, key: &str) -> (String, String, String) {
    let bucket = Bucket::new(base.parse().unwrap(), UrlStyle::Path, "crisis", "us-east-1").unwrap();
    let credentials = Credentials::new("AKIDTEST", "not-a-real-secret");
    let url = GetObject::new(&bucket, Some(&credentials), key).sign(Duration::from_secs(60));
    let response = http.get(url.clone()).send().await.expect("GET object");
    if response.status() != 200 {
        panic!("{url}: {} {:?}", response.status(), response.text().await);
    }
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (kind, cache) = (header("content-type"), header("cache-control"));
    (kind, cache, response.text().await.expect("body"))
}

#[tokio::test]
async fn the_bucket_gets_every_file_with_its_type_and_lifetime_and_a_server_that_is_down_is_retried()
 {
    let smtp = SmtpServer::start().await;
    let keys_dir = tempfile::tempdir().unwrap();
    std::fs::write(keys_dir.path().join("id"), "AKIDTEST\n").unwrap();
    std::fs::write(keys_dir.path().join("secret"), "not-a-real-secret\n").unwrap();
    let port = free_port();
    let mut config = TestConfig::new(smtp.port());
    config.extra = format!(
        "{RESOURCES}\n[publish.s3]\nendpoint = \"http://127.0.0.1:{port}\"\nbucket = \"crisis\"\n\
         prefix = \"site/\"\npath_style = true\ntimeout = \"2s\"\n\
         access_key_id_file = \"{0}/id\"\nsecret_access_key_file = \"{0}/secret\"\n",
        keys_dir.path().display()
    );
    let app = spawn_app(config).await;

    // Nothing listens yet: reported, retried, and the daemon still serves.
    let (status, body) = s3_state_becomes(&app, false).await;
    assert_eq!(
        status, 200,
        "a failing copy does not make the daemon unready: {body:#}"
    );
    let warning = body["warnings"][0].as_str().expect("a warning");
    assert!(warning.starts_with("publish s3: "), "{warning}");
    assert!(!warning.contains("not-a-real-secret"), "{warning}");
    let id = declare(&app, &bilingual("Card payments are down")).await;

    let server = moto(port).await;
    let http = reqwest::Client::new();
    let made = http
        .put(format!("{}/crisis", server.base))
        .send()
        .await
        .unwrap();
    assert!(
        made.status().is_success(),
        "create the bucket: {}",
        made.status()
    );
    let (_, body) = s3_state_becomes(&app, true).await;
    assert_eq!(body["warnings"], serde_json::json!([]), "{body:#}");

    let keys = keys(&http, &server.base).await;
    for file in ["banner.js", "banner.json", "cap.atom", "index.html"]
        .into_iter()
        .map(str::to_owned)
        .chain(["en", "bn", "eo"].iter().flat_map(|lang| {
            [
                format!("banner-{lang}.json"),
                format!("status-{lang}.html"),
                format!("feed-{lang}.atom"),
            ]
        }))
        .chain([format!("cap/{id}-1.xml")])
    {
        assert!(
            keys.contains(&format!("site/{file}")),
            "site/{file} in {keys:?}"
        );
    }
    let base = &server.base;
    let (kind, cache, banner) = object(&http, base, "site/banner-bn.json").await;
    assert_eq!(kind, "application/json");
    assert_eq!(cache, "public, max-age=15");
    let banner: Value = serde_json::from_str(&banner).unwrap();
    assert_eq!(banner, app.banner("bn").await, "the daemon's own banner");
    let (kind, cache, cap) = object(&http, base, &format!("site/cap/{id}-1.xml")).await;
    assert_eq!(kind, "application/cap+xml; charset=utf-8");
    assert_eq!(cache, "public, max-age=86400, immutable");
    assert!(cap.contains("<msgType>Alert</msgType>"), "{cap}");
    let (kind, _, page) = object(&http, base, "site/status-bn.html").await;
    assert_eq!(kind, "text/html; charset=utf-8");
    assert!(page.contains("কার্ডে পেমেন্ট বন্ধ"), "{page}");

    // The gauges are refreshed by a task of their own every few seconds.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let metrics = app.http.get(app.url("/metrics")).send().await.unwrap();
        let metrics = metrics.text().await.unwrap();
        if metrics.contains("crisisd_publish_ok{target=\"s3\"} 1") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
