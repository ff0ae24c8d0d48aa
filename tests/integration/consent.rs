//! Opt-outs: one-click unsubscribe from an email, STOP by SMS; both stick.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use crisisd::clock::ManualClock;
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::sms::{sent_sms, sms_app};
use crate::support::smtp::Received;
use crate::support::{PUBLIC_URL, SmtpServer, TestApp, TestConfig, WAIT, spawn_app};

/// The path of the List-Unsubscribe URL in an email.
fn unsubscribe_path(message: &Received) -> String {
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

/// A link's token (its path without the query).
fn token(path: &str) -> String {
    let path = path.trim_start_matches("/v1/unsubscribe/");
    path.split('?').next().expect("token").to_owned()
}

/// The message among `messages` addressed to `to`.
fn addressed<'a>(messages: &'a [Received], to: &str) -> &'a Received {
    messages
        .iter()
        .find(|m| m.to == [to])
        .unwrap_or_else(|| panic!("no message to {to}"))
}

/// Who `messages` went to, sorted.
fn recipients(messages: &[Received]) -> Vec<String> {
    let mut to: Vec<String> = messages.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    to
}

/// A form POST to `path`, as a browser or a mail program sends it.
async fn post_form(app: &TestApp, path: &str, body: &str) -> reqwest::Response {
    app.http
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned())
        .send()
        .await
        .expect("POST")
}

/// RFC 8058's one click, as a mail program sends it.
async fn one_click(app: &TestApp, path: &str) -> reqwest::Response {
    post_form(app, path, "List-Unsubscribe=One-Click").await
}

async fn page_text(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 200);
    response.text().await.expect("page")
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
    // Ada's genuine signature on Rahim's address, or on another scope.
    let genuine = token(&unsubscribe_path(addressed(&messages, "ada@example.com")));
    let parts: Vec<&str> = genuine.split('.').collect();
    assert_eq!(parts[1], "all", "an announcement's link stops everything");
    let (address, signature) = (parts[0], parts[2]);
    let victim = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("rahim@example.org");
    for forged in [
        format!("{victim}.all.{signature}"),
        format!("{victim}.{signature}"),
        format!("{address}.follow_ups.{signature}"),
        format!("{address}.{signature}"),
        format!("{victim}.all.AAAA"),
        "not-a-token".to_owned(),
    ] {
        let path = format!("/v1/unsubscribe/{forged}?lang=bn");
        let page = app.http.get(app.url(&path)).send().await.expect("GET");
        assert_eq!(page.status(), 403, "{forged}");
        let page = page.text().await.expect("page");
        assert!(
            page.contains("এই লিংকটি সঠিক নয়"),
            "in the reader's language: {page}"
        );
        assert!(
            !page.contains("rahim@example.org") && !page.contains("<form"),
            "{page}"
        );
        for body in [
            "List-Unsubscribe=One-Click",
            "choice=nothing",
            "choice=everything",
        ] {
            assert_eq!(
                post_form(&app, &path, body).await.status(),
                403,
                "{forged} {body}"
            );
        }
    }
    let list = app.get_json("/v1/crises").await;
    assert_eq!(list["opt_outs"], json!({"email": 0, "phone": 0}));
    app.declare("Storm warning").await;
    assert_eq!(
        smtp.wait_for(6, WAIT).await.len(),
        6,
        "everyone still gets it"
    );
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

