//! The store contract for delivery receipts and fallbacks (issue 16),
//! beside `contract.rs` and run on every backend by `receipts_contract!`.

use std::time::Duration;

use crisisd::domain::consent::{ConsentScope, ContactPoint, OptOutRequest};
use crisisd::domain::{AnnouncementId, Crisis, DeliveryId, Severity};
use crisisd::message::{DeliveryContent, MessageContent};
use crisisd::outbox::{
    DeliveryReceipt, HeldFallback, NewDelivery, Outcome, Payload, Planned, ReceiptKey,
    ReceiptState, Recorded, Storage,
};

use super::contract::{Database, at, declared, write};
use crate::support::record_outcome;

const LEASE: Duration = Duration::from_secs(60);

/// A crisis with `n` email deliveries, each claimed and sent with the
/// provider reference `ref-<i>`.
async fn sent_emails(storage: &Storage, n: usize) -> (Crisis, AnnouncementId, Vec<DeliveryId>) {
    let crisis = declared();
    let transition = write(&crisis, None, n);
    let announcement = transition.announcement.id;
    storage
        .crises
        .record_transition(transition)
        .await
        .expect("declare");
    let claimed = storage
        .queue
        .claim("email", "w", at(1), LEASE, 10)
        .await
        .expect("claim");
    let mut ids = Vec::new();
    for (i, delivery) in claimed.iter().enumerate() {
        let sent = Outcome::Sent {
            provider_ref: Some(format!("ref-{i}")),
        };
        record_outcome(storage, "w", at(2), delivery.id, sent).await;
        ids.push(delivery.id);
    }
    (crisis, announcement, ids)
}

fn receipt(key: ReceiptKey, state: ReceiptState, hard: bool, seconds: i64) -> DeliveryReceipt {
    DeliveryReceipt {
        key,
        state,
        hard,
        reason: Some(format!("{state} at {seconds}")),
        at: at(seconds),
        mark_bad: Some(ContactPoint::Email),
    }
}

fn by_ref(reference: &str) -> ReceiptKey {
    ReceiptKey::ProviderRef {
        channel: "email".into(),
        reference: reference.into(),
    }
}

pub async fn a_receipt_finds_its_delivery_and_a_final_state_is_never_downgraded(
    db: &impl Database,
) {
    let storage = db.open().await;
    let (crisis, _, ids) = sent_emails(&storage, 3).await;
    let receipts = &storage.receipts;
    let record = |r: DeliveryReceipt| async move { receipts.record_receipt(&r).await.expect("r") };

    let first = record(receipt(by_ref("ref-0"), ReceiptState::Delivered, false, 3)).await;
    assert!(matches!(first, Recorded::Changed { delivery, .. } if delivery == ids[0]));
    // Late and repeated receipts change nothing once it is final.
    for late in [
        receipt(by_ref("ref-0"), ReceiptState::Bounced, true, 4),
        receipt(by_ref("ref-0"), ReceiptState::Undelivered, false, 4),
        receipt(
            ReceiptKey::Delivery(ids[0]),
            ReceiptState::Delivered,
            false,
            5,
        ),
    ] {
        assert_eq!(record(late).await, Recorded::Unchanged { delivery: ids[0] });
    }
    // A soft bounce may still be followed by the real end.
    let soft = receipt(
        ReceiptKey::Delivery(ids[1]),
        ReceiptState::Bounced,
        false,
        3,
    );
    assert!(matches!(record(soft).await, Recorded::Changed { .. }));
    let hard = receipt(ReceiptKey::Delivery(ids[1]), ReceiptState::Bounced, true, 4);
    assert!(matches!(record(hard).await, Recorded::Changed { .. }));
    let after_hard = receipt(
        ReceiptKey::Delivery(ids[1]),
        ReceiptState::Delivered,
        false,
        5,
    );
    assert_eq!(
        record(after_hard).await,
        Recorded::Unchanged { delivery: ids[1] }
    );
    // Unknown ids are not errors.
    assert_eq!(
        record(receipt(by_ref("nope"), ReceiptState::Delivered, false, 3)).await,
        Recorded::Unknown
    );
    assert_eq!(
        record(receipt(
            ReceiptKey::Delivery(DeliveryId::new()),
            ReceiptState::Delivered,
            false,
            3
        ))
        .await,
        Recorded::Unknown
    );

    let bad = receipts.bad_addresses().await.expect("bad");
    assert!(
        bad.contains(ContactPoint::Email, "R1@example.com"),
        "{bad:?}"
    );
    assert_eq!(bad.emails.len(), 1, "only the hard bounce: {bad:?}");
    let reach = receipts.reach(Some(crisis.id)).await.expect("reach");
    assert_eq!(reach.len(), 1);
    let counts = &reach[0].counts;
    assert_eq!(
        (counts.delivered, counts.bounced_hard, counts.unconfirmed),
        (1, 1, 1)
    );
    assert_eq!((counts.reached(), counts.not_reached()), (1, 1));
}

