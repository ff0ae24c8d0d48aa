//! `crisisd status` shows proposals first; `confirm`, `discard` and
//! `hooks log` from the command line.

use std::process::Output;

use tokio::process::Command;

use super::{QUIET, id_in, send, start};
use crate::support::{TOKEN, TestApp, WAIT};

const BIN: &str = env!("CARGO_BIN_EXE_crisisd");

async fn crisisd(app: &TestApp, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .args(["--url", &app.base])
        .env("CRISISD_TOKEN", TOKEN)
        .env("CRISISD_CONFIG", app.dir.path().join("absent.toml"))
        .env("USER", "bob")
        .output()
        .await
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn monitor_down(id: &str, name: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "heartbeat": {"monitorID": id, "status": 0, "msg": "timeout", "time": "2026-11-23 03:40:12.345", "important": true},
        "monitor": {"id": id, "name": name, "url": "https://example.com", "type": "http"},
        "msg": "down"
    }))
    .unwrap()
}

#[tokio::test]
async fn status_shows_proposals_first_and_the_cli_confirms_discards_and_lists_the_log() {
    let hooks = r#"
[[hooks]]
name = "careful"
source = "uptime_kuma"
secret_file = "{dir}/careful.secret"
mode = "propose"
"#;
    let (app, smtp) = start(hooks, &[("careful.secret", "k")]).await;
    let (_, first) = send(
        &app,
        "/v1/hooks/careful?token=k",
        &[],
        &monitor_down("1", "Checkout"),
    )
    .await;
    let (_, second) = send(
        &app,
        "/v1/hooks/careful?token=k",
        &[],
        &monitor_down("2", "Blog"),
    )
    .await;
    let first = id_in(&first, "proposed");
    let second = id_in(&second, "proposed");

    let status = crisisd(&app, &["status"]).await;
    assert!(status.status.success(), "{}", text(&status));
    let shown = text(&status);
    let top = shown.lines().next().unwrap_or_default();
    assert!(
        top.contains("2 crisis proposal(s)"),
        "proposals come first: {shown}"
    );
    assert!(
        shown.contains(&first) && shown.contains("Checkout is down"),
        "{shown}"
    );
    assert!(shown.contains("crisisd confirm ID"), "{shown}");

    let discarded = crisisd(&app, &["discard", &second]).await;
    assert!(discarded.status.success(), "{}", text(&discarded));
    tokio::time::sleep(QUIET).await;
    assert_eq!(smtp.accepted().len(), 0);

    let confirmed = crisisd(&app, &["confirm", &first]).await;
    assert!(confirmed.status.success(), "{}", text(&confirmed));
    assert_eq!(String::from_utf8_lossy(&confirmed.stdout).trim(), first);
    smtp.wait_for(3, WAIT).await;
    let again = crisisd(&app, &["confirm", &first]).await;
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));

    let status = text(&crisisd(&app, &["status"]).await);
    assert!(!status.contains("proposal"), "{status}");
    assert!(status.contains(&first), "{status}");

    let log = crisisd(&app, &["hooks", "log", "--hook", "careful"]).await;
    assert!(log.status.success(), "{}", text(&log));
    let log = text(&log);
    assert!(
        log.contains("uptime_kuma") && log.contains("applied"),
        "{log}"
    );
    assert!(log.contains(&format!("proposed {second}")), "{log}");
}
