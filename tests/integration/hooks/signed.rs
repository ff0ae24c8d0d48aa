//! Sources that sign: Grafana (optional HMAC, with or without a timestamp),
//! Instatus, PagerDuty v3 and Standard Webhooks.

use serde_json::json;

use super::{active, all_crises, crisis, hmac_base64, hmac_hex, id_in, now_secs, send, start};

fn flipped(body: &[u8]) -> Vec<u8> {
    let mut copy = body.to_vec();
    let at = copy.len() / 2;
    copy[at] ^= 0x01;
    copy
}

const GRAFANA: &str = r#"
[[hooks]]
name = "grafana"
source = "grafana"
secret_file = "{dir}/grafana.secret"
signature_header = "X-Signature"
timestamp_header = "X-Signature-Timestamp"
"#;

fn grafana(state: &str, status: &str) -> Vec<u8> {
    // Grafana's documented webhook body: Alertmanager's, with its own fields.
    serde_json::to_vec(&json!({
        "receiver": "crisisd",
        "status": status,
        "orgId": 1,
        "alerts": [{
            "status": status,
            "labels": {"alertname": "High memory usage", "team": "blue", "zone": "us-1", "severity": "critical"},
            "annotations": {"description": "The system has high memory usage", "runbook_url": "https://myrunbook.com/runbook/1234", "summary": "This alert was triggered for zone us-1"},
            "startsAt": "2021-10-12T09:51:03.157076+02:00",
            "endsAt": if status == "resolved" { "2021-10-12T10:51:03.157076+02:00" } else { "0001-01-01T00:00:00Z" },
            "generatorURL": "https://play.grafana.org/alerting/1afz29v7z/edit",
            "fingerprint": "c6eadffa33fcdf37",
            "silenceURL": "https://play.grafana.org/alerting/silence/new?alertmanager=grafana&matchers=alertname%3DT2%2Cteam%3Dblue%2Czone%3Dus-1",
            "dashboardURL": "",
            "panelURL": "",
            "values": {"B": 44.23943737541908, "C": 1},
            "valueString": "[ var='B' labels={__name__=go_memstats_alloc_bytes} value=44.23943737541908 ]"
        }],
        "groupLabels": {},
        "commonLabels": {"alertname": "High memory usage", "team": "blue", "zone": "us-1"},
        "commonAnnotations": {},
        "externalURL": "https://play.grafana.org/",
        "version": "1",
        "groupKey": "{}:{alertname=\"High memory usage\"}",
        "truncatedAlerts": 0,
        "title": format!("[{}] High memory usage (blue us-1)", state.to_uppercase()),
        "state": state,
        "message": "**Firing**\n\nLabels:\n - alertname = T2\n"
    }))
    .unwrap()
}

fn grafana_headers(secret: &str, timestamp: i64, body: &[u8]) -> Vec<(&'static str, String)> {
    let ts = timestamp.to_string();
    vec![
        (
            "x-signature",
            hmac_hex(secret.as_bytes(), &[ts.as_bytes(), b":", body]),
        ),
        ("x-signature-timestamp", ts),
    ]
}

#[tokio::test]
async fn grafana_signed_with_a_timestamp_declares_and_resolves_and_forgeries_are_refused() {
    let (app, _smtp) = start(GRAFANA, &[("grafana.secret", "gr-secret")]).await;
    let body = grafana("alerting", "firing");

    let mut tampered = grafana_headers("gr-secret", now_secs(), &body);
    let (status, _) = send(&app, "/v1/hooks/grafana", &tampered, &flipped(&body)).await;
    assert_eq!(status, 401, "a flipped byte");
    tampered.truncate(1);
    let (status, answer) = send(&app, "/v1/hooks/grafana", &tampered, &body).await;
    assert_eq!(status, 401, "no timestamp: {answer}");
    let stale = grafana_headers("gr-secret", now_secs() - 600, &body);
    let (status, answer) = send(&app, "/v1/hooks/grafana", &stale, &body).await;
    assert_eq!(status, 401, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("seconds from now"),
        "{answer}"
    );
    let (status, _) = send(
        &app,
        "/v1/hooks/grafana",
        &grafana_headers("other", now_secs(), &body),
        &body,
    )
    .await;
    assert_eq!(status, 401, "the wrong secret");
    assert!(all_crises(&app).await.is_empty());

    let (status, receipt) = send(
        &app,
        "/v1/hooks/grafana",
        &grafana_headers("gr-secret", now_secs(), &body),
        &body,
    )
    .await;
    assert_eq!(status, 200, "{receipt}");
    let id = id_in(&receipt, "declared");
    let detail = crisis(&app, &id).await;
    assert_eq!(detail["title"], "This alert was triggered for zone us-1");
    assert_eq!(detail["severity"], "critical");

    let resolved = grafana("ok", "resolved");
    let (_, receipt) = send(
        &app,
        "/v1/hooks/grafana",
        &grafana_headers("gr-secret", now_secs(), &resolved),
        &resolved,
    )
    .await;
    assert_eq!(id_in(&receipt, "resolved"), id);
}

