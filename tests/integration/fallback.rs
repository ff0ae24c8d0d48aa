//! Fallback through the whole daemon: a reader whose email does not reach
//! them gets the announcement by SMS, once, and never on a number that
//! opted out meanwhile; the audit trail and `reach` say so.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::sms::{MESSAGES, sent_sms, twilio_section};
use crate::support::{SmtpServer, TestApp, TestConfig, WAIT, spawn_app_in};

/// Ada's mail is refused for good, Rahim's for now, Mia's is taken.
pub const READERS: &str = "id,name,email,phone,locale,timezone\n\
    ada,Ada Lovelace,ada@example.com,+14155550101,en,America/New_York\n\
    rahim,রহিম আহমেদ,rahim@example.org,+8801712345678,bn,Asia/Dhaka\n\
    mia,Mia Wong,mia@example.net,+14155550199,en,UTC\n";

pub const FALLBACK: &str = "[fallback]\nmajor = [\"email\", \"sms\"]\ncheck_interval = \"100ms\"\n";

pub async fn twilio_answering(twilio: &MockServer) {
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sid": "SM1"})))
        .mount(twilio)
        .await;
}

async fn fallback_app(smtp: &SmtpServer, twilio: &MockServer) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = TestConfig::new(smtp.port());
    config.audience = READERS.to_owned();
    // Rahim's mail keeps being retried until the test refuses it for good.
    config.max_attempts = 1000;
    config.extra = format!("{}{FALLBACK}", twilio_section(twilio, dir.path(), 3));
    spawn_app_in(config, dir).await
}