/// An SMS to `phone` held behind `after`.
fn sms_fallback(after: DeliveryId, phone: &str, wait: Option<Duration>) -> HeldFallback {
    HeldFallback {
        after,
        point: ContactPoint::Phone,
        no_receipt_after: wait,
        delivery: NewDelivery {
            id: DeliveryId::new(),
            channel: "sms".into(),
            recipient_id: Some("r".into()),
            destination: phone.into(),
            locale: "en".into(),
            priority: 0,
            planned: Planned::Queued {
                payload: Payload::Inline(DeliveryContent::Message(MessageContent {
                    text: "Payments are down".into(),
                    form: crisisd::message::Form::Long,
                    title: "Payments are down".into(),
                    link: "https://status.example.com".into(),
                    severity: Severity::Major,
                    language: "en".into(),
                })),
                not_before: None,
            },
        },
    }
}

pub async fn a_fallback_is_released_once_when_its_first_delivery_fails_and_never_to_an_opted_out_point(
    db: &impl Database,
) {
    let storage = db.open().await;
    let (_, announcement, ids) = sent_emails(&storage, 3).await;
    let fallbacks = &storage.fallbacks;
    let bounced = sms_fallback(ids[0], "+14155550101", None);
    let opted_out = sms_fallback(ids[1], "+14155550102", None);
    let waiting = sms_fallback(ids[2], "+14155550103", Some(Duration::from_secs(60)));
    fallbacks
        .hold_fallbacks(
            &[bounced.clone(), opted_out.clone(), waiting.clone()],
            at(0),
        )
        .await
        .expect("hold");
    assert!(
        fallbacks
            .release_fallbacks(at(3), 10)
            .await
            .expect("none yet")
            .is_empty()
    );
    storage
        .consent
        .opt_out(
            ContactPoint::Phone,
            "+14155550102",
            OptOutRequest::AtLeast(ConsentScope::All),
            "test",
            at(3),
        )
        .await
        .expect("opt out");
    for id in &ids[..2] {
        let hard = receipt(ReceiptKey::Delivery(*id), ReceiptState::Bounced, true, 4);
        storage.receipts.record_receipt(&hard).await.expect("r");
    }
    let outcomes = fallbacks
        .release_fallbacks(at(5), 10)
        .await
        .expect("release");
    let released: Vec<_> = outcomes.iter().filter(|o| o.released).collect();
    assert_eq!(released.len(), 1, "{outcomes:?}");
    assert_eq!(
        (released[0].delivery, released[0].outcome.as_str()),
        (bounced.delivery.id, "bounced")
    );
    assert!(
        outcomes
            .iter()
            .any(|o| o.delivery == opted_out.delivery.id && !o.released),
        "{outcomes:?}"
    );
    assert!(
        fallbacks
            .release_fallbacks(at(6), 10)
            .await
            .expect("again")
            .is_empty(),
        "exactly once"
    );
    let sms = storage
        .queue
        .claim("sms", "w", at(6), LEASE, 10)
        .await
        .expect("claim");
    assert_eq!(sms.len(), 1);
    assert_eq!(sms[0].destination, "+14155550101");
    assert_eq!(sms[0].announcement_id, announcement);

    // No receipt within the wait: released after it, not before.
    assert!(
        fallbacks
            .release_fallbacks(at(61), 10)
            .await
            .expect("early")
            .is_empty()
    );
    let late = fallbacks.release_fallbacks(at(63), 10).await.expect("late");
    assert_eq!(
        late.iter()
            .map(|o| (o.delivery, o.outcome.as_str(), o.released))
            .collect::<Vec<_>>(),
        [(waiting.delivery.id, "no receipt", true)]
    );
}

macro_rules! receipts_contract {
    ($database:expr) => {
        receipts_contract!(@each $database;
            a_receipt_finds_its_delivery_and_a_final_state_is_never_downgraded,
            a_fallback_is_released_once_when_its_first_delivery_fails_and_never_to_an_opted_out_point,
        );
    };
    (@each $database:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let database = $database;
                $crate::store::receipts::$name(&database).await;
            }
        )+
    };
}
