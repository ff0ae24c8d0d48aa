use serde_json::json;

use super::tools::assert_valid_cap;
use super::{app_with, bilingual, declare, get, resolve, update};
use crate::support::{PUBLIC_URL, SmtpServer, TestApp};

/// One element's text, the first after `from`.
fn element<'a>(xml: &'a str, name: &str) -> &'a str {
    let open = format!("<{name}>");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no <{name}> in {xml}"))
        + open.len();
    let end = xml[start..].find(&format!("</{name}>")).expect("closed") + start;
    &xml[start..end]
}

async fn cap(app: &TestApp, id: &str, version: Option<u32>) -> String {
    let path = match version {
        Some(v) => format!("/v1/crises/{id}/cap.xml?version={v}"),
        None => format!("/v1/crises/{id}/cap.xml"),
    };
    let (status, kind, xml) = get(app, &path).await;
    assert_eq!(status, 200, "{xml}");
    assert_eq!(kind, "application/cap+xml; charset=utf-8");
    assert_valid_cap(&xml);
    xml
}

#[tokio::test]
async fn every_transition_is_a_valid_cap_alert_referencing_the_chain_before_it() {
    let smtp = SmtpServer::start().await;
    let app = app_with(&smtp, "").await;
    let id = declare(&app, &bilingual("Card payments are down & <slow>")).await;
    let alert = cap(&app, &id, None).await;
    assert_eq!(element(&alert, "msgType"), "Alert");
    assert_eq!(element(&alert, "status"), "Actual");
    assert_eq!(element(&alert, "scope"), "Public");
    assert_eq!(element(&alert, "sender"), "crisis.example.com");
    assert_eq!(element(&alert, "identifier"), format!("crisisd-{id}-v1"));
    assert!(!alert.contains("<references>"), "{alert}");
    assert_eq!(
        alert.matches("<info>").count(),
        3,
        "one per language: {alert}"
    );
    for lang in ["en", "bn", "eo"] {
        assert!(
            alert.contains(&format!("<language>{lang}</language>")),
            "{alert}"
        );
    }
    assert_eq!(element(&alert, "category"), "Infra");
    assert_eq!(element(&alert, "event"), "Service outage");
    assert!(alert.contains("<event>পরিষেবা বিভ্রাট</event>"), "{alert}");
    assert_eq!(element(&alert, "urgency"), "Immediate");
    assert_eq!(element(&alert, "severity"), "Severe");
    assert_eq!(element(&alert, "certainty"), "Observed");
    assert_eq!(
        element(&alert, "headline"),
        "Card payments are down &amp; &lt;slow&gt;"
    );
    assert!(
        alert.contains("<headline>কার্ডে পেমেন্ট বন্ধ</headline>"),
        "{alert}"
    );
    assert_eq!(element(&alert, "instruction"), "We are on it.");
    assert_eq!(
        element(&alert, "web"),
        format!("{PUBLIC_URL}/status/en#crisis-{id}")
    );
    assert_eq!(element(&alert, "contact"), "Emergency line: +1 555 0100");
    assert_eq!(element(&alert, "senderName"), "Test Co.");
    let sent = element(&alert, "sent").to_owned();
    assert!(sent.ends_with("+00:00") && sent.len() == 25, "{sent}");
    let expires =
        chrono::DateTime::parse_from_rfc3339(element(&alert, "expires")).expect("expires");
    let sent_at = chrono::DateTime::parse_from_rfc3339(&sent).expect("sent");
    assert_eq!(expires - sent_at, chrono::TimeDelta::hours(24));

    update(
        &app,
        &id,
        &json!({"severity": "minor", "message": "Mostly back.", "fall_back": true}),
    )
    .await;
    let updated = cap(&app, &id, None).await;
    assert_eq!(element(&updated, "msgType"), "Update");
    assert_eq!(
        element(&updated, "references"),
        format!("crisis.example.com,crisisd-{id}-v1,{sent}")
    );
    assert_eq!(element(&updated, "urgency"), "Future");
    assert_eq!(element(&updated, "severity"), "Minor");
    let update_sent = element(&updated, "sent").to_owned();

    resolve(
        &app,
        &id,
        &json!({"message": "All fixed.", "fall_back": true}),
    )
    .await;
    let cancel = cap(&app, &id, None).await;
    assert_eq!(element(&cancel, "msgType"), "Cancel");
    assert_eq!(
        element(&cancel, "references"),
        format!(
            "crisis.example.com,crisisd-{id}-v1,{sent} crisis.example.com,crisisd-{id}-v2,{update_sent}"
        )
    );
    assert_eq!(element(&cancel, "responseType"), "AllClear");
    assert_eq!(element(&cancel, "urgency"), "Past");
    assert_eq!(element(&cancel, "instruction"), "All fixed.");

    // Each transition keeps its own document.
    assert_eq!(cap(&app, &id, Some(1)).await, alert);
    assert_eq!(cap(&app, &id, Some(2)).await, updated);
    let (status, _, _) = get(&app, &format!("/v1/crises/{id}/cap.xml?version=9")).await;
    assert_eq!(status, 404);
    let (status, _, _) = get(
        &app,
        "/v1/crises/01a2346f-8f58-757f-b58a-06b29ee07680/cap.xml",
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, _) = get(&app, "/v1/crises/nope/cap.xml").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn every_kind_and_severity_makes_a_valid_document() {
    let smtp = SmtpServer::start().await;
    let app = app_with(&smtp, "").await;
    let kinds = [
        ("outage", "Infra"),
        ("natural_disaster", "Geo"),
        ("financial", "Other"),
        ("health", "Health"),
        ("security", "Security"),
        ("other", "Other"),
    ];
    for ((kind, category), severity) in kinds
        .iter()
        .zip(["minor", "major", "critical"].iter().cycle())
    {
        let id = declare(
            &app,
            &json!({"kind": kind, "severity": severity, "title": format!("A {kind}"), "summary": "What happens."}),
        )
        .await;
        let xml = cap(&app, &id, None).await;
        assert_eq!(element(&xml, "category"), *category, "{kind}");
        assert!(
            !xml.contains("<instruction>"),
            "no message, no instruction: {xml}"
        );
    }
}

#[tokio::test]
async fn the_cap_feed_lists_active_alerts_and_recent_cancels_linking_to_their_documents() {
    let smtp = SmtpServer::start().await;
    let app = app_with(&smtp, "").await;
    let (_, kind, empty) = get(&app, "/v1/cap.atom").await;
    assert_eq!(kind, "application/atom+xml; charset=utf-8");
    super::tools::assert_valid_atom(&empty);
    let active = declare(&app, &bilingual("Card payments are down")).await;
    let ended = declare(&app, &bilingual("Logins are slow")).await;
    resolve(&app, &ended, &json!({"fall_back": true})).await;

    let (_, _, feed) = get(&app, "/v1/cap.atom").await;
    super::tools::assert_valid_atom(&feed);
    let parsed = super::tools::parse_feed(&feed);
    assert_eq!(parsed["bozo"], false, "{parsed:#}");
    assert_eq!(parsed["version"], "atom10");
    let entries = parsed["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 2, "{parsed:#}");
    for (id, version) in [(&active, 1), (&ended, 2)] {
        let href = format!("{PUBLIC_URL}/v1/crises/{id}/cap.xml?version={version}");
        let entry = entries
            .iter()
            .find(|e| e["links"][0]["href"] == href.as_str())
            .unwrap_or_else(|| panic!("no entry links {href}: {parsed:#}"));
        assert_eq!(entry["links"][0]["type"], "application/cap+xml");
        // The linked document is there and valid.
        cap(&app, id, Some(version)).await;
    }
}