/// The messages the daemon wrote in the crisis's audit trail.
fn daemon_lines(detail: &Value) -> Vec<String> {
    detail["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["actor"]["source"] == "daemon")
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn stop_by_sms(app: &TestApp, from: &str) {
    let params = vec![
        ("MessageSid".to_owned(), "SMstop".to_owned()),
        ("From".to_owned(), from.to_owned()),
        ("To".to_owned(), "+15005550006".to_owned()),
        ("Body".to_owned(), "STOP".to_owned()),
    ];
    let path = "/v1/inbound/twilio/sms";
    let signature = crisisd::channels::twilio_signature(
        "twilio-auth-token",
        &format!("{}{path}", crate::support::PUBLIC_URL),
        &params,
    );
    let answer = app
        .http
        .post(app.url(path))
        .header("X-Twilio-Signature", signature)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(&params).expect("form"))
        .send()
        .await
        .expect("POST");
    assert_eq!(answer.status(), 200);
}

#[tokio::test]
async fn a_reader_whose_email_fails_gets_one_sms_and_one_who_opted_out_there_meanwhile_gets_none() {
    let smtp = SmtpServer::start().await;
    smtp.reject_recipient("ada@example.com", "550 5.1.1 No such user");
    smtp.reject_recipient("rahim@example.org", "451 4.3.0 Try again later");
    let twilio = MockServer::start().await;
    twilio_answering(&twilio).await;
    let app = fallback_app(&smtp, &twilio).await;
    let id = app.declare("Payments are down").await;

    // Planned: email to everyone, SMS held behind it.
    let detail = app
        .wait_until(&id, WAIT, |d| {
            d["reach"]["sms"]["fallbacks"] == 1 && d["deliveries"]["sms"]["sent"] == 1
        })
        .await;
    let sent = sent_sms(&twilio).await;
    assert_eq!(
        sent.iter().map(|(to, _)| to.as_str()).collect::<Vec<_>>(),
        ["+14155550101"],
        "only Ada, whose email is dead, is texted"
    );
    assert!(sent[0].1.contains("Payments are down"), "{}", sent[0].1);
    assert_eq!(
        daemon_lines(&detail),
        ["Fallback: 1 sent on sms after email (dead)."],
        "{detail:#}"
    );

    // Rahim texts STOP while his email is still being retried; then his
    // mail is refused for good. His held SMS is skipped, not sent.
    stop_by_sms(&app, "+8801712345678").await;
    smtp.reject_recipient("rahim@example.org", "550 5.1.1 No such user");
    let detail = app
        .wait_until(&id, WAIT, |d| daemon_lines(d).len() == 2)
        .await;
    assert_eq!(
        daemon_lines(&detail)[1],
        "Fallback: 1 not sent on sms: skipped: the reader opted out there.",
        "{detail:#}"
    );
    // Several sweeps later: still one text, Ada's; Mia, whose mail was
    // taken, is never texted.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sent_sms(&twilio).await.len(), 1);
    let detail = app.get_json(&format!("/v1/crises/{id}")).await;
    assert_eq!(daemon_lines(&detail).len(), 2, "{detail:#}");
    assert_eq!(detail["reach"]["sms"]["fallbacks"], 1, "{detail:#}");
    assert_eq!(detail["reach"]["email"]["dead"], 2, "{detail:#}");
}

/// Twilio answering each send with a message id of its number's, so a
/// status callback names one reader's delivery.
async fn twilio_with_sids(twilio: &MockServer) {
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(|request: &wiremock::Request| {
            let form: Vec<(String, String)> =
                serde_urlencoded::from_bytes(&request.body).expect("form");
            let to = form
                .iter()
                .find(|(k, _)| k == "To")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            ResponseTemplate::new(201).set_body_json(json!({"sid": crate::receipts::sid_for(&to)}))
        })
        .mount(twilio)
        .await;
}

#[tokio::test]
async fn a_number_a_permanent_failure_marked_bad_is_tried_last_in_the_next_crisis() {
    let smtp = SmtpServer::start().await;
    let twilio = MockServer::start().await;
    twilio_with_sids(&twilio).await;
    // No [fallback] policy: every reader gets email and SMS at once.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = TestConfig::new(smtp.port());
    config.audience = READERS.to_owned();
    config.max_attempts = 1000;
    config.extra = format!(
        "{}status_callback = \"{}/v1/receipts/twilio/sms\"\n",
        twilio_section(&twilio, dir.path(), 3),
        crate::support::PUBLIC_URL
    );
    let app = spawn_app_in(config, dir).await;
    let first = app.declare("Payments are down").await;
    app.wait_until(&first, WAIT, |d| d["deliveries"]["sms"]["sent"] == 3)
        .await;
    // The carrier says Rahim's number does not exist (30005: permanent).
    let rahim_sid = crate::receipts::sid_for("+8801712345678");
    let answer = crate::receipts::twilio_receipt(
        &app,
        &[
            ("MessageSid", rahim_sid.as_str()),
            ("AccountSid", crate::sms::SID),
            ("MessageStatus", "undelivered"),
            ("ErrorCode", "30005"),
        ],
        None,
    )
    .await;
    assert!(answer.status().is_success(), "{}", answer.status());

    // The next crisis texts Ada and Mia at once; Rahim's number waits
    // behind his email, which is being retried.
    smtp.reject_recipient("rahim@example.org", "451 4.3.0 Try again later");
    let second = app.declare("Payments are down again").await;
    let detail = app
        .wait_until(&second, WAIT, |d| d["deliveries"]["sms"]["sent"] == 2)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let texted: Vec<String> = sent_sms(&twilio)
        .await
        .into_iter()
        .map(|(to, _)| to)
        .collect();
    assert_eq!(texted.len(), 5, "{texted:?}");
    assert!(
        !texted[3..].contains(&"+8801712345678".to_owned()),
        "the bad number is not texted first: {texted:?}"
    );
    let planning: Vec<String> = daemon_lines(&detail)
        .into_iter()
        .filter(|line| line.starts_with("Planning"))
        .collect();
    assert_eq!(
        planning,
        [
            "Planning the initial message: 1 contact point(s) marked bad by a hard bounce or a \
          permanent SMS failure held behind the reader's other one (sent only if that fails); \
          0 sent anyway, being all the reader has."
        ],
        "{detail:#}"
    );

    // Tried last, not dropped: when his email fails for good too, the
    // number goes after all.
    smtp.reject_recipient("rahim@example.org", "550 5.1.1 No such user");
    let detail = app
        .wait_until(&second, WAIT, |d| d["deliveries"]["sms"]["sent"] == 3)
        .await;
    assert_eq!(detail["reach"]["sms"]["fallbacks"], 1, "{detail:#}");
    let texted: Vec<String> = sent_sms(&twilio)
        .await
        .into_iter()
        .map(|(to, _)| to)
        .collect();
    assert_eq!(texted.last().map(String::as_str), Some("+8801712345678"));
}
