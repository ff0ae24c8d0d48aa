//! Inbound SMS through the whole daemon, from each provider as it
//! documents its webhook: STOP opts the number out and ends the messages
//! already queued for it, START takes it back, HELP is answered in the
//! reader's language, and a forged or unsigned message changes nothing.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{PUBLIC_URL, SmtpServer, TestApp, TestConfig, WAIT, spawn_app_in};

pub const ADA: &str = "+14155550101";
pub const RAHIM: &str = "+8801712345678";

/// Vonage's documented signature, written here independently of the
/// daemon's check: every parameter but `sig`, sorted by name, as
/// `&name=value` with `&` and `=` in values made `_`, HMAC-SHA256 keyed
/// with the signature secret, hex.
pub fn vonage_sign(secret: &str, params: &mut Vec<(String, String)>) {
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

/// A Vonage inbound message as Vonage sends it (without the `+`).
pub fn vonage_message(from: &str, text: &str, id: &str) -> Vec<(String, String)> {
    [
        ("msisdn", from.trim_start_matches('+')),
        ("to", "447700900000"),
        ("messageId", id),
        ("text", text),
        ("type", "unicode"),
        (
            "keyword",
            text.split_whitespace().next().unwrap_or_default(),
        ),
        ("message-timestamp", "2026-12-02 14:00:00"),
        ("timestamp", "1796220000"),
        ("nonce", "a1b2c3d4-0000-4000-8000-000000000000"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

/// POSTs Vonage's inbound message as JSON, as Vonage does for POST.
pub async fn vonage_inbound(app: &TestApp, params: &[(String, String)]) -> reqwest::Response {
    let object: serde_json::Map<String, Value> = params
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    app.http
        .post(app.url("/v1/inbound/vonage/vonage"))
        .json(&object)
        .send()
        .await
        .expect("POST")
}

/// A daemon with a Vonage channel named `vonage` and a gateway named
/// `gw`, both sending to `provider`, retrying slowly so that a failed
/// message stays queued.
pub async fn sms_providers_app(smtp: &SmtpServer, provider: &MockServer, extra: &str) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    };
    let api_secret = write("vonage-api-secret", "api-secret");
    let signature = write("vonage-signature-secret", "signature-secret");
    let gw_token = write("gw-inbound-token", "gateway-inbound-token");
    let mut config = TestConfig::new(smtp.port());
    config.retry_base = "30s";
    config.retry_max = "60s";
    config.extra = format!(
        "[[channels.vonage]]\nname = \"vonage\"\napi_key = \"key123\"\napi_secret_file = \"{api_secret}\"\n\
         from = \"ExampleCo\"\nbase_url = \"{uri}\"\nsignature_secret_file = \"{signature}\"\ntimeout = \"2s\"\n\
         [[channels.sms_gateway]]\nname = \"gw\"\nurl = \"{uri}/gw/send\"\n\
         headers = {{ \"Content-Type\" = \"application/json\" }}\n\
         body = '{{\"to\": {{{{ to|tojson }}}}, \"text\": {{{{ text|tojson }}}}}}'\n\
         inbound_token_file = \"{gw_token}\"\ntimeout = \"2s\"\n{extra}",
        uri = provider.uri(),
    );
    spawn_app_in(config, dir).await
}

/// Both providers refuse every send for now: messages wait to be retried.
async fn unavailable_provider() -> MockServer {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&provider)
        .await;
    provider
}

async fn opt_outs(app: &TestApp) -> Value {
    app.get_json("/v1/crises").await["opt_outs"].clone()
}

/// A gateway's inbound message: a form POST with the token in `token`
/// (or none).
async fn gateway_inbound(
    app: &TestApp,
    token: Option<&str>,
    from: &str,
    text: &str,
) -> reqwest::Response {
    let mut form = vec![("from", from), ("text", text), ("id", "gw-1")];
    if let Some(token) = token {
        form.push(("token", token));
    }
    app.http
        .post(app.url("/v1/inbound/gateway/gw"))
        .form(&form)
        .send()
        .await
        .expect("POST")
}

#[tokio::test]
async fn stop_by_vonage_opts_the_number_out_and_ends_its_queued_messages_and_a_forged_one_changes_nothing()
 {
    let smtp = SmtpServer::start().await;
    let provider = unavailable_provider().await;
    let app = sms_providers_app(&smtp, &provider, "").await;
    let id = app.declare("Payments are down").await;
    app.wait_until(&id, WAIT, |d| {
        d["deliveries"]["vonage"]["retrying"] == 2 && d["deliveries"]["gw"]["retrying"] == 2
    })
    .await;

    // Unsigned, signed with another secret, or changed after signing.
    let unsigned = vonage_message(ADA, "STOP", "0A0000001");
    let mut forged = unsigned.clone();
    vonage_sign("not-the-secret", &mut forged);
    let mut altered = vonage_message(RAHIM, "hello", "0A0000001");
    vonage_sign("signature-secret", &mut altered);
    for (k, v) in &mut altered {
        if k == "msisdn" {
            *v = ADA.trim_start_matches('+').to_owned();
        }
        if k == "text" {
            *v = "STOP".into();
        }
    }
    for refused in [&unsigned, &forged, &altered] {
        assert_eq!(vonage_inbound(&app, refused).await.status(), 403);
    }
    assert_eq!(opt_outs(&app).await, json!({"email": 0, "phone": 0}));
    let detail = app.get_json(&format!("/v1/crises/{id}")).await;
    assert_eq!(detail["deliveries"]["vonage"]["dead"], 0, "{detail:#}");

    let mut stop = vonage_message(ADA, "STOP", "0A0000002");
    vonage_sign("signature-secret", &mut stop);
    assert_eq!(vonage_inbound(&app, &stop).await.status(), 204);
    assert_eq!(opt_outs(&app).await, json!({"email": 0, "phone": 1}));
    // Ada's queued texts on both SMS channels end; Rahim's still wait.
    let detail = app
        .wait_until(&id, WAIT, |d| {
            d["deliveries"]["vonage"]["dead"] == 1 && d["deliveries"]["gw"]["dead"] == 1
        })
        .await;
    let dead: Vec<(&str, &str)> = detail["dead"]
        .as_array()
        .expect("dead")
        .iter()
        .map(|d| {
            (
                d["destination"].as_str().unwrap(),
                d["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        dead,
        [
            (ADA, "the recipient opted out"),
            (ADA, "the recipient opted out")
        ],
        "{detail:#}"
    );
    for channel in ["vonage", "gw"] {
        let counts = &detail["deliveries"][channel];
        assert_eq!(
            counts["retrying"].as_u64().unwrap() + counts["in_flight"].as_u64().unwrap(),
            1,
            "{channel}: {counts}"
        );
    }

    // Vonage signs GETs too, in the query; START takes the STOP back.
    let mut start = vonage_message(ADA, "Start", "0A0000003");
    vonage_sign("signature-secret", &mut start);
    let query = serde_urlencoded::to_string(&start).expect("query");
    let response = app
        .http
        .get(app.url(&format!("/v1/inbound/vonage/vonage?{query}")))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 204);
    assert_eq!(opt_outs(&app).await, json!({"email": 0, "phone": 0}));
}

#[tokio::test]
async fn stop_in_bengali_by_the_gateway_opts_out_help_is_answered_and_a_tokenless_message_changes_nothing()
 {
    let smtp = SmtpServer::start().await;
    let provider = unavailable_provider().await;
    let app = sms_providers_app(&smtp, &provider, "").await;
    let id = app.declare("Payments are down").await;
    app.wait_until(&id, WAIT, |d| d["deliveries"]["gw"]["retrying"] == 2)
        .await;

    for token in [None, Some("not-the-token"), Some("")] {
        let response = gateway_inbound(&app, token, RAHIM, "বন্ধ").await;
        assert_eq!(response.status(), 403, "{token:?}");
    }
    assert_eq!(opt_outs(&app).await, json!({"email": 0, "phone": 0}));

    // "Is the office closed?" carries the word for stop but is a question.
    let question =
        gateway_inbound(&app, Some("gateway-inbound-token"), RAHIM, "অফিস কি বন্ধ?").await;
    assert_eq!(question.status(), 204);
    assert_eq!(opt_outs(&app).await, json!({"email": 0, "phone": 0}));

    let stop = gateway_inbound(&app, Some("gateway-inbound-token"), RAHIM, " বন্ধ ").await;
    assert_eq!(stop.status(), 204);
    assert_eq!(opt_outs(&app).await, json!({"email": 0, "phone": 1}));
    let detail = app
        .wait_until(&id, WAIT, |d| d["deliveries"]["gw"]["dead"] == 1)
        .await;
    assert_eq!(detail["dead"][0]["destination"], RAHIM, "{detail:#}");
    assert_eq!(detail["dead"][0]["reason"], "the recipient opted out");

    // HELP in Esperanto is answered in Esperanto, in the response body,
    // which Kannel's sms-service sends back to the sender; the token may
    // come as a header too.
    let help = app
        .http
        .post(app.url("/v1/inbound/gateway/gw"))
        .header("X-Crisisd-Token", "gateway-inbound-token")
        .json(&json!({"from": "+4915112345678", "text": "helpu"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(help.status(), 200);
    let reply = help.text().await.expect("reply");
    assert!(
        reply.starts_with("Test Co.: krizaj mesaĝoj.")
            && reply.contains("https://status.example.com"),
        "{reply}"
    );

    let start = gateway_inbound(&app, Some("gateway-inbound-token"), RAHIM, "শুরু").await;
    assert_eq!(start.status(), 204);
    assert_eq!(opt_outs(&app).await, json!({"email": 0, "phone": 0}));
}

#[tokio::test]
async fn help_by_twilio_is_answered_with_twiml_in_the_words_language() {
    let smtp = SmtpServer::start().await;
    let twilio = MockServer::start().await;
    let app = crate::sms::sms_app(&smtp, &twilio).await;
    let params = vec![
        ("MessageSid".to_owned(), "SM900".to_owned()),
        ("From".to_owned(), RAHIM.to_owned()),
        ("To".to_owned(), "+15005550006".to_owned()),
        ("Body".to_owned(), "সাহায্য".to_owned()),
    ];
    let path = "/v1/inbound/twilio/sms";
    let signature = crisisd::channels::twilio_signature(
        "twilio-auth-token",
        &format!("{PUBLIC_URL}{path}"),
        &params,
    );
    let response = app
        .http
        .post(app.url(path))
        .header("X-Twilio-Signature", signature)
        .form(&params)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 200);
    let twiml = response.text().await.expect("TwiML");
    assert!(
        twiml.contains("<Response><Message>Test Co.: সংকটকালীন বার্তা।"),
        "{twiml}"
    );
    assert_eq!(opt_outs(&app).await, json!({"email": 0, "phone": 0}));
}

/// What the question config looks like in every test that asks one.
pub const QUESTION: &str = r#"
[answers.questions.initial]
open_for = "1h"
prompt = { en = "Reply 1 if you need help now, 2 if you are safe.", bn = "এখনই সাহায্য দরকার হলে 1, নিরাপদ থাকলে 2 লিখে উত্তর দিন।", eo = "Respondu 1 se vi bezonas helpon nun, 2 se vi estas sekura." }
choices = [
    { number = 1, urgent = true, label = { en = "Needs help now", bn = "এখনই সাহায্য দরকার", eo = "Bezonas helpon nun" } },
    { number = 2, label = { en = "Safe", bn = "নিরাপদ", eo = "Sekura" } },
]
"#;

/// A signed Twilio inbound message.
pub async fn twilio_reply(app: &TestApp, from: &str, body: &str, sid: &str) -> reqwest::Response {
    let params = vec![
        ("MessageSid".to_owned(), sid.to_owned()),
        ("From".to_owned(), from.to_owned()),
        ("To".to_owned(), "+15005550006".to_owned()),
        ("Body".to_owned(), body.to_owned()),
    ];
    let path = "/v1/inbound/twilio/sms";
    let signature = crisisd::channels::twilio_signature(
        "twilio-auth-token",
        &format!("{PUBLIC_URL}{path}"),
        &params,
    );
    app.http
        .post(app.url(path))
        .header("X-Twilio-Signature", signature)
        .form(&params)
        .send()
        .await
        .expect("POST")
}

#[tokio::test]
async fn a_reply_1_lands_on_the_callback_list_with_its_crisis_and_an_unknown_answer_is_kept_as_free_text()
 {
    use wiremock::matchers::path;
    let smtp = SmtpServer::start().await;
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(crate::sms::MESSAGES))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sid": "SM1"})))
        .mount(&twilio)
        .await;
    // The helpdesk fails once, then takes the ticket: posts are retried.
    let helpdesk = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&helpdesk)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201))
        .with_priority(2)
        .mount(&helpdesk)
        .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = TestConfig::new(smtp.port());
    config.extra = format!(
        "{}{QUESTION}\n[answers.helpdesk]\nurl = \"{}/tickets\"\ntimeout = \"2s\"\nattempts = 3\n",
        crate::sms::twilio_section(&twilio, dir.path(), 3),
        helpdesk.uri()
    );
    let app = spawn_app_in(config, dir).await;
    // A reply before any question is kept, as free text of no crisis.
    assert_eq!(
        twilio_reply(&app, ADA, "hello?", "SM-early").await.status(),
        200
    );

    let id = app.declare("Payments are down").await;
    app.wait_until(&id, WAIT, |d| d["deliveries"]["sms"]["sent"] == 2)
        .await;
    let sent = crate::sms::sent_sms(&twilio).await;
    let body_to = |to: &str| {
        sent.iter()
            .find(|(t, _)| t == to)
            .map(|(_, b)| b.clone())
            .expect("sent")
    };
    let english = body_to(ADA);
    assert!(
        english.ends_with("\nReply 1 if you need help now, 2 if you are safe."),
        "{english}"
    );
    let bengali = body_to(RAHIM);
    assert!(
        bengali.ends_with("\nএখনই সাহায্য দরকার হলে 1, নিরাপদ থাকলে 2 লিখে উত্তর দিন।"),
        "{bengali}"
    );

    // Ada needs help; Twilio retries the webhook once (same MessageSid).
    for _ in 0..2 {
        let response = twilio_reply(&app, ADA, " 1 ", "SM-ada").await;
        assert_eq!(response.status(), 200);
    }
    // Rahim answers in his own digits, then writes what he cannot choose.
    assert_eq!(
        twilio_reply(&app, RAHIM, "২", "SM-rahim-1").await.status(),
        200
    );
    assert_eq!(
        twilio_reply(&app, RAHIM, "3", "SM-rahim-2").await.status(),
        200
    );
    let flooded = "আমাদের রাস্তায় পানি উঠেছে";
    assert_eq!(
        twilio_reply(&app, RAHIM, flooded, "SM-rahim-3")
            .await
            .status(),
        200
    );

    let list = app.get_json("/v1/callbacks").await;
    let callbacks = list["callbacks"].as_array().expect("callbacks");
    assert_eq!(callbacks.len(), 1, "{list:#}");
    let ada = &callbacks[0];
    assert_eq!(ada["crisis_id"], id.as_str());
    assert_eq!(ada["address"], ADA);
    assert_eq!(ada["point"], "phone");
    assert_eq!(ada["locale"], "en");
    assert_eq!(ada["answer"], 1);
    assert_eq!(ada["label"], "Needs help now");

    let detail = app.get_json(&format!("/v1/crises/{id}")).await;
    let tallies: Vec<(Value, Value, u64)> = detail["answers"]
        .as_array()
        .expect("answers")
        .iter()
        .map(|t| {
            (
                t["answer"].clone(),
                t["label"].clone(),
                t["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        tallies,
        [
            (json!(1), json!("Needs help now"), 1),
            (json!(2), json!("Safe"), 1),
            (Value::Null, json!("free text"), 2),
        ],
        "{detail:#}"
    );

    let csv = app
        .http
        .get(app.url("/v1/callbacks.csv"))
        .bearer_auth(crate::support::TOKEN)
        .send()
        .await
        .expect("GET");
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = csv.text().await.expect("csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "received_at,crisis_id,point,address,locale,channel,question,answer,label,text"
    );
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(
        lines[1].contains(&format!(
            ",{id},phone,{ADA},en,sms,initial,1,Needs help now,"
        )),
        "{csv}"
    );
    assert!(
        app.http
            .get(app.url("/v1/callbacks"))
            .send()
            .await
            .expect("GET")
            .status()
            == 401,
        "the callback list needs a token"
    );

    // The console's crisis page shows the tallies and whom to call first,
    // in the staff member's language.
    crate::console::with_accounts(&app).await;
    let mut browser =
        crate::console::Browser::signed_in(&app, "viewer", crate::console::PASSWORD).await;
    let page = browser.get(&format!("/console/crises/{id}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for shown in [
        "Answers",
        "1: Needs help now",
        "2: Safe",
        "free text",
        "Call back first",
        ADA,
    ] {
        assert!(page.body.contains(shown), "{shown}: {}", page.body);
    }
    assert!(
        !page.body.contains(RAHIM),
        "Rahim is safe: not on the callback list"
    );
    let bengali = browser.get(&format!("/console/crises/{id}?lang=bn")).await;
    assert!(
        bengali.body.contains("1: এখনই সাহায্য দরকার"),
        "{}",
        bengali.body
    );

    // The helpdesk got Ada's ticket after one refusal.
    let deadline = tokio::time::Instant::now() + WAIT;
    let tickets = loop {
        let requests = helpdesk.received_requests().await.expect("recorded");
        if requests.len() >= 2 || tokio::time::Instant::now() > deadline {
            break requests;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(tickets.len(), 2, "one refused, one taken");
    let ticket: Value = serde_json::from_slice(&tickets[1].body).expect("JSON");
    assert_eq!(ticket["event"], "urgent_answer");
    assert_eq!(ticket["crisis_id"], id.as_str());
    assert_eq!(ticket["address"], ADA);
    assert_eq!(ticket["answer"], 1);
}
