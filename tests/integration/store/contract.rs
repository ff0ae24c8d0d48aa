//! The store contract: what every storage backend promises, written only
//! against the traits of `crisisd::outbox::Storage`, so a new backend runs
//! the same suite unchanged (`store_contract!` at the end lists it).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use crisisd::domain::account::{Role, User, UserName};
use crisisd::domain::consent::{ConsentScope, ContactPoint, OptOutRequest};
use crisisd::domain::directory::EntryAvailability;
use crisisd::domain::draft::{Draft, DraftAction};
use crisisd::domain::follow_up::{
    FollowUpChange, FollowUpSpec, FollowUpState, NewFollowUp, Phase, Topic,
};
use crisisd::domain::{
    Actor, ActorSource, AnnouncementKind, AudienceSelection, Crisis, CrisisEvent, CrisisUpdate,
    Declaration, EventKind, Kind, Selection, Severity,
};
use crisisd::outbox::{
    AccountEvent, AccountEventKind, Announcement, CrisisFilter, DeadCause, DeadFilter, Delivery,
    DeliveryState, DuplicateGuard, FollowUpReplacement, FollowUpStart, IdempotencyRecord,
    NewDelivery, NewSession, Outcome, PlanLease, PlanStep, Planned, Storage, StoreError,
    Submission, SubmissionState, TransitionWrite,
};
use tokio::sync::futures::Notified;
use uuid::Uuid;

use crate::support::{email_delivery, record_outcome, unfit_email_delivery};

/// A database for one test, empty at first.
pub trait Database {
    /// The storage on it, opened anew on each call, as a restarted daemon
    /// opens it.
    fn open(&self) -> impl Future<Output = Storage>;
}

/// A one-click from an announcement, or an SMS STOP.
const STOP_ALL: OptOutRequest = OptOutRequest::AtLeast(ConsentScope::All);

pub fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + seconds, 0)
        .single()
        .expect("time")
}

/// The planning lease of `owner` until `until`.
pub fn lease(owner: &str, until: DateTime<Utc>) -> PlanLease {
    PlanLease {
        owner: owner.into(),
        until,
    }
}

/// A batch of a plan written by `owner`, from subscriber `from` to `through`.
fn plan_step(lease: &PlanLease, from: u64, through: u64) -> PlanStep<'_> {
    PlanStep {
        lease,
        from,
        through,
    }
}

/// The lease the contract's plans are written under.
fn planner_lease() -> PlanLease {
    lease("planner", at(60))
}

/// The write a service would make for `crisis` after a transition.
pub fn write(crisis: &Crisis, previous_version: Option<u32>, deliveries: usize) -> TransitionWrite {
    TransitionWrite {
        crisis: crisis.clone(),
        previous_version,
        event: CrisisEvent {
            crisis_id: crisis.id,
            kind: EventKind::of(crisis.status),
            status: crisis.status,
            actor: Actor::new(ActorSource::Api, "tests"),
            message: crisis.last_message.clone(),
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
        deliveries: (0..deliveries).map(email_delivery).collect(),
        planning: None,
        idempotency: None,
        source_link: None,
        follow_ups: Default::default(),
        unless_duplicate: None,
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
            separate: false,
            drill: false,
            audience: Default::default(),
            channels: Vec::new(),
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

fn sent() -> Outcome {
    Outcome::Sent { provider_ref: None }
}

fn retry(at: DateTime<Utc>, error: &str) -> Outcome {
    Outcome::Retry {
        at,
        error: error.into(),
    }
}

fn refused(reason: &str) -> Outcome {
    Outcome::Dead {
        cause: DeadCause::Permanent,
        reason: reason.into(),
    }
}

const LEASE: Duration = Duration::from_secs(60);

/// The crisis's deliveries by state.
async fn states(storage: &Storage, crisis: &Crisis) -> Vec<(DeliveryState, u64)> {
    let mut states: Vec<(DeliveryState, u64)> = Vec::new();
    for count in storage
        .ledger
        .delivery_counts(Some(crisis.id))
        .await
        .expect("counts")
    {
        match states.iter_mut().find(|(state, _)| *state == count.state) {
            Some((_, n)) => *n += count.count,
            None => states.push((count.state, count.count)),
        }
    }
    states.sort_by_key(|(state, _)| state.as_str());
    states
}

/// A crisis declared with `deliveries` emails queued.
async fn declare(storage: &Storage, deliveries: usize) -> Crisis {
    let crisis = declared();
    storage
        .crises
        .record_transition(write(&crisis, None, deliveries))
        .await
        .expect("declare");
    crisis
}

/// The email channel's due deliveries, leased to `owner` for `LEASE`.
async fn claim(storage: &Storage, owner: &str, now: DateTime<Utc>, limit: u32) -> Vec<Delivery> {
    storage
        .queue
        .claim("email", owner, now, LEASE, limit)
        .await
        .expect("claim")
}

/// The follow-up `step` becoming its announcement at `now`, with one
/// broadcast; whether it started.
async fn start_follow_up(
    storage: &Storage,
    crisis: &Crisis,
    step: &NewFollowUp,
    now: DateTime<Utc>,
    delivery: NewDelivery,
) -> bool {
    storage
        .follow_ups
        .start_follow_up(FollowUpStart {
            follow_up: step.id,
            announcement: follow_up_announcement(crisis, step, now),
            deliveries: vec![delivery],
            planning: None,
        })
        .await
        .expect("start")
}

/// The all-clear at `now`, with no deliveries of its own.
async fn resolve(storage: &Storage, crisis: &mut Crisis, now: DateTime<Utc>) {
    let previous = crisis.version;
    crisis.resolve(None, now).expect("resolve");
    storage
        .crises
        .record_transition(write(crisis, Some(previous), 0))
        .await
        .expect("resolve");
}

/// Quiet hours: not sent before `at`.
fn hold_until(delivery: &mut NewDelivery, at: DateTime<Utc>) {
    if let Planned::Queued { not_before, .. } = &mut delivery.planned {
        *not_before = Some(at);
    }
}

fn of_crisis(crisis: &Crisis) -> DeadFilter<'static> {
    DeadFilter {
        crisis: Some(crisis.id),
        channel: None,
    }
}

fn follow_up(crisis: &Crisis, step: &str, due: DateTime<Utc>) -> NewFollowUp {
    NewFollowUp {
        id: Uuid::now_v7(),
        crisis_id: crisis.id,
        occurrence: 1,
        due_at: due,
        spec: FollowUpSpec {
            plan: "default".into(),
            step: step.into(),
            phase: Phase::Active,
            topic: Topic::Resources,
            categories: Vec::new(),
            channels: Vec::new(),
            locales: Vec::new(),
            regions: Vec::new(),
            local_at: None,
        },
    }
}

/// The announcement a due follow-up becomes.
fn follow_up_announcement(
    crisis: &Crisis,
    follow_up: &NewFollowUp,
    now: DateTime<Utc>,
) -> Announcement {
    Announcement {
        id: crisisd::domain::AnnouncementId::new(),
        crisis_id: crisis.id,
        kind: AnnouncementKind::FollowUp,
        message: None,
        created_at: now,
        follow_up: Some(follow_up.spec.clone()),
        reached_only: false,
        question: None,
    }
}

pub async fn a_transition_is_stored_whole_and_survives_reopening(db: &impl Database) {
    let crisis = declared();
    {
        let storage = db.open().await;
        storage
            .crises
            .record_transition(write(&crisis, None, 3))
            .await
            .expect("write");
    }
    let storage = db.open().await;
    assert_eq!(
        storage.crises.crisis(crisis.id).await.expect("read"),
        Some(crisis.clone())
    );
    assert_eq!(
        storage
            .crises
            .crises(CrisisFilter::Active)
            .await
            .expect("list")
            .len(),
        1
    );
    assert_eq!(
        storage
            .crises
            .events(crisis.id)
            .await
            .expect("events")
            .len(),
        1
    );
    let counts = storage
        .ledger
        .delivery_counts(Some(crisis.id))
        .await
        .expect("counts");
    assert_eq!(counts.len(), 1);
    assert_eq!(
        (counts[0].state, counts[0].count),
        (DeliveryState::Pending, 3)
    );
}

pub async fn a_crisiss_audience_and_channels_and_each_entrys_kind_are_kept_across_transitions(
    db: &impl Database,
) {
    let mut crisis = declared();
    crisis.selection = Selection::new(
        AudienceSelection {
            locales: vec!["bn".into()],
            regions: vec!["sylhet".into()],
        },
        vec!["email".into()],
    );
    let chosen = crisis.selection.clone();
    {
        let storage = db.open().await;
        storage
            .crises
            .record_transition(write(&crisis, None, 0))
            .await
            .expect("declare");
        let mut updated = crisis.clone();
        updated
            .apply_update(message("A fix is rolling out."), at(60))
            .expect("update");
        storage
            .crises
            .record_transition(write(&updated, Some(crisis.version), 0))
            .await
            .expect("update");
        crisis = updated;
        let mut correction = write(&crisis, Some(crisis.version), 0);
        correction.event.kind = EventKind::Corrected;
        correction.previous_version = None;
        correction.crisis.id = crisisd::domain::CrisisId::new();
        correction.event.crisis_id = correction.crisis.id;
        correction.announcement.crisis_id = correction.crisis.id;
        storage
            .crises
            .record_transition(correction)
            .await
            .expect("another crisis, its entry marked corrected");
    }
    let storage = db.open().await;
    let stored = storage
        .crises
        .crisis(crisis.id)
        .await
        .expect("read")
        .expect("there");
    assert_eq!(stored.selection, chosen, "an update keeps the selection");
    let versions = storage.crises.versions(crisis.id).await.expect("versions");
    assert!(
        versions.iter().all(|v| v.selection == chosen),
        "{versions:?}"
    );
    let kinds: Vec<EventKind> = storage
        .crises
        .events(crisis.id)
        .await
        .expect("events")
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, [EventKind::Declared, EventKind::Updated]);
    let others = storage.crises.crises(CrisisFilter::All).await.expect("all");
    let other = others
        .iter()
        .find(|c| c.id != crisis.id)
        .expect("the other");
    let events = storage.crises.events(other.id).await.expect("events");
    assert_eq!(events[0].kind, EventKind::Corrected);
}

pub async fn a_write_based_on_a_stale_version_is_refused_and_changes_nothing(db: &impl Database) {
    let storage = db.open().await;
    let original = declared();
    storage
        .crises
        .record_transition(write(&original, None, 0))
        .await
        .expect("declare");

    let mut first = original.clone();
    first
        .apply_update(message("first"), at(10))
        .expect("update");
    storage
        .crises
        .record_transition(write(&first, Some(1), 1))
        .await
        .expect("first update");

    let mut second = original.clone();
    second
        .apply_update(message("second"), at(11))
        .expect("update");
    let err = storage
        .crises
        .record_transition(write(&second, Some(1), 1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(id) if id == original.id),
        "{err}"
    );

    let stored = storage
        .crises
        .crisis(original.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(stored.last_message.as_deref(), Some("first"));
    assert_eq!(stored.version, 2);
    let counts = storage
        .ledger
        .delivery_counts(Some(original.id))
        .await
        .expect("counts");
    assert_eq!(
        counts.iter().map(|c| c.count).sum::<u64>(),
        1,
        "the refused write left no deliveries"
    );
    let events = storage.crises.events(original.id).await.expect("events");
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].message.as_deref(), Some("first"), "oldest first");
}

/// A declaration written with a duplicate guard.
fn guarded(crisis: &Crisis, since: DateTime<Utc>) -> TransitionWrite {
    TransitionWrite {
        unless_duplicate: Some(DuplicateGuard {
            kind: crisis.kind,
            title: crisis.title.clone(),
            since,
        }),
        ..write(crisis, None, 1)
    }
}

