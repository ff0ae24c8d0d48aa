//! The leader killed mid-crisis with follow-ups due: another daemon takes
//! the lead once the lease runs out, and every follow-up is sent once,
//! none twice, none skipped.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Daemon, SmtpServer, TOKEN, TestConfig, WAIT, postgres};

/// How long a lead lasts unless renewed, and how often daemons try to take
/// it (`app/store.rs`).
const LEADER_TTL: Duration = Duration::from_secs(15);
const ELECT_EVERY: Duration = Duration::from_secs(5);

const FOLLOW_UPS: &str = r#"
[follow_ups]
poll_interval = "200ms"
max_lateness = "5m"

[[follow_ups.plans]]
name = "default"

[[follow_ups.plans.steps]]
name = "first"
after = "4s"
template = "self_care"
channels = ["email"]

[[follow_ups.plans.steps]]
name = "during-the-gap"
after = "12s"
template = "status_recap"
channels = ["email"]

[[follow_ups.plans.steps]]
name = "after-takeover"
after = "34s"
template = "check_in"
channels = ["email"]
"#;

/// Who leads now, by the lease row: node, term, elected and expiry (ms).
async fn lead(url: &str) -> Option<(String, i64, i64, i64)> {
    let pool = sqlx::PgPool::connect(url).await.expect("connect");
    let now = chrono::Utc::now().timestamp_millis();
    let row = sqlx::query_as(
        "SELECT node, term, elected_at, expires_at FROM leader WHERE expires_at > $1",
    )
    .bind(now)
    .fetch_optional(&pool)
    .await
    .expect("leader");
    pool.close().await;
    row
}

/// Waits until `daemon` counts `sent` emails of crisis `id` sent.
async fn emails_sent(daemon: &Daemon, id: &str, sent: u64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let detail = daemon.crisis(id).await;
        if detail["deliveries"]["email"]["sent"].as_u64() == Some(sent) {
            return;
        }
        assert!(Instant::now() < deadline, "not {sent} sent: {detail:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_leader_killed_mid_crisis_is_replaced_within_its_lease_and_each_follow_up_goes_once() {
    let smtp = SmtpServer::start().await;
    let url = postgres::database().await;
    let nodes: Vec<Daemon> = (0..3)
        .map(|n| {
            let mut config = TestConfig::new(smtp.port());
            config.store_url = Some(url.clone());
            config.lease = "6s";
            config.smtp_timeout = "2s";
            config.extra = format!("{}\n{FOLLOW_UPS}", crate::follow_ups::RESOURCES);
            config.email_from =
                Box::leak(format!("Support <node{n}@example.com>").into_boxed_str());
            Daemon::new(config)
        })
        .collect();
    let mut processes = Vec::new();
    for node in &nodes {
        processes.push(node.start().await);
    }
    let deadline = Instant::now() + WAIT;
    let (leader_node, term, _, _) = loop {
        if let Some(lead) = lead(&url).await {
            break lead;
        }
        assert!(Instant::now() < deadline, "nobody leads");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let leader = processes
        .iter()
        .position(|p| {
            p.id()
                .is_some_and(|pid| leader_node.ends_with(&format!(":{pid}")))
        })
        .expect("the leader is one of the three");
    let other = (leader + 1) % 3;

    // Three readers: the declaration, then the first follow-up, all
    // recorded sent before the leader dies (nothing of it in flight).
    let id = nodes[other].declare().await;
    emails_sent(&nodes[other], &id, 6, Duration::from_secs(30)).await;
    let (_, _, _, expires_at) = lead(&url).await.expect("still led");
    processes[leader].start_kill().expect("SIGKILL");
    processes[leader].wait().await.expect("reaped");
    let killed = Instant::now();

    let (successor, new_term, elected_at, _) = loop {
        if let Some(lead) = lead(&url).await
            && lead.0 != leader_node
        {
            break lead;
        }
        assert!(
            killed.elapsed() < LEADER_TTL + ELECT_EVERY + Duration::from_secs(5),
            "nobody took the lead"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let took = killed.elapsed();
    // The lease ran out at most LEADER_TTL after the kill; the next try
    // comes within ELECT_EVERY of that.
    assert!(
        took <= LEADER_TTL + ELECT_EVERY + Duration::from_secs(1),
        "taken over {took:?} after the kill"
    );
    assert!(
        elapsed_ms(expires_at, elected_at) <= (ELECT_EVERY + Duration::from_secs(1)).as_millis(),
        "elected {} ms after the lease ran out",
        elected_at - expires_at
    );
    assert_eq!(new_term, term + 1, "a new term");
    assert_ne!(successor, leader_node);

    // The follow-up due while nobody led goes late, the last on time.
    emails_sent(&nodes[other], &id, 12, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let accepted = smtp.accepted();
    assert_eq!(accepted.len(), 12, "four messages to each of three readers");
    let mut by_reader: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for message in &accepted {
        by_reader
            .entry(message.to.join(","))
            .or_default()
            .push(message.subject());
    }
    for (reader, subjects) in &by_reader {
        let distinct: std::collections::BTreeSet<_> = subjects.iter().collect();
        assert_eq!(distinct.len(), 4, "{reader} got {subjects:?}");
    }
    let schedule: Value = nodes[other]
        .http
        .get(format!("{}/v1/crises/{id}/follow-ups", nodes[other].base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    let states: Vec<&str> = schedule["follow_ups"]
        .as_array()
        .expect("follow-ups")
        .iter()
        .map(|f| f["state"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(states, ["sent", "sent", "sent"], "{schedule:#}");
}

/// Milliseconds from `from` to `to`, none when `to` is earlier.
fn elapsed_ms(from: i64, to: i64) -> u128 {
    u128::try_from(to - from).unwrap_or(0)
}
