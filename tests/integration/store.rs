//! The Store contract, against a real SQLite file. Written against the
//! trait so the PostgreSQL store can run the same suite.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use crisisd::domain::{
    Actor, ActorSource, AnnouncementKind, Crisis, CrisisEvent, CrisisUpdate, Declaration, Kind,
    Severity,
};
use crisisd::outbox::{
    Announcement, CrisisFilter, DeliveryState, IdempotencyRecord, SqliteStore, Store, StoreError,
    TransitionWrite,
};
use tempfile::TempDir;

use crate::support::email_delivery;

async fn sqlite() -> (Arc<dyn Store>, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("store.db"))
        .await
        .expect("open");
    (Arc::new(store), dir)
}

pub fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + seconds, 0)
        .single()
        .expect("time")
}

/// The write a service would make for `crisis` after a transition.
pub fn write(crisis: &Crisis, previous_version: Option<u32>, deliveries: usize) -> TransitionWrite {
    TransitionWrite {
        crisis: crisis.clone(),
        previous_version,
        event: CrisisEvent {
            crisis_id: crisis.id,
            status: crisis.status,
            actor: Actor::new(ActorSource::Api, "tests"),
            message: crisis.last_message.clone(),
            at: crisis.updated_at,
        },
        announcement: Announcement {
            id: uuid::Uuid::now_v7(),
            crisis_id: crisis.id,
            kind: AnnouncementKind::Initial,
            message: None,
            created_at: crisis.updated_at,
            follow_up: None,
        },
        deliveries: (0..deliveries).map(|n| email_delivery(n, None)).collect(),
        planning: false,
        idempotency: None,
        source_link: None,
        follow_ups: Default::default(),
    }
}

pub fn declared() -> Crisis {
    Crisis::declare(
        Declaration {
            kind: Kind::Outage,
            severity: Severity::Major,
            title: "Payments are down".into(),
            summary: "Card payments fail.".into(),
            localized: Default::default(),
            message: None,
        },
        at(0),
    )
    .expect("valid")
}