pub async fn identical_declarations_written_at_one_instant_make_one_crisis(db: &impl Database) {
    let storage = db.open().await;
    let mut writes = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (crises, write) = (storage.crises.clone(), guarded(&declared(), at(-60)));
        writes.spawn(async move { crises.record_transition(write).await });
    }
    let (mut made, mut refused) = (0, 0);
    while let Some(result) = writes.join_next().await {
        match result.expect("joined") {
            Ok(()) => made += 1,
            Err(StoreError::Duplicate { title, .. }) => {
                assert_eq!(title, "Payments are down");
                refused += 1;
            }
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!((made, refused), (1, 7));
    let active = storage
        .crises
        .crises(CrisisFilter::Active)
        .await
        .expect("list");
    assert_eq!(active.len(), 1);
    let counts = storage.ledger.delivery_counts(None).await.expect("counts");
    assert_eq!(
        counts.iter().map(|c| c.count).sum::<u64>(),
        1,
        "refused writes left nothing"
    );
}

pub async fn only_an_active_crisis_of_the_kind_within_the_window_is_a_duplicate(
    db: &impl Database,
) {
    let storage = db.open().await;
    let mut first = declared();
    storage
        .crises
        .record_transition(guarded(&first, at(-60)))
        .await
        .expect("declare");
    let mut shouting = declared();
    shouting.title = "PAYMENTS ARE DOWN ".into();
    let err = storage
        .crises
        .record_transition(guarded(&shouting, at(-60)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Duplicate { existing, .. } if *existing == first.id),
        "{err}"
    );
    let mut other_kind = declared();
    other_kind.kind = Kind::Security;
    storage
        .crises
        .record_transition(guarded(&other_kind, at(-60)))
        .await
        .expect("another kind is another crisis");
    storage
        .crises
        .record_transition(guarded(&declared(), at(1)))
        .await
        .expect("declared before the window: not a duplicate");
    resolve(&storage, &mut first, at(20)).await;
    let active = storage
        .crises
        .crises(CrisisFilter::Active)
        .await
        .expect("list");
    assert_eq!(active.len(), 2);
}

pub async fn every_transition_keeps_its_version_and_a_refused_one_keeps_none(db: &impl Database) {
    let storage = db.open().await;
    let mut crisis = declare(&storage, 0).await;
    let declared = crisis.clone();
    crisis
        .apply_update(message("Recovering."), at(10))
        .expect("update");
    storage
        .crises
        .record_transition(write(&crisis, Some(1), 0))
        .await
        .expect("update");
    let updated = crisis.clone();
    let mut stale = declared.clone();
    stale
        .apply_update(message("stale"), at(11))
        .expect("update");
    storage
        .crises
        .record_transition(write(&stale, Some(1), 0))
        .await
        .unwrap_err();
    resolve(&storage, &mut crisis, at(20)).await;

    let storage = db.open().await;
    let versions = storage.crises.versions(crisis.id).await.expect("versions");
    assert_eq!(
        versions,
        vec![declared.clone(), updated.clone(), crisis.clone()]
    );
    let other = declare(&storage, 0).await;
    let recent = storage.crises.recent_versions(2).await.expect("recent");
    assert_eq!(
        recent,
        vec![crisis.clone(), updated],
        "newest first, at most 2"
    );
    let all = storage.crises.recent_versions(10).await.expect("recent");
    assert_eq!(all.len(), 4, "{all:?}");
    assert!(all.contains(&other) && all.contains(&declared));
}

pub async fn an_idempotency_key_is_taken_once_and_a_second_write_with_it_leaves_nothing(
    db: &impl Database,
) {
    let storage = db.open().await;
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
    storage.crises.record_transition(w).await.expect("first");

    let second = declared();
    let mut w = write(&second, None, 2);
    w.idempotency = Some(record.clone());
    let err = storage.crises.record_transition(w).await.unwrap_err();
    assert!(matches!(err, StoreError::IdempotencyKeyTaken), "{err}");
    assert_eq!(
        storage.crises.crisis(second.id).await.expect("read"),
        None,
        "rolled back"
    );
    assert!(
        storage
            .ledger
            .delivery_counts(Some(second.id))
            .await
            .expect("counts")
            .is_empty(),
        "no deliveries of the refused write"
    );
    assert_eq!(
        storage
            .idempotency
            .idempotent_response("tests", "k1")
            .await
            .expect("read"),
        Some(record)
    );
    assert_eq!(
        storage
            .idempotency
            .idempotent_response("other-token", "k1")
            .await
            .expect("read"),
        None
    );
}

pub async fn a_lease_keeps_a_delivery_from_others_until_it_expires(db: &impl Database) {
    let storage = db.open().await;
    let crisis = declare(&storage, 3).await;
    let queue = &storage.queue;

    let claimed = claim(&storage, "a", at(1), 2).await;
    assert_eq!(claimed.len(), 2);
    assert!(
        claimed
            .iter()
            .all(|d| d.attempts == 1 && d.state == DeliveryState::InFlight)
    );
    let rest = claim(&storage, "b", at(2), 10).await;
    assert_eq!(rest.len(), 1, "leased deliveries are not handed out twice");
    assert!(claim(&storage, "b", at(3), 10).await.is_empty());
    assert!(
        queue
            .claim("sms", "b", at(3), LEASE, 10)
            .await
            .expect("claim")
            .is_empty(),
        "per channel"
    );

    // Worker `a` dies; after its lease expires `b` takes its deliveries over.
    let taken_over = claim(&storage, "b", at(61), 10).await;
    assert_eq!(taken_over.len(), 2);
    assert!(taken_over.iter().all(|d| d.attempts == 2));

    // `a` comes back and reports: its lease is gone, so nothing changes.
    record_outcome(&storage, "a", at(62), claimed[0].id, sent()).await;
    let counts = storage
        .ledger
        .delivery_counts(Some(crisis.id))
        .await
        .expect("counts");
    assert!(counts.iter().all(|c| c.state == DeliveryState::InFlight));
}

pub async fn outcomes_are_recorded_and_a_retry_waits_for_its_time(db: &impl Database) {
    let storage = db.open().await;
    let crisis = declare(&storage, 3).await;
    let claimed = claim(&storage, "w", at(1), 3).await;

    let sent_ok = Outcome::Sent {
        provider_ref: Some("250 OK".into()),
    };
    record_outcome(&storage, "w", at(2), claimed[0].id, sent_ok.clone()).await;
    // Sent again is harmless.
    record_outcome(&storage, "w", at(2), claimed[0].id, sent_ok).await;
    record_outcome(
        &storage,
        "w",
        at(30),
        claimed[1].id,
        retry(at(30), "451 busy"),
    )
    .await;
    record_outcome(&storage, "w", at(2), claimed[2].id, refused("550 rejected")).await;

    assert!(claim(&storage, "w", at(29), 10).await.is_empty());
    let retried = claim(&storage, "w", at(30), 10).await;
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].last_error.as_deref(), Some("451 busy"));
    assert_eq!(retried[0].attempts, 2);

    let dead = storage
        .dead_letters
        .list(of_crisis(&crisis), 10)
        .await
        .expect("dead");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, "550 rejected");
    assert_eq!(dead[0].cause, DeadCause::Permanent);
    assert_eq!(dead[0].finished_at, at(2));
}

pub async fn released_leases_are_claimable_at_once_and_give_the_attempt_back(db: &impl Database) {
    let storage = db.open().await;
    let crisis = declare(&storage, 1).await;
    let queue = &storage.queue;
    let claimed = claim(&storage, "w", at(1), 1).await;
    queue.release(&[claimed[0].id], "w").await.expect("release");
    let again = claim(&storage, "x", at(2), 1).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);
    assert_eq!(again[0].state, DeliveryState::InFlight);

    // Tried before: given back, it is a retry again (and still due now).
    record_outcome(&storage, "x", at(3), again[0].id, retry(at(3), "421 later")).await;
    let retried = claim(&storage, "x", at(3), 1).await;
    assert_eq!(retried[0].attempts, 2);
    queue.release(&[retried[0].id], "x").await.expect("release");
    assert_eq!(
        states(&storage, &crisis).await,
        vec![(DeliveryState::Retrying, 1)]
    );
}

pub async fn deliveries_for_channels_no_longer_configured_end_dead_with_a_reason(
    db: &impl Database,
) {
    let storage = db.open().await;
    declare(&storage, 2).await;
    let killed = storage
        .queue
        .kill_unroutable(&["sms".to_owned()], at(5))
        .await
        .expect("kill");
    assert_eq!(killed, 2);
    let dead = storage
        .dead_letters
        .list(DeadFilter::default(), 10)
        .await
        .expect("dead");
    assert_eq!(dead.len(), 2);
    assert!(dead.iter().all(
        |d| d.reason == "channel `email` is not configured" && d.cause == DeadCause::Unroutable
    ));
    assert_eq!(
        storage
            .queue
            .kill_unroutable(&["email".to_owned()], at(6))
            .await
            .expect("kill"),
        0
    );
}

pub async fn claims_take_new_messages_by_priority_before_due_retries(db: &impl Database) {
    let storage = db.open().await;
    let crisis = declared();
    let mut w = write(&crisis, None, 0);
    let mut follow_up = email_delivery(0);
    follow_up.priority = 1;
    let (first, second) = (email_delivery(1), email_delivery(2));
    let mut quiet = email_delivery(3);
    hold_until(&mut quiet, at(100));
    w.deliveries = vec![follow_up.clone(), first.clone(), quiet.clone()];
    storage.crises.record_transition(w).await.expect("write");

    let claimed = claim(&storage, "w", at(1), 1).await;
    assert_eq!(claimed[0].id, first.id, "priority 0 first");
    record_outcome(&storage, "w", at(1), first.id, retry(at(2), "421 later")).await;

    // A second announcement's message, written after the retry was due.
    let mut update = crisis.clone();
    update.apply_update(message("more"), at(3)).expect("update");
    let mut w = write(&update, Some(crisis.version), 0);
    w.deliveries = vec![second.clone()];
    storage.crises.record_transition(w).await.expect("update");

    let order: Vec<_> = [
        claim(&storage, "w", at(4), 1).await,
        claim(&storage, "w", at(4), 1).await,
        claim(&storage, "w", at(4), 1).await,
    ]
    .into_iter()
    .map(|claimed| claimed[0].id)
    .collect();
    assert_eq!(
        order,
        vec![second.id, follow_up.id, first.id],
        "pending by priority, then the due retry"
    );
    for id in order {
        record_outcome(&storage, "w", at(5), id, sent()).await;
    }
    assert!(
        claim(&storage, "w", at(99), 10).await.is_empty(),
        "held until not_before"
    );
    let released = claim(&storage, "w", at(100), 10).await;
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].id, quiet.id);
    assert_eq!(released[0].available_at, at(100));
}

pub async fn an_outcome_counts_only_while_its_owner_holds_the_lease(db: &impl Database) {
    let storage = db.open().await;
    let crisis = declare(&storage, 2).await;
    let queue = &storage.queue;
    let claimed = claim(&storage, "a", at(1), 2).await;

    // Another owner's outcomes and release change nothing.
    record_outcome(&storage, "b", at(2), claimed[0].id, sent()).await;
    record_outcome(&storage, "b", at(2), claimed[1].id, refused("550")).await;
    queue
        .release(&[claimed[0].id, claimed[1].id], "b")
        .await
        .expect("release");
    assert_eq!(
        states(&storage, &crisis).await,
        vec![(DeliveryState::InFlight, 2)]
    );

    // The owner's do.
    record_outcome(&storage, "a", at(3), claimed[0].id, sent()).await;
    record_outcome(&storage, "a", at(3), claimed[1].id, retry(at(10), "451")).await;
    assert_eq!(
        states(&storage, &crisis).await,
        vec![(DeliveryState::Retrying, 1), (DeliveryState::Sent, 1)]
    );
}

pub async fn a_final_state_is_never_overwritten_by_a_late_outcome(db: &impl Database) {
    let storage = db.open().await;
    let crisis = declare(&storage, 2).await;
    let queue = &storage.queue;
    let claimed = claim(&storage, "w", at(1), 2).await;
    let (delivered, refused_one) = (claimed[0].id, claimed[1].id);
    record_outcome(&storage, "w", at(2), delivered, sent()).await;
    record_outcome(&storage, "w", at(2), refused_one, refused("550 rejected")).await;

    // Late, repeated or contradictory outcomes, in one batch and alone.
    storage
        .queue
        .record_outcomes(
            "w",
            at(3),
            &[
                (delivered, refused("late")),
                (delivered, retry(at(4), "late")),
                (refused_one, sent()),
                (refused_one, retry(at(4), "late")),
            ],
        )
        .await
        .expect("outcomes");
    queue
        .release(&[delivered, refused_one], "w")
        .await
        .expect("release");
    assert_eq!(
        queue.kill_unroutable(&[], at(5)).await.expect("kill"),
        0,
        "finished deliveries are not unroutable"
    );

    assert_eq!(
        states(&storage, &crisis).await,
        vec![(DeliveryState::Dead, 1), (DeliveryState::Sent, 1)]
    );
    let dead = storage
        .dead_letters
        .list(of_crisis(&crisis), 10)
        .await
        .expect("dead");
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].id, dead[0].reason.as_str(), dead[0].finished_at),
        (refused_one, "550 rejected", at(2))
    );
    let finished = storage
        .ledger
        .finished_since(Some(crisis.id), at(3))
        .await
        .expect("finished");
    assert!(
        finished.is_empty(),
        "finished at 2, not again: {finished:?}"
    );
}

