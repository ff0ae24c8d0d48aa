//! Opt-outs: one-click unsubscribe from an email, STOP by SMS; both stick.

use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::sms::{sent_sms, sms_app};
use crate::support::{PUBLIC_URL, SmtpServer, TestConfig, WAIT, spawn_app};

/// The path of the List-Unsubscribe URL in an email.
fn unsubscribe_path(message: &crate::support::smtp::Received) -> String {
    let header = message
        .header("List-Unsubscribe")
        .expect("List-Unsubscribe");
    let url = header.trim_matches(['<', '>']);
    assert!(
        url.starts_with(&format!("{PUBLIC_URL}/v1/unsubscribe/")),
        "{url}"
    );
    url.trim_start_matches(PUBLIC_URL).to_owned()
}

#[tokio::test]
async fn every_email_offers_one_click_unsubscribe_which_stops_later_crises_reaching_that_address() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    app.declare("Payments are down").await;
    let messages = smtp.wait_for(3, WAIT).await;
    for message in &messages {
        assert_eq!(
            message.header("List-Unsubscribe-Post").as_deref(),
            Some("List-Unsubscribe=One-Click")
        );
    }
    let ada = messages
        .iter()
        .find(|m| m.to == ["ada@example.com"])
        .expect("Ada's email");
    let path = unsubscribe_path(ada);
    assert!(
        ada.text().contains(&format!("{PUBLIC_URL}{path}")),
        "the footer shows the link: {}",
        ada.text()
    );
    assert!(
        ada.html()
            .replace("&#x2f;", "/")
            .contains(&format!("href=\"{PUBLIC_URL}{path}\""))
    );

    // A person opening the link sees a page; the GET changes nothing.
    let page = app.http.get(app.url(&path)).send().await.expect("GET");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("page").contains("ada@example.com"));

    // The mail provider's one-click POST (RFC 8058).
    let response = app
        .http
        .post(app.url(&path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 200);
    let list = app.get_json("/v1/crises").await;
    assert_eq!(list["opt_outs"], json!({"email": 1, "phone": 0}));

    app.declare("Storm warning").await;
    let messages = smtp.wait_for(5, WAIT).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let later: Vec<_> = smtp.accepted()[3..]
        .iter()
        .flat_map(|m| m.to.clone())
        .collect();
    assert_eq!(messages.len(), 5);
    assert!(!later.contains(&"ada@example.com".to_owned()), "{later:?}");
}

#[tokio::test]
async fn a_forged_unsubscribe_token_is_refused_and_changes_nothing() {
    use base64::Engine;
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    app.declare("Payments are down").await;
    let messages = smtp.wait_for(3, WAIT).await;
    // Ada's genuine signature on Rahim's address.
    let ada = messages
        .iter()
        .find(|m| m.to == ["ada@example.com"])
        .expect("Ada's email");
    let genuine = unsubscribe_path(ada);
    let signature = genuine.rsplit('.').next().expect("signature");
    let victim = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("rahim@example.org");
    for forged in [
        format!("/v1/unsubscribe/{victim}.{signature}"),
        format!("/v1/unsubscribe/{victim}.AAAA"),
        "/v1/unsubscribe/not-a-token".to_owned(),
    ] {
        let response = app.http.post(app.url(&forged)).send().await.expect("POST");
        assert_eq!(response.status(), 403, "{forged}");
    }
    let list = app.get_json("/v1/crises").await;
    assert_eq!(list["opt_outs"], json!({"email": 0, "phone": 0}));
}

async fn inbound(
    app: &crate::support::TestApp,
    from: &str,
    body: &str,
    signature: Option<String>,
) -> reqwest::Response {
    let params = vec![
        ("MessageSid".to_owned(), "SM123".to_owned()),
        ("From".to_owned(), from.to_owned()),
        ("To".to_owned(), "+15005550006".to_owned()),
        ("Body".to_owned(), body.to_owned()),
    ];
    let path = "/v1/inbound/twilio/sms";
    let signature = signature.unwrap_or_else(|| {
        crisisd::channels::twilio_signature(
            "twilio-auth-token",
            &format!("{PUBLIC_URL}{path}"),
            &params,
        )
    });
    app.http
        .post(app.url(path))
        .header("X-Twilio-Signature", signature)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(&params).expect("form"))
        .send()
        .await
        .expect("POST")
}

#[tokio::test]
async fn stop_by_sms_opts_out_and_a_later_crisis_texts_that_number_nothing() {
    let smtp = SmtpServer::start().await;
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sid": "SM1"})))
        .mount(&twilio)
        .await;
    let app = sms_app(&smtp, &twilio).await;

    let forged = inbound(
        &app,
        "+14155550101",
        "STOP",
        Some("bm90IGEgc2lnbmF0dXJl".into()),
    )
    .await;
    assert_eq!(forged.status(), 403);
    let stop = inbound(&app, "+14155550101", "STOP", None).await;
    assert_eq!(stop.status(), 200);
    assert!(stop.text().await.expect("TwiML").contains("<Response>"));
    assert_eq!(
        app.get_json("/v1/crises").await["opt_outs"],
        json!({"email": 0, "phone": 1})
    );

    let id = app.declare("Payments are down").await;
    app.wait_until(&id, WAIT, |d| d["deliveries"]["sms"]["sent"] == 1)
        .await;
    let sent = sent_sms(&twilio).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].0, "+8801712345678",
        "only the number that did not opt out"
    );

    // START takes it back.
    assert_eq!(
        inbound(&app, "+14155550101", "START", None).await.status(),
        200
    );
    assert_eq!(
        app.get_json("/v1/crises").await["opt_outs"],
        json!({"email": 0, "phone": 0})
    );
}

#[tokio::test]
async fn unsubscribing_also_stops_messages_already_waiting_for_that_address() {
    use crate::support::free_port;
    // The mail server is down: every email waits to be retried.
    let app = spawn_app(TestConfig::new(free_port())).await;
    let id = app.declare("Payments are down").await;
    app.wait_until(&id, WAIT, |d| d["deliveries"]["email"]["retrying"] == 3)
        .await;

    let key = std::fs::read_to_string(app.dir.path().join("consent.key")).expect("key");
    let signer =
        crisisd::domain::consent::UnsubscribeSigner::new(crisisd::secret::Secret::new(key.trim()));
    let token = signer.token(
        "ada@example.com",
        crisisd::domain::consent::ConsentScope::All,
    );
    let path = format!("/v1/unsubscribe/{token}");
    assert_eq!(
        app.http
            .post(app.url(&path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .expect("POST")
            .status(),
        200
    );

    let detail = app
        .wait_until(&id, WAIT, |d| d["deliveries"]["email"]["dead"] == 1)
        .await;
    assert_eq!(detail["dead"][0]["destination"], "ada@example.com");
    assert_eq!(detail["dead"][0]["reason"], "the recipient opted out");
    let email = &detail["deliveries"]["email"];
    assert_eq!(
        email["retrying"].as_u64().unwrap() + email["in_flight"].as_u64().unwrap(),
        2
    );
}
