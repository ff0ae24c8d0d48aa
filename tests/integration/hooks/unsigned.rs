//! Sources that do not sign: Statuspage, Alertmanager, Better Stack and
//! Uptime Kuma, authenticated by a token (bearer, basic or `?token=`).

use serde_json::json;

use super::{active, all_crises, crisis, id_in, send, start};
use crate::support::WAIT;

const STATUSPAGE: &str = r#"
[[hooks]]
name = "status"
source = "statuspage"
secret_file = "{dir}/status.secret"
"#;

fn statuspage_incident(status: &str, impact: &str, update: &str) -> Vec<u8> {
    // The shape of Statuspage's documented incident webhook.
    serde_json::to_vec(&json!({
        "meta": {"unsubscribe": "http://statustest.flyingkleinbrothers.com:5000/?unsubscribe=j0vqr9kl3513", "documentation": "http://doers.statuspage.io/customer-notifications/webhooks/"},
        "page": {"id": "j2mfxwj97wnj", "status_indicator": "major", "status_description": "Partial System Outage"},
        "incident": {
            "backfilled": false,
            "created_at": "2013-05-29T15:08:51-06:00",
            "impact": impact,
            "impact_override": null,
            "monitoring_at": "2013-05-29T16:07:53-06:00",
            "postmortem_body": null,
            "postmortem_body_last_updated_at": null,
            "postmortem_ignored": false,
            "postmortem_notified_subscribers": false,
            "postmortem_notified_twitter": false,
            "postmortem_published_at": null,
            "resolved_at": null,
            "scheduled_auto_transition": false,
            "scheduled_for": null,
            "scheduled_remind_prior": false,
            "scheduled_reminded_at": null,
            "scheduled_until": null,
            "shortlink": "http://j.mp/18zyDQx",
            "status": status,
            "updated_at": "2013-05-29T16:30:35-06:00",
            "id": "lbkhbwn21v5q",
            "organization_id": null,
            "incident_updates": [{
                "body": update,
                "created_at": "2013-05-29T16:30:35-06:00",
                "display_at": "2013-05-29T16:30:35-06:00",
                "status": status,
                "twitter_updated_at": null,
                "updated_at": "2013-05-29T16:30:35-06:00",
                "wants_twitter_update": false,
                "id": "drfcwbnpxnr6",
                "incident_id": "lbkhbwn21v5q"
            }],
            "name": "Virginia Is Down"
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn a_statuspage_incident_declares_updates_and_resolves_one_crisis() {
    let (app, smtp) = start(STATUSPAGE, &[("status.secret", "sp-token-1")]).await;
    let url = "/v1/hooks/status?token=sp-token-1";

    let (status, receipt) = send(
        &app,
        url,
        &[],
        &statuspage_incident("investigating", "critical", "We are looking into it."),
    )
    .await;
    assert_eq!(status, 200, "{receipt}");
    let id = id_in(&receipt, "declared");
    let detail = crisis(&app, &id).await;
    assert_eq!(
        detail["severity"], "critical",
        "impact critical -> critical"
    );
    assert_eq!(detail["title"], "Virginia Is Down");
    assert_eq!(detail["events"][0]["actor"]["source"], "webhook");
    smtp.wait_for(3, WAIT).await;

    let (status, receipt) = send(
        &app,
        url,
        &[],
        &statuspage_incident("identified", "critical", "Found it: a bad router."),
    )
    .await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(id_in(&receipt, "updated"), id);
    assert_eq!(
        crisis(&app, &id).await["last_message"],
        "Found it: a bad router."
    );
    assert_eq!(
        active(&app).await.len(),
        1,
        "an update never declares a second crisis"
    );
    // The update's messages out first: the all-clear cancels what of the
    // crisis is still queued (the reader learns it is over either way).
    smtp.wait_for(6, WAIT).await;

    let (status, receipt) = send(
        &app,
        url,
        &[],
        &statuspage_incident("resolved", "critical", "All clear."),
    )
    .await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(id_in(&receipt, "resolved"), id);
    assert!(active(&app).await.is_empty());
    smtp.wait_for(9, WAIT).await;
}

#[tokio::test]
async fn statuspage_requests_without_the_right_token_are_refused_and_change_nothing() {
    let (app, _smtp) = start(STATUSPAGE, &[("status.secret", "sp-token-1")]).await;
    let body = statuspage_incident("investigating", "major", "Looking.");
    for (path, headers) in [
        ("/v1/hooks/status", vec![]),
        ("/v1/hooks/status?token=sp-token-2", vec![]),
        (
            "/v1/hooks/status",
            vec![("authorization", "Bearer sp-token-2".to_owned())],
        ),
    ] {
        let (status, answer) = send(&app, path, &headers, &body).await;
        assert_eq!(status, 401, "{path} {headers:?}: {answer}");
    }
    // The right token as a bearer token is accepted.
    let (status, _) = send(
        &app,
        "/v1/hooks/status",
        &[("authorization", "Bearer sp-token-1".to_owned())],
        &body,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(all_crises(&app).await.len(), 1);
}

#[tokio::test]
async fn statuspage_component_updates_follow_the_component_filter() {
    let hooks = format!("{STATUSPAGE}components = [\"API\"]\n");
    let (app, _smtp) = start(&hooks, &[("status.secret", "t")]).await;
    let component = |name: &str, id: &str, new: &str| {
        serde_json::to_vec(&json!({
            "meta": {"unsubscribe": "", "documentation": ""},
            "page": {"id": "j2mfxwj97wnj", "status_indicator": "major", "status_description": "Partial System Outage"},
            "component_update": {"created_at": "2013-05-29T21:32:28Z", "new_status": new, "old_status": "operational", "id": "k7730b5v92bv", "component_id": id},
            "component": {"created_at": "2013-05-29T21:32:28Z", "id": id, "name": name, "status": new}
        }))
        .unwrap()
    };
    let (_, receipt) = send(
        &app,
        "/v1/hooks/status?token=t",
        &[],
        &component("Docs", "docs1", "major_outage"),
    )
    .await;
    assert!(
        receipt["transitions"][0]
            .as_str()
            .unwrap()
            .starts_with("filtered"),
        "{receipt}"
    );
    assert!(all_crises(&app).await.is_empty());

    let (_, receipt) = send(
        &app,
        "/v1/hooks/status?token=t",
        &[],
        &component("API", "rb5wq1dczvbm", "major_outage"),
    )
    .await;
    let id = id_in(&receipt, "declared");
    assert_eq!(
        crisis(&app, &id).await["severity"],
        "critical",
        "major_outage -> critical"
    );
    let (_, receipt) = send(
        &app,
        "/v1/hooks/status?token=t",
        &[],
        &component("API", "rb5wq1dczvbm", "operational"),
    )
    .await;
    assert_eq!(id_in(&receipt, "resolved"), id);
}

const ALERTMANAGER: &str = r#"
[[hooks]]
name = "alerts"
source = "alertmanager"
secret_file = "{dir}/am.secret"
min_severity = "major"
matchers = ['env!="staging"']
"#;

fn alert(name: &str, severity: &str, fingerprint: &str) -> serde_json::Value {
    let status = "firing";
    json!({
        "status": status,
        "labels": {"alertname": name, "severity": severity, "env": "prod", "instance": "db1:9100"},
        "annotations": {"summary": format!("{name} on db1"), "description": format!("{name}: the primary database does not answer.")},
        "startsAt": "2026-11-23T03:00:00.000Z",
        "endsAt": if status == "resolved" { "2026-11-23T03:10:00.000Z" } else { "0001-01-01T00:00:00Z" },
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up%3D%3D0",
        "fingerprint": fingerprint
    })
}

fn notification(status: &str, alerts: Vec<serde_json::Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"DatabaseDown\"}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "crisisd",
        "groupLabels": {"alertname": "DatabaseDown"},
        "commonLabels": {"env": "prod"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts
    }))
    .unwrap()
}

fn basic(user: &str, password: &str) -> (&'static str, String) {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    ("authorization", format!("Basic {encoded}"))
}

#[tokio::test]
async fn one_alertmanager_post_with_a_firing_and_a_resolved_alert_declares_one_and_resolves_the_other()
 {
    let (app, smtp) = start(ALERTMANAGER, &[("am.secret", "am-pass")]).await;
    let auth = [basic("alertmanager", "am-pass")];

    let (status, receipt) = send(
        &app,
        "/v1/hooks/alerts",
        &auth,
        &notification(
            "firing",
            vec![alert("DatabaseDown", "critical", "aaaa000000000001")],
        ),
    )
    .await;
    assert_eq!(status, 200, "{receipt}");
    let first = id_in(&receipt, "declared");
    smtp.wait_for(3, WAIT).await;

    // The same alert notified again (repeat_interval) changes nothing.
    let (_, again) = send(
        &app,
        "/v1/hooks/alerts",
        &auth,
        &notification(
            "firing",
            vec![alert("DatabaseDown", "critical", "aaaa000000000001")],
        ),
    )
    .await;
    assert_eq!(again["verdict"], "duplicate", "{again}");

    let mixed = notification(
        "firing",
        vec![
            alert("CheckoutErrors", "page", "bbbb000000000002"),
            alert("DatabaseDown", "critical", "aaaa000000000001")
                .as_object()
                .map(|a| {
                    let mut a = a.clone();
                    a.insert("status".into(), "resolved".into());
                    a.insert("endsAt".into(), "2026-11-23T03:10:00.000Z".into());
                    serde_json::Value::Object(a)
                })
                .unwrap(),
        ],
    );
    let (status, receipt) = send(&app, "/v1/hooks/alerts", &auth, &mixed).await;
    assert_eq!(status, 200, "{receipt}");
    let second = id_in(&receipt, "declared");
    assert_eq!(id_in(&receipt, "resolved"), first);
    let active = active(&app).await;
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["id"], second.as_str());
    assert_eq!(
        active[0]["severity"], "critical",
        "severity=page -> critical"
    );
    assert_eq!(crisis(&app, &first).await["status"], "resolved");
}

#[tokio::test]
async fn routine_alertmanager_alerts_are_filtered_by_severity_and_matchers() {
    let (app, _smtp) = start(ALERTMANAGER, &[("am.secret", "am-pass")]).await;
    let firing = notification(
        "firing",
        vec![alert("DatabaseDown", "critical", "ffff000000000005")],
    );
    for auth in [
        vec![],
        vec![basic("am", "wrong")],
        vec![("authorization", "Bearer wrong".to_owned())],
    ] {
        let (status, answer) = send(&app, "/v1/hooks/alerts", &auth, &firing).await;
        assert_eq!(status, 401, "{auth:?}: {answer}");
    }
    let auth = [basic("am", "am-pass")];
    let mut staging = alert("DatabaseDown", "critical", "cccc000000000003");
    staging["labels"]["env"] = "staging".into();
    let body = notification(
        "firing",
        vec![alert("DiskFilling", "warning", "dddd000000000004"), staging],
    );
    let (status, receipt) = send(&app, "/v1/hooks/alerts", &auth, &body).await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["verdict"], "ignored");
    let lines: Vec<&str> = receipt["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(lines[0].contains("below min_severity"), "{lines:?}");
    assert!(lines[1].contains("`env`"), "{lines:?}");
    assert!(all_crises(&app).await.is_empty());
}

#[tokio::test]
async fn a_malformed_or_unsupported_alertmanager_body_gets_422_and_changes_nothing() {
    let (app, _smtp) = start(ALERTMANAGER, &[("am.secret", "am-pass")]).await;
    let auth = [basic("am", "am-pass")];
    let mut old = serde_json::from_slice::<serde_json::Value>(&notification(
        "firing",
        vec![alert("X", "critical", "e1")],
    ))
    .unwrap();
    old["version"] = "3".into();
    let (status, answer) = send(
        &app,
        "/v1/hooks/alerts",
        &auth,
        &serde_json::to_vec(&old).unwrap(),
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("version `3`"),
        "{answer}"
    );

    let (status, answer) = send(
        &app,
        "/v1/hooks/alerts",
        &auth,
        b"{\"version\": \"4\", \"alerts\": [{\"status\": \"firing\"}]}",
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("alerts[0]"),
        "{answer}"
    );

    let (status, answer) = send(&app, "/v1/hooks/alerts", &auth, b"{not json").await;
    assert_eq!(status, 422);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{answer}"
    );
    assert!(all_crises(&app).await.is_empty());
}

const BETTERSTACK: &str = r#"
[[hooks]]
name = "uptime"
source = "betterstack"
secret_file = "{dir}/bs.secret"
severity = "critical"
"#;

fn betterstack(event: &str) -> Vec<u8> {
    // Better Stack's documented incident webhook.
    serde_json::to_vec(&json!({
        "event": event,
        "data": {
            "id": "1",
            "type": "incident",
            "attributes": {
                "name": "Tesla.com homepage",
                "url": "https://tesla.com",
                "http_method": "get",
                "cause": "Error 500",
                "started_at": "2020-10-21T10:51:28.151Z",
                "acknowledged_at": if event == "started" { serde_json::Value::Null } else { "2020-02-25T17:38:45.768Z".into() },
                "resolved_at": if event == "resolved" { "2020-10-21T11:51:28.151Z".into() } else { serde_json::Value::Null },
                "response_content": null,
                "response_url": null,
                "screenshot_url": null
            },
            "relationships": {"monitor": {"data": {"id": "4", "type": "monitor"}}}
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn better_stack_started_acknowledged_and_resolved_drive_one_crisis() {
    let (app, _smtp) = start(BETTERSTACK, &[("bs.secret", "bs-token")]).await;
    let auth = [("authorization", "Bearer bs-token".to_owned())];
    // An acknowledgement of an incident crisisd never saw declares nothing.
    let mut unknown: serde_json::Value =
        serde_json::from_slice(&betterstack("acknowledged")).unwrap();
    unknown["data"]["id"] = "2".into();
    let (_, receipt) = send(
        &app,
        "/v1/hooks/uptime",
        &auth,
        &serde_json::to_vec(&unknown).unwrap(),
    )
    .await;
    assert_eq!(receipt["verdict"], "ignored", "{receipt}");
    let (status, receipt) = send(&app, "/v1/hooks/uptime", &auth, &betterstack("started")).await;
    assert_eq!(status, 200, "{receipt}");
    let id = id_in(&receipt, "declared");
    assert_eq!(
        crisis(&app, &id).await["summary"],
        "Tesla.com homepage: Error 500"
    );

    let (_, receipt) = send(
        &app,
        "/v1/hooks/uptime",
        &auth,
        &betterstack("acknowledged"),
    )
    .await;
    assert_eq!(
        id_in(&receipt, "unchanged"),
        id,
        "an acknowledgement alone sends nothing"
    );
    let (_, receipt) = send(&app, "/v1/hooks/uptime", &auth, &betterstack("resolved")).await;
    assert_eq!(id_in(&receipt, "resolved"), id);

    let (status, _) = send(
        &app,
        "/v1/hooks/uptime",
        &[("authorization", "Bearer nope".to_owned())],
        &betterstack("started"),
    )
    .await;
    assert_eq!(status, 401);
}

const UPTIME_KUMA: &str = r#"
[[hooks]]
name = "kuma"
source = "uptime_kuma"
secret_file = "{dir}/kuma.secret"
"#;

fn kuma(status: u8, msg: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "heartbeat": {"monitorID": 3, "status": status, "msg": msg, "time": "2026-11-23 03:40:12.345", "important": true, "duration": 60, "ping": null, "timezone": "Europe/London", "timezoneOffset": "+00:00", "localDateTime": "2026-11-23 03:40:12"},
        "monitor": {"id": 3, "name": "Checkout", "url": "https://shop.example.com/checkout", "type": "http", "interval": 60, "active": true},
        "msg": format!("[Checkout] [{}] {msg}", if status == 0 { "🔴 Down" } else { "✅ Up" })
    }))
    .unwrap()
}

#[tokio::test]
async fn uptime_kuma_down_declares_and_up_resolves_and_a_test_message_is_ignored() {
    let (app, _smtp) = start(UPTIME_KUMA, &[("kuma.secret", "kuma-token")]).await;
    let url = "/v1/hooks/kuma?token=kuma-token";
    let (status, receipt) = send(
        &app,
        url,
        &[],
        br#"{"heartbeat": null, "monitor": null, "msg": "Uptime Kuma Webhook Testing"}"#,
    )
    .await;
    assert_eq!(
        (status, receipt["verdict"].as_str()),
        (200, Some("ignored")),
        "{receipt}"
    );

    let (_, receipt) = send(&app, url, &[], &kuma(0, "timeout of 48000ms exceeded")).await;
    let id = id_in(&receipt, "declared");
    assert_eq!(crisis(&app, &id).await["title"], "Checkout is down");
    let (_, receipt) = send(
        &app,
        url,
        &[],
        &kuma(0, "Request failed with status code 502"),
    )
    .await;
    assert_eq!(
        id_in(&receipt, "updated"),
        id,
        "a new down message updates the crisis"
    );
    let (_, receipt) = send(&app, url, &[], &kuma(1, "200 - OK")).await;
    assert_eq!(id_in(&receipt, "resolved"), id);
    assert!(active(&app).await.is_empty());
}
