//! Drills: only the drill audience, every message marked, the console and
//! the banner unmistakable, and never live.

use reqwest::StatusCode;
use serde_json::json;

use super::browser::{check_audits, sign_in, walk};
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

/// The drill audience of the walk: readers in every language, two with a
/// phone; none of them is in the live audience, and it counts otherwise
/// (four emails and two SMS; the live audience has three and two).
const DRILL_WALK_AUDIENCE: &str = "id,name,email,phone,locale,timezone\n\
    sam,Sam Staff,sam@example.com,+8801700000001,bn,Asia/Dhaka\n\
    dana,Dana Drill,dana@example.com,+14155550199,en,UTC\n\
    lee,Lee Drill,lee@example.com,,en,UTC\n\
    esti,Esti Ekzerco,esti@example.net,,eo,Europe/Warsaw\n";

/// Each drill reader's address, and the marker of their language.
const DRILL_MARKERS: [(&str, &str); 4] = [
    ("sam@example.com", "মহড়া / অনুশীলন"),
    ("dana@example.com", "DRILL / EXERCISE"),
    ("lee@example.com", "DRILL / EXERCISE"),
    ("esti@example.net", "EKZERCO / PROVO"),
];

/// An SMS gateway on loopback that takes every message.
async fn sms_gateway() -> wiremock::MockServer {
    let gateway = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_string("accepted"))
        .mount(&gateway)
        .await;
    gateway
}

/// What the gateway was asked to send (not its healthchecks).
async fn sent_sms(gateway: &wiremock::MockServer) -> Vec<wiremock::Request> {
    let requests = gateway.received_requests().await.unwrap_or_default();
    requests
        .into_iter()
        .filter(|r| r.method == wiremock::http::Method::POST && r.url.path() == "/send")
        .collect()
}

/// The striped header and the banner, as the browser shows them on the
/// page it is on, named `name`.
fn looks(name: &str) -> Vec<serde_json::Value> {
    vec![
        json!({"style": "header.top", "property": "background-image", "as": format!("{name}_stripes")}),
        json!({"read": ".drill-banner", "as": format!("{name}_banner")}),
        json!({"audit": name}),
    ]
}

/// The pages of the drill the walk visited, each striped and bannered.
const DRILL_PAGES: [&str; 5] = [
    "drill-preview",
    "drill-confirm",
    "drill-crisis",
    "drill-correction",
    "drill-update",
];

