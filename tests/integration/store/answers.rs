//! The store contract for answers to questions (issue 16), beside
//! `contract.rs` and run on every backend by `answers_contract!`.

use std::time::Duration;

use crisisd::domain::consent::ContactPoint;
use crisisd::domain::{AnnouncementId, Crisis};
use crisisd::outbox::{AnswerFilter, NewAnswer, Outcome, Storage, Tally};

use super::contract::{Database, at, declared, write};
use crate::support::record_outcome;

const LEASE: Duration = Duration::from_secs(60);

/// A crisis whose announcement carries `question`, its `n` emails sent
/// at `sent`.
async fn sent(
    storage: &Storage,
    question: Option<&str>,
    n: usize,
    sent: i64,
) -> (Crisis, AnnouncementId) {
    let crisis = declared();
    let mut transition = write(&crisis, None, n);
    transition.announcement.question = question.map(str::to_owned);
    let announcement = transition.announcement.id;
    storage
        .crises
        .record_transition(transition)
        .await
        .expect("declare");
    let claimed = storage
        .queue
        .claim("email", "w", at(sent), LEASE, 10)
        .await
        .expect("claim");
    for delivery in &claimed {
        let outcome = Outcome::Sent { provider_ref: None };
        record_outcome(storage, "w", at(sent), delivery.id, outcome).await;
    }
    (crisis, announcement)
}

fn reply(
    crisis: &Crisis,
    answer: Option<u8>,
    urgent: bool,
    reference: Option<&str>,
    seconds: i64,
) -> NewAnswer {
    NewAnswer {
        id: uuid::Uuid::now_v7(),
        crisis_id: Some(crisis.id),
        announcement_id: None,
        question: Some("initial".into()),
        point: ContactPoint::Phone,
        address: "r0@example.com".into(),
        locale: "bn".into(),
        channel: "sms".into(),
        answer,
        text: answer.map_or_else(|| "the road is flooded".to_owned(), |a| a.to_string()),
        urgent,
        message_ref: reference.map(str::to_owned),
        received_at: at(seconds),
    }
}

pub async fn a_reply_finds_the_latest_question_sent_and_is_recorded_once(db: &impl Database) {
    let storage = db.open().await;
    let answers = &storage.answers;
    let (asked, announcement) = sent(&storage, Some("initial"), 2, 2).await;
    // A later message without a question: the question stays the latest.
    let (later, _) = sent(&storage, None, 2, 5).await;

    let found = answers
        .asked("r0@example.com", at(0))
        .await
        .expect("asked")
        .expect("a question was sent");
    assert_eq!(found.crisis_id, asked.id);
    assert_eq!(found.announcement_id, announcement);
    assert_eq!(found.question, "initial");
    assert_eq!(found.locale, "en");
    assert_eq!(found.sent_at, at(2));
    // Sent before the window a reply looks back over, or to someone else.
    assert_eq!(
        answers.asked("r0@example.com", at(3)).await.expect("asked"),
        None
    );
    assert_eq!(
        answers
            .asked("nobody@example.com", at(0))
            .await
            .expect("asked"),
        None
    );
    let last = answers
        .last_sent("r0@example.com")
        .await
        .expect("last")
        .expect("sent");
    assert_eq!(last.crisis_id, later.id);
    assert_eq!(
        answers.last_sent("nobody@example.com").await.expect("last"),
        None
    );

    // A retried webhook (same provider id) is recorded once.
    assert!(
        answers
            .record_answer(&reply(&asked, Some(1), true, Some("SM1"), 10))
            .await
            .expect("record")
    );
    assert!(
        !answers
            .record_answer(&reply(&asked, Some(1), true, Some("SM1"), 11))
            .await
            .expect("again")
    );
    assert!(
        answers
            .record_answer(&reply(&asked, None, false, Some("SM2"), 12))
            .await
            .expect("free text")
    );
    assert!(
        answers
            .record_answer(&reply(&asked, Some(1), true, None, 13))
            .await
            .expect("link")
    );
    assert!(
        answers
            .record_answer(&reply(&later, Some(2), false, None, 14))
            .await
            .expect("other")
    );

    let tallies = answers.tallies(asked.id).await.expect("tallies");
    let tally = |answer, urgent, count| Tally {
        question: Some("initial".into()),
        answer,
        urgent,
        count,
    };
    assert_eq!(tallies, [tally(Some(1), true, 2), tally(None, false, 1)]);

    // The callback list: urgent answers only, newest first, every crisis
    // or one.
    let all = AnswerFilter {
        crisis: None,
        urgent_only: true,
        limit: 10,
    };
    let callbacks = answers.answers(&all).await.expect("callbacks");
    let times: Vec<_> = callbacks.iter().map(|c| c.received_at).collect();
    assert_eq!(times, [at(13), at(10)]);
    assert!(
        callbacks
            .iter()
            .all(|c| c.urgent && c.locale == "bn" && c.point == "phone")
    );
    assert_eq!(
        callbacks[0].crisis_id.as_deref(),
        Some(asked.id.to_string().as_str())
    );
    let of_later = AnswerFilter {
        crisis: Some(later.id),
        urgent_only: false,
        limit: 10,
    };
    let replies = answers.answers(&of_later).await.expect("replies");
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].answer, Some(2));
    let one = AnswerFilter { limit: 1, ..all };
    assert_eq!(answers.answers(&one).await.expect("page").len(), 1);
}

macro_rules! answers_contract {
    ($database:expr) => {
        answers_contract!(@each $database;
            a_reply_finds_the_latest_question_sent_and_is_recorded_once,
        );
    };
    (@each $database:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let database = $database;
                $crate::store::answers::$name(&database).await;
            }
        )+
    };
}