#[tokio::test]
async fn grafana_signed_without_a_timestamp_uses_the_default_header() {
    let hooks = r#"
[[hooks]]
name = "grafana"
source = "grafana"
secret_file = "{dir}/grafana.secret"
"#;
    let (app, _smtp) = start(hooks, &[("grafana.secret", "gr-secret")]).await;
    let body = grafana("alerting", "firing");
    let signature = hmac_hex(b"gr-secret", &[&body]);
    let (status, receipt) = send(
        &app,
        "/v1/hooks/grafana",
        &[("X-Grafana-Alerting-Signature", signature.clone())],
        &body,
    )
    .await;
    assert_eq!(status, 200, "{receipt}");
    id_in(&receipt, "declared");
    let (status, _) = send(
        &app,
        "/v1/hooks/grafana",
        &[("X-Grafana-Alerting-Signature", signature)],
        &flipped(&body),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = send(&app, "/v1/hooks/grafana", &[], &body).await;
    assert_eq!(status, 401, "no signature");
}

#[tokio::test]
async fn grafana_without_hmac_authenticates_with_basic_auth() {
    let hooks = r#"
[[hooks]]
name = "grafana"
source = "grafana"
secret_file = "{dir}/grafana.secret"
auth = "token"
"#;
    let (app, _smtp) = start(hooks, &[("grafana.secret", "gr-pass")]).await;
    use base64::Engine;
    let basic = |password: &str| {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("grafana:{password}"));
        vec![("authorization", format!("Basic {encoded}"))]
    };
    let body = grafana("alerting", "firing");
    let (status, _) = send(&app, "/v1/hooks/grafana", &basic("nope"), &body).await;
    assert_eq!(status, 401);
    let (status, receipt) = send(&app, "/v1/hooks/grafana", &basic("gr-pass"), &body).await;
    assert_eq!(status, 200, "{receipt}");
    id_in(&receipt, "declared");
}

const INSTATUS: &str = r#"
[[hooks]]
name = "instatus"
source = "instatus"
secret_file = "{dir}/instatus.secret"
"#;

