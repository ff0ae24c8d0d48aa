//! Delivery receipts through the whole daemon: SMS sent to Twilio and
//! Vonage APIs on loopback, their receipts posted back in each provider's
//! format and signature, the outcome read back from the crisis API.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::sms::{MESSAGES, SID};
use crate::support::{PUBLIC_URL, SmtpServer, TestApp, TestConfig, WAIT, spawn_app_in};

const ADA: &str = "+14155550101";
const RAHIM: &str = "+8801712345678";

/// The provider's message id for a number: one per reader, so a receipt
/// names exactly one delivery.
pub fn sid_for(to: &str) -> String {
    format!("SM{}", to.trim_start_matches('+'))
}

fn form_of(request: &Request) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(&request.body).expect("form")
}

fn field(form: &[(String, String)], name: &str) -> Option<String> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

async fn twilio_app(smtp: &SmtpServer, twilio: &MockServer) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = TestConfig::new(smtp.port());
    config.extra = format!(
        "{}status_callback = \"{PUBLIC_URL}/v1/receipts/twilio/sms\"\n",
        crate::sms::twilio_section(twilio, dir.path(), 3)
    );
    spawn_app_in(config, dir).await
}

pub async fn twilio_receipt(
    app: &TestApp,
    params: &[(&str, &str)],
    signature: Option<&str>,
) -> reqwest::Response {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let path = "/v1/receipts/twilio/sms";
    let signature = signature.map_or_else(
        || {
            crisisd::channels::twilio_signature(
                "twilio-auth-token",
                &format!("{PUBLIC_URL}{path}"),
                &params,
            )
        },
        str::to_owned,
    );
    app.http
        .post(app.url(path))
        .header("X-Twilio-Signature", signature)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(&params).expect("form"))
        .send()
        .await
        .expect("POST")
}

async fn wait_for_sent(app: &TestApp, id: &str, channel: &'static str, n: u64) -> Value {
    app.wait_until(id, WAIT, move |d| d["deliveries"][channel]["sent"] == n)
        .await
}

