//! A fan-out the daemon stopped planning half-way is finished at the next
//! start, once.

use crisisd::domain::{
    Actor, ActorSource, AnnouncementKind, Crisis, CrisisEvent, Declaration, Kind, Severity,
};
use crisisd::outbox::{Announcement, IdempotencyRecord, SqliteStore, Storage, TransitionWrite};

use crate::support::{SmtpServer, TestConfig, WAIT, spawn_app_in};

#[tokio::test]
async fn an_unfinished_plan_is_resumed_at_start_and_its_idempotency_key_completed() {
    let smtp = SmtpServer::start().await;
    let dir = tempfile::tempdir().expect("dir");
    // What a daemon killed just after storing the declaration leaves: the
    // crisis, an announcement still planning, the key held in progress.
    let crisis = Crisis::declare(
        Declaration {
            kind: Kind::Outage,
            severity: Severity::Major,
            title: "Payments are down".into(),
            summary: "Card payments fail.".into(),
            localized: Default::default(),
            message: None,
            separate: false,
            drill: false,
            audience: Default::default(),
            channels: Vec::new(),
        },
        chrono::Utc::now(),
    )
    .expect("valid");
    {
        let storage = Storage::new(
            SqliteStore::open(&dir.path().join("crisisd.db"))
                .await
                .expect("open"),
        );
        storage
            .crises
            .record_transition(TransitionWrite {
                crisis: crisis.clone(),
                previous_version: None,
                event: CrisisEvent {
                    crisis_id: crisis.id,
                    kind: crisisd::domain::EventKind::Declared,
                    status: crisis.status,
                    actor: Actor::new(ActorSource::Api, "tests"),
                    message: None,
                    at: crisis.updated_at,
                },
                announcement: Announcement {
                    id: crisisd::domain::AnnouncementId::new(),
                    crisis_id: crisis.id,
                    kind: AnnouncementKind::Initial,
                    message: None,
                    created_at: crisis.updated_at,
                    follow_up: None,
                    reached_only: false,
                    question: None,
                },
                deliveries: Vec::new(),
                // A previous run's, still within its lease: alone on its
                // file, the daemon resumes it at once all the same.
                planning: Some(crisisd::outbox::PlanLease {
                    owner: "a-previous-run".into(),
                    until: chrono::Utc::now() + chrono::TimeDelta::hours(1),
                }),
                idempotency: Some(IdempotencyRecord {
                    scope: "tests".into(),
                    key: "declare-1".into(),
                    fingerprint: "f".into(),
                    status: 0,
                    body: String::new(),
                }),
                source_link: None,
                follow_ups: Default::default(),
                unless_duplicate: None,
            })
            .await
            .expect("write");
    }

    let app = spawn_app_in(TestConfig::new(smtp.port()), dir).await;
    let id = crisis.id.to_string();
    app.wait_until(&id, WAIT, |d| d["deliveries"]["email"]["sent"] == 3)
        .await;
    assert_eq!(smtp.wait_for(3, WAIT).await.len(), 3);

    let storage = Storage::new(
        SqliteStore::open(&app.dir.path().join("crisisd.db"))
            .await
            .expect("open"),
    );
    assert!(
        storage
            .plans
            .unfinished_plans()
            .await
            .expect("plans")
            .is_empty()
    );
    let record = storage
        .idempotency
        .idempotent_response("tests", "declare-1")
        .await
        .expect("read")
        .expect("record");
    assert_eq!(record.status, 201);
    let body: serde_json::Value = serde_json::from_str(&record.body).expect("JSON");
    assert_eq!(body["deliveries"], 3);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(smtp.accepted().len(), 3, "planned once");
}
