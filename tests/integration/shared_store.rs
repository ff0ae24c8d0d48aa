//! Daemons on PostgreSQL, the shared store: choosing it in the config,
//! checking it, and one daemon running on it end to end.

use std::process::Stdio;

use tokio::process::Command;

use crate::support::{SmtpServer, TestConfig, WAIT, postgres, spawn_app};

const BIN: &str = env!("CARGO_BIN_EXE_crisisd");

/// A config for the daemon on `store_url`, written to a directory.
fn config_on(store_url: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = TestConfig::new(1);
    config.store_url = Some(store_url.to_owned());
    let text = config.write(dir.path());
    let path = dir.path().join("crisisd.toml");
    std::fs::write(&path, text).expect("write");
    (dir, path)
}

async fn check_config(path: &std::path::Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut command = Command::new(BIN);
    command
        .args(["check-config", "--connect", "--config"])
        .arg(path)
        .env_remove("CRISISD_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().await.expect("run crisisd");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

#[tokio::test]
async fn check_config_names_the_store_and_with_connect_reports_its_migrations() {
    let url = postgres::database().await;
    let with_password = url.replace("://crisisd@", "://crisisd:s3cret@");
    let (_dir, path) = config_on(&with_password);

    let (code, out) = check_config(&path, &[]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("store: PostgreSQL postgres://crisisd:***@127.0.0.1:"),
        "{out}"
    );
    assert!(
        !out.contains("s3cret"),
        "the password is never shown: {out}"
    );
    assert!(
        out.contains("migration(s): 0001_initial, 0002_opt_outs"),
        "{out}"
    );

    crisisd::outbox::PostgresStore::open(&url)
        .await
        .expect("migrate");
    let (code, out) = check_config(&path, &[]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("reachable, migrations up to date"), "{out}");
}

#[tokio::test]
async fn the_database_url_in_the_environment_overrides_the_file_and_an_unreachable_store_fails() {
    let url = postgres::database().await;
    let sqlite_dir = tempfile::tempdir().expect("temp dir");
    let (_dir, path) = config_on(&format!(
        "sqlite:{}",
        sqlite_dir.path().join("crisisd.db").display()
    ));
    let (code, out) = check_config(&path, &[]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("store: SQLite "), "{out}");
    assert!(out.contains("a start creates it"), "{out}");

    let (code, out) = check_config(&path, &[("CRISISD_DATABASE_URL", &url)]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("store: PostgreSQL "), "{out}");

    let nobody = format!(
        "postgres://crisisd@127.0.0.1:{}/none",
        crate::support::free_port()
    );
    let (code, out) = check_config(&path, &[("CRISISD_DATABASE_URL", &nobody)]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("store: cannot connect"), "{out}");

    let (code, out) = check_config(&path, &[("CRISISD_DATABASE_URL", "mysql://db/x")]).await;
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("CRISISD_DATABASE_URL"), "{out}");
}

#[tokio::test]
async fn a_daemon_on_postgres_declares_sends_and_keeps_the_crisis_across_a_restart() {
    let smtp = SmtpServer::start().await;
    let url = postgres::database().await;
    let mut config = TestConfig::new(smtp.port());
    config.store_url = Some(url.clone());
    let app = spawn_app(config.clone()).await;
    let id = app.declare("Payments are down").await;
    app.wait_until(&id, WAIT, |d| d["deliveries"]["email"]["sent"] == 3)
        .await;
    assert_eq!(smtp.accepted().len(), 3);
    app.stop().await;

    let again = spawn_app(config).await;
    let crisis = again.get_json(&format!("/v1/crises/{id}")).await;
    assert_eq!(crisis["title"], "Payments are down", "{crisis}");
    assert_eq!(crisis["deliveries"]["email"]["sent"], 3, "{crisis}");
}

#[tokio::test]
async fn check_config_refuses_a_send_timeout_not_comfortably_shorter_than_the_lease() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = TestConfig::new(1);
    config.lease = "8s";
    config.smtp_timeout = "5s";
    let path = dir.path().join("crisisd.toml");
    std::fs::write(&path, config.write(dir.path())).expect("write");
    let output = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .await
        .expect("run crisisd");
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "channels `email`: its timeout (5s) is not comfortably shorter than dispatch.lease (8s)"
        ),
        "{err}"
    );

    config.lease = "10s";
    std::fs::write(&path, config.write(dir.path())).expect("write");
    let output = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .await
        .expect("run crisisd");
    assert_eq!(
        output.status.code(),
        Some(0),
        "half the lease is enough: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