pub async fn the_store_requeues_dead_deliveries_but_not_unrendered_or_opted_out_ones(
    db: &impl Database,
) {
    let storage = db.open().await;
    let crisis = declared();
    let mut w = write(&crisis, None, 0);
    w.deliveries = vec![
        email_delivery(0),
        email_delivery(1),
        unfit_email_delivery(2, "template `en/email/initial.subject.j2` failed"),
        email_delivery(3),
    ];
    storage.crises.record_transition(w).await.expect("write");
    let claimed = claim(&storage, "w", at(1), 10).await;
    assert_eq!(claimed.len(), 3, "the unrendered one was written dead");
    record_outcome(&storage, "w", at(2), claimed[0].id, refused("550 rejected")).await;
    record_outcome(&storage, "w", at(3), claimed[1].id, sent()).await;
    // Dies for another reason, then its reader opts out (with other case
    // and spaces than the delivery's address).
    record_outcome(
        &storage,
        "w",
        at(1),
        claimed[2].id,
        refused("550 mailbox full"),
    )
    .await;
    let opted_out = format!(" {} ", claimed[2].destination.to_uppercase());
    storage
        .consent
        .opt_out(
            ContactPoint::Email,
            &opted_out,
            STOP_ALL,
            "unsubscribe",
            at(1),
        )
        .await
        .expect("opt out");

    let finished = storage
        .ledger
        .finished_since(Some(crisis.id), at(2))
        .await
        .expect("finished");
    assert_eq!(finished.len(), 1);
    assert_eq!(
        finished[0].count, 2,
        "the sent and the dead one since then, not the one dead since planning"
    );
    assert_eq!(
        storage
            .ledger
            .finished_since(None, at(3))
            .await
            .expect("finished")
            .iter()
            .map(|f| f.count)
            .sum::<u64>(),
        1
    );

    let dead_letters = &storage.dead_letters;
    let letters = dead_letters
        .list(of_crisis(&crisis), 10)
        .await
        .expect("dead");
    assert_eq!(letters.len(), 3);
    assert_eq!(letters[0].id, claimed[0].id, "newest first");
    assert_eq!(letters[0].finished_at, at(2));
    assert_eq!(letters[0].attempts, 1);
    assert_eq!(letters[0].reason, "550 rejected");
    assert_eq!(letters[2].cause, DeadCause::Unfit);
    assert_eq!(letters[2].attempts, 0);
    assert!(
        dead_letters
            .list(
                DeadFilter {
                    crisis: None,
                    channel: Some("sms")
                },
                10
            )
            .await
            .expect("dead")
            .is_empty()
    );
    assert_eq!(
        dead_letters
            .list(DeadFilter::default(), 1)
            .await
            .expect("dead")
            .len(),
        1,
        "at most the limit"
    );

    assert_eq!(
        dead_letters
            .count_requeueable(of_crisis(&crisis))
            .await
            .expect("count"),
        1
    );
    assert_eq!(
        dead_letters
            .requeue(
                DeadFilter {
                    crisis: Some(crisis.id),
                    channel: Some("email")
                },
                at(10)
            )
            .await
            .expect("requeue"),
        1
    );
    assert_eq!(
        dead_letters
            .requeue(DeadFilter::default(), at(10))
            .await
            .expect("requeue"),
        0,
        "requeuing twice changes nothing more"
    );
    assert!(
        claim(&storage, "w", at(9), 10).await.is_empty(),
        "due from the time of the requeue"
    );
    let again = claim(&storage, "w", at(10), 10).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, claimed[0].id);
    assert_eq!(again[0].attempts, 1, "attempts start over");
    assert_eq!(
        again[0].last_error.as_deref(),
        Some("550 rejected"),
        "the reason stays until the next outcome"
    );
    let still_dead = dead_letters
        .list(DeadFilter::default(), 10)
        .await
        .expect("dead");
    assert_eq!(still_dead.len(), 2, "{still_dead:?}");
    assert!(still_dead[0].reason.contains("mailbox full"), "opted out");
    assert!(still_dead[1].reason.contains("initial.subject.j2"));
}

/// One dead delivery of each cause; returns each one's destination and
/// cause, by destination.
async fn dead_of_every_cause(storage: &Storage) -> Vec<(String, DeadCause)> {
    let mut crisis = declared();
    let step = follow_up(&crisis, "first", at(60));
    let mut w = write(&crisis, None, 0);
    w.deliveries = vec![
        unfit_email_delivery(0, "too long"),
        email_delivery(1),
        email_delivery(2),
        email_delivery(3),
        email_delivery(4),
    ];
    w.follow_ups = FollowUpChange {
        cancel: None,
        schedule: vec![step.clone()],
    };
    storage.crises.record_transition(w).await.expect("write");
    let queue = &storage.queue;
    let claimed = claim(storage, "w", at(1), 2).await;
    let waiting: Vec<String> = (1..=4)
        .map(|n| format!("r{n}@example.com"))
        .filter(|address| claimed.iter().all(|d| d.destination != *address))
        .collect();
    let mut expected = vec![
        ("r0@example.com".to_owned(), DeadCause::Unfit),
        (claimed[0].destination.clone(), DeadCause::Permanent),
        (claimed[1].destination.clone(), DeadCause::AttemptsExhausted),
        (waiting[0].clone(), DeadCause::OptedOut),
        (waiting[1].clone(), DeadCause::Unroutable),
        ("r5@example.com".to_owned(), DeadCause::Cancelled),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    // One of each cause a requeue may try again...
    record_outcome(storage, "w", at(2), claimed[0].id, refused("550 rejected")).await;
    let gave_up = Outcome::Dead {
        cause: DeadCause::AttemptsExhausted,
        reason: "gave up after 1 attempts; last error: 421".into(),
    };
    record_outcome(storage, "w", at(2), claimed[1].id, gave_up).await;
    // ...and one to an address that opts out while it waits, and opts back
    // in: its message may go again.
    let consent = &storage.consent;
    let opting = waiting[0].to_uppercase();
    assert!(
        consent
            .opt_out(ContactPoint::Email, &opting, STOP_ALL, "unsubscribe", at(3))
            .await
            .expect("opt out")
    );
    assert!(
        consent
            .opt_in(ContactPoint::Email, &opting)
            .await
            .expect("opt in")
    );
    // The last one's channel goes away (before the all-clear, which would
    // cancel it as it cancels every queued message of the crisis).
    let unroutable = queue
        .kill_unroutable(&["sms".to_owned()], at(59))
        .await
        .expect("kill");
    assert_eq!(unroutable, 1, "the one still pending");
    // A follow-up message queued when the all-clear comes.
    assert!(start_follow_up(storage, &crisis, &step, at(60), email_delivery(5)).await);
    resolve(storage, &mut crisis, at(61)).await;
    expected
}

pub async fn requeue_leaves_cancelled_and_unfit_deliveries_dead_by_cause(db: &impl Database) {
    let storage = db.open().await;
    let expected = dead_of_every_cause(&storage).await;
    let letters = storage
        .dead_letters
        .list(DeadFilter::default(), 10)
        .await
        .expect("dead");
    let mut causes: Vec<(String, DeadCause)> = letters
        .iter()
        .map(|letter| (letter.destination.clone(), letter.cause))
        .collect();
    causes.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(causes, expected);
    let reason = |cause: DeadCause| {
        letters
            .iter()
            .find(|l| l.cause == cause)
            .map(|l| l.reason.clone())
    };
    assert_eq!(reason(DeadCause::Unfit).as_deref(), Some("too long"));
    assert_eq!(
        reason(DeadCause::OptedOut).as_deref(),
        Some("the recipient opted out")
    );
    assert_eq!(
        reason(DeadCause::Cancelled).as_deref(),
        Some("cancelled: the crisis was resolved")
    );

    let all = DeadFilter::default();
    assert_eq!(
        storage
            .dead_letters
            .count_requeueable(all)
            .await
            .expect("count"),
        4
    );
    assert_eq!(
        storage
            .dead_letters
            .requeue(all, at(70))
            .await
            .expect("requeue"),
        4
    );
    let mut back: Vec<String> = claim(&storage, "w", at(70), 10)
        .await
        .into_iter()
        .map(|d| d.destination)
        .collect();
    back.sort();
    let mut requeueable: Vec<String> = expected
        .iter()
        .filter(|(_, cause)| cause.requeueable())
        .map(|(destination, _)| destination.clone())
        .collect();
    requeueable.sort();
    assert_eq!(back, requeueable);
    let left: Vec<DeadCause> = storage
        .dead_letters
        .list(all, 10)
        .await
        .expect("dead")
        .iter()
        .map(|l| l.cause)
        .collect();
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|cause| !cause.requeueable()), "{left:?}");
}

pub async fn a_retry_to_an_address_opted_out_meanwhile_ends_dead(db: &impl Database) {
    let storage = db.open().await;
    let crisis = declare(&storage, 2).await;
    let claimed = claim(&storage, "w", at(1), 2).await;
    let consent = &storage.consent;
    for delivery in &claimed {
        consent
            .opt_out(
                ContactPoint::Email,
                &delivery.destination,
                STOP_ALL,
                "unsubscribe",
                at(2),
            )
            .await
            .expect("opt out");
    }
    assert_eq!(
        states(&storage, &crisis).await,
        vec![(DeliveryState::InFlight, 2)],
        "in flight when the reader opted out: sent"
    );
    record_outcome(&storage, "w", at(3), claimed[0].id, sent()).await;
    record_outcome(&storage, "w", at(3), claimed[1].id, retry(at(9), "421")).await;
    let dead = storage
        .dead_letters
        .list(of_crisis(&crisis), 10)
        .await
        .expect("dead");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, claimed[1].id);
    assert_eq!(
        (dead[0].cause, dead[0].reason.as_str(), dead[0].finished_at),
        (DeadCause::OptedOut, "the recipient opted out", at(3))
    );
}

pub async fn opting_out_ends_queued_messages_and_opting_in_takes_it_back(db: &impl Database) {
    let storage = db.open().await;
    let crisis = declare(&storage, 3).await;
    let consent = &storage.consent;
    assert!(
        consent
            .opt_out(
                ContactPoint::Email,
                " R0@Example.com ",
                STOP_ALL,
                "unsubscribe",
                at(1)
            )
            .await
            .expect("opt out"),
        "new"
    );
    assert!(
        !consent
            .opt_out(
                ContactPoint::Email,
                "r0@example.com",
                STOP_ALL,
                "unsubscribe",
                at(2)
            )
            .await
            .expect("opt out"),
        "already opted out"
    );
    assert!(
        consent
            .opt_out(
                ContactPoint::Phone,
                "+15550100",
                STOP_ALL,
                "sms keyword",
                at(2)
            )
            .await
            .expect("opt out")
    );
    let opt_outs = consent.opt_outs().await.expect("opt-outs");
    assert!(opt_outs.contains(ContactPoint::Email, "R0@EXAMPLE.COM"));
    assert!(opt_outs.contains(ContactPoint::Phone, "+15550100"));
    assert_eq!((opt_outs.emails.len(), opt_outs.phones.len()), (1, 1));

    let dead = storage
        .dead_letters
        .list(of_crisis(&crisis), 10)
        .await
        .expect("dead");
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (
            dead[0].destination.as_str(),
            dead[0].cause,
            dead[0].finished_at
        ),
        ("r0@example.com", DeadCause::OptedOut, at(1))
    );

    assert!(
        consent
            .opt_in(ContactPoint::Phone, "+15550100")
            .await
            .expect("opt in")
    );
    assert!(
        !consent
            .opt_in(ContactPoint::Phone, "+15550100")
            .await
            .expect("opt in"),
        "no longer opted out"
    );
    let opt_outs = consent.opt_outs().await.expect("opt-outs");
    assert!(!opt_outs.contains(ContactPoint::Phone, "+15550100"));
    assert_eq!(
        states(&storage, &crisis).await,
        vec![(DeliveryState::Dead, 1), (DeliveryState::Pending, 2)]
    );
}