/// The page's words in Bengali and Esperanto (`[consent]` of their
/// `strings.toml`), none of the English ones.
const BN: [&str; 7] = [
    "Test Co. থেকে আপনার সংকটকালীন ইমেইল",
    "আমরা আপনাকে কী পাঠাব?",
    "সবকিছু: সংকটের ঘোষণা ও পরবর্তী বার্তা",
    "শুধু সংকটের ঘোষণা (প্রথম বিজ্ঞপ্তি, প্রতিটি হালনাগাদ, পরিস্থিতি স্বাভাবিক হওয়ার বার্তা ও সংশোধনী), পরবর্তী বার্তা নয়",
    "কিছুই না, সংকটের ঘোষণাও না",
    "তাহলে জরুরি অবস্থায় আমাদের কোনো ইমেইল আপনার কাছে পৌঁছাবে না।",
    "আমার পছন্দ সংরক্ষণ করুন",
];
const EO: [&str; 7] = [
    "Viaj krizaj retleteroj de Test Co.",
    "Kion ni sendu al vi?",
    "Ĉion: krizajn anoncojn kaj postajn mesaĝojn",
    "Nur krizajn anoncojn (la unuan averton, ĉiun ĝisdatigon, la sciigon ke ĉio estas en ordo kaj korektojn), neniujn postajn mesaĝojn",
    "Nenion, eĉ ne krizajn anoncojn",
    "Tiam neniu retletero de ni atingos vin dum krizo.",
    "Konservi mian elekton",
];
const ENGLISH: [&str; 4] = [
    "What should we send you?",
    "Save my choice",
    "Unsubscribe",
    "crisis announcements",
];

#[tokio::test]
async fn the_unsubscribe_page_speaks_bengali_and_esperanto_to_their_readers() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    app.declare("Payments are down").await;
    let messages = smtp.wait_for(3, WAIT).await;
    for (to, lang, words, now) in [
        (
            "rahim@example.org",
            "bn",
            BN,
            "আপনি এখন সংকটের ঘোষণা ও পরবর্তী বার্তা দুটোই পান।",
        ),
        (
            "ludoviko@example.net",
            "eo",
            EO,
            "Vi nun ricevas krizajn anoncojn kaj postajn mesaĝojn.",
        ),
    ] {
        let path = unsubscribe_path(addressed(&messages, to));
        assert!(path.ends_with(&format!("?lang={lang}")), "{path}");
        let response = app.http.get(app.url(&path)).send().await.expect("GET");
        let headers = response.headers().clone();
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert!(headers.get("set-cookie").is_none());
        let page = page_text(response).await;
        assert!(page.contains(&format!("<html lang=\"{lang}\">")), "{page}");
        assert!(page.contains(&format!("<strong>{to}</strong>")), "{page}");
        for word in words.iter().chain([&now]) {
            assert!(page.contains(word), "{lang}: `{word}` missing from {page}");
        }
        for word in ENGLISH {
            assert!(!page.contains(word), "{lang}: English `{word}` in {page}");
        }
        assert!(
            page.contains("value=\"everything\" checked"),
            "what they get now is chosen: {page}"
        );
    }
}

/// A daemon on a clock at `declared` whose plan sends one follow-up, by
/// email, an hour after each declaration.
async fn with_follow_ups(declared: DateTime<Utc>) -> (SmtpServer, Arc<ManualClock>, TestApp) {
    let smtp = SmtpServer::start().await;
    let clock = Arc::new(ManualClock::new(declared));
    let mut config = TestConfig::new(smtp.port());
    config.clock = Some(clock.clone());
    config.extra = format!(
        "{}\n{}",
        crate::follow_ups::RESOURCES,
        r#"
[follow_ups]
poll_interval = "20ms"

[[follow_ups.plans]]
name = "default"

[[follow_ups.plans.steps]]
name = "help"
after = "1h"
template = "resources"
channels = ["email"]
"#
    );
    let app = spawn_app(config).await;
    (smtp, clock, app)
}

/// Declares `title` and waits until its emails are sent; what arrived.
async fn declare_and_receive(
    app: &TestApp,
    smtp: &SmtpServer,
    title: &str,
    total: usize,
) -> (String, Vec<Received>) {
    let before = smtp.accepted().len();
    let id = app.declare(title).await;
    let expected = total - before;
    app.wait_until(&id, WAIT, |d| d["deliveries"]["email"]["sent"] == expected)
        .await;
    (id, smtp.wait_for(total, WAIT).await[before..].to_vec())
}

/// What arrives when the clock reaches `at` (a follow-up falling due):
/// `total` messages in all, and then nothing more for a while.
async fn at_time(
    clock: &ManualClock,
    smtp: &SmtpServer,
    at: DateTime<Utc>,
    total: usize,
) -> Vec<Received> {
    let before = smtp.accepted().len();
    clock.set(at);
    let received = smtp.wait_for(total, WAIT).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(smtp.accepted().len(), total, "nothing more");
    received[before..].to_vec()
}

