//! No alert fatigue (issue 16): alerts of one group are one crisis, a
//! storm opens at most the cap, a description-only change sends nothing,
//! and no reader gets more than their hourly share of non-critical
//! messages. Against the real daemon and its loopback SMTP server.

use serde_json::{Value, json};

use super::{QUIET, active, crisis, id_in, send, start};
use crate::support::WAIT;

const GROUPED: &str = r#"
[[hooks]]
name = "alerts"
source = "alertmanager"
secret_file = "{dir}/am.secret"
group_by = ["groupKey"]
"#;

const PER_ALERT: &str = r#"
[fatigue]
max_webhook_crises = 5

[[hooks]]
name = "alerts"
source = "alertmanager"
secret_file = "{dir}/am.secret"
"#;

fn bearer() -> [(&'static str, String); 1] {
    [("authorization", "Bearer am-pass".to_owned())]
}

fn alert(name: &str, instance: &str, severity: &str, description: &str) -> Value {
    json!({
        "status": "firing",
        "labels": {"alertname": name, "severity": severity, "instance": instance},
        "annotations": {"summary": format!("{name} on {instance}"), "description": description},
        "startsAt": "2026-11-23T03:00:00.000Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": format!("{:016x}", fxhash(name, instance)),
    })
}

fn fxhash(name: &str, instance: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (name, instance).hash(&mut h);
    h.finish()
}

/// An Alertmanager v4 notification of one group (`groupKey` by
/// `alertname`), as its webhook receiver posts it.
fn notification(group: &str, alerts: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"{group}\"}}"),
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "crisisd",
        "groupLabels": {"alertname": group},
        "commonLabels": {"alertname": group},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts
    }))
    .unwrap()
}

#[tokio::test]
async fn two_alertmanager_alerts_of_one_group_make_one_crisis_and_one_message_per_reader() {
    let (app, smtp) = start(GROUPED, &[("am.secret", "am-pass")]).await;
    let body = notification(
        "DatabaseDown",
        vec![
            alert(
                "DatabaseDown",
                "db1:9100",
                "critical",
                "db1 does not answer",
            ),
            alert(
                "DatabaseDown",
                "db2:9100",
                "critical",
                "db2 does not answer",
            ),
        ],
    );
    let (status, receipt) = send(&app, "/v1/hooks/alerts", &bearer(), &body).await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(
        receipt["transitions"].as_array().unwrap().len(),
        1,
        "{receipt}"
    );
    let id = id_in(&receipt, "declared");
    let crises = active(&app).await;
    assert_eq!(crises.len(), 1, "{crises:#?}");
    assert_eq!(crises[0]["severity"], "critical");
    // Three readers, one email each.
    smtp.wait_for(3, WAIT).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(smtp.accepted().len(), 3);

    // A third instance of the same group joins: the same crisis, and only
    // its description changes, so nothing is sent.
    let body = notification(
        "DatabaseDown",
        vec![
            alert(
                "DatabaseDown",
                "db1:9100",
                "critical",
                "db1 does not answer",
            ),
            alert(
                "DatabaseDown",
                "db2:9100",
                "critical",
                "db2 does not answer",
            ),
            alert(
                "DatabaseDown",
                "db3:9100",
                "critical",
                "db3 does not answer",
            ),
        ],
    );
    let (status, receipt) = send(&app, "/v1/hooks/alerts", &bearer(), &body).await;
    assert_eq!(status, 200, "{receipt}");
    let line = receipt["transitions"][0].as_str().unwrap();
    assert!(
        line.starts_with(&format!("updated {id} quietly")),
        "{receipt}"
    );
    assert_eq!(active(&app).await.len(), 1);
    assert!(
        crisis(&app, &id).await["summary"]
            .as_str()
            .unwrap()
            .starts_with("3 alerts firing"),
    );
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        smtp.accepted().len(),
        3,
        "a description change sends nothing"
    );
}