pub async fn a_follow_ups_opt_out_stops_follow_ups_only_and_a_one_click_never_narrows(
    db: &impl Database,
) {
    let storage = db.open().await;
    let crisis = declared();
    let step = follow_up(&crisis, "first", at(60));
    let mut w = write(&crisis, None, 0);
    w.deliveries = vec![email_delivery(0), email_delivery(1)];
    w.follow_ups = FollowUpChange {
        cancel: None,
        schedule: vec![step.clone()],
    };
    storage.crises.record_transition(w).await.expect("write");
    assert!(start_follow_up(&storage, &crisis, &step, at(60), email_delivery(0)).await);
    let consent = &storage.consent;
    let email = ContactPoint::Email;
    let opt_out = |address: &'static str, request| async move {
        consent
            .opt_out(email, address, request, "one-click unsubscribe", at(61))
            .await
            .expect("opt out")
    };
    let follow_ups = OptOutRequest::AtLeast(ConsentScope::FollowUps);
    assert!(opt_out(" R0@Example.com", follow_ups).await, "new");
    assert_eq!(
        states(&storage, &crisis).await,
        vec![(DeliveryState::Dead, 1), (DeliveryState::Pending, 2)],
        "the queued follow-up ended, the announcement to the same reader kept"
    );
    let dead = storage
        .dead_letters
        .list(of_crisis(&crisis), 10)
        .await
        .expect("dead");
    assert_eq!(
        (dead[0].destination.as_str(), dead[0].cause),
        ("r0@example.com", DeadCause::OptedOut)
    );
    let scope = |address: &'static str| async move {
        consent.opt_out_scope(email, address).await.expect("scope")
    };
    assert_eq!(scope("r0@example.com").await, Some(ConsentScope::FollowUps));
    let opt_outs = consent.opt_outs().await.expect("opt-outs");
    assert!(opt_outs.stops(email, "r0@example.com", AnnouncementKind::FollowUp));
    assert!(!opt_outs.stops(email, "r0@example.com", AnnouncementKind::Update));

    // Everything, then a one-click from an old follow-up: still everything.
    assert!(opt_out("r0@example.com", STOP_ALL).await, "widened");
    assert_eq!(
        states(&storage, &crisis).await,
        vec![(DeliveryState::Dead, 2), (DeliveryState::Pending, 1)]
    );
    assert!(!opt_out("r0@example.com", follow_ups).await, "not narrowed");
    assert_eq!(scope("r0@example.com").await, Some(ConsentScope::All));
    // The reader's own choice on the page narrows it.
    let exactly = OptOutRequest::Exactly(ConsentScope::FollowUps);
    assert!(opt_out("r0@example.com", exactly).await);
    assert!(!opt_out("r0@example.com", exactly).await, "unchanged");
    assert_eq!(scope("r0@example.com").await, Some(ConsentScope::FollowUps));

    // An announcement's retry to a reader who stopped follow-ups is retried.
    let claimed = claim(&storage, "w", at(62), 10).await;
    assert_eq!(claimed.len(), 1);
    assert!(opt_out("r1@example.com", follow_ups).await);
    record_outcome(&storage, "w", at(63), claimed[0].id, retry(at(70), "421")).await;
    assert_eq!(
        states(&storage, &crisis).await,
        vec![(DeliveryState::Dead, 2), (DeliveryState::Retrying, 1)]
    );
    assert!(
        consent
            .opt_in(email, "r0@example.com")
            .await
            .expect("opt in")
    );
    assert_eq!(scope("r0@example.com").await, None);
}

pub async fn a_source_link_is_set_replaced_and_removed_with_transitions(db: &impl Database) {
    use crisisd::outbox::{SourceLink, SourceLinkChange};
    let storage = db.open().await;
    let links = &storage.source_links;
    let mut crisis = declared();
    let id = crisis.id;
    let link = |fingerprint: &str| SourceLink {
        source: "hook:status".into(),
        external_id: "incident-1".into(),
        crisis_id: id,
        fingerprint: fingerprint.into(),
    };
    let mut w = write(&crisis, None, 0);
    w.source_link = Some(SourceLinkChange::Set(link("a")));
    storage.crises.record_transition(w).await.expect("declare");
    assert_eq!(
        links
            .source_link("hook:status", "incident-1")
            .await
            .expect("link"),
        Some(link("a"))
    );
    assert_eq!(
        links
            .source_link("hook:other", "incident-1")
            .await
            .expect("link"),
        None,
        "per source"
    );

    let previous = crisis.version;
    crisis.apply_update(message("more"), at(5)).expect("update");
    let mut w = write(&crisis, Some(previous), 0);
    w.source_link = Some(SourceLinkChange::Set(link("b")));
    storage.crises.record_transition(w).await.expect("update");
    assert_eq!(
        links
            .source_link("hook:status", "incident-1")
            .await
            .expect("link")
            .map(|l| l.fingerprint),
        Some("b".to_owned()),
        "replaced"
    );

    let previous = crisis.version;
    crisis.resolve(None, at(6)).expect("resolve");
    let mut w = write(&crisis, Some(previous), 0);
    w.source_link = Some(SourceLinkChange::Remove {
        source: "hook:status".into(),
        external_id: "incident-1".into(),
    });
    storage.crises.record_transition(w).await.expect("resolve");
    assert_eq!(
        links
            .source_link("hook:status", "incident-1")
            .await
            .expect("link"),
        None
    );

    // Set again by a new crisis, then forgotten without a transition.
    let other = declared();
    let mut w = write(&other, None, 0);
    w.source_link = Some(SourceLinkChange::Set(SourceLink {
        crisis_id: other.id,
        ..link("c")
    }));
    storage.crises.record_transition(w).await.expect("declare");
    links
        .unlink_source("hook:status", "incident-1")
        .await
        .expect("unlink");
    assert_eq!(
        links
            .source_link("hook:status", "incident-1")
            .await
            .expect("link"),
        None
    );
    links
        .unlink_source("hook:status", "incident-1")
        .await
        .expect("unlinking twice is harmless");
}

pub async fn a_plan_is_written_in_batches_and_listed_until_finished(db: &impl Database) {
    let storage = db.open().await;
    let crisis = declared();
    let mut w = write(&crisis, None, 1);
    w.planning = Some(planner_lease());
    w.idempotency = Some(IdempotencyRecord {
        scope: "tests".into(),
        key: "declare-1".into(),
        fingerprint: "f".into(),
        status: 0,
        body: String::new(),
    });
    let announcement = w.announcement.clone();
    storage.crises.record_transition(w).await.expect("declare");
    let plans = &storage.plans;
    let unfinished = plans.unfinished_plans().await.expect("plans");
    assert_eq!(unfinished.len(), 1);
    assert_eq!(unfinished[0].announcement, announcement);
    assert_eq!(unfinished[0].planned_through, 0);
    assert_eq!(
        unfinished[0].idempotency,
        Some(("tests".to_owned(), "declare-1".to_owned()))
    );

    plans
        .append_plan(
            &announcement,
            &[],
            &[email_delivery(7), unfit_email_delivery(8, "too long")],
            plan_step(&planner_lease(), 0, 2),
        )
        .await
        .expect("batch");
    assert_eq!(
        plans.unfinished_plans().await.expect("plans")[0].planned_through,
        2,
        "how far it got"
    );
    assert_eq!(
        plans
            .announcement_deliveries(announcement.id)
            .await
            .expect("count"),
        3
    );
    assert_eq!(
        states(&storage, &crisis).await,
        vec![(DeliveryState::Dead, 1), (DeliveryState::Pending, 2)]
    );

    // As the service completes it: the fingerprint is not repeated.
    let done = IdempotencyRecord {
        scope: "tests".into(),
        key: "declare-1".into(),
        fingerprint: String::new(),
        status: 201,
        body: "{\"deliveries\":3}".into(),
    };
    plans
        .finish_plan(announcement.id, "planner", Some(done))
        .await
        .expect("finish");
    assert!(plans.unfinished_plans().await.expect("plans").is_empty());
    let record = storage
        .idempotency
        .idempotent_response("tests", "declare-1")
        .await
        .expect("read")
        .expect("record");
    assert_eq!(
        (
            record.status,
            record.body.as_str(),
            record.fingerprint.as_str()
        ),
        (201, "{\"deliveries\":3}", "f"),
        "completed, its fingerprint kept"
    );
}

pub async fn a_plan_is_taken_over_once_its_lease_runs_out_and_its_old_owner_writes_nothing_more(
    db: &impl Database,
) {
    let storage = db.open().await;
    let plans = &storage.plans;
    let crisis = declared();
    let mut w = write(&crisis, None, 0);
    let first = lease("first", at(15));
    w.planning = Some(first.clone());
    let announcement = w.announcement.clone();
    storage.crises.record_transition(w).await.expect("declare");
    let listed = plans.unfinished_plans().await.expect("plans");
    assert_eq!(listed[0].lease, Some(first.clone()), "its owner and lease");

    // While its lease lasts nobody else takes it; renewed, it lasts on.
    assert!(
        plans
            .take_plans(&lease("second", at(30)), at(10))
            .await
            .expect("take")
            .is_empty()
    );
    let renewed = lease("first", at(20));
    assert!(
        plans
            .renew_plan(announcement.id, &renewed)
            .await
            .expect("renew")
    );
    plans
        .append_plan(
            &announcement,
            &[],
            &[email_delivery(1)],
            plan_step(&renewed, 0, 1),
        )
        .await
        .expect("the owner's batch");
    assert!(
        plans
            .take_plans(&lease("second", at(30)), at(16))
            .await
            .expect("take")
            .is_empty(),
        "renewed past 16s"
    );

    // It runs out: the first to look takes it, where it got to.
    let second = lease("second", at(40));
    let taken = plans.take_plans(&second, at(21)).await.expect("take");
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].announcement, announcement);
    assert_eq!(taken[0].planned_through, 1);
    assert_eq!(taken[0].lease, Some(second.clone()));
    assert!(
        plans
            .take_plans(&lease("third", at(50)), at(21))
            .await
            .expect("take")
            .is_empty(),
        "taken once"
    );

    // The old owner wakes late: its batch, renewal and finish are refused.
    let late = plans
        .append_plan(
            &announcement,
            &[],
            &[email_delivery(2)],
            plan_step(&lease("first", at(45)), 1, 2),
        )
        .await;
    assert!(matches!(late, Err(StoreError::PlanTaken)), "{late:?}");
    assert!(
        !plans
            .renew_plan(announcement.id, &lease("first", at(45)))
            .await
            .expect("renew")
    );
    let finish = plans.finish_plan(announcement.id, "first", None).await;
    assert!(matches!(finish, Err(StoreError::PlanTaken)), "{finish:?}");

    // The new owner writes from where the plan is, once: the same batch
    // again (two writers of one place) is refused.
    plans
        .append_plan(
            &announcement,
            &[],
            &[email_delivery(3)],
            plan_step(&second, 1, 2),
        )
        .await
        .expect("the new owner's batch");
    let twice = plans
        .append_plan(
            &announcement,
            &[],
            &[email_delivery(4)],
            plan_step(&second, 1, 2),
        )
        .await;
    assert!(matches!(twice, Err(StoreError::PlanTaken)), "{twice:?}");
    assert_eq!(
        plans
            .announcement_deliveries(announcement.id)
            .await
            .expect("count"),
        2
    );
    plans
        .finish_plan(announcement.id, "second", None)
        .await
        .expect("finish");
    assert!(plans.unfinished_plans().await.expect("plans").is_empty());
    assert!(
        plans
            .take_plans(&lease("third", at(90)), at(1000))
            .await
            .expect("take")
            .is_empty(),
        "a finished plan is nobody's to take"
    );
}

pub async fn a_claimed_reader_gets_the_shared_rendition_and_their_own_part(db: &impl Database) {
    use crisisd::message::{DeliveryContent, EmailContent, NAME_MARK};
    use crisisd::outbox::{NewRendition, Payload};
    let storage = db.open().await;
    let crisis = declared();
    let mut w = write(&crisis, None, 1);
    w.planning = Some(planner_lease());
    let announcement = w.announcement.clone();
    storage.crises.record_transition(w).await.expect("declare");
    let rendition = NewRendition {
        id: crisisd::domain::RenditionId::new(),
        content: DeliveryContent::Email(EmailContent {
            subject: format!("For {NAME_MARK}"),
            text: "t".into(),
            html: "h".into(),
            unsubscribe_url: None,
        }),
    };
    let mut reader = email_delivery(7);
    reader.planned = Planned::Queued {
        payload: Payload::Rendition {
            id: rendition.id,
            recipient_name: Some("Ana".into()),
            unsubscribe_url: Some("https://example.com/u".into()),
        },
        not_before: None,
    };
    storage
        .plans
        .append_plan(
            &announcement,
            std::slice::from_ref(&rendition),
            std::slice::from_ref(&reader),
            plan_step(&planner_lease(), 0, 1),
        )
        .await
        .expect("batch");

    let claimed = claim(&storage, "w", at(1), 10).await;
    assert_eq!(claimed.len(), 2);
    let claimed_reader = claimed
        .iter()
        .find(|d| d.id == reader.id)
        .expect("the reader's delivery");
    assert_eq!(*claimed_reader.content, rendition.content);
    let personal = claimed_reader.personal.as_ref().expect("personal part");
    assert_eq!(personal.rendition, rendition.id);
    assert_eq!(personal.recipient_name.as_deref(), Some("Ana"));
    assert_eq!(
        personal.unsubscribe_url.as_deref(),
        Some("https://example.com/u")
    );
    let DeliveryContent::Email(email) = claimed_reader.personalized().into_owned() else {
        panic!("an email");
    };
    assert_eq!(email.subject, "For Ana");
    let inline = claimed.iter().find(|d| d.id != reader.id).expect("inline");
    assert!(inline.personal.is_none());
    assert_eq!(inline.kind, AnnouncementKind::Initial);
    assert_eq!(inline.announcement_id, announcement.id);
}