fn utc(h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, h, mi, 0)
        .single()
        .expect("time")
}

#[tokio::test]
async fn a_one_click_from_a_follow_up_stops_follow_ups_only_and_the_next_crisis_is_still_announced()
{
    let (smtp, clock, app) = with_follow_ups(utc(10, 0)).await;
    let (first, _) = declare_and_receive(&app, &smtp, "Payments are down", 3).await;
    let follow_ups = at_time(&clock, &smtp, utc(11, 0), 6).await;
    app.wait_until(&first, WAIT, |d| d["deliveries"]["email"]["sent"] == 6)
        .await;
    let ada = addressed(&follow_ups, "ada@example.com");
    assert!(
        ada.subject().starts_with("Help while we fix it"),
        "{}",
        ada.subject()
    );
    assert_eq!(
        ada.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    let path = unsubscribe_path(ada);
    assert!(token(&path).contains(".follow_ups."), "{path}");
    assert!(
        ada.text()
            .contains("Stop these follow-ups (crisis announcements still come)")
    );

    let page = page_text(one_click(&app, &path).await).await;
    assert!(page.contains("Your choice is saved."), "{page}");
    assert!(
        page.contains("You now get crisis announcements only, no follow-ups."),
        "{page}"
    );

    // The next crisis: its announcement reaches Ada, its follow-up does not.
    let (_, announced) = declare_and_receive(&app, &smtp, "Storm warning", 9).await;
    assert_eq!(
        recipients(&announced),
        [
            "ada@example.com",
            "ludoviko@example.net",
            "rahim@example.org"
        ]
    );
    let follow_ups = at_time(&clock, &smtp, utc(12, 0), 11).await;
    assert_eq!(
        recipients(&follow_ups),
        ["ludoviko@example.net", "rahim@example.org"]
    );
    assert_eq!(
        app.get_json("/v1/crises").await["opt_outs"],
        json!({"email": 1, "phone": 0})
    );
}

#[tokio::test]
async fn stopping_everything_on_the_page_lets_nothing_through_until_the_reader_comes_back() {
    let (smtp, clock, app) = with_follow_ups(utc(10, 0)).await;
    let (_, first) = declare_and_receive(&app, &smtp, "Payments are down", 3).await;
    let path = unsubscribe_path(addressed(&first, "rahim@example.org"));

    let page = page_text(post_form(&app, &path, "choice=nothing").await).await;
    assert!(page.contains("আপনার পছন্দ সংরক্ষণ করা হয়েছে।"), "{page}");
    assert!(
        page.contains("আপনি এখন আমাদের কাছ থেকে কোনো সংকটকালীন ইমেইল পান না।"),
        "{page}"
    );
    assert!(page.contains("value=\"nothing\" checked"), "{page}");

    // Neither the follow-up nor the next crisis reaches Rahim.
    let follow_ups = at_time(&clock, &smtp, utc(11, 0), 5).await;
    assert_eq!(
        recipients(&follow_ups),
        ["ada@example.com", "ludoviko@example.net"]
    );
    let (_, second) = declare_and_receive(&app, &smtp, "Storm warning", 7).await;
    assert_eq!(
        recipients(&second),
        ["ada@example.com", "ludoviko@example.net"]
    );

    // The way back: everything again, from the same link.
    let page = page_text(post_form(&app, &path, "choice=everything").await).await;
    assert!(
        page.contains("আপনি এখন সংকটের ঘোষণা ও পরবর্তী বার্তা দুটোই পান।"),
        "{page}"
    );
    assert_eq!(
        app.get_json("/v1/crises").await["opt_outs"],
        json!({"email": 0, "phone": 0})
    );
    let (_, third) = declare_and_receive(&app, &smtp, "Flood warning", 10).await;
    assert_eq!(
        recipients(&third),
        [
            "ada@example.com",
            "ludoviko@example.net",
            "rahim@example.org"
        ]
    );
}

#[tokio::test]
async fn the_one_click_post_of_rfc_8058_works_in_both_encodings_and_nothing_else_changes_consent() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    app.declare("Payments are down").await;
    let messages = smtp.wait_for(3, WAIT).await;
    let opt_outs = || async { app.get_json("/v1/crises").await["opt_outs"]["email"].clone() };

    // Not the one click nor a choice: refused, nothing recorded.
    let ada = unsubscribe_path(addressed(&messages, "ada@example.com"));
    for body in ["", "List-Unsubscribe=Two-Clicks", "choice=maybe", "%zz"] {
        let response = post_form(&app, &ada, body).await;
        assert_eq!(response.status(), 400, "`{body}`");
        let page = response.text().await.expect("page");
        assert!(
            page.contains("That is not one of the choices on this page."),
            "{page}"
        );
    }
    assert_eq!(opt_outs().await, 0);

    // multipart/form-data, which RFC 8058 says a mail program should send.
    let rahim = unsubscribe_path(addressed(&messages, "rahim@example.org"));
    let body = "--b0undary\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n\
                One-Click\r\n--b0undary--\r\n";
    let response = app
        .http
        .post(app.url(&rahim))
        .header("content-type", "multipart/form-data; boundary=b0undary")
        .body(body)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 200, "no redirect, no confirmation step");
    assert!(response.headers().get("set-cookie").is_none());
    assert!(response.headers().get("location").is_none());
    assert_eq!(opt_outs().await, 1);
    // application/x-www-form-urlencoded, the other it may send.
    let ludoviko = unsubscribe_path(addressed(&messages, "ludoviko@example.net"));
    assert_eq!(one_click(&app, &ludoviko).await.status(), 200);
    assert_eq!(opt_outs().await, 2);
    // Again: still recorded once, still 200.
    assert_eq!(one_click(&app, &ludoviko).await.status(), 200);
    assert_eq!(opt_outs().await, 2);

    let page = page_text(app.http.get(app.url(&rahim)).send().await.expect("GET")).await;
    assert!(
        page.contains("আপনি এখন আমাদের কাছ থেকে কোনো সংকটকালীন ইমেইল পান না।"),
        "an announcement's one click stopped everything: {page}"
    );
    app.declare("Storm warning").await;
    let later = smtp.wait_for(4, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(recipients(&smtp.accepted()[3..]), ["ada@example.com"]);
    assert_eq!(later.len(), 4);
}

