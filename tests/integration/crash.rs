//! `kill -9` while deliveries are pending loses nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::process::Command;

use crate::support::{Daemon, SmtpServer, TOKEN, TestConfig, WAIT};

/// Thousands, so the kill lands mid fan-out with many batches written.
const READERS: usize = 2000;
/// The email channel's in-flight limit: the most a crash may repeat.
const CONCURRENCY: usize = 8;

/// The daemon as a separate process: `readers` English readers, email at
/// `concurrency`, leases of `lease`.
fn crash_daemon(
    smtp: &SmtpServer,
    readers: usize,
    lease: &'static str,
    concurrency: usize,
) -> Daemon {
    let mut config = TestConfig::new(smtp.port());
    config.audience = std::iter::once("id,name,email,phone,locale,timezone\n".to_owned())
        .chain((0..readers).map(|i| format!("r{i},Reader {i},reader{i}@example.com,,en,UTC\n")))
        .collect();
    config.concurrency = concurrency;
    config.lease = lease;
    // A send ends well within its lease (check-config insists).
    config.smtp_timeout = if lease == "2s" { "1s" } else { "2s" };
    Daemon::new(config)
}

/// An announcement's place in a crisis, from its subject.
fn rank(subject: &str) -> u8 {
    if subject.starts_with("All clear:") {
        2
    } else if subject.contains("Update:") {
        1
    } else {
        0
    }
}

#[tokio::test]
async fn a_daemon_killed_during_an_update_and_the_all_clear_keeps_each_readers_messages_in_order() {
    let smtp = SmtpServer::start().await;
    smtp.set_delay(Duration::from_millis(4));
    // Leases long enough that a send slowed by a busy machine is not
    // abandoned and sent again: only the kill may repeat messages.
    let daemon = crash_daemon(&smtp, READERS, "5s", CONCURRENCY);

    let mut process = daemon.start().await;
    let id = daemon.declare().await;
    smtp.wait_for(READERS / 5, WAIT).await;
    daemon.post(&id, "updates", "A fix is rolling out.").await;
    smtp.wait_for(READERS / 5 * 2, WAIT).await;
    daemon.post(&id, "resolve", "Payments work again.").await;
    smtp.wait_for(READERS / 5 * 2 + 50, WAIT).await;
    process.start_kill().expect("SIGKILL");
    process.wait().await.expect("reaped");

    let mut process = daemon.start().await;
    // The announcement, the update and the all-clear, to every reader.
    let planned = 3 * READERS as u64;
    let email = daemon.settled(&id, planned, Duration::from_secs(90)).await;
    // Anything a wrong order would still send comes within a lease.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let messages = smtp.accepted();
    let mut per_reader: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for message in &messages {
        per_reader
            .entry(message.to.join(","))
            .or_default()
            .push(rank(&message.subject()));
    }
    let mut distinct = 0;
    for (reader, ranks) in &per_reader {
        assert!(
            ranks.windows(2).all(|pair| pair[0] <= pair[1]),
            "{reader} got the crisis's messages out of order (0 initial, 1 update, 2 all-clear): {ranks:?}"
        );
        assert_eq!(
            ranks.last(),
            Some(&2),
            "{reader} was told of the crisis and got the all-clear last: {ranks:?}"
        );
        assert!(
            ranks.len() > 1,
            "{reader} got an all-clear for a crisis it never heard of: {ranks:?}"
        );
        let mut unique = ranks.clone();
        unique.dedup();
        distinct += unique.len();
    }
    let duplicates = messages.len() - distinct;
    assert!(
        duplicates <= CONCURRENCY,
        "{duplicates} duplicates; at most the {CONCURRENCY} in flight at the kill may repeat"
    );
    assert_eq!(
        email["sent"].as_u64(),
        Some(distinct as u64),
        "every message sent once is counted: {email}"
    );
    process.start_kill().expect("stop");
    process.wait().await.expect("reaped");
}

#[tokio::test]
async fn a_daemon_killed_mid_fan_out_delivers_everything_after_restart_with_bounded_duplicates() {
    let smtp = SmtpServer::start().await;
    // Slow acceptance keeps the fan-out going long enough to kill it midway.
    smtp.set_delay(Duration::from_millis(4));
    let daemon = crash_daemon(&smtp, READERS, "2s", CONCURRENCY);

    let mut process = daemon.start().await;
    let _ = daemon.declare().await;
    smtp.wait_for(READERS / 5, WAIT).await;
    process.start_kill().expect("SIGKILL");
    process.wait().await.expect("reaped");
    let before_restart = smtp.accepted().len();
    assert!(
        before_restart < READERS,
        "the kill came mid fan-out ({before_restart} sent)"
    );

    let mut process = daemon.start().await;
    // A debug build on a shared CI machine sends a few hundred a second.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let distinct: BTreeSet<String> =
            smtp.accepted().iter().flat_map(|m| m.to.clone()).collect();
        if distinct.len() == READERS {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            let state = daemon
                .http
                .get(format!("{}/v1/crises", daemon.base))
                .bearer_auth(TOKEN)
                .send()
                .await
                .expect("GET")
                .text()
                .await
                .expect("body");
            panic!(
                "only {} of {READERS} readers got the message after restart; the daemon says: {state}",
                distinct.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let anything still queued arrive before counting duplicates.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let messages = smtp.accepted();
    let mut per_reader: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for message in &messages {
        per_reader
            .entry(message.to.join(","))
            .or_default()
            .push(message.message_id());
    }
    let duplicates = messages.len() - READERS;
    assert!(
        duplicates <= CONCURRENCY,
        "{duplicates} duplicates; at most the {CONCURRENCY} in flight at the kill may repeat"
    );
    for ids in per_reader.values() {
        assert!(
            ids.iter().all(|id| id == &ids[0]),
            "a resend carries the same Message-ID: {ids:?}"
        );
    }
    process.start_kill().expect("stop");
    process.wait().await.expect("reaped");
}

#[tokio::test]
async fn sigterm_lets_in_flight_sends_finish_exits_0_and_leaves_the_rest_for_the_next_start() {
    const FEW: usize = 10;
    let smtp = SmtpServer::start().await;
    smtp.set_delay(Duration::from_millis(300));
    let daemon = crash_daemon(&smtp, FEW, "5s", 2);

    let mut process = daemon.start().await;
    let _ = daemon.declare().await;
    smtp.wait_for(1, WAIT).await;

    let pid = process.id().expect("pid").to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill");
    assert!(killed.success());
    let status = tokio::time::timeout(WAIT, process.wait())
        .await
        .expect("stopped in time")
        .expect("reaped");
    assert_eq!(status.code(), Some(0), "a graceful stop exits 0");
    let after_stop = smtp.accepted().len();
    assert_eq!(
        smtp.attempts(),
        after_stop,
        "every send that started was allowed to finish"
    );
    assert!(after_stop < FEW, "the stop came mid fan-out");

    let mut process = daemon.start().await;
    smtp.wait_for(FEW, WAIT).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        smtp.accepted().len(),
        FEW,
        "no duplicates after a graceful stop"
    );
    process.start_kill().expect("stop");
    process.wait().await.expect("reaped");
}
