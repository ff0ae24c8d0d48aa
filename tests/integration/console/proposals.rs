//! A webhook's proposals on the dashboard, first, confirmed or discarded
//! there; the two-person rule by source.

use reqwest::StatusCode;
use serde_json::json;

use super::{Browser, PASSWORD, with_accounts};
use crate::support::{SmtpServer, TestApp, TestConfig, WAIT, spawn_app_in};

/// A daemon with the `careful` hook (Uptime Kuma, proposals only) and
/// `[console.two_person]` as given.
pub(super) async fn start(two_person: &str) -> (TestApp, SmtpServer) {
    let smtp = SmtpServer::start().await;
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("careful.secret"), "k").expect("secret");
    let mut config = TestConfig::new(smtp.port());
    config.extra = format!(
        "[[hooks]]\nname = \"careful\"\nsource = \"uptime_kuma\"\nsecret_file = \"{}/careful.secret\"\n\
         mode = \"propose\"\n\n[console.two_person]\n{two_person}\n",
        dir.path().display()
    );
    let app = spawn_app_in(config, dir).await;
    with_accounts(&app).await;
    (app, smtp)
}

/// A down monitor sent to the hook; the proposal's id.
pub(super) async fn propose(app: &TestApp, key: &str, title: &str) -> String {
    let body = json!({
        "heartbeat": {"monitorID": key, "status": 0, "msg": "connect ECONNREFUSED", "time": "2026-11-23 03:40:12.345", "important": true},
        "monitor": {"id": key, "name": title, "url": "https://example.com", "type": "http"},
        "msg": format!("[{title}] [🔴 Down] connect ECONNREFUSED")
    });
    let response = app
        .http
        .post(app.url("/v1/hooks/careful?token=k"))
        .json(&body)
        .send()
        .await
        .expect("hook");
    assert_eq!(response.status(), StatusCode::OK);
    let proposals = app.get_json("/v1/proposals").await;
    proposals["proposals"]
        .as_array()
        .expect("list")
        .iter()
        .find(|p| {
            p["declaration"]["title"]
                .as_str()
                .is_some_and(|t| t.starts_with(title))
        })
        .and_then(|p| p["id"].as_str())
        .expect("proposed")
        .to_owned()
}

#[tokio::test]
async fn a_proposal_is_confirmed_or_discarded_from_the_dashboard_and_audited() {
    let (app, smtp) = start("severities = [\"critical\"]").await;
    let kept = propose(&app, "1", "Payments").await;
    let dropped = propose(&app, "2", "Search").await;
    let mut author = Browser::signed_in(&app, "author", PASSWORD).await;
    let dashboard = author.get("/console").await;
    let proposal = dashboard
        .body
        .find(&format!("/console/proposals/{kept}/confirm"))
        .expect("a confirm button");
    let active = dashboard
        .body
        .find("id=\"active\"")
        .expect("active section");
    assert!(proposal < active, "proposals are listed first");
    let csrf = dashboard.csrf();

    let mut viewer = Browser::signed_in(&app, "viewer", PASSWORD).await;
    let viewer_csrf = viewer.get("/console").await.csrf();
    let refused = viewer
        .post(
            &format!("/console/proposals/{kept}/confirm"),
            &[("csrf", &viewer_csrf)],
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::FORBIDDEN,
        "a viewer cannot confirm"
    );
    let forged = author
        .post(
            &format!("/console/proposals/{kept}/confirm"),
            &[("csrf", "forged")],
        )
        .await;
    assert_eq!(
        forged.status,
        StatusCode::FORBIDDEN,
        "no CSRF token, nothing done"
    );

    let discarded = author
        .post(
            &format!("/console/proposals/{dropped}/discard"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(
        discarded.status,
        StatusCode::SEE_OTHER,
        "{}",
        discarded.body
    );
    let confirmed = author
        .post(
            &format!("/console/proposals/{kept}/confirm"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(
        confirmed.status,
        StatusCode::SEE_OTHER,
        "{}",
        confirmed.body
    );
    assert_eq!(confirmed.location(), format!("/console/crises/{kept}"));
    smtp.wait_for(3, WAIT).await;
    let detail = app.get_json(&format!("/v1/crises/{kept}")).await;
    assert_eq!(detail["events"][0]["actor"]["source"], "console");
    assert_eq!(detail["events"][0]["actor"]["name"], "author");
    let open = app.get_json("/v1/proposals").await;
    assert_eq!(
        open["proposals"].as_array().map(Vec::len),
        Some(0),
        "{open}"
    );
    let missing = app
        .http
        .get(app.url(&format!("/v1/crises/{dropped}")))
        .bearer_auth(crate::support::TOKEN)
        .send()
        .await
        .expect("GET");
    assert_eq!(
        missing.status(),
        StatusCode::NOT_FOUND,
        "the discarded one is never declared"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(smtp.accepted().len(), 3, "one crisis's messages only");
}

#[tokio::test]
async fn the_two_person_rule_by_source_takes_an_approver_with_their_password() {
    let (app, smtp) = start("severities = []\nsources = [\"webhook:careful\"]").await;
    let id = propose(&app, "1", "Payments").await;
    let mut author = Browser::signed_in(&app, "author", PASSWORD).await;
    let dashboard = author.get("/console").await;
    assert!(
        dashboard.body.contains("name=\"password\""),
        "{}",
        dashboard.body
    );
    let csrf = dashboard.csrf();
    let refused = author
        .post(
            &format!("/console/proposals/{id}/confirm"),
            &[("csrf", &csrf), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::FORBIDDEN,
        "an author may not confirm it"
    );

    let mut approver = Browser::signed_in(&app, "approver", PASSWORD).await;
    let csrf = approver.get("/console").await.csrf();
    let wrong = approver
        .post(
            &format!("/console/proposals/{id}/confirm"),
            &[("csrf", &csrf), ("password", "not the password")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN, "the password again");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(smtp.accepted().is_empty(), "nothing declared yet");
    let confirmed = approver
        .post(
            &format!("/console/proposals/{id}/confirm"),
            &[("csrf", &csrf), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(
        confirmed.status,
        StatusCode::SEE_OTHER,
        "{}",
        confirmed.body
    );
    smtp.wait_for(3, WAIT).await;
    let detail = app.get_json(&format!("/v1/crises/{id}")).await;
    assert_eq!(detail["events"][0]["actor"]["name"], "approver");
}
