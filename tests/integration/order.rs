//! Per reader and channel, the messages of one crisis go out in order: a
//! relay that greylists (451 on the first RCPT) holds back an update and
//! the all-clear too, and the all-clear cancels what it overtakes.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{SmtpServer, TestApp, TestConfig, WAIT, smtp::Received, spawn_app};

const READERS: usize = 20;

fn address(n: usize) -> String {
    format!("reader{n}@example.com")
}

/// `READERS` English readers, retries a few seconds apart: long enough for
/// an update or the all-clear to come while a greylisted message waits.
fn config(smtp: &SmtpServer) -> TestConfig {
    let mut config = TestConfig::new(smtp.port());
    config.audience = std::iter::once("id,name,email,phone,locale,timezone\n".to_owned())
        .chain((0..READERS).map(|n| format!("r{n},Reader {n},{},,en,UTC\n", address(n))))
        .collect();
    config.retry_base = "3s";
    config.retry_max = "3s";
    config
}

/// Which announcement an email is, from its subject.
fn kind(message: &Received) -> &'static str {
    let subject = message.subject();
    if subject.starts_with("All clear:") {
        "resolved"
    } else if subject.contains("Update:") {
        "update"
    } else {
        "initial"
    }
}

/// Each reader's messages, in the order the relay accepted them.
fn per_reader(messages: &[Received]) -> BTreeMap<String, Vec<&'static str>> {
    let mut readers: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
    for message in messages {
        readers
            .entry(message.to.join(","))
            .or_default()
            .push(kind(message));
    }
    readers
}

/// Waits until none of the crisis's email deliveries is left to send.
async fn settled(app: &TestApp, id: &str) -> Value {
    app.wait_until(id, Duration::from_secs(40), |detail| {
        let email = &detail["deliveries"]["email"];
        ["pending", "in_flight", "retrying"]
            .iter()
            .all(|state| email[state].as_u64().unwrap_or(0) == 0)
    })
    .await
}

#[tokio::test]
async fn an_update_waits_for_its_readers_greylisted_announcement() {
    let smtp = SmtpServer::start().await;
    smtp.greylist((0..READERS).map(address));
    let app = spawn_app(config(&smtp)).await;
    let id = app.declare("Payments are down").await;
    // Every first attempt is refused with 451 at once; the update comes
    // while they wait for their retry.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let response = app
        .post(
            &format!("/v1/crises/{id}/updates"),
            &json!({"message": "A fix is rolling out."}),
        )
        .await;
    assert_eq!(response.status(), 200);

    let messages = smtp.wait_for(2 * READERS, Duration::from_secs(40)).await;
    let readers = per_reader(&messages);
    assert_eq!(readers.len(), READERS);
    for (reader, kinds) in &readers {
        assert_eq!(
            kinds,
            &["initial", "update"],
            "{reader} got the announcement first, then the update"
        );
    }
    let detail = settled(&app, &id).await;
    assert_eq!(detail["deliveries"]["email"]["sent"], 2 * READERS);
}

/// Even readers are greylisted: their announcement waits for its retry when
/// the all-clear comes 0.3 s after the odd readers got theirs.
async fn resolve_while_half_are_greylisted(
    config: TestConfig,
    smtp: &SmtpServer,
) -> (Value, Vec<Received>) {
    smtp.greylist((0..READERS).step_by(2).map(address));
    let app = spawn_app(config).await;
    let id = app.declare("Payments are down").await;
    smtp.wait_for(READERS / 2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let response = app
        .post(
            &format!("/v1/crises/{id}/resolve"),
            &json!({"message": "Payments work again."}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let detail = settled(&app, &id).await;
    // Anything a wrong order would still send arrives within a retry.
    tokio::time::sleep(Duration::from_secs(4)).await;
    (detail, smtp.accepted())
}

#[tokio::test]
async fn the_all_clear_cancels_a_waiting_announcement_and_skips_readers_never_told() {
    let smtp = SmtpServer::start().await;
    let (detail, messages) = resolve_while_half_are_greylisted(config(&smtp), &smtp).await;
    let readers = per_reader(&messages);
    for n in 0..READERS {
        let kinds = readers.get(&address(n)).cloned().unwrap_or_default();
        if n % 2 == 0 {
            assert!(
                kinds.is_empty(),
                "{}: its announcement was cancelled by the all-clear, and an all-clear \
                 alone would clear what it never heard of; got {kinds:?}",
                address(n)
            );
        } else {
            assert_eq!(kinds, ["initial", "resolved"], "{}", address(n));
        }
    }
    let email = &detail["deliveries"]["email"];
    assert_eq!(email["sent"], READERS, "{detail:#}");
    assert_eq!(email["dead"], READERS, "{detail:#}");
    let reasons: Vec<&str> = detail["dead"]
        .as_array()
        .expect("dead list")
        .iter()
        .filter_map(|dead| dead["reason"].as_str())
        .collect();
    assert!(
        reasons
            .iter()
            .all(|reason| reason.starts_with("cancelled:")),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"cancelled: the crisis was resolved"),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|reason| reason.contains("no earlier message of this crisis reached")),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn configured_so_the_all_clear_also_reaches_readers_whose_announcement_it_cancelled() {
    let smtp = SmtpServer::start().await;
    let mut config = config(&smtp);
    config.dispatch_extra = "all_clear_to_unreached = true".to_owned();
    let (detail, messages) = resolve_while_half_are_greylisted(config, &smtp).await;
    let readers = per_reader(&messages);
    for n in 0..READERS {
        let expected: &[&str] = if n % 2 == 0 {
            &["resolved"]
        } else {
            &["initial", "resolved"]
        };
        assert_eq!(
            readers.get(&address(n)).map(Vec::as_slice),
            Some(expected),
            "{}",
            address(n)
        );
    }
    let email = &detail["deliveries"]["email"];
    assert_eq!(email["sent"], READERS + READERS / 2, "{detail:#}");
    assert_eq!(email["dead"], READERS / 2, "{detail:#}");
}
