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