pub async fn the_all_clear_kills_queued_follow_up_messages_and_no_follow_up_starts_after_it(
    db: &impl Database,
) {
    let storage = db.open().await;
    let follow_ups = &storage.follow_ups;
    let mut crisis = declared();
    let (first, second) = (
        follow_up(&crisis, "first", at(3600)),
        follow_up(&crisis, "second", at(3600)),
    );
    let mut declaration = write(&crisis, None, 0);
    declaration.follow_ups = FollowUpChange {
        cancel: None,
        schedule: vec![first.clone(), second.clone()],
    };
    storage.crises.record_transition(declaration).await.unwrap();
    assert_eq!(
        follow_ups.due_follow_ups(at(3599), 10).await.unwrap().len(),
        0
    );
    assert_eq!(
        follow_ups.due_follow_ups(at(3600), 10).await.unwrap().len(),
        2
    );

    // The first becomes its announcement; one message waits (say, for
    // the morning), one goes, and a second batch is still to be planned.
    let started = follow_up_announcement(&crisis, &first, at(3600));
    let mut held = email_delivery(1);
    held.priority = 1;
    hold_until(&mut held, at(36_000));
    let start = FollowUpStart {
        follow_up: first.id,
        announcement: started.clone(),
        deliveries: vec![held, email_delivery(4)],
        planning: Some(planner_lease()),
    };
    assert!(follow_ups.start_follow_up(start.clone()).await.unwrap());
    let again = FollowUpStart {
        announcement: follow_up_announcement(&crisis, &first, at(3600)),
        ..start
    };
    assert!(
        !follow_ups.start_follow_up(again).await.unwrap(),
        "a follow-up is claimed once"
    );

    // One of its messages is being sent when the all-clear comes.
    let sending = claim(&storage, "tests", at(3600), 10).await;
    assert_eq!(sending.len(), 1, "the held one waits");

    // The all-clear, in the same second as the second follow-up's turn.
    resolve(&storage, &mut crisis, at(3600)).await;
    assert!(
        !start_follow_up(&storage, &crisis, &second, at(3600), email_delivery(2)).await,
        "resolved first"
    );

    // The send fails transiently: it is not tried again after the all-clear.
    record_outcome(
        &storage,
        "tests",
        at(3601),
        sending[0].id,
        retry(at(3602), "421 try later"),
    )
    .await;

    // The first follow-up's plan writes its last batch after the all-clear.
    storage
        .plans
        .append_plan(
            &started,
            &[],
            &[email_delivery(3)],
            plan_step(&planner_lease(), 0, 2),
        )
        .await
        .unwrap();

    let claimed = claim(&storage, "tests", at(86_400), 10).await;
    assert!(claimed.is_empty(), "{claimed:?}");
    let dead = storage
        .dead_letters
        .list(of_crisis(&crisis), 10)
        .await
        .unwrap();
    assert_eq!(dead.len(), 3);
    assert!(dead.iter().all(
        |d| d.cause == DeadCause::Cancelled && d.reason == "cancelled: the crisis was resolved"
    ));
    assert_eq!(
        states(&storage, &crisis).await,
        vec![(DeliveryState::Dead, 3)],
        "all three dead, nothing else"
    );
    assert_eq!(
        storage
            .dead_letters
            .requeue(of_crisis(&crisis), at(86_400))
            .await
            .unwrap(),
        0
    );

    let list = follow_ups.follow_ups(Some(crisis.id)).await.unwrap();
    assert_eq!(list[0].state, FollowUpState::Sent);
    assert_eq!(list[0].announcement_id, Some(started.id));
    assert_eq!(list[1].state, FollowUpState::Cancelled);
    assert_eq!(
        list[1].reason.as_deref(),
        Some("cancelled: the crisis was resolved")
    );
    assert_eq!(follow_ups.next_follow_up_at().await.unwrap(), None);
}

pub async fn a_follow_up_is_settled_once_and_a_changed_plan_replaces_the_rest(db: &impl Database) {
    let storage = db.open().await;
    let follow_ups = &storage.follow_ups;
    let crisis = declared();
    let (early, late) = (
        follow_up(&crisis, "early", at(60)),
        follow_up(&crisis, "late", at(7200)),
    );
    let mut w = write(&crisis, None, 0);
    w.follow_ups = FollowUpChange {
        cancel: None,
        schedule: vec![late.clone(), early.clone()],
    };
    storage.crises.record_transition(w).await.expect("declare");
    assert_eq!(
        follow_ups.next_follow_up_at().await.expect("next"),
        Some(at(60))
    );
    let due = follow_ups.due_follow_ups(at(9000), 1).await.expect("due");
    assert_eq!(due.len(), 1, "at most the limit");
    assert_eq!(due[0].id, early.id, "earliest first");

    assert!(
        follow_ups
            .settle_follow_up(early.id, FollowUpState::Skipped, "skipped: late", at(70))
            .await
            .expect("settle")
    );
    assert!(
        !follow_ups
            .settle_follow_up(early.id, FollowUpState::Cancelled, "again", at(71))
            .await
            .expect("settle"),
        "no longer pending"
    );

    let replacement = follow_up(&crisis, "replacement", at(3600));
    follow_ups
        .replace_follow_ups(FollowUpReplacement {
            crisis: crisis.id,
            phase: Phase::Active,
            after: at(100),
            reason: "cancelled: the follow-up plan changed".into(),
            schedule: vec![replacement.clone()],
        })
        .await
        .expect("replace");
    let list = follow_ups.follow_ups(Some(crisis.id)).await.expect("list");
    let state_of = |id: Uuid| {
        list.iter()
            .find(|f| f.id == id)
            .map(|f| (f.state, f.reason.clone()))
    };
    assert_eq!(
        state_of(early.id),
        Some((FollowUpState::Skipped, Some("skipped: late".into())))
    );
    assert_eq!(
        state_of(late.id),
        Some((
            FollowUpState::Cancelled,
            Some("cancelled: the follow-up plan changed".into())
        ))
    );
    assert_eq!(
        state_of(replacement.id).map(|(state, _)| state),
        Some(FollowUpState::Pending)
    );
    assert_eq!(
        follow_ups.next_follow_up_at().await.expect("next"),
        Some(at(3600))
    );
    assert_eq!(
        follow_ups.follow_ups(None).await.expect("all").len(),
        3,
        "every crisis's"
    );
}

pub async fn a_hook_delivery_is_remembered_and_the_log_keeps_what_came(db: &impl Database) {
    use crisisd::outbox::{HookLogEntry, Verdict};
    let storage = db.open().await;
    let hooks = &storage.hooks;
    assert!(!hooks.delivery_seen("status", "d1").await.expect("seen"));
    hooks
        .remember_delivery("status", "d1", at(1))
        .await
        .expect("remember");
    hooks
        .remember_delivery("status", "d1", at(2))
        .await
        .expect("remembering twice is harmless");
    assert!(hooks.delivery_seen("status", "d1").await.expect("seen"));
    assert!(
        !hooks.delivery_seen("other", "d1").await.expect("seen"),
        "per hook"
    );

    let entry = |hook: &str, verdict: Verdict, n: i64| HookLogEntry {
        seq: 0,
        hook: hook.into(),
        source: "statuspage".into(),
        received_at: at(n),
        status: 200,
        verdict,
        transitions: vec![format!("declared {n}")],
        error: None,
        delivery_id: Some(format!("d{n}")),
    };
    for (n, (hook, verdict)) in [
        ("status", Verdict::Applied),
        ("other", Verdict::TooLarge),
        ("status", Verdict::Duplicate),
    ]
    .into_iter()
    .enumerate()
    {
        let n = i64::try_from(n).expect("small");
        hooks
            .record_hook(&entry(hook, verdict, n))
            .await
            .expect("log");
    }
    let log = hooks.hook_log(Some("status"), 10).await.expect("log");
    assert_eq!(log.len(), 2);
    assert_eq!(
        log.iter().map(|e| e.verdict).collect::<Vec<_>>(),
        vec![Verdict::Duplicate, Verdict::Applied],
        "newest first"
    );
    assert!(log[0].seq > log[1].seq);
    assert_eq!(
        HookLogEntry {
            seq: 0,
            ..log[1].clone()
        },
        entry("status", Verdict::Applied, 0)
    );
    let all = hooks.hook_log(None, 2).await.expect("log");
    assert_eq!(all.len(), 2, "at most the limit");
    assert_eq!(all[1].verdict, Verdict::TooLarge);
}

