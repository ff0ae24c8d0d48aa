//! Corrections: one person, from the crisis page or the API, to exactly
//! those the original reached, ahead of everything else; what of the
//! original was still queued is stopped and never follows.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use super::browser::{check_audits, sign_in, walk_in};
use super::{Browser, PASSWORD, with_accounts};
use crate::support::{SmtpServer, TOKEN, TestApp, TestConfig, WAIT, spawn_app};

/// The value of the first `<option value="…">` on a page.
fn first_option(body: &str) -> String {
    let marker = "<option value=\"";
    let start = body
        .find(marker)
        .unwrap_or_else(|| panic!("no option: {body}"))
        + marker.len();
    let end = body[start..].find('"').expect("end") + start;
    body[start..end].to_owned()
}

/// Waits until the crisis has `n` dead deliveries.
async fn wait_for_dead(app: &TestApp, id: &str, n: u64) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let dead = app
            .get_json(&format!("/v1/deliveries/dead?crisis={id}"))
            .await;
        if dead["total"].as_u64() >= Some(n) {
            return dead;
        }
        assert!(tokio::time::Instant::now() < deadline, "dead: {dead}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_correction_from_the_console_reaches_exactly_those_the_original_reached() {
    let smtp = SmtpServer::start().await;
    // Ludoviko's original is refused for good: the correction is not his.
    smtp.reject_recipient("ludoviko@example.net", "550 5.1.1 no such user");
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    with_accounts(&app).await;
    let id = app.declare("Payments are down").await;
    smtp.wait_for(2, WAIT).await;
    wait_for_dead(&app, &id, 1).await;

    let mut viewer = Browser::signed_in(&app, "viewer", PASSWORD).await;
    let refused = viewer
        .get(&format!("/console/crises/{id}/correction"))
        .await;
    assert_eq!(
        refused.status,
        StatusCode::FORBIDDEN,
        "a viewer cannot correct"
    );

    let mut author = Browser::signed_in(&app, "author", PASSWORD).await;
    let page = author.get(&format!("/console/crises/{id}")).await;
    assert!(
        page.body
            .contains(&format!("href=\"/console/crises/{id}/correction\"")),
        "one button on the crisis page: {}",
        page.body
    );
    let form = author
        .get(&format!("/console/crises/{id}/correction"))
        .await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    for prepared in ["was sent in error", "ভুল করে পাঠানো", "estis sendita erare"]
    {
        assert!(form.body.contains(prepared), "{prepared}: {}", form.body);
    }
    let (csrf, key, original) = (
        form.csrf(),
        form.field("send_key"),
        first_option(&form.body),
    );
    let fields = [
        ("csrf", csrf.as_str()),
        ("send_key", key.as_str()),
        ("original", original.as_str()),
        ("mode", "prepared"),
    ];
    let sent = author
        .post(&format!("/console/crises/{id}/correction"), &fields)
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    assert_eq!(sent.location(), format!("/console/crises/{id}"));
    // The same confirmation again replays the first: no second correction.
    let again = author
        .post(&format!("/console/crises/{id}/correction"), &fields)
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.body);

    smtp.wait_for(4, WAIT).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mails = smtp.accepted().into_iter().skip(2).collect::<Vec<_>>();
    assert_eq!(mails.len(), 2, "one correction each, to those reached only");
    let mut to: Vec<String> = mails.iter().map(|m| m.to.join(",")).collect();
    to.sort();
    assert_eq!(to, ["ada@example.com", "rahim@example.org"]);
    let ada = mails
        .iter()
        .find(|m| m.to == ["ada@example.com"])
        .expect("ada");
    assert_eq!(ada.subject(), "Correction: Payments are down");
    assert!(
        ada.text().contains("The message you received at "),
        "{}",
        ada.text()
    );
    assert!(
        !ada.text().contains("UTC"),
        "in Ada's own zone: {}",
        ada.text()
    );
    let rahim = mails
        .iter()
        .find(|m| m.to == ["rahim@example.org"])
        .expect("rahim");
    assert!(
        rahim.subject().starts_with("সংশোধনী: "),
        "{}",
        rahim.subject()
    );
    assert!(rahim.text().contains("ভুল করে পাঠানো"), "{}", rahim.text());

    let page = author.get(&format!("/console/crises/{id}")).await;
    assert!(
        page.body.contains("console:author"),
        "audited: {}",
        page.body
    );
    assert!(
        page.body.contains("Correction of the initial announcement"),
        "{}",
        page.body
    );
    // The trail names the correction as one, not as the crisis's status.
    assert!(
        page.body.contains("data-kind=\"corrected\">Corrected</td>")
            && page.body.contains("data-kind=\"declared\">Declared</td>"),
        "{}",
        page.body
    );
    let bengali = author.get(&format!("/console/crises/{id}?lang=bn")).await;
    assert!(
        bengali
            .body
            .contains("data-kind=\"corrected\">সংশোধিত</td>"),
        "{}",
        bengali.body
    );
    let api = app.get_json(&format!("/v1/crises/{id}")).await;
    let kinds: Vec<&str> = api["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["declared", "corrected"], "{api}");
}

