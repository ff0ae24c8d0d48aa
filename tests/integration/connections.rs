//! The HTTP listener bounds its connections in time and number: idle and
//! half-sent connections are closed after their timeouts, and the banner
//! answers while an attacker holds many connections open.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::support::{Daemon, TestConfig};

fn short_timeouts() -> TestConfig {
    let mut config = TestConfig::new(1);
    config.server_extra = "header_read_timeout = \"1s\"\nidle_timeout = \"2s\"\n".into();
    config
}

/// Reads until the server closes the connection; how long that took.
async fn closed_after(mut stream: TcpStream, within: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    let mut buf = [0_u8; 1024];
    loop {
        match tokio::time::timeout(within, stream.read(&mut buf)).await {
            Err(_) => return Err(format!("still open after {within:?}")),
            Ok(Ok(0) | Err(_)) => return Ok(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn idle_half_sent_and_kept_alive_connections_are_closed_after_their_timeouts() {
    let daemon = Daemon::new(short_timeouts());
    let _child = daemon.start().await;
    let addr = daemon.base.trim_start_matches("http://").to_owned();
    let mut connections = JoinSet::new();
    for n in 0..150 {
        let mut stream = TcpStream::connect(&addr).await.expect("connect");
        match n % 3 {
            // Nothing at all.
            0 => {}
            // Half a header, then nothing.
            1 => stream
                .write_all(b"GET /v1/banner HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .await
                .expect("write"),
            // A whole request, answered, then the connection kept idle.
            _ => stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .expect("write"),
        }
        connections.spawn(closed_after(stream, Duration::from_secs(10)));
    }
    let mut slowest = Duration::ZERO;
    while let Some(closed) = connections.join_next().await {
        let after = closed.expect("task").expect("closed by the server");
        slowest = slowest.max(after);
    }
    // 1 s for the headers, 2 s idle; generous for a loaded machine.
    assert!(
        slowest < Duration::from_secs(8),
        "slowest close {slowest:?}"
    );
}

/// Connections that say nothing, reopened as soon as the server closes
/// them, `count` at a time until `stop`.
fn hold_open(addr: String, count: usize, stop: &CancellationToken) -> JoinSet<()> {
    let mut attackers = JoinSet::new();
    for _ in 0..count {
        let addr = addr.clone();
        let stop = stop.clone();
        attackers.spawn(async move {
            while !stop.is_cancelled() {
                let Ok(mut stream) = TcpStream::connect(&addr).await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let mut buf = [0_u8; 64];
                tokio::select! {
                    _ = stream.read(&mut buf) => {}
                    () = stop.cancelled() => {}
                }
            }
        });
    }
    attackers
}

#[tokio::test]
async fn the_banner_answers_while_an_attacker_holds_more_connections_than_descriptors() {
    let daemon = Daemon::new(short_timeouts());
    // 256 descriptors: the attack below holds 400 connections open.
    let _child = daemon.start_under(&["prlimit", "--nofile=256:256"]).await;
    let addr = daemon.base.trim_start_matches("http://").to_owned();
    let stop = CancellationToken::new();
    let mut attackers = hold_open(addr, 400, &stop);
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..3 {
        let started = Instant::now();
        let banner = reqwest::Client::new()
            .get(format!("{}/v1/banner?lang=en", daemon.base))
            // On a loaded machine (the whole suite at once) a new connection
            // waits behind the attackers' for seconds: bounded, not refused.
            .timeout(Duration::from_secs(40))
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "the banner answers during the attack: {e:?}\n{}",
                    daemon.log()
                )
            });
        assert_eq!(banner.status(), 200);
        eprintln!("banner during the attack: {:?}", started.elapsed());
    }
    stop.cancel();
    while attackers.join_next().await.is_some() {}
    assert!(
        daemon.log().contains("at its connection limit"),
        "{}",
        daemon.log()
    );
}

#[tokio::test]
async fn the_soft_open_file_limit_is_raised_to_the_hard_one_at_start() {
    let daemon = Daemon::new(TestConfig::new(1));
    let child = daemon.start_under(&["prlimit", "--nofile=256:2048"]).await;
    let pid = child.id().expect("pid");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    let fields: Vec<&str> = open_files.split_whitespace().collect();
    assert_eq!(fields[3..5], ["2048", "2048"], "{open_files}");
}
