//! `crisisd store copy`: a SQLite store with a declared crisis and
//! deliveries still to send, copied into PostgreSQL, where a daemon shows
//! the crisis and sends what was left; refused while a daemon uses the
//! source, and on a target that already holds data.

use std::process::Output;
use std::time::Duration;

use tokio::process::Child;

use crate::support::{Daemon, SmtpServer, TestConfig, free_port, postgres};

const BIN: &str = env!("CARGO_BIN_EXE_crisisd");

async fn copy(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(BIN);
    command.args(["store", "copy"]).args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().await.expect("run crisisd store copy")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// SIGTERM, and the wait for the drain.
async fn stop(mut child: Child) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("stopped in time")
        .expect("reaped");
}

#[tokio::test]
async fn a_sqlite_store_copied_into_postgresql_shows_its_crisis_and_its_deliveries_are_finished_there()
 {
    // On SQLite, with a mail relay that does not answer: the crisis is
    // declared and its three emails wait to be retried.
    let mut config = TestConfig::new(free_port());
    config.max_attempts = 1000;
    config.lease = "2s";
    config.smtp_timeout = "1s";
    let old = Daemon::new(config);
    let running = old.start().await;
    let id = old.declare().await;
    let before = old.crisis(&id).await;
    assert_eq!(
        before["deliveries"]["email"]["sent"].as_u64().unwrap_or(0),
        0
    );
    let source = format!("sqlite:{}", old.dir().join("crisisd.db").display());
    let target = postgres::database().await;

    let refused = copy(&["--from", &source, "--to", &target], &[]).await;
    assert!(!refused.status.success(), "copied a store in use");
    assert!(
        stderr(&refused).contains("in use by a running daemon"),
        "{}",
        stderr(&refused)
    );

    stop(running).await;
    // The URL from the environment, as one with a password would come.
    let copied = copy(
        &["--from", &source, "--to-env", "CRISISD_COPY_TARGET"],
        &[("CRISISD_COPY_TARGET", &target)],
    )
    .await;
    assert!(copied.status.success(), "{}", stderr(&copied));
    assert!(
        stderr(&copied).contains("deliveries: 3 of 3 rows"),
        "{}",
        stderr(&copied)
    );

    let again = copy(&["--from", &source, "--to", &target], &[]).await;
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("already holds data"),
        "{}",
        stderr(&again)
    );

    // A daemon on the copy, with a relay that answers, sends what was left.
    let smtp = SmtpServer::start().await;
    let mut config = TestConfig::new(smtp.port());
    config.store_url = Some(target.clone());
    config.lease = "2s";
    config.smtp_timeout = "1s";
    let new = Daemon::new(config);
    let _running = new.start().await;
    let email = new.settled(&id, 3, Duration::from_secs(60)).await;
    assert_eq!(email["sent"], 3, "{email}");
    let after = new.crisis(&id).await;
    assert_eq!(after["title"], "Payments are down");
    assert_eq!(after["title"], before["title"]);
    assert_eq!(after["version"], 1);
    assert_eq!(
        after["events"], before["events"],
        "the audit trail came along"
    );
    assert_eq!(
        after["events"].as_array().map(Vec::len),
        Some(1),
        "{after:#}"
    );
    let mut readers: Vec<String> = smtp.accepted().iter().map(|m| m.to.join(",")).collect();
    readers.sort();
    assert_eq!(
        readers,
        [
            "ada@example.com",
            "ludoviko@example.net",
            "rahim@example.org"
        ]
    );

    // A transition on the copy goes on from the copied version.
    new.post(&id, "resolve", "Payments work again.").await;
    let resolved = new.crisis(&id).await;
    assert_eq!(resolved["status"], "resolved", "{resolved:#}");
    assert_eq!(resolved["version"], 2, "{resolved:#}");
}