#[tokio::test]
async fn a_storm_of_30_alerts_opens_at_most_the_cap_and_proposes_the_rest() {
    let (app, smtp) = start(PER_ALERT, &[("am.secret", "am-pass")]).await;
    let storm = |prefix: &str| {
        notification(
            "Storm",
            (0..30)
                .map(|i| alert(&format!("{prefix}{i}"), "web1:9100", "critical", "down"))
                .collect(),
        )
    };
    let (status, receipt) = send(&app, "/v1/hooks/alerts", &bearer(), &storm("Probe")).await;
    assert_eq!(status, 200, "{receipt}");
    let lines: Vec<&str> = receipt["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(lines.len(), 30);
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("declared")).count(),
        3
    );
    let proposed: Vec<&&str> = lines.iter().filter(|l| l.starts_with("proposed")).collect();
    assert_eq!(proposed.len(), 27, "{lines:#?}");
    assert!(
        proposed[0].contains("storm: this request already opened 3 crises (max_new_crises = 3)"),
        "{}",
        proposed[0]
    );
    assert_eq!(active(&app).await.len(), 3);
    let proposals = app.get_json("/v1/proposals").await;
    assert_eq!(proposals["proposals"].as_array().unwrap().len(), 27);
    // The webhook log says so too.
    let log = app.get_json("/v1/hooks/log?hook=alerts").await;
    assert!(
        log.to_string()
            .contains("storm: this request already opened"),
        "{log}"
    );

    // A second storm: the daemon-wide cap (5 in 10 minutes) lets 2 more open.
    let (_, receipt) = send(&app, "/v1/hooks/alerts", &bearer(), &storm("Ping")).await;
    let text = receipt.to_string();
    assert_eq!(text.matches("\"declared ").count(), 2, "{receipt:#}");
    assert!(
        text.contains(
            "webhooks opened 5 crises in the last 10m ([fatigue] max_webhook_crises = 5)"
        ),
        "{receipt:#}"
    );
    assert_eq!(active(&app).await.len(), 5);
    smtp.wait_for(15, WAIT).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(smtp.accepted().len(), 15, "five crises, three readers");
}

#[tokio::test]
async fn a_description_only_change_updates_the_crisis_and_banner_but_sends_nothing() {
    let (app, smtp) = start(PER_ALERT, &[("am.secret", "am-pass")]).await;
    let firing = |severity: &str, description: &str| {
        notification(
            "Checkout",
            vec![alert("CheckoutErrors", "web1:9100", severity, description)],
        )
    };
    let (_, receipt) = send(
        &app,
        "/v1/hooks/alerts",
        &bearer(),
        &firing("error", "5% of checkouts fail."),
    )
    .await;
    let id = id_in(&receipt, "declared");
    smtp.wait_for(3, WAIT).await;

    let (status, receipt) = send(
        &app,
        "/v1/hooks/alerts",
        &bearer(),
        &firing("error", "7% of checkouts fail."),
    )
    .await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["verdict"], "applied");
    assert!(
        receipt["transitions"][0]
            .as_str()
            .unwrap()
            .contains("quietly: only the description changed"),
        "{receipt}"
    );
    let detail = crisis(&app, &id).await;
    assert_eq!(detail["summary"], "7% of checkouts fail.");
    let banner = app.banner("en").await;
    assert!(
        banner.to_string().contains("7% of checkouts fail."),
        "{banner}"
    );
    tokio::time::sleep(QUIET).await;
    assert_eq!(smtp.accepted().len(), 3, "nothing sent for the description");

    // The severity is noteworthy: every reader hears of it.
    let (_, receipt) = send(
        &app,
        "/v1/hooks/alerts",
        &bearer(),
        &firing("critical", "7% of checkouts fail."),
    )
    .await;
    assert_eq!(receipt["transitions"][0], format!("updated {id}"));
    smtp.wait_for(6, WAIT).await;
}

#[tokio::test]
async fn the_per_reader_cap_holds_a_fourth_non_critical_message_in_an_hour_and_never_a_critical_one()
 {
    let (app, smtp) = start("[fatigue]\nmax_per_reader_per_hour = 3\n", &[]).await;
    let id = app.declare("Payments are down").await;
    smtp.wait_for(3, WAIT).await;
    for n in 1..=3 {
        let response = app
            .post(
                &format!("/v1/crises/{id}/updates"),
                &json!({"message": format!("Update {n}: still working on it.")}),
            )
            .await;
        assert_eq!(response.status(), 200, "update {n}");
    }
    // The declaration and two updates went out; the third update is each
    // reader's fourth message this hour.
    smtp.wait_for(9, WAIT).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(smtp.accepted().len(), 9);
    let dead = app.get_json("/v1/deliveries/dead").await;
    let held = dead["deliveries"].as_array().unwrap();
    assert_eq!(held.len(), 3, "{dead:#}");
    for delivery in held {
        let reason = delivery["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("held back: the reader was sent 3 non-critical messages"),
            "{reason}"
        );
    }

    // A critical crisis reaches everyone all the same, and so do its updates.
    let mut critical = crate::support::declaration("The building is on fire");
    critical["severity"] = "critical".into();
    let response = app.post("/v1/crises", &critical).await;
    assert_eq!(response.status(), 201);
    let fire: Value = response.json().await.unwrap();
    let fire = fire["crisis"]["id"].as_str().unwrap().to_owned();
    let response = app
        .post(
            &format!("/v1/crises/{fire}/updates"),
            &json!({"message": "Leave by the east stairs."}),
        )
        .await;
    assert_eq!(response.status(), 200);
    smtp.wait_for(15, WAIT).await;
    let dead = app.get_json("/v1/deliveries/dead").await;
    assert_eq!(dead["total"], 3, "nothing critical held: {dead:#}");
}