#[tokio::test]
async fn on_a_phone_the_bengali_preference_page_is_accessible_and_its_choice_is_saved() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    app.declare("Payments are down").await;
    let messages = smtp.wait_for(3, WAIT).await;
    let path = unsubscribe_path(addressed(&messages, "rahim@example.org"));
    let shots =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots/consent-bn");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let seen = crate::support::run_browser_script(
        "consent.js",
        &json!({
            "url": app.url(&path),
            "choice": "announcements",
            "viewport": [390, 844],
            "shots": shots,
        }),
    )
    .await;
    for (stage, view) in [
        ("the page", &seen["before"]),
        ("after saving", &seen["after"]),
    ] {
        assert_eq!(view["status"], 200, "{stage}: {seen:#}");
        assert_eq!(view["lang"], "bn", "{stage}");
        assert!(
            view["scrollWidth"].as_f64().unwrap() <= 390.0,
            "{stage} runs off the side: {seen:#}"
        );
        assert_eq!(
            view["violations"],
            json!([]),
            "{stage}: axe-core: {:#}",
            view["violations"]
        );
    }
    let heading = seen["before"]["heading"].as_str().expect("heading");
    assert_eq!(heading, "Test Co. থেকে আপনার সংকটকালীন ইমেইল");
    assert!(
        seen["before"]["saveBottom"].as_f64().unwrap() <= 844.0,
        "the save button is on the first screen: {seen:#}"
    );
    assert_eq!(seen["after"]["saved"], "আপনার পছন্দ সংরক্ষণ করা হয়েছে।");
    assert_eq!(seen["after"]["checked"], "announcements");
    let page = page_text(app.http.get(app.url(&path)).send().await.expect("GET")).await;
    assert!(
        page.contains("আপনি এখন শুধু সংকটের ঘোষণা পান, পরবর্তী বার্তা নয়।"),
        "{page}"
    );
}