fn message(text: &str) -> CrisisUpdate {
    CrisisUpdate {
        message: Some(text.into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_transition_is_stored_whole_and_survives_reopening() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.db");
    let crisis = declared();
    {
        let store = SqliteStore::open(&path).await.expect("open");
        store
            .record_transition(write(&crisis, None, 3))
            .await
            .expect("write");
    }
    let store = SqliteStore::open(&path).await.expect("reopen");
    assert_eq!(
        store.crisis(crisis.id).await.expect("read"),
        Some(crisis.clone())
    );
    assert_eq!(
        store
            .crises(CrisisFilter::Active)
            .await
            .expect("list")
            .len(),
        1
    );
    assert_eq!(store.events(crisis.id).await.expect("events").len(), 1);
    let counts = store
        .delivery_counts(Some(crisis.id))
        .await
        .expect("counts");
    assert_eq!(counts.len(), 1);
    assert_eq!(
        (counts[0].state, counts[0].count),
        (DeliveryState::Pending, 3)
    );
}

#[tokio::test]
async fn a_write_based_on_a_stale_version_is_refused_and_changes_nothing() {
    let (store, _dir) = sqlite().await;
    let original = declared();
    store
        .record_transition(write(&original, None, 0))
        .await
        .expect("declare");

    let mut first = original.clone();
    first
        .apply_update(message("first"), at(10))
        .expect("update");
    store
        .record_transition(write(&first, Some(1), 1))
        .await
        .expect("first update");

    let mut second = original.clone();
    second
        .apply_update(message("second"), at(11))
        .expect("update");
    let err = store
        .record_transition(write(&second, Some(1), 1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(id) if id == original.id),
        "{err}"
    );

    let stored = store
        .crisis(original.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(stored.last_message.as_deref(), Some("first"));
    assert_eq!(stored.version, 2);
    let counts = store
        .delivery_counts(Some(original.id))
        .await
        .expect("counts");
    assert_eq!(
        counts.iter().map(|c| c.count).sum::<u64>(),
        1,
        "the refused write left no deliveries"
    );
    assert_eq!(store.events(original.id).await.expect("events").len(), 2);
}

#[tokio::test]
async fn an_idempotency_key_is_taken_once_and_a_second_write_with_it_leaves_nothing() {
    let (store, _dir) = sqlite().await;
    let record = IdempotencyRecord {
        scope: "tests".into(),
        key: "k1".into(),
        fingerprint: "f".into(),
        status: 201,
        body: "{}".into(),
    };
    let first = declared();
    let mut w = write(&first, None, 2);
    w.idempotency = Some(record.clone());
    store.record_transition(w).await.expect("first");

    let second = declared();
    let mut w = write(&second, None, 2);
    w.idempotency = Some(record.clone());
    let err = store.record_transition(w).await.unwrap_err();
    assert!(matches!(err, StoreError::IdempotencyKeyTaken), "{err}");
    assert_eq!(
        store.crisis(second.id).await.expect("read"),
        None,
        "rolled back"
    );
    assert_eq!(
        store
            .idempotent_response("tests", "k1")
            .await
            .expect("read"),
        Some(record)
    );
    assert_eq!(
        store
            .idempotent_response("other-token", "k1")
            .await
            .expect("read"),
        None
    );
}

#[tokio::test]
async fn a_lease_keeps_a_delivery_from_others_until_it_expires() {
    let (store, _dir) = sqlite().await;
    let crisis = declared();
    store
        .record_transition(write(&crisis, None, 3))
        .await
        .expect("write");
    let lease = Duration::from_secs(60);

    let claimed = store
        .claim("email", "a", at(1), lease, 2)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2);
    assert!(
        claimed
            .iter()
            .all(|d| d.attempts == 1 && d.state == DeliveryState::InFlight)
    );
    let rest = store
        .claim("email", "b", at(2), lease, 10)
        .await
        .expect("claim");
    assert_eq!(rest.len(), 1, "leased deliveries are not handed out twice");
    assert!(
        store
            .claim("email", "b", at(3), lease, 10)
            .await
            .expect("claim")
            .is_empty()
    );
    assert!(
        store
            .claim("sms", "b", at(3), lease, 10)
            .await
            .expect("claim")
            .is_empty(),
        "per channel"
    );

    // Worker `a` dies; after its lease expires `b` takes its deliveries over.
    let taken_over = store
        .claim("email", "b", at(61), lease, 10)
        .await
        .expect("claim");
    assert_eq!(taken_over.len(), 2);
    assert!(taken_over.iter().all(|d| d.attempts == 2));

    // `a` comes back and reports: its lease is gone, so nothing changes.
    store
        .mark_sent(claimed[0].id, "a", at(62), None)
        .await
        .expect("mark");
    let counts = store
        .delivery_counts(Some(crisis.id))
        .await
        .expect("counts");
    assert!(counts.iter().all(|c| c.state == DeliveryState::InFlight));
}

#[tokio::test]
async fn outcomes_are_recorded_and_a_retry_waits_for_its_time() {
    let (store, _dir) = sqlite().await;
    let crisis = declared();
    store
        .record_transition(write(&crisis, None, 3))
        .await
        .expect("write");
    let lease = Duration::from_secs(60);
    let claimed = store
        .claim("email", "w", at(1), lease, 3)
        .await
        .expect("claim");

    store
        .mark_sent(claimed[0].id, "w", at(2), Some("250 OK"))
        .await
        .expect("sent");
    store
        .mark_sent(claimed[0].id, "w", at(2), Some("250 OK"))
        .await
        .expect("sent again is harmless");
    store
        .mark_retry(claimed[1].id, "w", at(30), "451 busy")
        .await
        .expect("retry");
    store
        .mark_dead(claimed[2].id, "w", at(2), "550 rejected")
        .await
        .expect("dead");

    assert!(
        store
            .claim("email", "w", at(29), lease, 10)
            .await
            .expect("claim")
            .is_empty()
    );
    let retried = store
        .claim("email", "w", at(30), lease, 10)
        .await
        .expect("claim");
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].last_error.as_deref(), Some("451 busy"));
    assert_eq!(retried[0].attempts, 2);

    let dead = store
        .dead_deliveries(Some(crisis.id), 10)
        .await
        .expect("dead");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("550 rejected"));
}

#[tokio::test]
async fn released_leases_are_claimable_at_once_and_give_the_attempt_back() {
    let (store, _dir) = sqlite().await;
    let crisis = declared();
    store
        .record_transition(write(&crisis, None, 1))
        .await
        .expect("write");
    let lease = Duration::from_secs(60);
    let claimed = store
        .claim("email", "w", at(1), lease, 1)
        .await
        .expect("claim");
    store.release(&[claimed[0].id], "w").await.expect("release");
    let again = store
        .claim("email", "x", at(2), lease, 1)
        .await
        .expect("claim");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);
}

#[tokio::test]
async fn deliveries_for_channels_no_longer_configured_end_dead_with_a_reason() {
    let (store, _dir) = sqlite().await;
    let crisis = declared();
    store
        .record_transition(write(&crisis, None, 2))
        .await
        .expect("write");
    let killed = store
        .kill_unroutable(&["sms".to_owned()], at(5))
        .await
        .expect("kill");
    assert_eq!(killed, 2);
    let dead = store.dead_deliveries(None, 10).await.expect("dead");
    assert!(
        dead.iter()
            .all(|d| d.last_error.as_deref() == Some("channel `email` is not configured"))
    );
    assert_eq!(
        store
            .kill_unroutable(&["email".to_owned()], at(6))
            .await
            .expect("kill"),
        0
    );
}