#[tokio::test]
async fn a_drill_walked_in_the_browser_is_striped_on_every_page_and_marked_in_every_message() {
    let smtp = SmtpServer::start().await;
    let gateway = sms_gateway().await;
    let mut config = TestConfig::new(smtp.port());
    config.drill_audience = Some(DRILL_WALK_AUDIENCE.to_owned());
    config.extra = format!(
        "[[channels.sms_gateway]]\nname = \"sms\"\nurl = \"{}/send\"\n\
         headers = {{ \"Content-Type\" = \"application/json\" }}\n\
         body = '{{\"to\": {{{{ to|tojson }}}}, \"text\": {{{{ text|tojson }}}}}}'\n\
         timeout = \"2s\"\n",
        gateway.uri()
    );
    let app = spawn_app(config).await;
    with_accounts(&app).await;

    let mut steps = vec![json!({"goto": "/console/compose"})];
    steps.extend(sign_in("author", PASSWORD));
    steps.extend([
        json!({"goto": "/console/compose"}),
        json!({"style": "header.top", "property": "background-image", "as": "live_stripes"}),
        json!({"check": "#drill"}),
        // Critical, and still one person sends a drill.
        json!({"select": "#severity", "value": "critical"}),
        json!({"fill": "#title", "value": "Evacuation exercise"}),
        json!({"fill": "#summary", "value": "Leave the building by the nearest exit."}),
        json!({"fill": "#title-bn", "value": "সরিয়ে নেওয়ার মহড়া"}),
        json!({"fill": "#summary-bn", "value": "নিকটতম বহির্গমন পথ দিয়ে ভবন ছাড়ুন।"}),
        json!({"click": "button[value=preview]"}),
    ]);
    steps.extend(looks("drill-preview"));
    steps.push(json!({"click": "button[value=confirm]"}));
    steps.extend(looks("drill-confirm"));
    steps.extend([
        json!({"read": ".mode", "as": "mode"}),
        json!({"read": "section[aria-labelledby=counts-heading] tr:has(th:text-is('email')) td", "as": "counts_email"}),
        json!({"read": "section[aria-labelledby=counts-heading] tr:has(th:text-is('sms')) td", "as": "counts_sms"}),
        json!({"read": "button[value=send]", "as": "send_button"}),
        json!({"click": "button[value=send]"}),
        json!({"read": "h1", "as": "crisis_heading", "url": true}),
    ]);
    steps.extend(looks("drill-crisis"));
    steps.push(json!({"click": "#correction"}));
    steps.extend(looks("drill-correction"));
    steps.push(json!({"click": "main p a[href^='/console/crises/']"}));
    steps.push(json!({"click": "a[href$='action=update']"}));
    steps.extend(looks("drill-update"));
    steps.push(json!({"goto": "/console"}));
    steps.push(json!({"read": "#active-crises .tag-drill", "as": "dashboard_tag"}));
    let walked = walk(&app, "drill", steps).await;
    let seen = &walked["seen"];
    check_audits(seen);

    assert_eq!(
        seen["live_stripes"], "none",
        "a live page is not striped: {seen:#}"
    );
    for page in DRILL_PAGES {
        let stripes = seen[format!("{page}_stripes")].as_str().unwrap_or_default();
        assert!(
            stripes.contains("repeating-linear-gradient"),
            "{page}: the header is striped: {seen:#}"
        );
        assert_eq!(
            seen[format!("{page}_banner")]
                .as_str()
                .map(|b| b.starts_with("DRILL / EXERCISE:")),
            Some(true),
            "{page}: the drill banner: {seen:#}"
        );
    }
    assert!(
        seen["mode"]
            .as_str()
            .is_some_and(|m| m.starts_with("DRILL / EXERCISE")),
        "the confirmation says drill: {seen:#}"
    );
    // The drill audience is counted, nobody else.
    assert_eq!(seen["counts_email"], "bn: 1, en: 2, eo: 1", "{seen:#}");
    assert_eq!(seen["counts_sms"], "bn: 1, en: 1", "{seen:#}");
    assert!(
        seen["send_button"]
            .as_str()
            .is_some_and(|b| b.ends_with("(6)")),
        "four emails and two SMS: {seen:#}"
    );
    assert!(
        seen["crisis_heading"]
            .as_str()
            .is_some_and(|h| h.starts_with("DRILL / EXERCISE")),
        "{seen:#}"
    );
    assert_eq!(seen["dashboard_tag"], "DRILL / EXERCISE", "{seen:#}");

    let id = super::browser::crisis_of(&seen["crisis_heading_url"]);
    let crisis = app.get_json(&format!("/v1/crises/{id}")).await;
    assert_eq!(crisis["drill"], true, "{crisis}");
    assert_eq!(crisis["severity"], "critical", "{crisis}");

    // Every email, to the drill audience only, marked in its language.
    smtp.wait_for(4, WAIT).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while sent_sms(&gateway).await.len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "two SMS in time");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let mails = smtp.accepted();
    assert_eq!(mails.len(), 4, "nobody but the drill audience");
    for (address, marker) in DRILL_MARKERS {
        let mail = mails
            .iter()
            .find(|m| m.to == [address])
            .unwrap_or_else(|| panic!("{address}'s drill"));
        assert!(
            mail.subject().starts_with(&format!("[{marker}] ")),
            "{address}: {}",
            mail.subject()
        );
        assert!(
            mail.text().starts_with(&format!("*** {marker} ***")),
            "{address}: {}",
            mail.text()
        );
        assert!(mail.html().contains(marker), "{address}: {}", mail.html());
    }
    let sam = mails
        .iter()
        .find(|m| m.to == ["sam@example.com"])
        .expect("sam");
    assert!(
        sam.subject().contains("সরিয়ে নেওয়ার মহড়া"),
        "{}",
        sam.subject()
    );

    // Every SMS, to the drill audience's phones only, marked first.
    let mut texts: Vec<(String, String)> = sent_sms(&gateway)
        .await
        .iter()
        .map(|r| {
            let body: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON body");
            (
                body["to"].as_str().unwrap_or_default().to_owned(),
                body["text"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    texts.sort();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert_eq!(texts[0].0, "+14155550199", "{texts:?}");
    assert!(texts[0].1.starts_with("DRILL / EXERCISE\n"), "{texts:?}");
    assert_eq!(texts[1].0, "+8801700000001", "{texts:?}");
    assert!(texts[1].1.starts_with("মহড়া / অনুশীলন\n"), "{texts:?}");
}
