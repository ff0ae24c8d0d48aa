//! Drills: only the drill audience, every message marked, the console and
//! the banner unmistakable, and never live.

use reqwest::StatusCode;

use super::{Browser, PASSWORD, with_accounts};
use crate::support::{SmtpServer, TestConfig, WAIT, declaration, spawn_app};

const DRILL_AUDIENCE: &str = "id,name,email,phone,locale,timezone\n\
    sam,Sam Staff,sam@example.com,,bn,Asia/Dhaka\n";

#[tokio::test]
async fn a_drill_reaches_only_the_drill_audience_marked_on_every_part_and_page() {
    let smtp = SmtpServer::start().await;
    let mut config = TestConfig::new(smtp.port());
    config.drill_audience = Some(DRILL_AUDIENCE.to_owned());
    let app = spawn_app(config).await;
    with_accounts(&app).await;
    let mut author = Browser::signed_in(&app, "author", PASSWORD).await;
    let form = author.get("/console/compose").await;
    assert!(form.body.contains("name=\"drill\""), "{}", form.body);
    let csrf = form.csrf();
    let fields = |step: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("action", "declare".to_owned()),
            ("drill", "on".to_owned()),
            ("kind", "outage".to_owned()),
            // Critical, and still one person may send a drill.
            ("severity", "critical".to_owned()),
            ("title", "Payments are down".to_owned()),
            ("summary", "Card payments fail.".to_owned()),
            ("step", step.to_owned()),
        ]
    };
    let confirm_fields = fields("confirm");
    let confirm_refs: Vec<(&str, &str)> = confirm_fields
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    let confirm = author.post("/console/compose", &confirm_refs).await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    assert!(
        confirm.body.contains("data-mode=\"drill\""),
        "{}",
        confirm.body
    );
    assert!(!confirm.body.contains("data-mode=\"live\""));
    assert!(
        confirm.body.contains("class=\"drill\""),
        "a striped page: {}",
        confirm.body
    );
    assert!(
        confirm.body.contains("data-total=\"1\""),
        "the drill audience only: {}",
        confirm.body
    );
    assert!(
        confirm.body.contains("value=\"send\""),
        "no second person for a drill"
    );
    let mut send_fields = fields("send");
    send_fields.push(("hash", confirm.field("hash")));
    send_fields.push(("send_key", confirm.field("send_key")));
    let send_refs: Vec<(&str, &str)> = send_fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let sent = author.post("/console/compose", &send_refs).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let id = sent
        .location()
        .trim_start_matches("/console/crises/")
        .to_owned();

    let mails = smtp.wait_for(1, WAIT).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let all = smtp.accepted();
    assert_eq!(all.len(), 1, "nobody but the drill audience");
    assert_eq!(mails[0].to, ["sam@example.com"]);
    let marker = "মহড়া / অনুশীলন";
    assert!(
        mails[0].subject().starts_with(&format!("[{marker}]")),
        "{}",
        mails[0].subject()
    );
    assert!(
        mails[0].text().starts_with(&format!("*** {marker} ***")),
        "{}",
        mails[0].text()
    );
    assert!(mails[0].html().contains(marker), "{}", mails[0].html());

    let page = author.get(&format!("/console/crises/{id}")).await;
    assert!(
        page.body.contains("<body class=\"drill\">"),
        "{}",
        page.body
    );
    assert!(page.body.contains("drill-banner"), "{}", page.body);
    let crisis = app.get_json(&format!("/v1/crises/{id}")).await;
    assert_eq!(crisis["drill"], true);

    let public = app.banner("en").await;
    assert_eq!(
        public["crises"].as_array().map(Vec::len),
        Some(0),
        "no drill on a public site: {public}"
    );
    let staff_site: serde_json::Value = app
        .http
        .get(app.url("/v1/banner?lang=en&drills=true"))
        .send()
        .await
        .expect("banner")
        .json()
        .await
        .expect("json");
    let headline = staff_site["crises"][0]["headline"]
        .as_str()
        .unwrap_or_default();
    assert!(headline.starts_with("[DRILL / EXERCISE]"), "{staff_site}");

    // An update keeps it a drill, whatever the form says.
    let refused = app
        .post(
            &format!("/v1/crises/{id}/updates"),
            &serde_json::json!({ "message": "Live now.", "drill": false }),
        )
        .await;
    assert_eq!(
        refused.status(),
        StatusCode::BAD_REQUEST,
        "drill is no field of an update"
    );
    let update = app
        .post(
            &format!("/v1/crises/{id}/updates"),
            &serde_json::json!({ "message": "Still an exercise." }),
        )
        .await;
    assert!(update.status().is_success(), "{}", update.status());
    let crisis = app.get_json(&format!("/v1/crises/{id}")).await;
    assert_eq!(crisis["drill"], true, "still a drill");
    let mails = smtp.wait_for(2, WAIT).await;
    assert!(
        mails.iter().all(|m| m.to == ["sam@example.com"]),
        "the update too"
    );
}

#[tokio::test]
async fn a_drill_without_a_drill_audience_is_refused() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    let mut body = declaration("Payments are down");
    body["drill"] = serde_json::json!(true);
    let refused = app.post("/v1/crises", &body).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let text = refused.text().await.expect("body");
    assert!(text.contains("drill_file"), "{text}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(smtp.accepted().is_empty(), "nothing sent");
}