#[tokio::test]
async fn a_queued_original_is_stopped_by_the_correction_and_never_follows_it() {
    let smtp = SmtpServer::start().await;
    // Rahim's relay refuses him for now, however often he is retried: his
    // original is still queued when the correction comes, however slowly
    // the test runs. Then the relay would take him.
    smtp.reject_recipient("rahim@example.org", "451 4.7.1 try again later");
    let mut config = TestConfig::new(smtp.port());
    config.retry_base = "3s";
    config.retry_max = "3s";
    let app = spawn_app(config).await;
    let id = app.declare("Payments are down").await;
    smtp.wait_for(2, WAIT).await;
    // His first try has failed and he waits for his retry: queued, not in
    // flight (the test of an original in flight is below).
    app.wait_until(&id, WAIT, |d| d["deliveries"]["email"]["retrying"] == 1)
        .await;

    let correct = || {
        app.http
            .post(app.url(&format!("/v1/crises/{id}/correction")))
            .bearer_auth(TOKEN)
            .header("Idempotency-Key", "correct-once")
            .json(&serde_json::json!({}))
            .send()
    };
    let answer = correct().await.expect("POST");
    assert_eq!(answer.status(), StatusCode::OK);
    let body: serde_json::Value = answer.json().await.expect("JSON");
    assert_eq!(body["deliveries"]["email"], 2, "{body}");
    assert_eq!(body["stopped"], 1, "{body}");
    let replay = correct().await.expect("POST");
    assert_eq!(replay.headers()["idempotent-replayed"], "true");

    smtp.accept_recipient("rahim@example.org");
    let dead = wait_for_dead(&app, &id, 1).await;
    let entry = &dead["deliveries"][0];
    assert_eq!(entry["destination"], "rahim@example.org", "{dead}");
    assert!(
        entry["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("correction"),
        "{dead}"
    );
    smtp.wait_for(4, WAIT).await;
    // Past the original's retry: nothing more comes, to Rahim or anyone.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mails = smtp.accepted();
    assert_eq!(mails.len(), 4, "two originals, two corrections");
    assert!(
        mails.iter().all(|m| m.to != ["rahim@example.org"]),
        "neither the original nor the correction reached Rahim"
    );
    // Nor does a requeue bring it back.
    let requeue = app
        .post(
            "/v1/deliveries/retry-dead",
            &serde_json::json!({ "crisis": id }),
        )
        .await;
    let requeued: serde_json::Value = requeue.json().await.expect("JSON");
    assert_eq!(requeued["requeued"], 0, "{requeued}");
}

#[tokio::test]
async fn nothing_sent_is_nothing_to_correct_and_an_empty_edit_is_refused() {
    let smtp = SmtpServer::start().await;
    smtp.reject_recipient("ada@example.com", "550 no");
    smtp.reject_recipient("rahim@example.org", "550 no");
    smtp.reject_recipient("ludoviko@example.net", "550 no");
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    with_accounts(&app).await;
    let id = app.declare("Payments are down").await;
    wait_for_dead(&app, &id, 3).await;
    // The button is there from the start, without waiting for a reload;
    // its page says why there is nothing to correct.
    let mut author = Browser::signed_in(&app, "author", PASSWORD).await;
    let page = author.get(&format!("/console/crises/{id}")).await;
    assert!(
        page.body
            .contains(&format!("href=\"/console/crises/{id}/correction\"")),
        "{}",
        page.body
    );
    let form = author
        .get(&format!("/console/crises/{id}/correction"))
        .await;
    assert!(form.body.contains("nothing to correct"), "{}", form.body);
    let path = format!("/v1/crises/{id}/correction");
    let nothing = app.post(&path, &serde_json::json!({})).await;
    assert_eq!(nothing.status(), StatusCode::CONFLICT);
    let empty = app
        .post(&path, &serde_json::json!({ "text": { "en": "  " } }))
        .await;
    assert_eq!(empty.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

/// A correction's subject starts with its locale's marker.
fn is_correction(mail: &crate::support::Received) -> bool {
    let subject = mail.subject();
    ["Correction: ", "সংশোধনী: ", "Korekto: "]
        .iter()
        .any(|marker| subject.starts_with(marker))
}

#[tokio::test]
async fn an_original_in_flight_when_corrected_is_not_retried_after_its_correction() {
    let smtp = SmtpServer::start().await;
    // Every original is held at DATA, then refused for now: all three are
    // in flight when the correction comes, and their attempt then fails.
    smtp.set_delay(Duration::from_secs(2));
    smtp.script_data_replies(&["451 4.3.0 try again later"; 3]);
    let mut config = TestConfig::new(smtp.port());
    config.retry_base = "1s";
    config.retry_max = "1s";
    let app = spawn_app(config).await;
    let id = app.declare("Payments are down").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while smtp.attempts() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "originals held");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    smtp.set_delay(Duration::ZERO);

    let answer = app
        .post(
            &format!("/v1/crises/{id}/correction"),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
    let body: serde_json::Value = answer.json().await.expect("JSON");
    assert_eq!(body["deliveries"]["email"], 3, "in flight counts: {body}");

    // The failed originals end dead, corrected, instead of retrying.
    let dead = wait_for_dead(&app, &id, 3).await;
    for entry in dead["deliveries"].as_array().expect("deliveries") {
        assert_eq!(entry["cause"], "corrected", "{dead}");
    }
    smtp.wait_for(3, WAIT).await;
    // Well past the originals' retry: only the corrections came.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mails = smtp.accepted();
    assert_eq!(mails.len(), 3, "three corrections and no original");
    assert!(mails.iter().all(is_correction), "{:?}", subjects(&mails));
}

fn subjects(mails: &[crate::support::Received]) -> Vec<String> {
    mails.iter().map(|m| m.subject()).collect()
}

#[tokio::test]
async fn two_people_correcting_at_once_send_one_correction_unless_the_second_is_meant() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    let id = app.declare("Payments are down").await;
    smtp.wait_for(3, WAIT).await;
    let path = format!("/v1/crises/{id}/correction");
    let correct = |key: &'static str, body: serde_json::Value| {
        app.http
            .post(app.url(&path))
            .bearer_auth(TOKEN)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let first = correct("alice", serde_json::json!({})).await.expect("POST");
    assert_eq!(first.status(), StatusCode::OK);
    let second = correct("bob", serde_json::json!({})).await.expect("POST");
    assert_eq!(second.status(), StatusCode::CONFLICT);
    let refusal: serde_json::Value = second.json().await.expect("JSON");
    let error = refusal["error"]["message"].as_str().unwrap_or_default();
    assert!(
        error.contains("a correction of this crisis was sent at")
            && error.contains("\"again\": true"),
        "{refusal}"
    );
    smtp.wait_for(6, WAIT).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        smtp.accepted().len(),
        6,
        "three originals, one correction each"
    );

    let meant = correct("bob-again", serde_json::json!({ "again": true }))
        .await
        .expect("POST");
    assert_eq!(meant.status(), StatusCode::OK);
    smtp.wait_for(9, WAIT).await;
}

/// A correction's subject in any language.
fn correction_subjects(mails: &[crate::support::Received]) -> Vec<String> {
    mails
        .iter()
        .filter(|m| is_correction(m))
        .map(|m| format!("{} {}", m.to.join(","), m.subject()))
        .collect()
}

#[tokio::test]
async fn a_second_correction_minutes_after_the_first_is_sent_in_the_browser_once_meant() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    with_accounts(&app).await;
    let id = app.declare("Payments are down").await;
    smtp.wait_for(3, WAIT).await;

    // A Bengali comms person, whose browser asks for Bengali.
    let page = format!("/console/crises/{id}");
    let mut steps = vec![json!({"goto": format!("{page}/correction")})];
    steps.extend(sign_in("author", PASSWORD));
    steps.extend([
        json!({"goto": format!("{page}/correction")}),
        json!({"click": "form button.button-danger"}),
        json!({"click": "#correction"}),
        json!({"read": "#again", "as": "again_before"}),
        // The second, minutes after the first: refused, and why.
        json!({"click": "form button.button-danger"}),
        json!({"read": "p.error[role=alert]", "as": "refusal"}),
        json!({"read": "label[for=again]", "as": "again_label"}),
        json!({"audit": "correction-again"}),
        json!({"keyboard": "#again", "as": "again_key"}),
        json!({"check": "#again"}),
        json!({"click": "form button.button-danger"}),
        json!({"read": "h1", "as": "landed", "url": true}),
    ]);
    let walked = walk_in(&app, "correction-again", Some("bn"), steps).await;
    let seen = &walked["seen"];
    check_audits(seen);
    assert!(
        seen["again_before"].is_null(),
        "the box is offered only with the refusal: {seen:#}"
    );
    let refusal = seen["refusal"].as_str().expect("a refusal");
    assert!(
        refusal.contains("এই সংকটের একটি সংশোধনী")
            && refusal.contains("UTC")
            && refusal.contains("10 মিনিটেরও কম আগে"),
        "the refusal in Bengali, with the first one's time: {refusal}"
    );
    assert!(
        seen["again_label"]
            .as_str()
            .is_some_and(|l| l.starts_with("আরেকটি সংশোধনী পাঠান")),
        "{seen:#}"
    );
    assert!(
        seen["again_key"]["presses"].as_u64() > Some(0),
        "the box is reached by keyboard: {seen:#}"
    );
    assert!(
        seen["landed_url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&page)),
        "sent, back on the crisis page: {seen:#}"
    );

    // Two corrections each: the first, and the one meant as well.
    smtp.wait_for(9, WAIT).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mails = smtp.accepted();
    let corrections = correction_subjects(&mails);
    assert_eq!(corrections.len(), 6, "{corrections:#?}");
    for address in [
        "ada@example.com",
        "rahim@example.org",
        "ludoviko@example.net",
    ] {
        let to_them = corrections
            .iter()
            .filter(|c| c.starts_with(address))
            .count();
        assert_eq!(to_them, 2, "{address}: {corrections:#?}");
    }
    let api = app.get_json(&format!("/v1/crises/{id}")).await;
    let corrected: Vec<&serde_json::Value> = api["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "corrected")
        .collect();
    assert_eq!(corrected.len(), 2, "{api}");
    for event in corrected {
        assert_eq!(event["actor"]["source"], "console", "{event}");
        assert_eq!(event["actor"]["name"], "author", "{event}");
    }
}
