//! Operating a fan-out: live progress (`status --watch`, rate and ETA),
//! dead deliveries (`dead`) and sending them again (`retry-dead`).

use std::process::{Output, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::process::Command;

use crate::support::{SmtpServer, TOKEN, TestApp, TestConfig, WAIT, spawn_app};

const BIN: &str = env!("CARGO_BIN_EXE_crisisd");

async fn crisisd(app: &TestApp, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .args(["--url", &app.base])
        .env("CRISISD_TOKEN", TOKEN)
        .env("CRISISD_CONFIG", app.dir.path().join("absent.toml"))
        .env("USER", "alice")
        // Not a terminal: what a script or CI sees.
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run crisisd")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// An audience of `n` English readers.
fn readers(n: usize) -> String {
    std::iter::once("id,name,email,phone,locale,timezone\n".to_owned())
        .chain((0..n).map(|i| format!("r{i},Reader {i},reader{i}@example.com,,en,UTC\n")))
        .collect()
}

/// A second SMTP channel, `backup`, sending to `port`.
fn backup_channel(port: u16) -> String {
    format!(
        "[[channels.email]]\nname = \"backup\"\nfrom = \"Test Co. <backup@example.com>\"\n\
         transport = \"smtp\"\nconcurrency = 2\n[channels.email.smtp]\nhost = \"localhost\"\n\
         port = {port}\ntls = \"none\"\ntimeout = \"5s\"\n"
    )
}

async fn dead_list(app: &TestApp, query: &str) -> Value {
    app.get_json(&format!("/v1/deliveries/dead{query}")).await
}

async fn get_status(app: &TestApp, path: &str) -> reqwest::StatusCode {
    app.http
        .get(app.url(path))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET")
        .status()
}

#[tokio::test]
async fn dead_deliveries_are_listed_with_their_reasons_through_the_api_and_the_cli() {
    let smtp = SmtpServer::start().await;
    smtp.reject_recipient("rahim@example.org", "550 5.1.1 No such user here");
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    let id = app.declare("Payments are down").await;
    app.wait_until(&id, WAIT, |d| {
        d["deliveries"]["email"]["dead"] == 1 && d["deliveries"]["email"]["sent"] == 2
    })
    .await;

    let list = dead_list(&app, "").await;
    assert_eq!(list["total"], 1);
    let dead = &list["deliveries"][0];
    assert_eq!(dead["crisis_id"], id.as_str());
    assert_eq!(dead["channel"], "email");
    assert_eq!(dead["destination"], "rahim@example.org");
    assert_eq!(dead["attempts"], 1, "a permanent failure is tried once");
    let reason = dead["reason"].as_str().expect("reason");
    assert!(reason.contains("No such user here"), "{reason}");
    let died: DateTime<Utc> = dead["finished_at"]
        .as_str()
        .expect("finished_at")
        .parse()
        .expect("an RFC 3339 time");
    assert!((Utc::now() - died).num_seconds().abs() < 60, "{died}");
    let delivery_id = dead["id"].as_str().expect("id").to_owned();

    let output = crisisd(&app, &["dead"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let row = text
        .lines()
        .find(|l| l.contains(&delivery_id))
        .unwrap_or_else(|| panic!("the delivery is listed: {text}"));
    for part in [
        id.as_str(),
        "email",
        "rahim@example.org",
        "No such user here",
    ] {
        assert!(row.contains(part), "`{part}` in {row}");
    }
    assert!(text.starts_with("WHEN (UTC)"), "a header first: {text}");

    let output = crisisd(&app, &["dead", "--json"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let json: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(json, list, "--json prints the API's answer");
}

#[tokio::test]
async fn the_dead_list_filters_by_crisis_and_by_channel() {
    let smtp = SmtpServer::start().await;
    let backup = SmtpServer::start().await;
    // Every message to Ada dies, on both channels.
    smtp.reject_recipient("ada@example.com", "550 5.1.1 Ada is gone");
    backup.reject_recipient("ada@example.com", "550 5.1.1 Ada left the backup too");
    let mut config = TestConfig::new(smtp.port());
    config.extra = backup_channel(backup.port());
    let app = spawn_app(config).await;
    let first = app.declare("Payments are down").await;
    app.wait_until(&first, WAIT, |d| {
        d["deliveries"]["email"]["dead"] == 1 && d["deliveries"]["backup"]["dead"] == 1
    })
    .await;
    let second = app.declare("Logins fail").await;
    app.wait_until(&second, WAIT, |d| {
        d["deliveries"]["email"]["dead"] == 1 && d["deliveries"]["backup"]["dead"] == 1
    })
    .await;

    let all = dead_list(&app, "").await;
    assert_eq!(all["total"], 4);
    assert_eq!(all["deliveries"].as_array().expect("list").len(), 4);
    let times: Vec<DateTime<Utc>> = all["deliveries"]
        .as_array()
        .expect("list")
        .iter()
        .map(|d| {
            d["finished_at"]
                .as_str()
                .expect("time")
                .parse()
                .expect("time")
        })
        .collect();
    let mut newest_first = times.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, newest_first, "newest first");

    let of_first = dead_list(&app, &format!("?crisis={first}")).await;
    let entries = of_first["deliveries"].as_array().expect("list");
    assert_eq!(entries.len(), 2);
    assert!(entries.iter().all(|d| d["crisis_id"] == first.as_str()));
    assert_eq!(of_first["total"], 2);

    let on_backup = dead_list(&app, "?channel=backup").await;
    let entries = on_backup["deliveries"].as_array().expect("list");
    assert_eq!(entries.len(), 2);
    assert!(entries.iter().all(|d| d["channel"] == "backup"));
    assert!(entries.iter().all(|d| {
        d["reason"]
            .as_str()
            .unwrap_or("")
            .contains("left the backup")
    }));

    let one = dead_list(&app, &format!("?crisis={second}&channel=email&limit=1")).await;
    assert_eq!(one["deliveries"].as_array().expect("list").len(), 1);
    assert_eq!(one["deliveries"][0]["crisis_id"], second.as_str());
    assert_eq!(one["deliveries"][0]["channel"], "email");

    let limited = dead_list(&app, "?limit=3").await;
    assert_eq!(limited["deliveries"].as_array().expect("list").len(), 3);
    assert_eq!(limited["total"], 4, "the total counts beyond the limit");

    let output = crisisd(&app, &["dead", "--crisis", &second, "--channel", "backup"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{text}");
    assert!(
        rows[0].contains(&second) && rows[0].contains("left the backup"),
        "{text}"
    );
    assert!(!text.contains(&first), "{text}");
}

#[tokio::test]
async fn bad_dead_list_parameters_are_refused_with_400_and_a_token_is_required() {
    let app = spawn_app(TestConfig::new(1)).await;
    for query in [
        "?limit=0",
        "?limit=1001",
        "?limit=many",
        "?crisis=not-a-uuid",
        "?channel=",
        "?colour=red",
    ] {
        assert_eq!(
            get_status(&app, &format!("/v1/deliveries/dead{query}")).await,
            400,
            "{query}"
        );
    }
    assert_eq!(
        get_status(
            &app,
            "/v1/deliveries/dead?crisis=01900000-0000-7000-8000-000000000000"
        )
        .await,
        404,
        "an unknown crisis"
    );
    let anonymous = app
        .http
        .get(app.url("/v1/deliveries/dead"))
        .send()
        .await
        .expect("GET");
    assert_eq!(anonymous.status(), 401);
    let anonymous = app
        .http
        .post(app.url("/v1/deliveries/retry-dead"))
        .json(&json!({}))
        .send()
        .await
        .expect("POST");
    assert_eq!(anonymous.status(), 401);

    let output = crisisd(&app, &["dead", "--limit", "0"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

#[tokio::test]
async fn retry_dead_requeues_dead_deliveries_and_they_are_then_delivered() {
    let smtp = SmtpServer::start().await;
    smtp.script_data_replies(&["550 5.7.1 Rejected by policy"; 3]);
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    let id = app.declare("Payments are down").await;
    app.wait_until(&id, WAIT, |d| d["deliveries"]["email"]["dead"] == 3)
        .await;
    assert!(smtp.accepted().is_empty());

    // The confirmation's count comes from a dry run, which changes nothing.
    let dry = app
        .post(
            "/v1/deliveries/retry-dead",
            &json!({"crisis": id, "dry_run": true}),
        )
        .await;
    assert_eq!(dry.status(), 200);
    assert_eq!(
        dry.json::<Value>().await.expect("JSON"),
        json!({"requeued": 0, "would_requeue": 3, "left_dead": 0})
    );
    assert_eq!(dead_list(&app, "").await["total"], 3);

    // The server accepts again (its script ran out).
    let output = crisisd(&app, &["retry-dead", "--crisis", &id, "--yes"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("Requeued 3 dead deliveries"),
        "{}",
        stdout(&output)
    );

    let detail = app
        .wait_until(&id, WAIT, |d| d["deliveries"]["email"]["sent"] == 3)
        .await;
    assert_eq!(detail["deliveries"]["email"]["dead"], 0);
    assert_eq!(detail["dead"], json!([]));
    let delivered: std::collections::BTreeSet<String> =
        smtp.accepted().iter().flat_map(|m| m.to.clone()).collect();
    assert_eq!(delivered.len(), 3, "{delivered:?}");
    assert_eq!(dead_list(&app, "").await["total"], 0);

    let again = app.post("/v1/deliveries/retry-dead", &json!({})).await;
    assert_eq!(
        again.json::<Value>().await.expect("JSON"),
        json!({"requeued": 0, "left_dead": 0}),
        "nothing dead is left to requeue"
    );
}

#[tokio::test]
async fn retry_dead_also_requeues_a_resolved_crisis_and_refuses_unknown_channels() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    let id = app.declare("Payments are down").await;
    smtp.wait_for(3, WAIT).await;
    smtp.script_data_replies(&["550 5.7.1 Rejected by policy"; 3]);
    let resolved = app
        .post(
            &format!("/v1/crises/{id}/resolve"),
            &json!({"message": "All good."}),
        )
        .await;
    assert_eq!(resolved.status(), 200);
    app.wait_until(&id, WAIT, |d| d["deliveries"]["email"]["dead"] == 3)
        .await;

    let unknown = app
        .post("/v1/deliveries/retry-dead", &json!({"channel": "pigeon"}))
        .await;
    assert_eq!(unknown.status(), 400);
    let bad = app
        .post("/v1/deliveries/retry-dead", &json!({"crisis": "nope"}))
        .await;
    assert_eq!(bad.status(), 400);
    let extra = app
        .post("/v1/deliveries/retry-dead", &json!({"everything": true}))
        .await;
    assert_eq!(extra.status(), 400);
    assert_eq!(dead_list(&app, "").await["total"], 3, "nothing changed");

    let requeued = app
        .post("/v1/deliveries/retry-dead", &json!({"channel": "email"}))
        .await;
    assert_eq!(
        requeued.json::<Value>().await.expect("JSON"),
        json!({"requeued": 3, "left_dead": 0})
    );
    app.wait_until(&id, WAIT, |d| d["deliveries"]["email"]["sent"] == 6)
        .await;
    let all_clear = smtp.wait_for(6, WAIT).await;
    assert!(
        all_clear[3..]
            .iter()
            .all(|m| m.text().contains("All good.")),
        "the all-clear goes out"
    );
}

#[tokio::test]
async fn retry_dead_without_yes_and_without_a_terminal_exits_2_and_changes_nothing() {
    let smtp = SmtpServer::start().await;
    smtp.script_data_replies(&["550 5.7.1 Rejected by policy"; 3]);
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    let id = app.declare("Payments are down").await;
    app.wait_until(&id, WAIT, |d| d["deliveries"]["email"]["dead"] == 3)
        .await;
    let before = dead_list(&app, "").await;

    let output = crisisd(&app, &["retry-dead", "--crisis", &id]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--yes"), "{}", stderr(&output));
    assert!(stdout(&output).is_empty(), "{}", stdout(&output));

    // Had anything been requeued, the dispatcher (polling every 50 ms)
    // would have sent it by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(dead_list(&app, "").await, before);
    assert_eq!(smtp.attempts(), 3, "nothing was sent again");
    assert!(smtp.accepted().is_empty());
}

#[tokio::test]
async fn status_watch_piped_prints_plain_lines_and_exits_0_once_everything_is_finished() {
    const READERS: usize = 40;
    let smtp = SmtpServer::start().await;
    // Slow enough that the watch sees the fan-out going, not only its end.
    smtp.set_delay(Duration::from_millis(50));
    let mut config = TestConfig::new(smtp.port());
    config.audience = readers(READERS);
    config.concurrency = 2;
    let app = spawn_app(config).await;
    let id = app.declare("Payments are down").await;

    let output = tokio::time::timeout(
        Duration::from_secs(60),
        crisisd(&app, &["status", &id, "--watch"]),
    )
    .await
    .expect("the watch ends by itself once everything is sent");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        !text.contains('\x1b'),
        "no escape codes when piped: {text:?}"
    );

    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" email sent="))
        .collect();
    assert!(!lines.is_empty(), "{text}");
    for line in &lines {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 10, "{line}");
        DateTime::parse_from_rfc3339(fields[0]).expect("a time first");
        assert_eq!(fields[1], id);
        assert_eq!(fields[2], "email");
        for (field, key) in fields[3..].iter().zip([
            "sent=",
            "pending=",
            "in_flight=",
            "retrying=",
            "dead=",
            "rate=",
            "eta=",
        ]) {
            assert!(field.starts_with(key), "{field} in {line}");
        }
        assert!(fields[8].ends_with("/s"), "{line}");
    }
    let last = lines.last().expect("a line");
    assert!(
        last.contains(&format!(
            "sent={READERS} pending=0 in_flight=0 retrying=0 dead=0"
        )),
        "the last line shows the end: {last}"
    );
    assert!(last.ends_with("eta=0s"), "{last}");
    assert!(
        !last.contains("rate=0.0/s"),
        "deliveries just finished: {last}"
    );
    assert_eq!(smtp.accepted().len(), READERS);
    // The final summary follows the lines.
    let summary = text
        .split_once(last)
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    assert!(
        summary.contains(&id) && summary.contains("ETA done"),
        "{text}"
    );
}

#[tokio::test]
async fn the_api_reports_a_positive_rate_and_an_eta_right_after_a_fan_out() {
    const READERS: usize = 300;
    let smtp = SmtpServer::start().await;
    let mut config = TestConfig::new(smtp.port());
    config.audience = readers(READERS);
    config.concurrency = 8;
    let app = spawn_app(config).await;
    let id = app.declare("Payments are down").await;

    let early = app.get_json(&format!("/v1/crises/{id}")).await;
    let email = &early["deliveries"]["email"];
    assert!(email["rate_per_second"].is_f64(), "{email}");
    assert!(
        email.get("eta_seconds").is_some(),
        "eta_seconds is there, null or a number: {email}"
    );

    let detail = app
        .wait_until(&id, Duration::from_secs(60), |d| {
            d["deliveries"]["email"]["sent"] == READERS
        })
        .await;
    let email = &detail["deliveries"]["email"];
    let rate = email["rate_per_second"].as_f64().expect("a rate");
    assert!(rate > 0.0, "{email}");
    assert_eq!(email["eta_seconds"], 0, "nothing is left: {email}");
    for field in ["pending", "in_flight", "retrying", "dead"] {
        assert_eq!(email[field], 0, "{field}: {email}");
    }

    let list = app.get_json("/v1/crises?status=active").await;
    let listed = &list["crises"][0]["deliveries"]["email"];
    assert_eq!(list["crises"][0]["id"], id.as_str());
    assert!(listed["rate_per_second"].as_f64().expect("a rate") > 0.0);
    assert_eq!(listed["eta_seconds"], 0);

    let output = crisisd(&app, &["status"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("email"))
        .unwrap_or_else(|| panic!("a line for the email channel: {text}"));
    assert!(
        line.contains("/s") && line.contains("ETA done"),
        "rate and ETA per channel: {line}"
    );
}

#[tokio::test]
async fn retry_dead_with_nothing_to_requeue_says_so_and_exits_0_even_without_a_terminal() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    let id = app.declare("Payments are down").await;
    app.wait_until(&id, WAIT, |d| d["deliveries"]["email"]["sent"] == 3)
        .await;
    let output = crisisd(&app, &["retry-dead", "--crisis", &id]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("No dead deliveries to requeue"),
        "{}",
        stdout(&output)
    );
}