pub async fn a_held_incident_is_kept_until_it_is_decided(db: &impl Database) {
    use crisisd::outbox::{Pending, PendingState};
    let storage = db.open().await;
    let hooks = &storage.hooks;
    let crisis = declared();
    let held = Pending {
        id: crisis.id,
        hook: "status".into(),
        external_id: "incident-1".into(),
        state: PendingState::Held,
        declaration: Declaration {
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
        due_at: Some(at(300)),
        created_at: at(0),
        updated_at: at(0),
        decided_by: None,
    };
    hooks.save_pending(&held).await.expect("save");
    assert_eq!(
        hooks
            .open_pending("status", "incident-1")
            .await
            .expect("open"),
        Some(held.clone())
    );
    assert_eq!(hooks.next_hold().await.expect("next"), Some(at(300)));
    assert!(hooks.due_holds(at(299)).await.expect("due").is_empty());
    assert_eq!(
        hooks.due_holds(at(300)).await.expect("due"),
        vec![held.clone()]
    );

    let proposed = Pending {
        state: PendingState::Proposed,
        due_at: None,
        updated_at: at(300),
        ..held.clone()
    };
    hooks.save_pending(&proposed).await.expect("replace");
    assert_eq!(hooks.next_hold().await.expect("next"), None);
    assert_eq!(
        hooks.open_pendings().await.expect("open"),
        vec![proposed.clone()]
    );

    let confirmed = Pending {
        state: PendingState::Confirmed,
        decided_by: Some("alice".into()),
        updated_at: at(400),
        ..proposed
    };
    hooks.save_pending(&confirmed).await.expect("decide");
    assert_eq!(
        hooks
            .open_pending("status", "incident-1")
            .await
            .expect("open"),
        None
    );
    assert!(hooks.open_pendings().await.expect("open").is_empty());
    assert_eq!(
        hooks.pending(crisis.id).await.expect("by id"),
        Some(confirmed)
    );
}

pub async fn the_ledger_counts_queues_by_channel_and_answers_a_ping(db: &impl Database) {
    let storage = db.open().await;
    storage.ledger.ping().await.expect("ping");
    let (one, two) = (declared(), declared());
    storage
        .crises
        .record_transition(write(&one, None, 3))
        .await
        .expect("write");
    storage
        .crises
        .record_transition(write(&two, None, 1))
        .await
        .expect("write");
    let claimed = claim(&storage, "w", at(1), 3).await;
    record_outcome(&storage, "w", at(2), claimed[0].id, sent()).await;
    record_outcome(&storage, "w", at(2), claimed[1].id, refused("550")).await;

    let channels: Vec<(String, DeliveryState, u64)> = storage
        .ledger
        .channel_counts()
        .await
        .expect("counts")
        .into_iter()
        .map(|c| (c.channel, c.state, c.count))
        .collect();
    assert_eq!(
        channels,
        vec![
            ("email".to_owned(), DeliveryState::Dead, 1),
            ("email".to_owned(), DeliveryState::InFlight, 1),
            ("email".to_owned(), DeliveryState::Pending, 1),
        ],
        "sent ones are not counted"
    );
    let all = storage.ledger.delivery_counts(None).await.expect("counts");
    assert_eq!(all.iter().map(|c| c.count).sum::<u64>(), 4);
    assert_eq!(
        all.iter()
            .filter(|c| c.crisis_id == two.id)
            .map(|c| c.count)
            .sum::<u64>(),
        1
    );
    let finished = storage
        .ledger
        .finished_since(None, at(2))
        .await
        .expect("finished");
    assert_eq!(finished.iter().map(|f| f.count).sum::<u64>(), 2);
}

pub async fn a_new_crisis_cannot_take_over_an_incident_an_active_crisis_is_linked_to(
    db: &impl Database,
) {
    use crisisd::outbox::{SourceLink, SourceLinkChange};
    let storage = db.open().await;
    let link = |crisis: &Crisis| SourceLink {
        source: "hook:alerts".into(),
        external_id: "incident-1".into(),
        crisis_id: crisis.id,
        fingerprint: "f".into(),
    };
    let mut first = declared();
    let mut w = write(&first, None, 1);
    w.source_link = Some(SourceLinkChange::Set(link(&first)));
    storage.crises.record_transition(w).await.expect("declare");

    // Another daemon declared the same incident at the same time.
    let second = declared();
    let mut w = write(&second, None, 1);
    w.source_link = Some(SourceLinkChange::Set(link(&second)));
    let refused = storage.crises.record_transition(w).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(storage.crises.crisis(second.id).await.expect("read"), None);
    assert_eq!(
        storage
            .source_links
            .source_link("hook:alerts", "incident-1")
            .await
            .expect("link")
            .map(|l| l.crisis_id),
        Some(first.id)
    );
    assert_eq!(
        storage
            .ledger
            .delivery_counts(None)
            .await
            .expect("counts")
            .len(),
        1,
        "the refused declaration queued nothing"
    );

    // Once the linked crisis is resolved (by hand, the link left behind),
    // the incident may start a new crisis.
    let previous = first.version;
    first.resolve(None, at(5)).expect("resolve");
    storage
        .crises
        .record_transition(write(&first, Some(previous), 0))
        .await
        .expect("resolve");
    let third = declared();
    let mut w = write(&third, None, 0);
    w.source_link = Some(SourceLinkChange::Set(link(&third)));
    storage
        .crises
        .record_transition(w)
        .await
        .expect("declare again");
    assert_eq!(
        storage
            .source_links
            .source_link("hook:alerts", "incident-1")
            .await
            .expect("link")
            .map(|l| l.crisis_id),
        Some(third.id)
    );
}

pub async fn daemons_say_they_are_alive_and_their_deliveries_in_flight_are_counted_by_owner(
    db: &impl Database,
) {
    let storage = db.open().await;
    let leader = &storage.leader;
    leader.heartbeat("a", at(0), at(0)).await.expect("beat");
    leader.heartbeat("b", at(1), at(1)).await.expect("beat");
    leader
        .heartbeat("a", at(0), at(20))
        .await
        .expect("beat again");
    let seen = leader.nodes(at(10)).await.expect("nodes");
    assert_eq!(seen.len(), 1, "b not seen since 10 s: {seen:?}");
    assert_eq!(
        (seen[0].node.as_str(), seen[0].started_at, seen[0].seen_at),
        ("a", at(0), at(20))
    );
    leader.leave("a").await.expect("leave");
    assert!(
        leader
            .nodes(at(0))
            .await
            .expect("nodes")
            .iter()
            .all(|n| n.node != "a")
    );

    let crisis = declared();
    storage
        .crises
        .record_transition(write(&crisis, None, 3))
        .await
        .expect("declare");
    let claimed = claim(&storage, "a/run-1", at(1), 2).await;
    assert_eq!(claimed.len(), 2);
    let held = leader.held_leases().await.expect("leases");
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(
        (held[0].node(), held[0].channel.as_str(), held[0].in_flight),
        ("a", "email", 2)
    );
}

pub async fn one_daemon_leads_until_its_lease_runs_out_and_each_new_leader_has_a_new_term(
    db: &impl Database,
) {
    let storage = db.open().await;
    let leader = &storage.leader;
    let ttl = Duration::from_secs(15);
    assert_eq!(leader.leader(at(0)).await.expect("leader"), None);
    let first = leader.elect("a", at(0), ttl).await.expect("elect");
    assert_eq!(
        first.as_ref().map(|t| (t.node.as_str(), t.term)),
        Some(("a", 1))
    );
    assert_eq!(
        leader.elect("b", at(1), ttl).await.expect("elect"),
        None,
        "a leads"
    );
    let renewed = leader
        .elect("a", at(10), ttl)
        .await
        .expect("renew")
        .expect("a");
    assert_eq!(
        (renewed.term, renewed.elected_at, renewed.expires_at),
        (1, at(0), at(25))
    );
    assert_eq!(leader.elect("b", at(24), ttl).await.expect("elect"), None);

    // `a` stalls past its lease: `b` takes over with the next term, and `a`
    // coming back does not take it back.
    let second = leader
        .elect("b", at(25), ttl)
        .await
        .expect("elect")
        .expect("b");
    assert_eq!((second.node.as_str(), second.term), ("b", 2));
    assert_eq!(leader.elect("a", at(26), ttl).await.expect("elect"), None);
    assert_eq!(
        leader.leader(at(26)).await.expect("leader").map(|t| t.node),
        Some("b".to_owned())
    );

    // A stop gives the lead up at once.
    leader.resign("b").await.expect("resign");
    assert_eq!(leader.leader(at(27)).await.expect("leader"), None);
    let third = leader
        .elect("a", at(27), ttl)
        .await
        .expect("elect")
        .expect("a");
    assert_eq!(third.term, 3);
    assert_eq!(
        db.open().await.leader.leader(at(28)).await.expect("leader"),
        Some(third),
        "kept in the store"
    );
}

/// A waiter for work due, registered now (as a worker does before it
/// claims).
fn registered(storage: &Storage) -> Pin<Box<Notified<'_>>> {
    let mut notified = Box::pin(storage.queue.work_due().notified());
    notified.as_mut().enable();
    notified
}

async fn woken(notified: Pin<Box<Notified<'_>>>) -> bool {
    tokio::time::timeout(Duration::from_secs(5), notified)
        .await
        .is_ok()
}

pub async fn committed_work_wakes_whoever_waits_for_it(db: &impl Database) {
    let storage = db.open().await;
    let crisis = declared();
    let step = follow_up(&crisis, "first", at(60));
    let mut w = write(&crisis, None, 1);
    w.planning = Some(planner_lease());
    w.follow_ups = FollowUpChange {
        cancel: None,
        schedule: vec![step.clone()],
    };
    let announcement = w.announcement.clone();
    let notified = registered(&storage);
    storage.crises.record_transition(w).await.expect("declare");
    assert!(woken(notified).await, "by a transition");

    let notified = registered(&storage);
    assert!(start_follow_up(&storage, &crisis, &step, at(60), email_delivery(2)).await);
    assert!(woken(notified).await, "by a follow-up started");

    let notified = registered(&storage);
    storage
        .plans
        .append_plan(
            &announcement,
            &[],
            &[email_delivery(1)],
            plan_step(&planner_lease(), 0, 1),
        )
        .await
        .expect("batch");
    assert!(woken(notified).await, "by a plan batch");

    let claimed = claim(&storage, "w", at(1), 1).await;
    record_outcome(&storage, "w", at(2), claimed[0].id, refused("550")).await;
    let notified = registered(&storage);
    assert_eq!(
        storage
            .dead_letters
            .requeue(DeadFilter::default(), at(3))
            .await
            .expect("requeue"),
        1
    );
    assert!(woken(notified).await, "by a requeue");
}

fn account(name: &str, role: Role) -> User {
    User {
        name: UserName::parse(name).expect("name"),
        role,
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$hash-of-{name}"),
        created_at: at(0),
    }
}

fn session_of(user: &User, digest: &str, started: i64) -> NewSession {
    NewSession {
        token_digest: digest.into(),
        user: user.name.clone(),
        csrf: format!("csrf-{digest}"),
        created_at: at(started),
    }
}

pub async fn an_account_is_stored_once_and_removing_it_ends_its_sessions(db: &impl Database) {
    let storage = db.open().await;
    let alice = account("alice", Role::Author);
    assert!(storage.accounts.add_user(&alice).await.expect("add"));
    let mut impostor = account("alice", Role::Admin);
    impostor.password_hash = "other".into();
    assert!(
        !storage.accounts.add_user(&impostor).await.expect("add"),
        "a taken name is refused"
    );
    storage
        .accounts
        .add_user(&account("bob", Role::Approver))
        .await
        .expect("add");
    let storage = db.open().await;
    assert_eq!(
        storage.accounts.user(&alice.name).await.expect("user"),
        Some(alice.clone()),
        "the first account is kept as it was"
    );
    let names: Vec<String> = storage
        .accounts
        .users()
        .await
        .expect("users")
        .into_iter()
        .map(|u| u.name.to_string())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    storage
        .accounts
        .start_session(&session_of(&alice, "d1", 1))
        .await
        .expect("session");
    assert!(
        storage
            .accounts
            .session("d1")
            .await
            .expect("read")
            .is_some()
    );
    assert!(
        storage
            .accounts
            .remove_user(&alice.name)
            .await
            .expect("remove")
    );
    assert!(
        !storage
            .accounts
            .remove_user(&alice.name)
            .await
            .expect("again")
    );
    assert_eq!(
        storage.accounts.user(&alice.name).await.expect("user"),
        None
    );
    assert_eq!(
        storage.accounts.session("d1").await.expect("read"),
        None,
        "a removed account's sessions end with it"
    );
}

pub async fn a_session_is_found_by_its_digest_and_ends_when_idle_or_signed_out(db: &impl Database) {
    let storage = db.open().await;
    let alice = account("alice", Role::Approver);
    storage.accounts.add_user(&alice).await.expect("add");
    storage
        .accounts
        .start_session(&session_of(&alice, "d1", 10))
        .await
        .expect("d1");
    storage
        .accounts
        .start_session(&session_of(&alice, "d2", 10))
        .await
        .expect("d2");
    storage
        .accounts
        .start_session(&session_of(&alice, "d3", 10))
        .await
        .expect("d3");
    let found = storage
        .accounts
        .session("d1")
        .await
        .expect("read")
        .expect("d1");
    assert_eq!(found.user, alice.name);
    assert_eq!(
        found.role,
        Role::Approver,
        "the account's role comes with it"
    );
    assert_eq!(found.csrf, "csrf-d1");
    assert_eq!((found.created_at, found.last_seen_at), (at(10), at(10)));
    assert_eq!(storage.accounts.session("nope").await.expect("read"), None);

    storage
        .accounts
        .touch_session("d1", at(100))
        .await
        .expect("touch");
    storage
        .accounts
        .touch_session("d1", at(50))
        .await
        .expect("late touch");
    let storage = db.open().await;
    let touched = storage
        .accounts
        .session("d1")
        .await
        .expect("read")
        .expect("d1");
    assert_eq!(touched.last_seen_at, at(100), "inactivity never goes back");

    assert_eq!(
        storage
            .accounts
            .end_idle_sessions(at(60))
            .await
            .expect("idle"),
        2,
        "d2 and d3 were last seen before"
    );
    assert!(
        storage
            .accounts
            .session("d2")
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        storage
            .accounts
            .session("d1")
            .await
            .expect("read")
            .is_some()
    );
    storage.accounts.end_session("d1").await.expect("sign out");
    assert!(
        storage
            .accounts
            .session("d1")
            .await
            .expect("read")
            .is_none()
    );
}

pub async fn a_new_password_replaces_the_hash_and_ends_the_accounts_sessions(db: &impl Database) {
    let storage = db.open().await;
    let alice = account("alice", Role::Author);
    let bob = account("bob", Role::Author);
    storage.accounts.add_user(&alice).await.expect("add");
    storage.accounts.add_user(&bob).await.expect("add");
    storage
        .accounts
        .start_session(&session_of(&alice, "a", 1))
        .await
        .expect("a");
    storage
        .accounts
        .start_session(&session_of(&bob, "b", 1))
        .await
        .expect("b");
    assert!(
        storage
            .accounts
            .set_password(&alice.name, "new-hash")
            .await
            .expect("passwd")
    );
    let stored = storage
        .accounts
        .user(&alice.name)
        .await
        .expect("user")
        .expect("alice");
    assert_eq!(stored.password_hash, "new-hash");
    assert!(storage.accounts.session("a").await.expect("read").is_none());
    assert!(
        storage.accounts.session("b").await.expect("read").is_some(),
        "only that account's sessions end"
    );
    let nobody = UserName::parse("carol").expect("name");
    assert!(
        !storage
            .accounts
            .set_password(&nobody, "x")
            .await
            .expect("passwd")
    );
}

pub async fn the_account_audit_trail_lists_the_newest_first(db: &impl Database) {
    let storage = db.open().await;
    for (i, kind) in [
        AccountEventKind::SignInFailed,
        AccountEventKind::SignInLimited,
        AccountEventKind::SignedIn,
    ]
    .into_iter()
    .enumerate()
    {
        storage
            .accounts
            .record_account_event(&AccountEvent {
                at: at(i as i64),
                kind,
                user: "alice".into(),
                detail: format!("from 127.0.0.1 #{i}"),
            })
            .await
            .expect("record");
    }
    let storage = db.open().await;
    let events = storage.accounts.account_events(2).await.expect("events");
    let kinds: Vec<AccountEventKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [AccountEventKind::SignedIn, AccountEventKind::SignInLimited]
    );
    assert_eq!(events[0].detail, "from 127.0.0.1 #2");
    assert_eq!(events[0].at, at(2));
}