fn instatus(status: &str, updates: &[(&str, &str)]) -> Vec<u8> {
    // Instatus's documented incident webhook; statuses in capitals.
    let updates: Vec<_> = updates
        .iter()
        .enumerate()
        .map(|(i, (status, body))| json!({"id": format!("upd{i}"), "incident_id": "cl0vbd5at0003h0o4y9l2umn4", "body": body, "status": status, "created_at": "2026-11-23T03:00:00.000Z", "updated_at": "2026-11-23T03:00:00.000Z"}))
        .collect();
    serde_json::to_vec(&json!({
        "meta": {"unsubscribe": "https://dashboard.instatus.com/unsubscribe?id=s1&token=t1", "documentation": "https://instatus.com/help/webhooks"},
        "page": {"id": "ckxuxq1f40000xyz", "status_indicator": "HASISSUES", "status_description": "Some systems are down", "url": "https://status.example.com"},
        "incident": {
            "backfilled": false,
            "created_at": "2026-11-23T03:00:00.000Z",
            "impact": "MAJOROUTAGE",
            "name": "Login failures",
            "resolved_at": if status == "RESOLVED" { "2026-11-23T04:00:00.000Z" } else { "" },
            "status": status,
            "updated_at": "2026-11-23T03:00:00.000Z",
            "id": "cl0vbd5at0003h0o4y9l2umn4",
            "url": "https://status.example.com/cl0vbd5at0003h0o4y9l2umn4",
            "incident_updates": updates
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn instatus_signed_incidents_declare_update_and_resolve_and_a_flipped_byte_fails() {
    let (app, _smtp) = start(INSTATUS, &[("instatus.secret", "in-secret")]).await;
    let signed = |body: &[u8]| {
        vec![(
            "x-instatus-webhook-signature",
            hmac_hex(b"in-secret", &[body]),
        )]
    };

    let first = instatus(
        "INVESTIGATING",
        &[("INVESTIGATING", "Some users cannot log in.")],
    );
    let (status, _) = send(
        &app,
        "/v1/hooks/instatus",
        &signed(&first),
        &flipped(&first),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = send(&app, "/v1/hooks/instatus", &[], &first).await;
    assert_eq!(status, 401, "no signature header");
    let (status, receipt) = send(&app, "/v1/hooks/instatus", &signed(&first), &first).await;
    assert_eq!(status, 200, "{receipt}");
    let id = id_in(&receipt, "declared");
    assert_eq!(
        crisis(&app, &id).await["severity"],
        "critical",
        "MAJOROUTAGE -> critical"
    );

    let second = instatus(
        "MONITORING",
        &[
            ("INVESTIGATING", "Some users cannot log in."),
            ("MONITORING", "A fix is out; watching."),
        ],
    );
    let (_, receipt) = send(&app, "/v1/hooks/instatus", &signed(&second), &second).await;
    assert_eq!(id_in(&receipt, "updated"), id);
    assert_eq!(
        crisis(&app, &id).await["last_message"],
        "A fix is out; watching."
    );

    let third = instatus("RESOLVED", &[("RESOLVED", "Logins work again.")]);
    let (_, receipt) = send(&app, "/v1/hooks/instatus", &signed(&third), &third).await;
    assert_eq!(id_in(&receipt, "resolved"), id);
    assert!(active(&app).await.is_empty());
}

const PAGERDUTY: &str = r#"
[[hooks]]
name = "pagerduty"
source = "pagerduty"
secret_file = "{dir}/pd.secret"
"#;

fn pagerduty(event_id: &str, event_type: &str, status: &str, urgency: &str) -> Vec<u8> {
    // PagerDuty's documented v3 webhook envelope.
    serde_json::to_vec(&json!({
        "event": {
            "id": event_id,
            "event_type": event_type,
            "resource_type": "incident",
            "occurred_at": "2020-10-02T18:45:22.169Z",
            "agent": {"html_url": "https://acme.pagerduty.com/users/PLH1HKV", "id": "PLH1HKV", "self": "https://api.pagerduty.com/users/PLH1HKV", "summary": "Tenex Engineer", "type": "user_reference"},
            "client": null,
            "data": {
                "id": "PGR0VU2",
                "type": "incident",
                "self": "https://api.pagerduty.com/incidents/PGR0VU2",
                "html_url": "https://acme.pagerduty.com/incidents/PGR0VU2",
                "number": 2,
                "status": status,
                "incident_key": "d3640fbd41094207a1c11e58e46b1662",
                "created_at": "2020-04-09T15:16:27Z",
                "title": "A little bump in the road",
                "service": {"html_url": "https://acme.pagerduty.com/services/PF9KMXH", "id": "PF9KMXH", "self": "https://api.pagerduty.com/services/PF9KMXH", "summary": "API Service", "type": "service_reference"},
                "assignees": [{"html_url": "https://acme.pagerduty.com/users/PTUXL6G", "id": "PTUXL6G", "self": "https://api.pagerduty.com/users/PTUXL6G", "summary": "User 123", "type": "user_reference"}],
                "escalation_policy": {"html_url": "https://acme.pagerduty.com/escalation_policies/PUS0KTE", "id": "PUS0KTE", "self": "https://api.pagerduty.com/escalation_policies/PUS0KTE", "summary": "Default", "type": "escalation_policy_reference"},
                "teams": [],
                "priority": {"html_url": "https://acme.pagerduty.com/account/incident_priorities", "id": "PSO75BM", "self": "https://api.pagerduty.com/priorities/PSO75BM", "summary": "P1", "type": "priority"},
                "urgency": urgency,
                "conference_bridge": {"conference_number": "+1 1234123412,,987654321#", "conference_url": "https://example.com"},
                "resolve_reason": null
            }
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn pagerduty_triggered_acknowledged_resolved_with_rotated_signatures_and_replays_ignored() {
    let (app, _smtp) = start(PAGERDUTY, &[("pd.secret", "pd-new-secret")]).await;
    // During a rotation PagerDuty signs with both secrets.
    let signed = |body: &[u8]| {
        vec![(
            "x-pagerduty-signature",
            format!(
                "v1={},v1={}",
                hmac_hex(b"pd-old-secret", &[body]),
                hmac_hex(b"pd-new-secret", &[body])
            ),
        )]
    };
    let triggered = pagerduty(
        "01BZ2F5V1QCW7Y3Y1LYZ8HJHN7",
        "incident.triggered",
        "triggered",
        "high",
    );
    let only_old = vec![(
        "x-pagerduty-signature",
        format!("v1={}", hmac_hex(b"pd-old-secret", &[&triggered])),
    )];
    let (status, _) = send(&app, "/v1/hooks/pagerduty", &only_old, &triggered).await;
    assert_eq!(
        status, 401,
        "signed only with a secret this hook does not have"
    );
    let (status, _) = send(
        &app,
        "/v1/hooks/pagerduty",
        &signed(&triggered),
        &flipped(&triggered),
    )
    .await;
    assert_eq!(status, 401, "a flipped byte");

    let (status, receipt) =
        send(&app, "/v1/hooks/pagerduty", &signed(&triggered), &triggered).await;
    assert_eq!(status, 200, "{receipt}");
    let id = id_in(&receipt, "declared");
    assert_eq!(
        crisis(&app, &id).await["severity"],
        "critical",
        "urgency high -> critical"
    );

    let (_, replay) = send(&app, "/v1/hooks/pagerduty", &signed(&triggered), &triggered).await;
    assert_eq!(replay["verdict"], "duplicate", "{replay}");

    let acknowledged = pagerduty(
        "01BZ2F5V1QCW7Y3Y1LYZ8HJHN8",
        "incident.acknowledged",
        "acknowledged",
        "low",
    );
    let (_, receipt) = send(
        &app,
        "/v1/hooks/pagerduty",
        &signed(&acknowledged),
        &acknowledged,
    )
    .await;
    assert_eq!(
        id_in(&receipt, "updated"),
        id,
        "urgency lowered: severity follows"
    );
    assert_eq!(crisis(&app, &id).await["severity"], "major");

    let resolved = pagerduty(
        "01BZ2F5V1QCW7Y3Y1LYZ8HJHN9",
        "incident.resolved",
        "resolved",
        "low",
    );
    let (_, receipt) = send(&app, "/v1/hooks/pagerduty", &signed(&resolved), &resolved).await;
    assert_eq!(id_in(&receipt, "resolved"), id);
    let events = crisis(&app, &id).await["events"].as_array().unwrap().len();
    assert_eq!(events, 3, "declared, updated, resolved: one each");
}

const STANDARD: &str = r#"
[[hooks]]
name = "generic"
source = "standard"
secret_file = "{dir}/standard.secret"
"#;

/// The Standard Webhooks specification's example secret.
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn standard_headers(msg_id: &str, timestamp: i64, body: &[u8]) -> Vec<(&'static str, String)> {
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD
        .decode(WHSEC.trim_start_matches("whsec_"))
        .unwrap();
    let ts = timestamp.to_string();
    let signature = hmac_base64(&key, &[msg_id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    vec![
        ("webhook-id", msg_id.to_owned()),
        ("webhook-timestamp", ts),
        // A second, unrelated signature first: any one match is enough.
        (
            "webhook-signature",
            format!("v1,Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eHE= v1,{signature}"),
        ),
    ]
}

#[tokio::test]
async fn the_standard_webhooks_reference_vector_is_refused_as_stale_by_the_daemon() {
    // The specification's vector, signed in 2021: the signature is right
    // (the unit test checks it at its own time), the timestamp is not.
    let (app, _smtp) = start(STANDARD, &[("standard.secret", WHSEC)]).await;
    let headers = [
        ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek".to_owned()),
        ("webhook-timestamp", "1614265330".to_owned()),
        (
            "webhook-signature",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".to_owned(),
        ),
    ];
    let (status, answer) = send(
        &app,
        "/v1/hooks/generic",
        &headers,
        br#"{"test": 2432232314}"#,
    )
    .await;
    assert_eq!(status, 401, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1614265330"),
        "{answer}"
    );
}

#[tokio::test]
async fn standard_webhooks_declare_update_resolve_and_a_replayed_id_is_ignored() {
    let (app, smtp) = start(STANDARD, &[("standard.secret", WHSEC)]).await;
    let declare = serde_json::to_vec(&json!({
        "type": "crisis.declare",
        "timestamp": "2026-11-23T03:00:00Z",
        "data": {"key": "inc-42", "kind": "security", "severity": "critical", "title": "Account takeover attempts", "summary": "Reset your password if you got an unexpected login email."}
    }))
    .unwrap();
    let (status, _) = send(
        &app,
        "/v1/hooks/generic",
        &standard_headers("msg_1", now_secs(), &declare),
        &flipped(&declare),
    )
    .await;
    assert_eq!(status, 401, "a flipped byte");
    let (status, _) = send(
        &app,
        "/v1/hooks/generic",
        &standard_headers("msg_1", now_secs() - 301, &declare),
        &declare,
    )
    .await;
    assert_eq!(status, 401, "five minutes and a second old");

    let headers = standard_headers("msg_1", now_secs(), &declare);
    let (status, receipt) = send(&app, "/v1/hooks/generic", &headers, &declare).await;
    assert_eq!(status, 200, "{receipt}");
    let id = id_in(&receipt, "declared");
    assert_eq!(crisis(&app, &id).await["kind"], "security");
    smtp.wait_for(3, crate::support::WAIT).await;

    // Replayed within the tolerance: signed, fresh, and ignored.
    let (status, replay) = send(&app, "/v1/hooks/generic", &headers, &declare).await;
    assert_eq!(
        (status, replay["verdict"].as_str()),
        (200, Some("duplicate")),
        "{replay}"
    );
    // The same body under a new id (a source's own retry of a new message) is
    // one incident: no second crisis.
    let (_, again) = send(
        &app,
        "/v1/hooks/generic",
        &standard_headers("msg_1b", now_secs(), &declare),
        &declare,
    )
    .await;
    assert_eq!(id_in(&again, "unchanged"), id);
    assert_eq!(all_crises(&app).await.len(), 1);

    let update = serde_json::to_vec(&json!({"type": "crisis.update", "data": {"key": "inc-42", "message": "Attempts blocked at the edge."}})).unwrap();
    let (_, receipt) = send(
        &app,
        "/v1/hooks/generic",
        &standard_headers("msg_2", now_secs(), &update),
        &update,
    )
    .await;
    assert_eq!(id_in(&receipt, "updated"), id);
    let detail = crisis(&app, &id).await;
    assert_eq!(
        detail["title"], "Account takeover attempts",
        "an update keeps what it does not name"
    );
    assert_eq!(detail["last_message"], "Attempts blocked at the edge.");

    let bad = br#"{"type": "crisis.explode", "data": {"key": "inc-42"}}"#;
    let (status, answer) = send(
        &app,
        "/v1/hooks/generic",
        &standard_headers("msg_3", now_secs(), bad),
        bad,
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("crisis.explode")
    );

    let resolve = serde_json::to_vec(
        &json!({"type": "crisis.resolve", "data": {"key": "inc-42", "message": "Over."}}),
    )
    .unwrap();
    let (_, receipt) = send(
        &app,
        "/v1/hooks/generic",
        &standard_headers("msg_4", now_secs(), &resolve),
        &resolve,
    )
    .await;
    assert_eq!(id_in(&receipt, "resolved"), id);
    assert_eq!(
        crisis(&app, &id).await["events"].as_array().unwrap().len(),
        3
    );
}
