//! `crisisd user`: console accounts on the daemon's own store, while it
//! runs.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::cli::{stderr, stdout};
use crate::support::{SmtpServer, TestApp, TestConfig, spawn_app};

const BIN: &str = env!("CARGO_BIN_EXE_crisisd");

/// Runs `crisisd user ARGS --config <the app's config>` with `stdin`.
pub async fn user_command(app: &TestApp, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(BIN)
        .arg("user")
        .args(args)
        .arg("--config")
        .arg(app.dir.path().join("crisisd.toml"))
        .env("USER", "ops")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run crisisd user");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).await.expect("write");
    drop(input);
    child.wait_with_output().await.expect("wait")
}

/// Adds a console account, as an operator would.
pub async fn add_user(app: &TestApp, name: &str, role: &str, password: &str) {
    let added = user_command(
        app,
        &["add", name, "--role", role],
        &format!("{password}\n"),
    )
    .await;
    assert!(added.status.success(), "user add: {}", stderr(&added));
}

#[tokio::test]
async fn accounts_are_added_listed_re_keyed_and_removed_on_a_running_daemons_store() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;

    add_user(&app, "Alice", "author", "correct horse battery").await;
    add_user(&app, "bob", "approver", "another long password").await;
    let again = user_command(
        &app,
        &["add", "alice", "--role", "admin"],
        "whatever password\n",
    )
    .await;
    assert_eq!(
        again.status.code(),
        Some(2),
        "a taken name is a usage error"
    );
    assert!(
        stderr(&again).contains("exists already"),
        "{}",
        stderr(&again)
    );
    let short = user_command(&app, &["add", "carol", "--role", "viewer"], "short\n").await;
    assert_eq!(short.status.code(), Some(2));
    assert!(stderr(&short).contains("at least 12"), "{}", stderr(&short));
    let bad_role = user_command(&app, &["add", "carol", "--role", "boss"], "").await;
    assert_eq!(bad_role.status.code(), Some(2));

    let list = user_command(&app, &["list"], "").await;
    assert!(list.status.success(), "{}", stderr(&list));
    let text = stdout(&list);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("alice") && lines[0].contains("author"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("bob") && lines[1].contains("approver"),
        "{text}"
    );
    assert!(!text.contains("argon2"), "no hash is printed: {text}");

    let passwd = user_command(&app, &["passwd", "alice"], "a brand new password\n").await;
    assert!(passwd.status.success(), "{}", stderr(&passwd));
    let missing = user_command(&app, &["passwd", "nobody"], "a brand new password\n").await;
    assert_eq!(missing.status.code(), Some(2));

    let removed = user_command(&app, &["remove", "bob"], "").await;
    assert!(removed.status.success(), "{}", stderr(&removed));
    let text = stdout(&user_command(&app, &["list"], "").await);
    assert!(!text.contains("bob"), "{text}");
    let gone = user_command(&app, &["remove", "bob"], "").await;
    assert_eq!(gone.status.code(), Some(2));
}
