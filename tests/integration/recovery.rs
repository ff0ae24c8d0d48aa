//! Faults the daemon must come back from by itself, and report while they
//! last: a full disk, its database file deleted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{SmtpServer, TestApp, TestConfig, WAIT, declaration, spawn_app_in};

/// A tmpfs of its own, unmounted when dropped. Mounting needs root: the
/// test command runs as root in CI; anywhere else the test fails, loudly.
struct SmallDisk {
    mount: tempfile::TempDir,
}

impl SmallDisk {
    fn new(size: &str) -> Self {
        let mount = tempfile::tempdir().expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(mount.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "cannot mount a {size} tmpfs at {} (the disk-full test needs root): {status}",
            mount.path().display()
        );
        Self { mount }
    }

    fn path(&self) -> &Path {
        self.mount.path()
    }

    /// Bytes free.
    fn available(&self) -> usize {
        let output = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(self.path())
            .output()
            .expect("run df");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .nth(1)
            .and_then(|line| line.trim().parse().ok())
            .expect("df prints the free bytes")
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "cannot grow the tmpfs to {size}");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

fn readers(n: usize) -> String {
    std::iter::once("id,name,email,phone,locale,timezone\n".to_owned())
        .chain((0..n).map(|i| format!("r{i},Reader {i},reader{i}@example.com,,en,UTC\n")))
        .collect()
}

/// Polls `/readyz` until its status is `want`; panics after `timeout`.
async fn wait_for_readyz(app: &TestApp, want: u16, timeout: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let (status, body) = app.readyz().await;
        if status == want {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz still {status} after {timeout:?}, not {want}: {body:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_full_disk_is_reported_refuses_new_work_fast_and_is_recovered_from_once_space_returns() {
    const READERS: usize = 1500;
    let disk = SmallDisk::new("2m");
    let smtp = SmtpServer::start().await;
    smtp.set_delay(Duration::from_millis(20));
    let mut config = TestConfig::new(smtp.port());
    config.audience = readers(READERS);
    config.concurrency = 8;
    let dir = tempfile::tempdir_in(disk.path()).expect("data dir on the small disk");
    let data: PathBuf = dir.path().to_owned();
    let app = spawn_app_in(config, dir).await;
    let id = app.declare("Payments are down").await;
    // The fan-out is under way: the disk fills up under it.
    let filler = data.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 4 << 20]);
    assert_eq!(disk.available(), 0, "the disk is full");
    assert!(
        smtp.accepted().len() < READERS / 2,
        "the disk filled mid fan-out"
    );

    let body = wait_for_readyz(&app, 503, WAIT).await;
    assert_eq!(body["store"]["ok"], false, "{body:#}");

    // A declaration while writes fail is refused at once, and says why.
    let started = tokio::time::Instant::now();
    let refused = app
        .http
        .post(app.url("/v1/crises"))
        .bearer_auth(crate::support::TOKEN)
        .json(&declaration("Logins are down"))
        .send()
        .await
        .expect("declare");
    let took = started.elapsed();
    assert_eq!(refused.status(), 503);
    let text = refused.text().await.expect("body");
    assert!(text.contains("full") || text.contains("store"), "{text}");
    assert!(took < Duration::from_secs(3), "refused in {took:?}");

    // Space returns: the daemon takes up where it stopped, by itself.
    disk.resize("64m");
    let _ = std::fs::remove_file(&filler);
    wait_for_readyz(&app, 200, Duration::from_secs(30)).await;
    let detail = app
        .wait_until(&id, Duration::from_secs(60), |detail| {
            detail["deliveries"]["email"]["sent"] == READERS
        })
        .await;
    assert_eq!(detail["deliveries"]["email"]["dead"], 0, "{detail:#}");
    let again = app
        .post("/v1/crises", &declaration("Logins are down"))
        .await;
    assert_eq!(again.status(), 201, "declaring works again");
    drop(app);
}

#[tokio::test]
async fn a_database_file_deleted_while_running_is_reported_and_nothing_is_written_to_a_new_one() {
    let smtp = SmtpServer::start().await;
    let app = crate::support::spawn_app(TestConfig::new(smtp.port())).await;
    app.declare("Payments are down").await;
    smtp.wait_for(3, WAIT).await;
    wait_for_readyz(&app, 200, WAIT).await;

    let database = app.dir.path().join("crisisd.db");
    std::fs::remove_file(&database).expect("delete the database file");

    let body = wait_for_readyz(&app, 503, WAIT).await;
    assert_eq!(body["store"]["ok"], false, "{body:#}");
    assert!(
        body["store"]["error"]
            .as_str()
            .is_some_and(|error| error.contains("deleted or replaced")),
        "{body:#}"
    );
    for _ in 0..3 {
        let refused = app
            .post("/v1/crises", &declaration("Logins are down"))
            .await;
        assert_eq!(refused.status(), 503, "not accepted into a deleted file");
        let text = refused.text().await.expect("body");
        assert!(text.contains("deleted or replaced"), "{text}");
    }
    assert!(
        !database.exists(),
        "no new, empty database was made where the real one was"
    );
    let banner = app
        .http
        .get(app.url("/v1/banner?lang=en"))
        .send()
        .await
        .expect("banner");
    assert_eq!(banner.status(), 200, "the banner still answers");
}

#[tokio::test]
async fn an_audience_missing_at_a_declaration_is_planned_once_it_is_back_and_shown_meanwhile() {
    let smtp = SmtpServer::start().await;
    let app = crate::support::spawn_app(TestConfig::new(smtp.port())).await;
    let audience = app.dir.path().join("audience.csv");
    let saved = std::fs::read(&audience).expect("audience");
    std::fs::remove_file(&audience).expect("remove the audience file");

    let response = app
        .post("/v1/crises", &declaration("Payments are down"))
        .await;
    assert_eq!(response.status(), 201, "the crisis is declared");
    let body: Value = response.json().await.expect("JSON");
    let pending = body["planning_pending"].as_str().unwrap_or_default();
    assert!(
        pending.contains("audience") && pending.contains("retried"),
        "the answer says planning is pending, and why: {body:#}"
    );
    let id = body["crisis"]["id"].as_str().expect("id").to_owned();

    let ready = wait_for_readyz(&app, 503, WAIT).await;
    assert!(
        ready["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .any(|p| p.as_str().is_some_and(|p| p.contains("not fully planned"))),
        "{ready:#}"
    );
    let list = app.get_json("/v1/crises").await;
    assert_eq!(
        list["planning_pending"][0]["crisis_id"],
        id.as_str(),
        "{list:#}"
    );

    // The file is back (a deploy replaced it): planned without a restart.
    std::fs::write(&audience, saved).expect("restore the audience");
    smtp.wait_for(3, Duration::from_secs(30)).await;
    app.wait_until(&id, WAIT, |d| d["deliveries"]["email"]["sent"] == 3)
        .await;
    let list = app.get_json("/v1/crises").await;
    assert_eq!(list["planning_pending"], serde_json::json!([]), "{list:#}");
    wait_for_readyz(&app, 200, WAIT).await;
}

#[tokio::test]
async fn a_repeat_while_planning_is_pending_is_told_to_retry_and_gets_the_answer_once_planned() {
    let smtp = SmtpServer::start().await;
    let app = crate::support::spawn_app(TestConfig::new(smtp.port())).await;
    let audience = app.dir.path().join("audience.csv");
    let saved = std::fs::read(&audience).expect("audience");
    std::fs::remove_file(&audience).expect("remove the audience file");
    let declare = || {
        app.http
            .post(app.url("/v1/crises"))
            .bearer_auth(crate::support::TOKEN)
            .header("Idempotency-Key", "declare-while-pending")
            .json(&declaration("Payments are down"))
            .send()
    };
    let first = declare().await.expect("declare");
    assert_eq!(first.status(), 201);

    let repeat = declare().await.expect("repeat");
    assert_eq!(repeat.status(), 409, "still being carried out");
    assert_eq!(
        repeat
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1"),
        "the repeat is told when to come back"
    );

    std::fs::write(&audience, saved).expect("restore the audience");
    smtp.wait_for(3, Duration::from_secs(30)).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let again = declare().await.expect("repeat");
        if again.status() == 201 {
            assert_eq!(
                again
                    .headers()
                    .get("idempotent-replayed")
                    .and_then(|v| v.to_str().ok()),
                Some("true")
            );
            let body: Value = again.json().await.expect("JSON");
            assert_eq!(body["deliveries"], 3, "{body:#}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", again.status());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(smtp.accepted().len(), 3, "declared once");
}
