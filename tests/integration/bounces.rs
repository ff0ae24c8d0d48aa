//! Email bounces through the whole daemon: each message leaves with its
//! own VERP return path; the relay's DSN for it lands in a real Maildir
//! and is read back onto its delivery; a hard bounce sends the reader the
//! SMS fallback exactly once; SendGrid's signed event webhook does the
//! same, and a forged one is refused and changes nothing.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use wiremock::MockServer;

use crate::fallback::{FALLBACK, READERS, twilio_answering};
use crate::sms::{sent_sms, twilio_section};
use crate::support::{Received, SmtpServer, TestApp, TestConfig, WAIT, spawn_app_in};

const RETURN_PATH: &str = "bounces+{token}@bounces.example.com";

/// The daemon with email (VERP return path, bounces read from
/// `dir/bounces`), Twilio SMS, and an email-then-SMS fallback.
async fn bounce_app(smtp: &SmtpServer, twilio: &MockServer, sendgrid_key: Option<&str>) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let secret = dir.path().join("verp-secret");
    std::fs::write(&secret, "verp-secret-0123456789").expect("write");
    let mut config = TestConfig::new(smtp.port());
    config.audience = READERS.to_owned();
    config.email_extra = format!(
        "return_path = \"{RETURN_PATH}\"\nreturn_path_secret_file = \"{}\"\n",
        secret.display()
    );
    let sendgrid = sendgrid_key
        .map(|key| format!("sendgrid_public_key = \"{key}\"\n"))
        .unwrap_or_default();
    config.extra = format!(
        "{}{FALLBACK}\n[receipts]\nmaildir = \"{}\"\nmaildir_interval = \"100ms\"\n{sendgrid}",
        twilio_section(twilio, dir.path(), 3),
        dir.path().join("bounces").display()
    );
    spawn_app_in(config, dir).await
}

fn addressed<'a>(messages: &'a [Received], to: &str) -> &'a Received {
    messages
        .iter()
        .find(|m| m.to.iter().any(|t| t == to))
        .unwrap_or_else(|| panic!("no message to {to}"))
}

/// The DSN a relay writes when `original` could not be delivered: to its
/// envelope sender, `multipart/report` with the recipient's status and
/// the original's headers.
fn dsn_for(original: &Received, action: &str, status: &str, diagnostic: &str) -> String {
    let recipient = &original.to[0];
    let raw = String::from_utf8_lossy(&original.raw);
    let headers = raw.split("\r\n\r\n").next().unwrap_or_default();
    format!(
        "Return-Path: <>\r\n\
         Delivered-To: {from}\r\n\
         From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n\
         To: {from}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"RPT\"\r\n\
         \r\n\
         This is a MIME-encapsulated message.\r\n\
         \r\n\
         --RPT\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         Your message could not be delivered to {recipient}.\r\n\
         \r\n\
         --RPT\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.example.net\r\n\
         Arrival-Date: Wed, 2 Dec 2026 10:00:00 +0000\r\n\
         \r\n\
         Final-Recipient: rfc822; {recipient}\r\n\
         Original-Recipient: rfc822;{recipient}\r\n\
         Action: {action}\r\n\
         Status: {status}\r\n\
         Remote-MTA: dns; mail.example.com\r\n\
         Diagnostic-Code: smtp; {diagnostic}\r\n\
         \r\n\
         --RPT\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n\
         {headers}\r\n\
         \r\n\
         --RPT--\r\n",
        from = original.from,
    )
}

/// Delivers `message` into the Maildir as a relay's local delivery does:
/// written in `tmp/`, then renamed into `new/`.
fn deliver(maildir: &Path, name: &str, message: &str) {
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(maildir.join(sub)).expect("maildir");
    }
    let tmp = maildir.join("tmp").join(name);
    std::fs::write(&tmp, message).expect("write");
    std::fs::rename(&tmp, maildir.join("new").join(name)).expect("rename");
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