fn submitted_draft(summary: &str) -> Draft {
    Draft {
        action: DraftAction::Declare,
        crisis: None,
        kind: Kind::Outage,
        severity: Severity::Critical,
        title: "Payments are down".into(),
        summary: summary.into(),
        message: None,
        localized: Default::default(),
        fall_back: false,
        drill: false,
        selection: Selection::default(),
    }
}

pub async fn an_approval_holds_only_for_the_content_it_was_given_for(db: &impl Database) {
    let storage = db.open().await;
    let draft = submitted_draft("Card payments fail.");
    let submission = Submission {
        id: Uuid::now_v7(),
        content_hash: draft.content_hash(),
        draft: draft.clone(),
        author: UserName::parse("alice").expect("name"),
        state: SubmissionState::Submitted,
        approved_by: None,
        approved_hash: None,
        crisis: None,
        created_at: at(1),
        updated_at: at(1),
    };
    let submissions = &storage.submissions;
    submissions.submit(&submission).await.expect("submit");
    let storage = db.open().await;
    let submissions = &storage.submissions;
    let id = submission.id;
    assert_eq!(
        submissions.submission(id).await.expect("read"),
        Some(submission.clone())
    );
    let bob = UserName::parse("bob").expect("name");
    assert!(
        !submissions
            .approve(id, &bob, "another hash", at(2))
            .await
            .expect("approve"),
        "an approval of other content is refused"
    );
    assert!(
        submissions
            .approve(id, &bob, &submission.content_hash, at(2))
            .await
            .expect("approve")
    );
    let approved = submissions
        .submission(id)
        .await
        .expect("read")
        .expect("there");
    assert_eq!(approved.state, SubmissionState::Approved);
    assert_eq!(approved.approved_by, Some(bob.clone()));
    assert!(approved.approval_holds());

    let edited = submitted_draft("Card payments fail; cash works.");
    assert!(
        submissions
            .revise(id, &edited, at(3))
            .await
            .expect("revise")
    );
    let revised = submissions
        .submission(id)
        .await
        .expect("read")
        .expect("there");
    assert_eq!(
        revised.state,
        SubmissionState::Submitted,
        "an edit voids the approval"
    );
    assert_eq!(
        (revised.approved_by.clone(), revised.approved_hash.clone()),
        (None, None)
    );
    assert_eq!(revised.content_hash, edited.content_hash());
    assert_eq!(revised.draft, edited);
    assert!(!revised.approval_holds());
    assert!(
        !submissions
            .approve(id, &bob, &submission.content_hash, at(4))
            .await
            .expect("approve"),
        "the old content's hash no longer approves it"
    );
    assert!(
        submissions
            .approve(id, &bob, &edited.content_hash(), at(4))
            .await
            .expect("approve")
    );

    let crisis = crisisd::domain::CrisisId::new();
    let sent = SubmissionState::Sent;
    assert!(
        submissions
            .advance(id, SubmissionState::Approved, sent, None, at(5))
            .await
            .expect("claim")
    );
    assert!(
        !submissions
            .advance(id, SubmissionState::Approved, sent, None, at(5))
            .await
            .expect("claim"),
        "only one sender wins"
    );
    assert!(
        submissions
            .advance(id, sent, sent, Some(crisis), at(6))
            .await
            .expect("note")
    );
    assert!(
        submissions
            .open_submissions()
            .await
            .expect("open")
            .is_empty(),
        "sent is not open"
    );
    assert_eq!(
        submissions
            .submission(id)
            .await
            .expect("read")
            .expect("there")
            .crisis,
        Some(crisis)
    );
    assert!(
        !submissions.revise(id, &draft, at(7)).await.expect("revise"),
        "a sent one cannot change"
    );
}

pub async fn a_directory_entrys_availability_is_stored_once_per_change_and_logged(
    db: &impl Database,
) {
    let storage = db.open().await;
    let directory = &storage.directory;
    assert_eq!(directory.availability().await.expect("read"), Vec::new());
    let down = EntryAvailability {
        entry: "chat".into(),
        available: false,
        reason: Some("vendor outage".into()),
        changed_by: "cli:alice".into(),
        changed_at: at(1),
    };
    assert!(directory.set_availability(&down).await.expect("set"));
    let repeated = EntryAvailability {
        changed_by: "probe".into(),
        changed_at: at(2),
        ..down.clone()
    };
    assert!(
        !directory.set_availability(&repeated).await.expect("set"),
        "the same state again changes nothing"
    );
    let up = EntryAvailability {
        available: true,
        reason: None,
        changed_at: at(3),
        ..down.clone()
    };
    assert!(directory.set_availability(&up).await.expect("set"));
    let reopened = db.open().await;
    assert_eq!(
        reopened.directory.availability().await.expect("read"),
        vec![up.clone()]
    );
    assert_eq!(
        reopened
            .directory
            .availability_log("chat", 10)
            .await
            .expect("log"),
        vec![up, down]
    );
    assert_eq!(
        reopened
            .directory
            .availability_log("portal", 10)
            .await
            .expect("log"),
        Vec::new()
    );
}

pub async fn a_channels_shared_bucket_grants_its_rate_and_burst_and_a_pause_stops_it(
    db: &impl Database,
) {
    use crisisd::outbox::Bucket;
    let storage = db.open().await;
    let flow = &storage.flow;
    let bucket = Bucket {
        per_second: 10.0,
        burst: 5,
    };
    let ms = |n: i64| at(0) + chrono::Duration::milliseconds(n);
    // A new bucket starts full: the burst, and no more.
    let first = flow
        .take_tokens("email", ms(0), bucket, 8)
        .await
        .expect("take");
    assert_eq!((first.granted, first.paused_until), (5, None));
    let empty = flow
        .take_tokens("email", ms(0), bucket, 8)
        .await
        .expect("take");
    assert_eq!(empty.granted, 0);
    assert_eq!(empty.wait, Duration::from_millis(100), "one token at 10/s");
    // 350 ms refill three and a half: three now, the half kept.
    let refilled = flow
        .take_tokens("email", ms(350), bucket, 8)
        .await
        .expect("take");
    assert_eq!(refilled.granted, 3);
    let kept = flow
        .take_tokens("email", ms(400), bucket, 8)
        .await
        .expect("take");
    assert_eq!(kept.granted, 1, "the half left plus half of 50 ms' worth");
    // Another channel has a bucket of its own; reopening keeps both.
    let storage = db.open().await;
    let flow = &storage.flow;
    assert_eq!(
        flow.take_tokens("sms", ms(400), bucket, 2)
            .await
            .expect("take")
            .granted,
        2
    );
    assert_eq!(
        flow.take_tokens("email", ms(400), bucket, 2)
            .await
            .expect("take")
            .granted,
        0
    );

    // A pause stops every grant until it ends; a shorter one does not cut it.
    flow.pause("email", ms(10_000)).await.expect("pause");
    flow.pause("email", ms(5_000)).await.expect("pause");
    let paused = flow
        .take_tokens("email", ms(6_000), bucket, 8)
        .await
        .expect("take");
    assert_eq!((paused.granted, paused.paused_until), (0, Some(ms(10_000))));
    assert_eq!(
        flow.pauses(ms(6_000)).await.expect("pauses"),
        vec![("email".to_owned(), ms(10_000))]
    );
    assert_eq!(
        flow.take_tokens("sms", ms(6_000), bucket, 8)
            .await
            .expect("take")
            .granted,
        5
    );
    let after = flow
        .take_tokens("email", ms(10_000), bucket, 8)
        .await
        .expect("take");
    assert_eq!(after.granted, 5, "refilled meanwhile, up to the burst");
    assert!(flow.pauses(ms(10_000)).await.expect("pauses").is_empty());
    // A channel first seen paused starts empty after the pause.
    flow.pause("chat", ms(20_000)).await.expect("pause");
    assert_eq!(
        flow.take_tokens("chat", ms(20_000), bucket, 8)
            .await
            .expect("take")
            .granted,
        0
    );
    assert_eq!(
        flow.take_tokens("chat", ms(20_200), bucket, 8)
            .await
            .expect("take")
            .granted,
        2
    );
}

/// Runs every contract test against one backend: `$database` is an
/// expression making a fresh `Database` for each test.
/// A correction stops what of the original is still queued and sees what
/// was sent or in flight; its own message goes ahead of everything.
pub async fn a_correction_stops_the_queued_original_and_goes_first(db: &impl Database) {
    use crisisd::outbox::{CorrectionWrite, OriginalState};
    let storage = db.open().await;
    let crisis = declared();
    let mut original = write(&crisis, None, 4);
    for delivery in &mut original.deliveries {
        delivery.priority = 1;
    }
    let original_id = original.announcement.id;
    storage
        .crises
        .record_transition(original)
        .await
        .expect("declare");
    let claimed = claim(&storage, "w", at(1), 3).await;
    record_outcome(&storage, "w", at(2), claimed[0].id, sent()).await;
    record_outcome(
        &storage,
        "w",
        at(2),
        claimed[1].id,
        retry(at(100), "451 busy"),
    )
    .await;
    // claimed[2] stays in flight; the fourth was never claimed.
    let correctable = storage
        .corrections
        .correctable(crisis.id)
        .await
        .expect("correctable");
    assert_eq!(correctable.len(), 1);
    assert_eq!(
        (correctable[0].id, correctable[0].sent),
        (original_id, 2),
        "sent, and in flight (it may have reached its reader)"
    );

    let originals = storage
        .corrections
        .stop_original(original_id, at(3))
        .await
        .expect("stop");
    let mut seen: Vec<OriginalState> = originals.iter().map(|o| o.state).collect();
    seen.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(
        seen,
        [
            OriginalState::InFlight,
            OriginalState::Sent(at(2)),
            OriginalState::Stopped,
            OriginalState::Stopped
        ]
    );
    let dead = storage
        .dead_letters
        .list(of_crisis(&crisis), 10)
        .await
        .expect("dead");
    assert_eq!(dead.len(), 2);
    assert!(
        dead.iter()
            .all(|d| d.cause == DeadCause::Corrected && !d.cause.requeueable())
    );
    assert_eq!(
        storage
            .dead_letters
            .count_requeueable(of_crisis(&crisis))
            .await
            .expect("n"),
        0
    );
    // Past the retry's time and the lease: nothing goes again. The stopped
    // never go, and the one in flight, whose lease ran out, ends dead too
    // rather than reach its reader after the correction.
    let again = claim(&storage, "w", at(150), 10).await;
    assert!(again.is_empty(), "{again:?}");
    let dead = storage
        .dead_letters
        .list(of_crisis(&crisis), 10)
        .await
        .expect("dead");
    assert_eq!(dead.len(), 3);
    assert!(dead.iter().all(|d| d.cause == DeadCause::Corrected));

    let mut correction = write(&crisis, None, 1);
    correction.announcement.kind = AnnouncementKind::Correction;
    correction.announcement.created_at = at(4);
    let record = IdempotencyRecord {
        scope: "console:alice".into(),
        key: "k".into(),
        fingerprint: "f".into(),
        status: 200,
        body: "{}".into(),
    };
    let correction_write = CorrectionWrite {
        event: correction.event.clone(),
        announcement: correction.announcement.clone(),
        renditions: Vec::new(),
        deliveries: correction.deliveries.clone(),
        idempotency: Some(record.clone()),
        unless_corrected_since: Some(at(3)),
    };
    storage
        .corrections
        .record_correction(correction_write.clone())
        .await
        .expect("correct");
    let claimed = claim(&storage, "w", at(5), 10).await;
    assert_eq!(claimed.len(), 1, "the correction");
    assert_eq!(claimed[0].kind, AnnouncementKind::Correction);
    let again = storage
        .corrections
        .record_correction(correction_write)
        .await;
    assert!(
        matches!(again, Err(StoreError::IdempotencyKeyTaken)),
        "{again:?}"
    );
    // Another person's correction at the same moment, with a key of their
    // own, is refused: a correction went out since the time it names.
    let mut second = write(&crisis, None, 1);
    second.announcement.kind = AnnouncementKind::Correction;
    let second_write = CorrectionWrite {
        event: second.event.clone(),
        announcement: second.announcement.clone(),
        renditions: Vec::new(),
        deliveries: second.deliveries.clone(),
        idempotency: None,
        unless_corrected_since: Some(at(3)),
    };
    let refused = storage
        .corrections
        .record_correction(second_write.clone())
        .await;
    assert!(
        matches!(refused, Err(StoreError::CorrectedRecently(when)) if when == at(4)),
        "{refused:?}"
    );
    let events = storage.crises.events(crisis.id).await.expect("events");
    assert_eq!(events.len(), 2, "the correction is in the audit trail once");
    // Unless it is meant as well.
    storage
        .corrections
        .record_correction(CorrectionWrite {
            unless_corrected_since: None,
            ..second_write
        })
        .await
        .expect("a second correction, meant");
    let correctable = storage
        .corrections
        .correctable(crisis.id)
        .await
        .expect("correctable");
    assert_eq!(correctable.len(), 1, "a correction is not itself corrected");
}

