//! `kill -9` while deliveries are pending loses nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::support::{SmtpServer, TOKEN, TestConfig, WAIT, declaration};

const BIN: &str = env!("CARGO_BIN_EXE_crisisd");
const READERS: usize = 40;
const CONCURRENCY: usize = 2;

async fn start_daemon(config: &std::path::Path) -> Child {
    Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start crisisd")
}

async fn wait_healthy(http: &reqwest::Client, base: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the daemon did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_daemon_killed_mid_fan_out_delivers_everything_after_restart_with_bounded_duplicates() {
    let smtp = SmtpServer::start().await;
    // Slow acceptance keeps the fan-out going long enough to kill it midway.
    smtp.set_delay(Duration::from_millis(60));
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = TestConfig::new(smtp.port());
    config.audience = std::iter::once("id,name,email,phone,locale,timezone\n".to_owned())
        .chain((0..READERS).map(|i| format!("r{i},Reader {i},reader{i}@example.com,,en,UTC\n")))
        .collect();
    config.concurrency = CONCURRENCY;
    config.lease = "1s";
    let listen = format!("127.0.0.1:{port}");
    config.listen = Box::leak(listen.into_boxed_str());
    let path = dir.path().join("crisisd.toml");
    std::fs::write(&path, config.write(dir.path())).expect("write config");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");

    let mut daemon = start_daemon(&path).await;
    wait_healthy(&http, &base).await;
    let declared = http
        .post(format!("{base}/v1/crises"))
        .bearer_auth(TOKEN)
        .json(&declaration("Payments are down"))
        .send()
        .await
        .expect("declare");
    assert_eq!(declared.status(), 201);

    smtp.wait_for(5, WAIT).await;
    daemon.start_kill().expect("SIGKILL");
    daemon.wait().await.expect("reaped");
    let before_restart = smtp.accepted().len();
    assert!(
        before_restart < READERS,
        "the kill came mid fan-out ({before_restart} sent)"
    );

    let mut daemon = start_daemon(&path).await;
    wait_healthy(&http, &base).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let distinct: BTreeSet<String> =
            smtp.accepted().iter().flat_map(|m| m.to.clone()).collect();
        if distinct.len() == READERS {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {READERS} readers got the message after restart",
            distinct.len()
        );
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
    daemon.start_kill().expect("stop");
    daemon.wait().await.expect("reaped");
}

#[tokio::test]
async fn sigterm_lets_in_flight_sends_finish_exits_0_and_leaves_the_rest_for_the_next_start() {
    const FEW: usize = 10;
    let smtp = SmtpServer::start().await;
    smtp.set_delay(Duration::from_millis(300));
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = TestConfig::new(smtp.port());
    config.audience = std::iter::once("id,name,email,phone,locale,timezone\n".to_owned())
        .chain((0..FEW).map(|i| format!("r{i},Reader {i},reader{i}@example.com,,en,UTC\n")))
        .collect();
    config.concurrency = CONCURRENCY;
    let listen = format!("127.0.0.1:{port}");
    config.listen = Box::leak(listen.into_boxed_str());
    let path = dir.path().join("crisisd.toml");
    std::fs::write(&path, config.write(dir.path())).expect("write config");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");

    let mut daemon = start_daemon(&path).await;
    wait_healthy(&http, &base).await;
    let declared = http
        .post(format!("{base}/v1/crises"))
        .bearer_auth(TOKEN)
        .json(&declaration("Payments are down"))
        .send()
        .await
        .expect("declare");
    assert_eq!(declared.status(), 201);
    smtp.wait_for(1, WAIT).await;

    let pid = daemon.id().expect("pid").to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill");
    assert!(killed.success());
    let status = tokio::time::timeout(WAIT, daemon.wait())
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

    let mut daemon = start_daemon(&path).await;
    wait_healthy(&http, &base).await;
    smtp.wait_for(FEW, WAIT).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        smtp.accepted().len(),
        FEW,
        "no duplicates after a graceful stop"
    );
    daemon.start_kill().expect("stop");
    daemon.wait().await.expect("reaped");
}
