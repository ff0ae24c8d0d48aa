//! Config management flips crisis mode by writing one file.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{SmtpServer, TestApp, TestConfig, WAIT, spawn_app};

const ACTIVE: &str = r#"
active = true
kind = "outage"
severity = "major"
title = "Payments are down"
summary = "Card payments fail."
"#;

async fn active_crises(app: &TestApp) -> Vec<Value> {
    app.get_json("/v1/crises?status=active").await["crises"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn wait_for_active(app: &TestApp, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let active = active_crises(app).await;
        if active.len() == n {
            return active;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {n} active crises, have {}",
            active.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_flag_file_declares_updates_and_resolves_a_crisis() {
    let smtp = SmtpServer::start().await;
    let mut config = TestConfig::new(smtp.port());
    config.flag_file = true;
    let app = spawn_app(config).await;
    let flag = app.dir.path().join("crisis.flag.toml");

    std::fs::write(&flag, ACTIVE).expect("write flag");
    let active = wait_for_active(&app, 1).await;
    let id = active[0]["id"].as_str().expect("id").to_owned();
    smtp.wait_for(3, WAIT).await;
    assert_eq!(app.banner("en").await["crises"][0]["id"], id.as_str());
    let detail = app.get_json(&format!("/v1/crises/{id}")).await;
    assert_eq!(detail["events"][0]["actor"]["source"], "flag_file");

    // Rewriting the same content differently formatted changes nothing.
    std::fs::write(&flag, ACTIVE.replace(" = ", "=")).expect("rewrite flag");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(smtp.accepted().len(), 3);

    // Invalid content is reported and changes nothing.
    std::fs::write(&flag, "active = true\nkind = \"meteor\"\n").expect("break flag");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(active_crises(&app).await.len(), 1);
    assert_eq!(smtp.accepted().len(), 3);

    // A change is an update.
    std::fs::write(
        &flag,
        ACTIVE.replace("Card payments fail.", "Card payments recover slowly."),
    )
    .expect("change flag");
    let messages = smtp.wait_for(6, WAIT).await;
    assert!(
        messages[3..]
            .iter()
            .all(|m| m.text().contains("Card payments recover slowly."))
    );
    let detail = app.get_json(&format!("/v1/crises/{id}")).await;
    assert_eq!(detail["status"], "updated");

    // Removing the file resolves it.
    std::fs::remove_file(&flag).expect("remove flag");
    wait_for_active(&app, 0).await;
    smtp.wait_for(9, WAIT).await;
    assert_eq!(app.banner("en").await["crises"], json!([]));
    let list = app.get_json("/v1/crises").await;
    assert_eq!(
        list["crises"].as_array().map(Vec::len),
        Some(1),
        "one crisis from start to end"
    );
}

#[tokio::test]
async fn active_false_resolves_with_its_message_and_a_stale_file_does_not_redeclare() {
    let smtp = SmtpServer::start().await;
    let mut config = TestConfig::new(smtp.port());
    config.flag_file = true;
    let app = spawn_app(config).await;
    let flag = app.dir.path().join("crisis.flag.toml");

    std::fs::write(&flag, ACTIVE).expect("write flag");
    let id = wait_for_active(&app, 1).await[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // The announcement out first: the all-clear cancels what is still
    // queued and skips readers it never reached.
    smtp.wait_for(3, WAIT).await;
    std::fs::write(&flag, "active = false\nmessage = \"Payments are back.\"\n")
        .expect("deactivate");
    wait_for_active(&app, 0).await;
    let messages = smtp.wait_for(6, WAIT).await;
    assert!(
        messages[3..]
            .iter()
            .all(|m| m.text().contains("Payments are back."))
    );

    // Declared again by the file, then resolved by hand through the API:
    // the file still saying `active = true` must not declare it again.
    std::fs::write(&flag, ACTIVE).expect("write flag");
    let second = wait_for_active(&app, 1).await[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_ne!(second, id);
    app.post(&format!("/v1/crises/{second}/resolve"), &json!({}))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(active_crises(&app).await.is_empty());

    // Once the file is removed and written again, it is a new crisis.
    std::fs::remove_file(&flag).expect("remove flag");
    tokio::time::sleep(Duration::from_millis(400)).await;
    std::fs::write(&flag, ACTIVE).expect("write flag");
    let third = wait_for_active(&app, 1).await[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert!(third != id && third != second);
}

/// A daemon process watching its flag file (`settle` as given), with the
/// file made by `make` before it starts.
async fn watching(
    smtp: &SmtpServer,
    settle: &'static str,
    make: impl FnOnce(&std::path::Path),
) -> (crate::support::Daemon, tokio::process::Child) {
    let mut config = TestConfig::new(smtp.port());
    config.flag_file = true;
    config.flag_settle = settle;
    let daemon = crate::support::Daemon::new(config);
    make(&daemon.dir().join("crisis.flag.toml"));
    let child = daemon.start().await;
    (daemon, child)
}

async fn crises_of(daemon: &crate::support::Daemon) -> Vec<Value> {
    let listed: Value = daemon
        .http
        .get(format!("{}/v1/crises", daemon.base))
        .bearer_auth(crate::support::TOKEN)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    listed["crises"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_fifo_as_flag_file_is_refused_once_and_shutdown_stays_prompt() {
    let smtp = SmtpServer::start().await;
    let (daemon, mut child) = watching(&smtp, "300ms", |path| {
        let made = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .expect("mkfifo");
        assert!(made.success());
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pid = child.id().expect("pid").to_string();
    let started = std::time::Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("exits within 5 s of SIGTERM")
        .expect("wait");
    assert!(status.success(), "{status}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let log = daemon.log();
    assert_eq!(
        log.matches("not a regular file but a FIFO").count(),
        1,
        "{log}"
    );
}

/// The process's resident memory in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_symlink_to_dev_zero_is_refused_once_and_costs_no_memory() {
    let smtp = SmtpServer::start().await;
    let (daemon, mut child) = watching(&smtp, "300ms", |path| {
        std::os::unix::fs::symlink("/dev/zero", path).expect("symlink");
    })
    .await;
    let pid = child.id().expect("pid");
    let before = rss_kib(pid);
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = rss_kib(pid);
        if now > before + 200 * 1024 {
            let _ = child.kill().await;
            panic!("memory grew from {before} KiB to {now} KiB");
        }
    }
    let log = daemon.log();
    assert_eq!(
        log.matches("not a regular file but a character device")
            .count(),
        1,
        "{log}"
    );
}

#[tokio::test]
async fn a_flag_file_over_the_size_cap_is_refused_and_garbage_warns_once() {
    let smtp = SmtpServer::start().await;
    let (daemon, _child) = watching(&smtp, "300ms", |path| {
        // Valid TOML that would declare, padded to 1 MB with comments.
        let padding = "# padding padding padding padding padding padding padding\n".repeat(18_000);
        std::fs::write(path, format!("{ACTIVE}{padding}")).expect("write");
    })
    .await;
    let flag = daemon.dir().join("crisis.flag.toml");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        crises_of(&daemon).await.is_empty(),
        "a 1 MB file is not read"
    );
    let log = daemon.log();
    assert_eq!(
        log.matches("more than flag_file.max_bytes").count(),
        1,
        "{log}"
    );

    std::fs::write(&flag, "this is not = = toml\n").expect("garbage");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let log = daemon.log();
    assert_eq!(log.matches("The flag file is invalid").count(), 1, "{log}");
    assert!(crises_of(&daemon).await.is_empty());
    assert_eq!(smtp.accepted().len(), 0);
}

#[tokio::test]
async fn a_half_written_flag_file_declares_once_with_its_final_content() {
    let smtp = SmtpServer::start().await;
    // The default settle time (2 s).
    let mut config = TestConfig::new(smtp.port());
    config.flag_file = true;
    config.flag_settle = "2s";
    let daemon = crate::support::Daemon::new(config);
    let _child = daemon.start().await;
    let flag = daemon.dir().join("crisis.flag.toml");
    // The first half is valid TOML on its own.
    std::fs::write(&flag, ACTIVE).expect("first half");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&flag)
            .expect("open");
        file.write_all(b"message = \"Call the emergency line meanwhile.\"\n")
            .expect("second half");
    }
    let messages = smtp.wait_for(3, WAIT).await;
    // Long enough for an update the old watcher would have sent.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(smtp.accepted().len(), 3, "one message per reader");
    assert!(
        messages
            .iter()
            .all(|m| m.text().contains("Call the emergency line meanwhile.")),
        "the final content"
    );
    assert_eq!(crises_of(&daemon).await.len(), 1);
}