/// An original in flight when it is corrected counts as reached; if its
/// attempt then fails, or its lease is given back, it ends dead
/// (`Corrected`) instead of going after its own correction.
pub async fn an_original_in_flight_when_corrected_never_goes_again(db: &impl Database) {
    let storage = db.open().await;
    let crisis = declare(&storage, 3).await;
    let claimed = claim(&storage, "w", at(1), 3).await;
    let original = storage
        .corrections
        .correctable(crisis.id)
        .await
        .expect("correctable")[0]
        .id;
    storage
        .corrections
        .stop_original(original, at(2))
        .await
        .expect("stop");
    record_outcome(&storage, "w", at(3), claimed[0].id, retry(at(4), "451")).await;
    record_outcome(&storage, "w", at(3), claimed[1].id, sent()).await;
    storage
        .queue
        .release(&[claimed[2].id], "w")
        .await
        .expect("release");
    assert!(claim(&storage, "w", at(10), 10).await.is_empty());
    assert_eq!(
        states(&storage, &crisis).await,
        [(DeliveryState::Dead, 2), (DeliveryState::Sent, 1)]
    );
    let dead = storage
        .dead_letters
        .list(of_crisis(&crisis), 10)
        .await
        .expect("dead");
    assert!(
        dead.iter().all(|d| d.cause == DeadCause::Corrected),
        "{dead:?}"
    );
}

macro_rules! store_contract {
    ($database:expr) => {
        store_contract!(@each $database;
            a_transition_is_stored_whole_and_survives_reopening,
            a_crisiss_audience_and_channels_and_each_entrys_kind_are_kept_across_transitions,
            a_write_based_on_a_stale_version_is_refused_and_changes_nothing,
            identical_declarations_written_at_one_instant_make_one_crisis,
            only_an_active_crisis_of_the_kind_within_the_window_is_a_duplicate,
            every_transition_keeps_its_version_and_a_refused_one_keeps_none,
            an_idempotency_key_is_taken_once_and_a_second_write_with_it_leaves_nothing,
            a_lease_keeps_a_delivery_from_others_until_it_expires,
            outcomes_are_recorded_and_a_retry_waits_for_its_time,
            released_leases_are_claimable_at_once_and_give_the_attempt_back,
            deliveries_for_channels_no_longer_configured_end_dead_with_a_reason,
            claims_take_new_messages_by_priority_before_due_retries,
            an_outcome_counts_only_while_its_owner_holds_the_lease,
            a_final_state_is_never_overwritten_by_a_late_outcome,
            the_store_requeues_dead_deliveries_but_not_unrendered_or_opted_out_ones,
            requeue_leaves_cancelled_and_unfit_deliveries_dead_by_cause,
            a_retry_to_an_address_opted_out_meanwhile_ends_dead,
            opting_out_ends_queued_messages_and_opting_in_takes_it_back,
            a_follow_ups_opt_out_stops_follow_ups_only_and_a_one_click_never_narrows,
            a_source_link_is_set_replaced_and_removed_with_transitions,
            a_new_crisis_cannot_take_over_an_incident_an_active_crisis_is_linked_to,
            one_daemon_leads_until_its_lease_runs_out_and_each_new_leader_has_a_new_term,
            daemons_say_they_are_alive_and_their_deliveries_in_flight_are_counted_by_owner,
            a_plan_is_written_in_batches_and_listed_until_finished,
            a_plan_is_taken_over_once_its_lease_runs_out_and_its_old_owner_writes_nothing_more,
            a_claimed_reader_gets_the_shared_rendition_and_their_own_part,
            the_all_clear_kills_queued_follow_up_messages_and_no_follow_up_starts_after_it,
            a_follow_up_is_settled_once_and_a_changed_plan_replaces_the_rest,
            a_hook_delivery_is_remembered_and_the_log_keeps_what_came,
            a_held_incident_is_kept_until_it_is_decided,
            the_ledger_counts_queues_by_channel_and_answers_a_ping,
            committed_work_wakes_whoever_waits_for_it,
            an_account_is_stored_once_and_removing_it_ends_its_sessions,
            a_session_is_found_by_its_digest_and_ends_when_idle_or_signed_out,
            a_new_password_replaces_the_hash_and_ends_the_accounts_sessions,
            the_account_audit_trail_lists_the_newest_first,
            an_approval_holds_only_for_the_content_it_was_given_for,
            a_channels_shared_bucket_grants_its_rate_and_burst_and_a_pause_stops_it,
            a_directory_entrys_availability_is_stored_once_per_change_and_logged,
            a_correction_stops_the_queued_original_and_goes_first,
            an_original_in_flight_when_corrected_never_goes_again,
            retention_prunes_old_rows_of_ended_crises_in_batches_and_nothing_active_or_unfinished,
            recent_messages_count_a_readers_non_critical_announcements_in_the_window,
        );
    };
    (@each $database:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let database = $database;
                $crate::store::contract::$name(&database).await;
            }
        )+
    };
}

/// Every email due claimed and sent at `now`.
async fn send_all(storage: &Storage, now: DateTime<Utc>) {
    let claimed = claim(storage, "sender", now, 100).await;
    let outcomes: Vec<_> = claimed.iter().map(|d| (d.id, sent())).collect();
    storage
        .queue
        .record_outcomes("sender", now, &outcomes)
        .await
        .expect("sent");
}

async fn prune(storage: &Storage, what: crisisd::outbox::Prune, before: i64, limit: u32) -> u64 {
    storage
        .retention
        .prune(what, at(before), limit)
        .await
        .expect("prune")
}

pub async fn retention_prunes_old_rows_of_ended_crises_in_batches_and_nothing_active_or_unfinished(
    db: &impl Database,
) {
    use crisisd::outbox::Prune;
    let storage = db.open().await;
    // Ended: five emails sent at 10, resolved at 20.
    let mut ended = declare(&storage, 5).await;
    send_all(&storage, at(10)).await;
    resolve(&storage, &mut ended, at(20)).await;
    // Active: three sent at 10.
    let mut active = declared();
    active.title = "Logins fail".into();
    storage
        .crises
        .record_transition(write(&active, None, 3))
        .await
        .expect("declare");
    send_all(&storage, at(10)).await;
    // Resolved but not ended: its all-clear still queued.
    let mut unsent = declared();
    unsent.title = "Mail is slow".into();
    storage
        .crises
        .record_transition(write(&unsent, None, 1))
        .await
        .expect("declare");
    send_all(&storage, at(10)).await;
    let previous = unsent.version;
    unsent.resolve(None, at(20)).expect("resolve");
    storage
        .crises
        .record_transition(write(&unsent, Some(previous), 1))
        .await
        .expect("resolve");

    assert_eq!(
        prune(&storage, Prune::Deliveries, 10, 2).await,
        0,
        "finished at 10, not before"
    );
    let batches = [
        prune(&storage, Prune::Deliveries, 1000, 2).await,
        prune(&storage, Prune::Deliveries, 1000, 2).await,
        prune(&storage, Prune::Deliveries, 1000, 2).await,
        prune(&storage, Prune::Deliveries, 1000, 2).await,
    ];
    assert_eq!(batches, [2, 2, 1, 0], "in batches, then none left");
    assert!(
        states(&storage, &ended).await.is_empty(),
        "the ended crisis's deliveries are gone"
    );
    let active_states = states(&storage, &active).await;
    assert!(
        active_states.contains(&(DeliveryState::Sent, 3)),
        "an active crisis's are kept: {active_states:?}"
    );
    assert_eq!(
        states(&storage, &unsent).await,
        [(DeliveryState::Pending, 1), (DeliveryState::Sent, 1)],
        "a crisis with a message still queued has not ended"
    );

    // The ended crisis's details and audit: not before its resolution ages.
    for what in [
        Prune::EndedDeliveries,
        Prune::EndedFollowUps,
        Prune::EndedRenditions,
    ] {
        assert_eq!(prune(&storage, what, 20, 100).await, 0);
    }
    assert_eq!(prune(&storage, Prune::EndedAnnouncements, 20, 100).await, 0);
    assert_eq!(
        prune(&storage, Prune::EndedAnnouncements, 1000, 100).await,
        2,
        "declared, resolved"
    );
    assert_eq!(prune(&storage, Prune::CrisisEvents, 1000, 100).await, 2);
    assert!(
        storage
            .crises
            .events(ended.id)
            .await
            .expect("events")
            .is_empty()
    );
    assert_eq!(
        storage
            .crises
            .events(active.id)
            .await
            .expect("events")
            .len(),
        1
    );
    assert_eq!(
        storage
            .crises
            .events(unsent.id)
            .await
            .expect("events")
            .len(),
        2
    );
    let kept = storage.crises.crisis(ended.id).await.expect("crisis");
    assert_eq!(
        kept.map(|c| c.version),
        Some(ended.version),
        "the crisis itself stays"
    );

    // The account audit and the webhook tables, by age alone.
    for n in [0, 100] {
        storage
            .accounts
            .record_account_event(&AccountEvent {
                at: at(n),
                kind: AccountEventKind::SignedIn,
                user: "alice".into(),
                detail: String::new(),
            })
            .await
            .expect("record");
        storage
            .hooks
            .record_hook(&crisisd::outbox::HookLogEntry {
                seq: 0,
                hook: "status".into(),
                source: "statuspage".into(),
                received_at: at(n),
                status: 200,
                verdict: crisisd::outbox::Verdict::Applied,
                transitions: Vec::new(),
                error: None,
                delivery_id: None,
            })
            .await
            .expect("log");
        storage
            .hooks
            .remember_delivery("status", &format!("d{n}"), at(n))
            .await
            .expect("remember");
    }
    assert_eq!(prune(&storage, Prune::AccountAudit, 50, 100).await, 1);
    assert_eq!(prune(&storage, Prune::HookLog, 50, 100).await, 1);
    assert_eq!(prune(&storage, Prune::HookDeliveries, 50, 100).await, 1);
    assert_eq!(
        storage
            .accounts
            .account_events(10)
            .await
            .expect("audit")
            .len(),
        1
    );
    assert_eq!(
        storage.hooks.hook_log(None, 10).await.expect("log").len(),
        1
    );
    assert!(
        !storage
            .hooks
            .delivery_seen("status", "d0")
            .await
            .expect("seen")
    );
    assert!(
        storage
            .hooks
            .delivery_seen("status", "d100")
            .await
            .expect("seen")
    );
}

pub async fn recent_messages_count_a_readers_non_critical_announcements_in_the_window(
    db: &impl Database,
) {
    let storage = db.open().await;
    let mut crisis = declared();
    // The declaration at 0 to r0 and r1.
    storage
        .crises
        .record_transition(write(&crisis, None, 2))
        .await
        .expect("declare");
    // An update at 10 to r0, and one r1 was never sent (unfit).
    crisis
        .apply_update(message("Still down."), at(10))
        .expect("update");
    let mut update = write(&crisis, Some(1), 0);
    update.announcement.kind = AnnouncementKind::Update;
    update.deliveries = vec![email_delivery(0), unfit_email_delivery(1, "too long")];
    let update_id = update.announcement.id;
    storage
        .crises
        .record_transition(update)
        .await
        .expect("update");
    // A critical crisis's message does not count.
    let mut critical = declared();
    critical.id = crisisd::domain::CrisisId::new();
    critical.severity = Severity::Critical;
    storage
        .crises
        .record_transition(write(&critical, None, 1))
        .await
        .expect("critical");

    let readers = ["r0".to_owned(), "r1".to_owned(), "r9".to_owned()];
    let other = crisisd::domain::AnnouncementId::new();
    let counts = |since, except| {
        let (storage, readers) = (&storage, &readers);
        async move {
            let mut counts = storage
                .plans
                .recent_messages(readers, since, except)
                .await
                .expect("counts");
            counts.sort();
            counts
        }
    };
    assert_eq!(
        counts(at(-1), other).await,
        vec![("r0".to_owned(), 2), ("r1".to_owned(), 1)]
    );
    assert_eq!(counts(at(5), other).await, vec![("r0".to_owned(), 1)]);
    assert_eq!(
        counts(at(-1), update_id).await,
        vec![("r0".to_owned(), 1), ("r1".to_owned(), 1)],
        "the announcement being planned is not counted"
    );
}