async fn wait_for_names(dir: &Path, n: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let names = names_in(dir);
        if names.len() >= n {
            return names;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{names:?} in {}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_hard_bounce_in_the_maildir_sends_the_sms_fallback_exactly_once_and_a_soft_one_none() {
    let smtp = SmtpServer::start().await;
    let twilio = MockServer::start().await;
    twilio_answering(&twilio).await;
    let app = bounce_app(&smtp, &twilio, None).await;
    let maildir = app.dir.path().join("bounces");
    let id = app.declare("Payments are down").await;
    let messages = smtp.wait_for(3, WAIT).await;

    // Each message's envelope sender is its own signed return path.
    let ada = addressed(&messages, "ada@example.com");
    let rahim = addressed(&messages, "rahim@example.org");
    assert!(ada.from.starts_with("bounces+"), "{}", ada.from);
    assert!(ada.from.ends_with("@bounces.example.com"), "{}", ada.from);
    assert_ne!(ada.from, rahim.from);

    // Ada's mailbox does not exist (5.1.1); Rahim's is full for now
    // (4.2.2); a message that is no bounce arrives too.
    let hard = dsn_for(
        ada,
        "failed",
        "5.1.1",
        "550 5.1.1 <ada@example.com>: User unknown",
    );
    deliver(&maildir, "1700000000.M1P1.mx", &hard);
    deliver(
        &maildir,
        "1700000000.M2P1.mx",
        &dsn_for(rahim, "delayed", "4.2.2", "452 4.2.2 Mailbox full"),
    );
    deliver(
        &maildir,
        "1700000000.M3P1.mx",
        "From: someone@example.com\r\nTo: bounces@bounces.example.com\r\nSubject: hello\r\n\r\nNot a bounce.\r\n",
    );
    let done = wait_for_names(&maildir.join("cur"), 3).await;
    assert_eq!(
        done,
        [
            "1700000000.M1P1.mx:2,S",
            "1700000000.M2P1.mx:2,S",
            "1700000000.M3P1.mx:2,F"
        ],
        "every file is kept, moved to cur/, the stranger flagged"
    );
    assert!(names_in(&maildir.join("new")).is_empty());

    let detail = app
        .wait_until(&id, WAIT, |d| d["deliveries"]["sms"]["sent"] == 1)
        .await;
    let email = &detail["reach"]["email"];
    assert_eq!(email["bounced_hard"], 1, "{detail:#}");
    assert_eq!(email["bounced_soft"], 1, "{detail:#}");
    let sent = sent_sms(&twilio).await;
    assert_eq!(
        sent.iter().map(|(to, _)| to.as_str()).collect::<Vec<_>>(),
        ["+14155550101"],
        "only Ada's hard bounce falls back"
    );

    // The same bounce again (a relay retrying its delivery) sends nothing.
    deliver(&maildir, "1700000001.M4P1.mx", &hard);
    wait_for_names(&maildir.join("cur"), 4).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sent_sms(&twilio).await.len(), 1, "exactly once");
    let detail = app.get_json(&format!("/v1/crises/{id}")).await;
    assert_eq!(detail["reach"]["sms"]["fallbacks"], 1, "{detail:#}");

    // The hard bounce marked Ada's address bad: the next crisis texts her
    // first and holds her email behind the text; the others get email.
    let second = app.declare("Payments are down again").await;
    app.wait_until(&second, WAIT, |d| {
        d["deliveries"]["sms"]["sent"] == 1 && d["deliveries"]["email"]["sent"] == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let to_ada = smtp
        .accepted()
        .iter()
        .filter(|m| m.to.iter().any(|t| t == "ada@example.com"))
        .count();
    assert_eq!(
        to_ada, 1,
        "the second crisis sent no mail to the bad address"
    );
    let sent = sent_sms(&twilio).await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[1].0, "+14155550101");
}

/// A P-256 key pair: SendGrid's verification key as its dashboard shows
/// it (base64 DER), and a signer for the test to play SendGrid.
fn sendgrid_keys() -> (String, ring::signature::EcdsaKeyPair) {
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let public = BASE64.encode(rcgen::PublicKeyData::subject_public_key_info(&pair));
    let signer = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_ASN1_SIGNING,
        &pair.serialize_der(),
        &ring::rand::SystemRandom::new(),
    )
    .expect("signer");
    (public, signer)
}

async fn post_events(
    app: &TestApp,
    signer: &ring::signature::EcdsaKeyPair,
    events: &Value,
    tamper: bool,
) -> reqwest::Response {
    let body = format!("{events}\r\n");
    let timestamp = "1764669600";
    let signature = signer
        .sign(
            &ring::rand::SystemRandom::new(),
            format!("{timestamp}{body}").as_bytes(),
        )
        .expect("sign");
    let body = if tamper {
        body.replace("\"blocked\"", "\"bounce\"")
    } else {
        body
    };
    app.http
        .post(app.url("/v1/receipts/sendgrid/email"))
        .header("content-type", "application/json")
        .header(
            "X-Twilio-Email-Event-Webhook-Signature",
            BASE64.encode(signature.as_ref()),
        )
        .header("X-Twilio-Email-Event-Webhook-Timestamp", timestamp)
        .body(body)
        .send()
        .await
        .expect("POST")
}

#[tokio::test]
async fn sendgrid_bounce_events_are_checked_by_their_ecdsa_signature_and_a_forged_one_changes_nothing()
 {
    let smtp = SmtpServer::start().await;
    let twilio = MockServer::start().await;
    twilio_answering(&twilio).await;
    let (public, signer) = sendgrid_keys();
    let app = bounce_app(&smtp, &twilio, Some(&public)).await;
    let id = app.declare("Payments are down").await;
    let messages = smtp.wait_for(3, WAIT).await;
    let smtp_id = |to: &str| addressed(&messages, to).message_id();
    let event = |to: &str, kind: &str| {
        json!({
            "email": to, "timestamp": 1_764_669_600, "event": "bounce", "type": kind,
            "status": "5.1.1", "reason": "550 5.1.1 User unknown",
            "sg_event_id": "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
            "sg_message_id": "LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0",
            "smtp-id": smtp_id(to),
        })
    };

    // Signed for a block (soft), then changed into a hard bounce: refused.
    let forged = post_events(
        &app,
        &signer,
        &json!([event("ada@example.com", "blocked")]),
        true,
    )
    .await;
    assert_eq!(forged.status(), 403);
    let unsigned = app
        .http
        .post(app.url("/v1/receipts/sendgrid/email"))
        .header("content-type", "application/json")
        .body(json!([event("ada@example.com", "bounce")]).to_string())
        .send()
        .await
        .expect("POST");
    assert_eq!(unsigned.status(), 403);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let detail = app.get_json(&format!("/v1/crises/{id}")).await;
    assert_eq!(detail["reach"]["email"]["bounced_hard"], 0, "{detail:#}");
    assert_eq!(detail["reach"]["email"]["bounced_soft"], 0, "{detail:#}");
    assert!(sent_sms(&twilio).await.is_empty(), "nothing falls back");

    // Genuine: Ada's address bounces hard, Rahim's is blocked (soft).
    let genuine = post_events(
        &app,
        &signer,
        &json!([
            event("ada@example.com", "bounce"),
            event("rahim@example.org", "blocked")
        ]),
        false,
    )
    .await;
    assert!(genuine.status().is_success(), "{}", genuine.status());
    let detail = app
        .wait_until(&id, WAIT, |d| d["deliveries"]["sms"]["sent"] == 1)
        .await;
    assert_eq!(detail["reach"]["email"]["bounced_hard"], 1, "{detail:#}");
    assert_eq!(detail["reach"]["email"]["bounced_soft"], 1, "{detail:#}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = sent_sms(&twilio).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0, "+14155550101");
}
