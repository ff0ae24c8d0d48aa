//! The console's pages: the dashboard, a crisis with its trail, the
//! webhook log, requeue, and what a viewer may not do.

use reqwest::StatusCode;

use super::{Browser, PASSWORD, with_accounts};
use crate::support::{SmtpServer, TestConfig, WAIT, spawn_app};

#[tokio::test]
async fn a_crisis_page_shows_progress_the_audit_trail_and_the_live_stream() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    with_accounts(&app).await;
    let id = app.declare("Payments are down").await;
    smtp.wait_for(3, WAIT).await;
    app.wait_until(&id, WAIT, |d| d["deliveries"]["email"]["sent"] == 3)
        .await;
    let mut browser = Browser::signed_in(&app, "viewer", PASSWORD).await;
    let page = browser.get(&format!("/console/crises/{id}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Audit trail"), "{}", page.body);
    assert!(
        page.body.contains("api:tests"),
        "the actor of the declaration: {}",
        page.body
    );
    assert!(
        page.body.contains("data-channel=\"email\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("data-overall=\"done\""), "{}", page.body);
    assert!(
        !page.body.contains("/requeue"),
        "a viewer is not offered requeue"
    );

    let live = browser
        .get_stream(&format!("/console/crises/{id}/live"))
        .await;
    assert!(live.contains("event: progress"), "{live}");
    assert!(live.contains("data-overall=\"done\""), "{live}");

    let bengali = browser.get(&format!("/console/crises/{id}?lang=bn")).await;
    assert!(bengali.body.contains("নিরীক্ষা তালিকা"), "{}", bengali.body);
    assert!(bengali.body.contains("<html lang=\"bn\">"));

    let hooks = browser.get("/console/hooks").await;
    assert_eq!(hooks.status, StatusCode::OK);
    assert!(hooks.body.contains("No webhook has been received."));
    let missing = browser.get("/console/crises/not-an-id").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_viewer_cannot_requeue_and_an_author_can() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    with_accounts(&app).await;
    let id = app.declare("Payments are down").await;
    let mut viewer = Browser::signed_in(&app, "viewer", PASSWORD).await;
    let csrf = viewer.get("/console").await.csrf();
    let refused = viewer
        .post(&format!("/console/crises/{id}/requeue"), &[("csrf", &csrf)])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused.body.contains("role does not allow"),
        "{}",
        refused.body
    );
    let mut author = Browser::signed_in(&app, "author", PASSWORD).await;
    let csrf = author.get("/console").await.csrf();
    let done = author
        .post(&format!("/console/crises/{id}/requeue"), &[("csrf", &csrf)])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(done.location(), format!("/console/crises/{id}"));
}
