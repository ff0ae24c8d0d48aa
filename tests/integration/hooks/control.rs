//! Holds (`declare_after`), proposals (`mode = "propose"`), the webhook log
//! and the limits every hook shares.

use std::time::Duration;

use serde_json::json;

use super::{QUIET, active, all_crises, crisis, id_in, send, start};
use crate::support::{TOKEN, WAIT};

pub(super) fn declare(key: &str, title: &str) -> Vec<u8> {
    // Uptime Kuma's shape, with a per-test monitor as the incident key.
    serde_json::to_vec(&json!({
        "heartbeat": {"monitorID": key, "status": 0, "msg": "connect ECONNREFUSED", "time": "2026-11-23 03:40:12.345", "important": true},
        "monitor": {"id": key, "name": title, "url": "https://example.com", "type": "http"},
        "msg": format!("[{title}] [🔴 Down] connect ECONNREFUSED")
    }))
    .unwrap()
}

fn recover(key: &str, title: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "heartbeat": {"monitorID": key, "status": 1, "msg": "200 - OK", "time": "2026-11-23 03:40:13.345", "important": true},
        "monitor": {"id": key, "name": title, "url": "https://example.com", "type": "http"},
        "msg": format!("[{title}] [✅ Up] 200 - OK")
    }))
    .unwrap()
}

const HELD: &str = r#"
[[hooks]]
name = "held"
source = "uptime_kuma"
secret_file = "{dir}/held.secret"
declare_after = "300ms"
"#;

