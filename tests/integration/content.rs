//! What customers read: the staff's message reaches every channel and the
//! banner, in every language. (The table-driven content contract over
//! locales, channel families and announcement kinds is further down.)

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{SmtpServer, TestConfig, spawn_app};

const MESSAGE: &str = "Pay by bank transfer or cash on delivery until we are back.";

#[tokio::test]
async fn the_declarations_message_reaches_every_email_part_the_banner_and_every_preview() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    let declaration = json!({"kind": "outage", "severity": "major", "title": "Payments are down",
                             "summary": "Card payments fail.", "message": MESSAGE});
    let response = app.post("/v1/crises", &declaration).await;
    assert_eq!(response.status(), 201);

    let mails = smtp.wait_for(3, Duration::from_secs(10)).await;
    for mail in &mails {
        assert!(mail.text().contains(MESSAGE), "text part: {}", mail.text());
        assert!(mail.html().contains(MESSAGE), "HTML part: {}", mail.html());
    }
    let banner = app.banner("en").await;
    assert_eq!(banner["crises"][0]["message"], MESSAGE);
    assert_eq!(banner["crises"][0]["summary"], "Card payments fail.");
    assert_eq!(banner["status_url"], "https://status.example.com");

    for channel in ["email", "sms", "social", "chat"] {
        let mut request = declaration.clone();
        request["channel"] = json!(channel);
        request["lang"] = json!("en");
        let body: Value = app
            .post("/v1/preview", &request)
            .await
            .json()
            .await
            .expect("JSON");
        let text = body["previews"][0]["text"].as_str().expect("text");
        assert!(text.contains(MESSAGE), "{channel}: {text}");
    }
}

fn mail_to<'a>(
    mails: &'a [crate::support::smtp::Received],
    address: &str,
) -> &'a crate::support::smtp::Received {
    mails
        .iter()
        .rev()
        .find(|m| m.to.iter().any(|to| to == address))
        .unwrap_or_else(|| panic!("no mail to {address}"))
}

#[tokio::test]
async fn an_update_that_would_leave_a_locale_stale_is_refused_naming_it_unless_it_says_fall_back() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    let response = app
        .post(
            "/v1/crises",
            &json!({"kind": "outage", "severity": "major", "title": "Payments are down",
                    "summary": "Card payments fail.", "message": "Pay by bank transfer.",
                    "localized": {"bn": {"title": "পেমেন্ট বন্ধ", "summary": "কার্ড পেমেন্ট ব্যর্থ।",
                                         "message": "ব্যাংক ট্রান্সফারে পেমেন্ট করুন।"},
                                  "eo": {"title": "Pagoj ne funkcias"}}}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let id = response.json::<Value>().await.expect("JSON")["crisis"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let mails = smtp.wait_for(3, Duration::from_secs(10)).await;
    let bengali = mail_to(&mails, "rahim@example.org");
    assert!(
        bengali.text().contains("ব্যাংক ট্রান্সফারে পেমেন্ট করুন।"),
        "the Bengali message reaches Bengali readers: {}",
        bengali.text()
    );
    assert!(!bengali.text().contains("Pay by bank transfer."));

    // The API: a new title and summary in English only.
    let retitle = json!({"title": "Payments work again", "summary": "Card payments are back."});
    let path = format!("/v1/crises/{id}/updates");
    let refused = app.post(&path, &retitle).await;
    assert_eq!(refused.status(), 422);
    let problem = refused.text().await.expect("body");
    assert!(
        problem.contains("bn, eo") && problem.contains("fall_back"),
        "{problem}"
    );
    assert_eq!(app.banner("bn").await["crises"][0]["title"], "পেমেন্ট বন্ধ");

    // The CLI says the same, as a usage error, and changes nothing.
    let cli = crate::cli::crisisd(
        &app,
        &[
            "update",
            &id,
            "--title",
            "Payments work again",
            "--summary",
            "Card payments are back.",
        ],
    )
    .await;
    assert_eq!(cli.status.code(), Some(2), "{}", crate::cli::stderr(&cli));
    assert!(
        crate::cli::stderr(&cli).contains("--fall-back"),
        "{}",
        crate::cli::stderr(&cli)
    );

    // New Bengali text, Esperanto falling back to English.
    let cli = crate::cli::crisisd(
        &app,
        &[
            "update",
            &id,
            "--title",
            "Payments work again",
            "--summary",
            "Card payments are back.",
            "--localized",
            "bn.title=পেমেন্ট আবার চালু",
            "--localized",
            "bn.summary=কার্ড পেমেন্ট আবার কাজ করছে।",
            "--fall-back",
        ],
    )
    .await;
    assert!(cli.status.success(), "{}", crate::cli::stderr(&cli));
    let mails = smtp.wait_for(6, Duration::from_secs(10)).await;
    let bengali = mail_to(&mails, "rahim@example.org");
    assert!(
        bengali.text().contains("পেমেন্ট আবার চালু")
            && bengali.text().contains("কার্ড পেমেন্ট আবার কাজ করছে।"),
        "{}",
        bengali.text()
    );
    assert!(!bengali.text().contains("পেমেন্ট বন্ধ"), "{}", bengali.text());
    let esperanto = mail_to(&mails, "ludoviko@example.net");
    assert!(
        esperanto.text().contains("Payments work again"),
        "{}",
        esperanto.text()
    );
    assert_eq!(
        app.banner("bn").await["crises"][0]["title"],
        "পেমেন্ট আবার চালু"
    );
    assert_eq!(
        app.banner("eo").await["crises"][0]["title"],
        "Payments work again"
    );
}

#[tokio::test]
async fn a_message_can_be_given_per_locale_and_needs_one_in_the_default_language() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    let refused = app
        .post(
            "/v1/crises",
            &json!({"kind": "outage", "severity": "major", "title": "Payments are down",
                    "summary": "Card payments fail.",
                    "localized": {"eo": {"message": "Pagu per banka ĝiro."}}}),
        )
        .await;
    assert_eq!(refused.status(), 400);
    let accepted = app
        .post(
            "/v1/crises",
            &json!({"kind": "outage", "severity": "major", "title": "Payments are down",
                    "summary": "Card payments fail.", "message": MESSAGE,
                    "localized": {"eo": {"message": "Pagu per banka ĝiro."}}}),
        )
        .await;
    assert_eq!(accepted.status(), 201);
    let mails = smtp.wait_for(3, Duration::from_secs(10)).await;
    let esperanto = mail_to(&mails, "ludoviko@example.net");
    assert!(esperanto.text().contains("Pagu per banka ĝiro."));
    assert!(!esperanto.text().contains(MESSAGE));
    assert!(
        mail_to(&mails, "rahim@example.org")
            .text()
            .contains(MESSAGE)
    );
    assert_eq!(
        app.banner("eo").await["crises"][0]["message"],
        "Pagu per banka ĝiro."
    );
}