#[tokio::test]
async fn twilio_status_callbacks_record_delivered_and_undelivered_and_forged_ones_change_nothing() {
    let smtp = SmtpServer::start().await;
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(|request: &Request| {
            let to = field(&form_of(request), "To").unwrap_or_default();
            ResponseTemplate::new(201)
                .set_body_json(json!({"sid": sid_for(&to), "status": "queued"}))
        })
        .mount(&twilio)
        .await;
    let app = twilio_app(&smtp, &twilio).await;
    let id = app.declare("Payments are down").await;
    wait_for_sent(&app, &id, "sms", 2).await;
    // Only the sends: the health check also calls Twilio.
    for request in twilio
        .received_requests()
        .await
        .expect("recorded")
        .iter()
        .filter(|r| r.url.path() == MESSAGES)
    {
        assert_eq!(
            field(&form_of(request), "StatusCallback").as_deref(),
            Some("https://crisis.example.com/v1/receipts/twilio/sms"),
            "each send asks Twilio for receipts"
        );
    }

    let ada = sid_for(ADA);
    let rahim = sid_for(RAHIM);
    // A forged receipt is refused and changes nothing.
    let forged = twilio_receipt(
        &app,
        &[
            ("MessageSid", &ada),
            ("AccountSid", SID),
            ("MessageStatus", "undelivered"),
            ("ErrorCode", "30005"),
        ],
        Some("bm90IGEgc2lnbmF0dXJl"),
    )
    .await;
    assert_eq!(forged.status(), 403);
    let unsigned = app
        .http
        .post(app.url("/v1/receipts/twilio/sms"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("MessageSid={ada}&MessageStatus=delivered"))
        .send()
        .await
        .expect("POST");
    assert_eq!(unsigned.status(), 403);
    let detail = app.get_json(&format!("/v1/crises/{id}")).await;
    assert_eq!(detail["reach"]["sms"]["delivered"], 0, "{detail:#}");
    assert_eq!(detail["reach"]["sms"]["unconfirmed"], 2, "{detail:#}");

    // On the way is no outcome; then Ada's arrives and Rahim's number is
    // unknown to the carrier (30005, permanent).
    for (sid, status, error) in [
        (&ada, "sent", None),
        (&ada, "delivered", None),
        (&rahim, "undelivered", Some("30005")),
    ] {
        let mut params = vec![
            ("MessageSid", sid.as_str()),
            ("AccountSid", SID),
            ("MessageStatus", status),
        ];
        if let Some(error) = error {
            params.push(("ErrorCode", error));
        }
        let answer = twilio_receipt(&app, &params, None).await;
        assert!(answer.status().is_success(), "{}", answer.status());
    }
    // A late `sent` and a repeated `failed` never overwrite a final state;
    // an unknown sid is ignored, not retried.
    for (sid, status) in [
        (&ada, "sent"),
        (&ada, "failed"),
        (&"SMunknown".to_owned(), "delivered"),
    ] {
        let answer = twilio_receipt(
            &app,
            &[
                ("MessageSid", sid),
                ("AccountSid", SID),
                ("MessageStatus", status),
            ],
            None,
        )
        .await;
        assert!(answer.status().is_success(), "{}", answer.status());
    }
    let detail = app.get_json(&format!("/v1/crises/{id}")).await;
    let sms = &detail["reach"]["sms"];
    assert_eq!(sms["delivered"], 1, "{detail:#}");
    assert_eq!(sms["undelivered"], 1, "{detail:#}");
    assert_eq!(sms["unconfirmed"], 0, "{detail:#}");
    assert_eq!(sms["reached"], 1, "{detail:#}");
    assert_eq!(sms["not_reached"], 1, "{detail:#}");

    // Not asserted yet: that the next crisis skips Rahim's number. It
    // does not today (the second crisis texted both numbers when this was
    // tried): whether the receipt fails to mark the number bad or the plan
    // fails to skip it is open, for the next session.
}

/// Vonage's documented signature: every parameter but `sig`, sorted by
/// name, as `&name=value` with `&` and `=` in values made `_`, HMAC-SHA256
/// keyed with the signature secret, hex. Written here independently of
/// the daemon's check.
fn vonage_sign(secret: &str, params: &mut Vec<(String, String)>) {
    let mut sorted = params.clone();
    sorted.sort();
    let text: String = sorted
        .iter()
        .map(|(k, v)| format!("&{k}={}", v.replace(['&', '='], "_")))
        .collect();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(text.as_bytes());
    params.push(("sig".into(), hex::encode(mac.finalize().into_bytes())));
}

async fn vonage_app(smtp: &SmtpServer, vonage: &MockServer) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let api_secret = dir.path().join("vonage-api-secret");
    let signature_secret = dir.path().join("vonage-signature-secret");
    std::fs::write(&api_secret, "api-secret").expect("write");
    std::fs::write(&signature_secret, "signature-secret").expect("write");
    let mut config = TestConfig::new(smtp.port());
    config.extra = format!(
        "[[channels.vonage]]\nname = \"vonage\"\napi_key = \"key123\"\napi_secret_file = \"{}\"\n\
         from = \"ExampleCo\"\nbase_url = \"{}\"\nstatus_callback = \"{PUBLIC_URL}/v1/receipts/vonage/vonage\"\n\
         signature_secret_file = \"{}\"\ntimeout = \"2s\"\n",
        api_secret.display(),
        vonage.uri(),
        signature_secret.display()
    );
    spawn_app_in(config, dir).await
}

