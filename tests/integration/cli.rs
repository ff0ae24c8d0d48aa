//! The `crisisd` binary: client verbs against a running daemon, and
//! check-config.

use std::process::Output;

use tokio::process::Command;

use crate::support::{SmtpServer, TOKEN, TestApp, TestConfig, WAIT, spawn_app};

const BIN: &str = env!("CARGO_BIN_EXE_crisisd");

pub async fn crisisd(app: &TestApp, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .args(["--url", &app.base])
        .env("CRISISD_TOKEN", TOKEN)
        .env("CRISISD_CONFIG", app.dir.path().join("absent.toml"))
        .env("USER", "alice")
        .output()
        .await
        .expect("run crisisd")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn the_cli_declares_updates_and_resolves_against_a_running_daemon() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;

    let declared = crisisd(
        &app,
        &[
            "declare",
            "--kind",
            "natural_disaster",
            "--severity",
            "major",
            "--title",
            "Payments are down",
            "--summary",
            "Card payments fail.",
        ],
    )
    .await;
    assert!(declared.status.success(), "{}", stderr(&declared));
    let id = stdout(&declared).trim().to_owned();
    assert_eq!(id.len(), 36, "declare prints the crisis id: {id}");
    smtp.wait_for(3, WAIT).await;
    assert_eq!(app.banner("en").await["crises"][0]["id"], id.as_str());

    let status = crisisd(&app, &["status"]).await;
    assert!(status.status.success(), "{}", stderr(&status));
    let text = stdout(&status);
    assert!(
        text.contains(&id) && text.contains("Payments are down"),
        "{text}"
    );
    assert!(text.contains("email") && text.contains("sent"), "{text}");

    let updated = crisisd(&app, &["update", &id, "--message", "A fix is rolling out."]).await;
    assert!(updated.status.success(), "{}", stderr(&updated));
    smtp.wait_for(6, WAIT).await;

    let resolved = crisisd(&app, &["resolve", &id, "--message", "All good again."]).await;
    assert!(resolved.status.success(), "{}", stderr(&resolved));
    let messages = smtp.wait_for(9, WAIT).await;
    assert!(
        messages[6..]
            .iter()
            .all(|m| m.text().contains("All good again."))
    );
    assert_eq!(app.banner("en").await["crises"], serde_json::json!([]));

    let detail = crisisd(&app, &["status", &id]).await;
    let text = stdout(&detail);
    assert!(
        text.contains("cli:alice (token tests)"),
        "the audit trail names the person: {text}"
    );

    let again = crisisd(&app, &["resolve", &id]).await;
    assert_eq!(
        again.status.code(),
        Some(2),
        "a refused transition is a usage error"
    );
    assert!(
        stderr(&again).contains("already resolved"),
        "{}",
        stderr(&again)
    );
}

#[tokio::test]
async fn the_cli_says_clearly_when_the_daemon_is_not_there() {
    let output = Command::new(BIN)
        .args(["status", "--url", "http://127.0.0.1:9"])
        .env("CRISISD_TOKEN", TOKEN)
        .output()
        .await
        .expect("run crisisd");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("cannot reach crisisd"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn a_bad_token_is_reported_as_such() {
    let app = spawn_app(TestConfig::new(1)).await;
    let output = Command::new(BIN)
        .args(["status", "--url", &app.base])
        .env("CRISISD_TOKEN", "wrong")
        .output()
        .await
        .expect("run crisisd");
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("401"), "{}", stderr(&output));
}

#[tokio::test]
async fn check_config_names_an_unknown_key_with_its_file_and_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut text = TestConfig::new(1).write(dir.path());
    text = text.replace("[server]\n", "[server]\ncolour = \"red\"\n");
    let path = dir.path().join("crisisd.toml");
    std::fs::write(&path, &text).expect("write");
    let line = text
        .lines()
        .position(|l| l.starts_with("colour"))
        .expect("line")
        + 1;

    let output = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .await
        .expect("run crisisd");
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains(&format!("crisisd.toml:{line}:")), "{err}");
    assert!(err.contains("colour"), "{err}");
}

#[tokio::test]
async fn check_config_reports_bad_audience_rows_and_broken_templates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = TestConfig::new(1);
    config
        .audience
        .push_str("bad,Bad Row,not-an-address,,en,UTC\n");
    let text = config.write(dir.path());
    let templates = dir.path().join("templates");
    crate::support::copy_dir(&crate::support::app::templates_dir(), &templates);
    std::fs::write(
        templates.join("eo/email/update.subject.j2"),
        "{{ crisis.no_such_field }}",
    )
    .expect("break a template");
    let text = text.replace(
        &format!(
            "dir = \"{}\"",
            crate::support::app::templates_dir().display()
        ),
        &format!("dir = \"{}\"", templates.display()),
    );
    let path = dir.path().join("crisisd.toml");
    std::fs::write(&path, &text).expect("write");

    let output = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .await
        .expect("run crisisd");
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("line 5: email `not-an-address`"), "{err}");
    assert!(err.contains("eo/email/update.subject.j2"), "{err}");
}

#[tokio::test]
async fn the_shipped_configs_pass_check_config() {
    for config in ["config/crisisd.toml", "config/crisisd.example.toml"] {
        let output = Command::new(BIN)
            .args(["check-config", "--config", config])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("CRISISD_SMTP_PASSWORD", "example")
            .env("CRISISD_TOKEN_OPS", "example-token")
            .output()
            .await
            .expect("run crisisd");
        assert!(output.status.success(), "{config}: {}", stderr(&output));
    }
}

#[tokio::test]
async fn a_reader_that_stops_reading_ends_the_cli_quietly_not_with_a_panic() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    let id = app.declare("Payments are down").await;
    smtp.wait_for(3, WAIT).await;
    // `crisisd status ID | head -0`: the pipe is closed before anything is
    // written to it.
    let mut child = Command::new(BIN)
        .args(["status", &id, "--url", &app.base])
        .env("CRISISD_TOKEN", TOKEN)
        .env("CRISISD_CONFIG", app.dir.path().join("absent.toml"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run crisisd");
    drop(child.stdout.take());
    let output = child.wait_with_output().await.expect("wait");
    let stderr = stderr(&output);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(141), "{stderr}");
}
