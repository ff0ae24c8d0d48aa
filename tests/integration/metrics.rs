//! `/metrics` behind a token or on a listener of its own, against the
//! daemon process.

use crate::support::{Daemon, TestConfig, free_port};

async fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("GET");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

#[tokio::test]
async fn metrics_need_the_configured_token() {
    let secrets = tempfile::tempdir().unwrap();
    let file = secrets.path().join("metrics.token");
    std::fs::write(&file, "scrape-secret\n").unwrap();
    let mut config = TestConfig::new(1);
    config.extra = format!("[metrics]\ntoken_file = \"{}\"\n", file.display());
    let daemon = Daemon::new(config);
    let _child = daemon.start().await;
    let url = format!("{}/metrics", daemon.base);
    assert_eq!(get(&url, None).await.0, 401);
    assert_eq!(get(&url, Some("wrong")).await.0, 401);
    let (status, body) = get(&url, Some("scrape-secret")).await;
    assert_eq!(status, 200);
    assert!(body.contains("crisisd_build_info"), "{body}");
    // The probes stay open.
    assert_eq!(get(&format!("{}/healthz", daemon.base), None).await.0, 200);
}

#[tokio::test]
async fn metrics_can_have_a_listener_of_their_own() {
    let port = free_port();
    let mut config = TestConfig::new(1);
    config.extra =
        format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\nrefresh_interval = \"200ms\"\n");
    let daemon = Daemon::new(config);
    let _child = daemon.start().await;
    let (status, body) = get(&format!("http://127.0.0.1:{port}/metrics"), None).await;
    assert_eq!(status, 200);
    assert!(body.contains("crisisd_build_info"), "{body}");
    assert_eq!(get(&format!("{}/metrics", daemon.base), None).await.0, 404);
    assert_eq!(
        get(&format!("http://127.0.0.1:{port}/v1/banner"), None)
            .await
            .0,
        404,
        "only /metrics there"
    );
}