#[tokio::test]
async fn a_hold_cancelled_by_a_quick_resolve_declares_nothing_and_sends_nothing() {
    let (app, smtp) = start(HELD, &[("held.secret", "k")]).await;
    let url = "/v1/hooks/held?token=k";
    let (status, receipt) = send(&app, url, &[], &declare("1", "Checkout")).await;
    assert_eq!(status, 200, "{receipt}");
    let held = id_in(&receipt, "held");
    let proposals = app.get_json("/v1/proposals").await;
    assert_eq!(proposals["proposals"][0]["id"], held.as_str());
    assert_eq!(proposals["proposals"][0]["state"], "held");

    let (_, receipt) = send(&app, url, &[], &recover("1", "Checkout")).await;
    assert_eq!(id_in(&receipt, "withdrawn"), held);

    // Past the hold, with time for a wrong declaration's email to arrive.
    tokio::time::sleep(Duration::from_millis(300) + QUIET).await;
    assert!(all_crises(&app).await.is_empty());
    assert_eq!(smtp.accepted().len(), 0);
    assert!(
        app.get_json("/v1/proposals").await["proposals"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_hold_that_runs_out_declares_the_crisis_under_the_id_it_was_shown_with() {
    let (app, smtp) = start(HELD, &[("held.secret", "k")]).await;
    let (_, receipt) = send(&app, "/v1/hooks/held?token=k", &[], &declare("2", "Search")).await;
    let held = id_in(&receipt, "held");
    assert!(
        active(&app).await.is_empty(),
        "nothing is declared during the hold"
    );
    smtp.wait_for(3, WAIT).await;
    let detail = crisis(&app, &held).await;
    assert_eq!(detail["status"], "declared");
    assert_eq!(detail["title"], "Search is down");

    // The source's resolution resolves it like any other.
    let (_, receipt) = send(&app, "/v1/hooks/held?token=k", &[], &recover("2", "Search")).await;
    assert_eq!(id_in(&receipt, "resolved"), held);
}

pub(super) const PROPOSE: &str = r#"
[[hooks]]
name = "careful"
source = "uptime_kuma"
secret_file = "{dir}/careful.secret"
mode = "propose"
"#;

/// Sends a down monitor to the `careful` hook; returns the proposal's id.
pub(super) async fn propose(app: &crate::support::TestApp, key: &str, title: &str) -> String {
    let (_, receipt) = send(app, "/v1/hooks/careful?token=k", &[], &declare(key, title)).await;
    id_in(&receipt, "proposed")
}

#[tokio::test]
async fn a_proposed_crisis_sends_nothing_until_someone_confirms_it() {
    let (app, smtp) = start(PROPOSE, &[("careful.secret", "k")]).await;
    let proposed = propose(&app, "3", "Payments").await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(smtp.accepted().len(), 0, "a proposal sends nothing");
    assert!(all_crises(&app).await.is_empty());
    assert!(
        app.banner("en").await["crises"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let proposals = app.get_json("/v1/proposals").await;
    assert_eq!(proposals["proposals"][0]["state"], "proposed");
    assert_eq!(
        proposals["proposals"][0]["declaration"]["title"],
        "Payments is down"
    );

    let confirmed = app
        .http
        .post(app.url(&format!("/v1/crises/{proposed}/confirm")))
        .bearer_auth(TOKEN)
        .header("x-crisisd-actor", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status(), 201);
    smtp.wait_for(3, WAIT).await;
    let detail = crisis(&app, &proposed).await;
    assert_eq!(detail["status"], "declared");
    assert_eq!(detail["events"][0]["actor"]["name"], "alice (token tests)");

    // Confirmed once: a second confirmation is refused.
    let again = app
        .http
        .post(app.url(&format!("/v1/crises/{proposed}/confirm")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    // Later webhooks about the same incident drive the confirmed crisis.
    let (_, receipt) = send(
        &app,
        "/v1/hooks/careful?token=k",
        &[],
        &recover("3", "Payments"),
    )
    .await;
    assert_eq!(id_in(&receipt, "resolved"), proposed);
}

#[tokio::test]
async fn a_discarded_proposal_is_never_sent_and_confirming_needs_a_token() {
    let (app, smtp) = start(PROPOSE, &[("careful.secret", "k")]).await;
    let proposed = propose(&app, "4", "Login").await;
    let anonymous = app
        .http
        .post(app.url(&format!("/v1/crises/{proposed}/confirm")))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let discarded = app
        .post(&format!("/v1/crises/{proposed}/discard"), &json!({}))
        .await;
    assert_eq!(discarded.status(), 200);
    let confirm = app
        .post(&format!("/v1/crises/{proposed}/confirm"), &json!({}))
        .await;
    assert_eq!(
        confirm.status(),
        409,
        "a discarded proposal cannot be confirmed"
    );
    tokio::time::sleep(QUIET).await;
    assert_eq!(smtp.accepted().len(), 0);
    assert!(all_crises(&app).await.is_empty());
}

#[tokio::test]
async fn authenticated_webhooks_are_logged_and_unauthenticated_ones_only_counted() {
    let (app, _smtp) = start(PROPOSE, &[("careful.secret", "k")]).await;
    let big = vec![b' '; 1024 * 1024 + 1];
    let (status, _) = send(&app, "/v1/hooks/careful?token=k", &[], &big).await;
    assert_eq!(status, 413);
    let (status, _) = send(&app, "/v1/hooks/nosuch", &[], b"{}").await;
    assert_eq!(status, 404);
    let (status, _) = send(&app, "/v1/hooks/careful", &[], &declare("5", "Docs")).await;
    assert_eq!(status, 401);
    let (status, answer) = send(&app, "/v1/hooks/careful?token=k", &[], b"[1, 2]").await;
    assert_eq!(status, 422, "{answer}");
    let (status, _) = send(
        &app,
        "/v1/hooks/careful?token=k",
        &[],
        &declare("5", "Docs"),
    )
    .await;
    assert_eq!(status, 200);

    let log = app.get_json("/v1/hooks/log?limit=10").await;
    let entries = log["entries"].as_array().unwrap();
    let seen: Vec<(u64, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["status"].as_u64().unwrap(),
                e["verdict"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [(200, "applied"), (422, "malformed")],
        "newest first; the oversized, unknown and unsigned ones are only counted"
    );
    assert_eq!(entries[0]["source"], "uptime_kuma");
    assert!(
        entries[0]["transitions"][0]
            .as_str()
            .unwrap()
            .starts_with("proposed")
    );
    assert!(
        entries[1]["error"]
            .as_str()
            .unwrap()
            .contains("JSON object")
    );
    let only = app.get_json("/v1/hooks/log?hook=nosuch").await;
    assert_eq!(only["entries"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn a_hold_survives_a_restart_and_declares_when_it_falls_due() {
    let hooks = HELD.replace("300ms", "1s");
    let (app, smtp) = start(&hooks, &[("held.secret", "k")]).await;
    let (_, receipt) = send(&app, "/v1/hooks/held?token=k", &[], &declare("6", "Mail")).await;
    let held = id_in(&receipt, "held");
    let dir = app.stop().await;

    let mut config = crate::support::TestConfig::new(smtp.port());
    config.extra = hooks.replace("{dir}", &dir.path().display().to_string());
    let app = crate::support::spawn_app_in(config, dir).await;
    smtp.wait_for(3, WAIT).await;
    assert_eq!(crisis(&app, &held).await["title"], "Mail is down");
    assert_eq!(all_crises(&app).await.len(), 1);
}

#[tokio::test]
async fn a_proposal_follows_the_source_until_it_is_confirmed() {
    let (app, smtp) = start(PROPOSE, &[("careful.secret", "k")]).await;
    let proposed = propose(&app, "7", "Search").await;
    let mut later: serde_json::Value = serde_json::from_slice(&declare("7", "Search")).unwrap();
    later["heartbeat"]["msg"] = "DNS lookup failed".into();
    let (_, receipt) = send(
        &app,
        "/v1/hooks/careful?token=k",
        &[],
        &serde_json::to_vec(&later).unwrap(),
    )
    .await;
    assert_eq!(
        receipt["transitions"][0],
        format!("proposed {proposed} updated").as_str()
    );
    let confirmed = app
        .post(&format!("/v1/crises/{proposed}/confirm"), &json!({}))
        .await;
    assert_eq!(confirmed.status(), 201);
    assert_eq!(
        crisis(&app, &proposed).await["summary"],
        "Search: DNS lookup failed"
    );
    smtp.wait_for(3, WAIT).await;
}