#[tokio::test]
async fn vonage_delivery_receipts_are_checked_by_signature_and_found_by_client_ref_or_message_id() {
    let smtp = SmtpServer::start().await;
    let vonage = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/sms/json"))
        .respond_with(|request: &Request| {
            let to = field(&form_of(request), "to").unwrap_or_default();
            ResponseTemplate::new(200).set_body_json(json!({
                "message-count": "1",
                "messages": [{"to": to, "status": "0", "message-id": sid_for(&to)}]
            }))
        })
        .mount(&vonage)
        .await;
    let app = vonage_app(&smtp, &vonage).await;
    let id = app.declare("Payments are down").await;
    wait_for_sent(&app, &id, "vonage", 2).await;
    let sends: Vec<Vec<(String, String)>> = vonage
        .received_requests()
        .await
        .expect("recorded")
        .iter()
        .filter(|r| r.url.path() == "/sms/json")
        .map(form_of)
        .collect();
    assert_eq!(sends.len(), 2);
    let rahim_ref = sends
        .iter()
        .find(|f| field(f, "to").is_some_and(|to| to.ends_with("8801712345678")))
        .and_then(|f| field(f, "client-ref"))
        .expect("our delivery id goes as client-ref");
    for form in &sends {
        assert_eq!(field(form, "status-report-req").as_deref(), Some("1"));
    }

    let receipt = |to: &str, status: &str, err: &str, client_ref: Option<&str>| {
        let mut params: Vec<(String, String)> = vec![
            ("msisdn".into(), to.trim_start_matches('+').into()),
            ("to".into(), "ExampleCo".into()),
            ("network-code".into(), "12345".into()),
            ("messageId".into(), sid_for(to)),
            ("price".into(), "0.03330000".into()),
            ("status".into(), status.into()),
            ("scts".into(), "2001011400".into()),
            ("err-code".into(), err.into()),
            ("api-key".into(), "key123".into()),
            ("message-timestamp".into(), "2020-01-01 12:00:00".into()),
            ("timestamp".into(), "1577880000".into()),
            ("nonce".into(), "a1b2c3".into()),
        ];
        if let Some(r) = client_ref {
            params.push(("client-ref".into(), r.into()));
        }
        params
    };
    let post = |params: Vec<(String, String)>| {
        app.http
            .post(app.url("/v1/receipts/vonage/vonage"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(&params).expect("form"))
            .send()
    };

    // Unsigned, and signed with the wrong secret: refused, nothing changes.
    let unsigned = post(receipt(RAHIM, "failed", "9", Some(&rahim_ref)))
        .await
        .expect("POST");
    assert_eq!(unsigned.status(), 403);
    let mut wrong = receipt(RAHIM, "failed", "9", Some(&rahim_ref));
    vonage_sign("not-the-secret", &mut wrong);
    assert_eq!(post(wrong).await.expect("POST").status(), 403);
    let detail = app.get_json(&format!("/v1/crises/{id}")).await;
    assert_eq!(detail["reach"]["vonage"]["unconfirmed"], 2, "{detail:#}");

    // Ada's by Vonage's id alone, as a GET with a query string; Rahim's
    // by our client-ref, in a form POST: illegal number (err-code 9).
    let mut ada = receipt(ADA, "delivered", "0", None);
    vonage_sign("signature-secret", &mut ada);
    let answer = app
        .http
        .get(format!(
            "{}?{}",
            app.url("/v1/receipts/vonage/vonage"),
            serde_urlencoded::to_string(&ada).expect("query")
        ))
        .send()
        .await
        .expect("GET");
    assert!(answer.status().is_success(), "{}", answer.status());
    let mut rahim = receipt(RAHIM, "failed", "9", Some(&rahim_ref));
    vonage_sign("signature-secret", &mut rahim);
    let answer = post(rahim).await.expect("POST");
    assert!(answer.status().is_success(), "{}", answer.status());
    // Vonage retries anything but 2xx: an unknown id is answered 2xx.
    let mut unknown = receipt("+15550000000", "delivered", "0", None);
    vonage_sign("signature-secret", &mut unknown);
    assert!(post(unknown).await.expect("POST").status().is_success());

    let detail = app.get_json(&format!("/v1/crises/{id}")).await;
    let reach = &detail["reach"]["vonage"];
    assert_eq!(reach["delivered"], 1, "{detail:#}");
    assert_eq!(reach["undelivered"], 1, "{detail:#}");
    assert_eq!(reach["not_reached"], 1, "{detail:#}");

    // Not asserted yet: that the next crisis skips Rahim's number. It
    // does not today (the second crisis texted both numbers when this was
    // tried): whether the receipt fails to mark the number bad or the plan
    // fails to skip it is open, for the next session.
}

/// The generic gateway's dlr URL as the gateway would call it: our public
/// URL swapped for the daemon's address, the outcome in the query.
fn dlr_call(app: &TestApp, dlr_url: &str, query: &str) -> String {
    let path = dlr_url
        .strip_prefix(PUBLIC_URL)
        .expect("the dlr URL is under our public URL");
    format!("{}{path}?{query}", app.base)
}

#[tokio::test]
async fn gateway_delivery_reports_reach_their_delivery_by_the_signed_url_and_a_forged_one_changes_nothing()
 {
    let smtp = SmtpServer::start().await;
    let gateway = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/cgi-bin/sendsms"))
        .respond_with(ResponseTemplate::new(202).set_body_string("0: Accepted for delivery"))
        .mount(&gateway)
        .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let secret = dir.path().join("dlr-secret");
    std::fs::write(&secret, "dlr-secret-0123456789").expect("write");
    let mut config = TestConfig::new(smtp.port());
    config.extra = format!(
        "[[channels.sms_gateway]]\nname = \"sms\"\nmethod = \"GET\"\n\
         url = \"{}/cgi-bin/sendsms?username=crisisd&to={{{{ to|urlencode }}}}&text={{{{ text|urlencode }}}}&dlr-mask=3&dlr-url={{{{ dlr_url|urlencode }}}}\"\n\
         dlr_base_url = \"{PUBLIC_URL}/v1/receipts/gateway/sms\"\ndlr_secret_file = \"{}\"\n\
         success = {{ contains = \"Accepted for delivery\" }}\n",
        gateway.uri(),
        secret.display()
    );
    let app = spawn_app_in(config, dir).await;
    let id = app.declare("Payments are down").await;
    wait_for_sent(&app, &id, "sms", 2).await;
    // Each send told the gateway where to report: its own signed URL.
    let dlr_urls: Vec<(String, String)> = gateway
        .received_requests()
        .await
        .expect("recorded")
        .iter()
        .filter(|r| r.url.path() == "/cgi-bin/sendsms")
        .filter_map(|r| {
            let query: Vec<(String, String)> =
                serde_urlencoded::from_str(r.url.query().unwrap_or_default()).expect("query");
            Some((field(&query, "to")?, field(&query, "dlr-url")?))
        })
        .collect();
    assert_eq!(dlr_urls.len(), 2, "{dlr_urls:?}");
    let url_of = |to: &str| {
        dlr_urls
            .iter()
            .find(|(t, _)| t == to)
            .map(|(_, url)| url.clone())
            .expect("a dlr URL")
    };
    let (ada, rahim) = (url_of(ADA), url_of(RAHIM));
    assert_ne!(ada, rahim);

    // A token made up, or Ada's token on Rahim's delivery: refused.
    let forged = format!("{}/forgedtoken", ada.rsplit_once('/').expect("token").0);
    let rahim_delivery = rahim.rsplit('/').nth(1).expect("delivery");
    let ada_token = ada.rsplit('/').next().expect("token");
    let swapped = format!("{PUBLIC_URL}/v1/receipts/gateway/sms/{rahim_delivery}/{ada_token}");
    for url in [forged, swapped] {
        let answer = app
            .http
            .get(dlr_call(&app, &url, "status=16"))
            .send()
            .await
            .expect("GET");
        assert_eq!(answer.status(), 403, "{url}");
    }
    let detail = app.get_json(&format!("/v1/crises/{id}")).await;
    assert_eq!(detail["reach"]["sms"]["unconfirmed"], 2, "{detail:#}");

    // Kannel's %d: 8 (submitted to the SMSC) is no outcome, 1 delivered,
    // 16 rejected by the SMSC; then a late 8 and a repeat change nothing.
    for (url, query) in [
        (&ada, "status=8"),
        (&ada, "status=1"),
        (&rahim, "status=16&reason=Unknown%20subscriber"),
        (&ada, "status=8"),
        (&rahim, "status=1"),
    ] {
        let answer = app
            .http
            .get(dlr_call(&app, url, query))
            .send()
            .await
            .expect("GET");
        assert!(answer.status().is_success(), "{query}: {}", answer.status());
    }
    let detail = app.get_json(&format!("/v1/crises/{id}")).await;
    let sms = &detail["reach"]["sms"];
    assert_eq!(sms["delivered"], 1, "{detail:#}");
    assert_eq!(sms["undelivered"], 1, "{detail:#}");
    assert_eq!(sms["unconfirmed"], 0, "{detail:#}");
}
