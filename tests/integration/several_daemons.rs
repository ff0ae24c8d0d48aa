//! Several daemons on one PostgreSQL: the work shared, each message sent
//! once, a daemon killed without losing anything, a transition on one
//! daemon shown by the others, and the same request or webhook given to
//! two daemons acting once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::process::Child;

use crate::support::{
    Daemon, SmtpServer, TOKEN, TestApp, TestConfig, WAIT, declaration, postgres, spawn_app_in,
};

/// `readers` English readers with an email address each.
fn audience(readers: usize) -> String {
    std::iter::once("id,name,email,phone,locale,timezone\n".to_owned())
        .chain((0..readers).map(|i| format!("r{i},Reader {i},reader{i}@example.com,,en,UTC\n")))
        .collect()
}

/// The senders of daemon 0, 1, 2…: each daemon's messages carry its own,
/// so the test server tells who sent what.
const SENDERS: [&str; 3] = [
    "Support <node0@example.com>",
    "Support <node1@example.com>",
    "Support <node2@example.com>",
];

/// Daemon `n` of several on `store_url`, as a process of its own, with
/// leases of `lease` (and an SMTP timeout within half of it).
fn node(
    smtp: &SmtpServer,
    store_url: &str,
    readers: usize,
    n: usize,
    (lease, smtp_timeout): (&'static str, &'static str),
) -> Daemon {
    let mut config = TestConfig::new(smtp.port());
    config.store_url = Some(store_url.to_owned());
    config.audience = audience(readers);
    config.concurrency = CONCURRENCY;
    config.lease = lease;
    config.smtp_timeout = smtp_timeout;
    config.email_from = SENDERS[n];
    Daemon::new(config)
}

/// Each daemon's in-flight limit: the most a killed one may repeat.
const CONCURRENCY: usize = 8;

/// How many messages each daemon sent, by its sender address.
fn sent_by_node(smtp: &SmtpServer) -> Vec<usize> {
    let accepted = smtp.accepted();
    (0..SENDERS.len())
        .map(|n| {
            accepted
                .iter()
                .filter(|m| m.from == format!("node{n}@example.com"))
                .count()
        })
        .collect()
}

/// Every reader's Message-IDs: a message sent twice carries its Message-ID
/// twice.
fn message_ids_by_reader(smtp: &SmtpServer) -> BTreeMap<String, Vec<String>> {
    let mut by_reader: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for message in smtp.accepted() {
        by_reader
            .entry(message.to.join(","))
            .or_default()
            .push(message.message_id());
    }
    by_reader
}

/// Deliveries that took more than one attempt, with their last error: why
/// a reader may have got a message twice.
async fn tried_again(url: &str) -> Vec<(String, i64, Option<String>)> {
    let pool = sqlx::PgPool::connect(url).await.expect("connect");
    sqlx::query_as(
        "SELECT destination, attempts, last_error FROM deliveries WHERE attempts > 1 LIMIT 20",
    )
    .fetch_all(&pool)
    .await
    .expect("query")
}

async fn start_all(nodes: &[Daemon]) -> Vec<Child> {
    let mut processes = Vec::new();
    for node in nodes {
        processes.push(node.start().await);
    }
    processes
}

#[tokio::test]
async fn three_daemons_send_a_fan_out_of_20000_emails_each_exactly_once_and_share_the_work() {
    const READERS: usize = 20_000;
    let smtp = SmtpServer::start().await;
    let url = postgres::database().await;
    // Leases long enough that a claimed batch is always sent within its
    // lease on a loaded machine: an expired lease is sent again by another
    // daemon (only its outcome is fenced), which this test must not see.
    let nodes: Vec<Daemon> = (0..3)
        .map(|n| node(&smtp, &url, READERS, n, ("30s", "5s")))
        .collect();
    let _processes = start_all(&nodes).await;

    let id = nodes[0].declare().await;
    let email = nodes[1]
        .settled(&id, READERS as u64, Duration::from_secs(600))
        .await;
    assert_eq!(email["sent"], READERS, "{email}");

    let by_reader = message_ids_by_reader(&smtp);
    assert_eq!(by_reader.len(), READERS, "every reader got the message");
    let repeated: Vec<_> = by_reader.iter().filter(|(_, ids)| ids.len() != 1).collect();
    assert!(
        repeated.is_empty(),
        "{} readers got it more than once, e.g. {:?}; tried again: {:?}; the daemons said: {:?}",
        repeated.len(),
        repeated.first(),
        tried_again(&url).await,
        nodes.iter().map(Daemon::log).collect::<Vec<_>>()
    );
    let distinct: BTreeSet<&String> = by_reader.values().flatten().collect();
    assert_eq!(distinct.len(), READERS, "one Message-ID per reader");
    let shares = sent_by_node(&smtp);
    assert_eq!(shares.iter().sum::<usize>(), READERS);
    assert!(
        shares.iter().all(|&n| n > READERS / 20),
        "the work is spread over all three daemons: {shares:?}"
    );
}

#[tokio::test]
async fn a_daemon_killed_mid_fan_out_loses_nothing_and_the_others_finish_its_leases() {
    const READERS: usize = 4_000;
    let smtp = SmtpServer::start().await;
    // Slow enough that the kill lands while every daemon has sends in flight.
    smtp.set_delay(Duration::from_millis(3));
    let url = postgres::database().await;
    // Short leases: the killed daemon's are taken over soon after.
    let nodes: Vec<Daemon> = (0..3)
        .map(|n| node(&smtp, &url, READERS, n, ("4s", "2s")))
        .collect();
    let mut processes = start_all(&nodes).await;

    // Declared on daemon 0, which plans it; daemon 2 is the one killed.
    let id = nodes[0].declare().await;
    let deadline = Instant::now() + WAIT;
    while sent_by_node(&smtp)[2] < 200 {
        assert!(Instant::now() < deadline, "daemon 2 sent nothing");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    processes[2].start_kill().expect("SIGKILL");
    processes[2].wait().await.expect("reaped");
    let before = smtp.accepted().len();
    assert!(
        before < READERS,
        "the kill came mid fan-out ({before} sent)"
    );

    let email = nodes[0]
        .settled(&id, READERS as u64, Duration::from_secs(180))
        .await;
    assert_eq!(email["sent"], READERS, "nothing lost: {email}");
    let by_reader = message_ids_by_reader(&smtp);
    assert_eq!(by_reader.len(), READERS, "every reader got the message");
    let duplicates: usize = by_reader.values().map(|ids| ids.len() - 1).sum();
    assert!(
        duplicates <= CONCURRENCY,
        "{duplicates} duplicates; at most the {CONCURRENCY} the killed daemon had in flight"
    );
}

/// Readers' deliveries written so far, and who plans the announcement
/// still being planned (`None` when none is), as the store has them.
async fn plan_progress(pool: &sqlx::PgPool) -> (i64, Option<String>) {
    let written: i64 =
        sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE recipient_id IS NOT NULL")
            .fetch_one(pool)
            .await
            .expect("count");
    let owner: Option<Option<String>> =
        sqlx::query_scalar("SELECT plan_owner FROM announcements WHERE planning")
            .fetch_optional(pool)
            .await
            .expect("planning");
    (written, owner.map(|owner| owner.unwrap_or_default()))
}

#[tokio::test]
async fn a_daemon_killed_while_planning_a_fan_out_has_its_plan_finished_by_another_each_reader_once()
 {
    const READERS: usize = 20_000;
    // The planning lease (15 s) and the look for expired plans (every 5 s),
    // with a margin for a loaded machine.
    const TAKEOVER_WITHIN: Duration = Duration::from_secs(15 + 5 + 5);
    // Then the rest planned, by a debug build on two busy cores.
    const FINISHED_WITHIN: Duration = Duration::from_secs(120);
    let smtp = SmtpServer::start().await;
    let url = postgres::database().await;
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    let nodes: Vec<Daemon> = (0..3)
        .map(|n| node(&smtp, &url, READERS, n, ("30s", "5s")))
        .collect();
    let mut processes = start_all(&nodes).await;

    // Daemon 0 plans the fan-out while its declaration waits; it is killed
    // once some batches are written and before the last.
    let planner = nodes[0].base.clone();
    let declaring = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("{planner}/v1/crises"))
            .bearer_auth(TOKEN)
            .json(&declaration("Payments are down"))
            .send()
            .await
    });
    let deadline = Instant::now() + WAIT;
    let (written_at_kill, killed_owner) = loop {
        let (written, owner) = plan_progress(&pool).await;
        if written > 0 {
            let owner = owner.unwrap_or_else(|| {
                panic!("the plan was complete before the kill ({written} written)")
            });
            processes[0].start_kill().expect("SIGKILL");
            break (written, owner);
        }
        assert!(Instant::now() < deadline, "nothing was planned");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    processes[0].wait().await.expect("reaped");
    let killed = Instant::now();
    drop(declaring.await);
    let (written, owner) = plan_progress(&pool).await;
    assert!(
        owner.is_some() && written < READERS as i64,
        "the kill came mid-plan: {written_at_kill} written then, {written} after"
    );

    // Another daemon takes the plan over once its lease runs out, and
    // finishes it.
    let mut taken_after = None;
    loop {
        let (written, owner) = plan_progress(&pool).await;
        if taken_after.is_none() && owner.as_ref() != Some(&killed_owner) {
            taken_after = Some(killed.elapsed());
        }
        let Some(owner) = owner else {
            assert_eq!(written, READERS as i64, "every reader planned, once");
            break;
        };
        let (within, what) = match taken_after {
            None => (TAKEOVER_WITHIN, "taken over"),
            Some(_) => (FINISHED_WITHIN, "finished"),
        };
        assert!(
            killed.elapsed() < within,
            "the plan was not {what} {within:?} after its daemon died ({written} of {READERS} \
             written, owner {owner}); the others said: {} / {}",
            nodes[1].log(),
            nodes[2].log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let finished_after = killed.elapsed();
    let planned_twice: Vec<(String, i64)> = sqlx::query_as(
        "SELECT destination, count(*) FROM deliveries WHERE recipient_id IS NOT NULL \
         GROUP BY destination HAVING count(*) > 1 LIMIT 5",
    )
    .fetch_all(&pool)
    .await
    .expect("query");
    assert!(planned_twice.is_empty(), "planned twice: {planned_twice:?}");

    let id: String = sqlx::query_scalar("SELECT id FROM crises")
        .fetch_one(&pool)
        .await
        .expect("the crisis");
    let email = nodes[1]
        .settled(&id, READERS as u64, Duration::from_secs(600))
        .await;
    assert_eq!(email["sent"], READERS, "{email}");
    let by_reader = message_ids_by_reader(&smtp);
    assert_eq!(by_reader.len(), READERS, "every reader got the message");
    // One message per reader: a reader planned twice would get two
    // Message-IDs. The same one twice is a send the killed daemon had in
    // flight, sent again after its lease: at most its concurrency.
    let two_messages: Vec<_> = by_reader
        .iter()
        .filter(|(_, ids)| ids.iter().collect::<BTreeSet<_>>().len() != 1)
        .collect();
    assert!(
        two_messages.is_empty(),
        "{} readers got two messages, e.g. {:?}",
        two_messages.len(),
        two_messages.first()
    );
    let resent: usize = by_reader.values().map(|ids| ids.len() - 1).sum();
    assert!(
        resent <= CONCURRENCY,
        "{resent} sent again; at most the {CONCURRENCY} the killed daemon had in flight"
    );
    eprintln!(
        "killed with {written_at_kill} of {READERS} planned; plan taken over {taken_after:?} and \
         finished {finished_after:?} after the kill; {resent} in-flight sends repeated"
    );
}

/// `crisisd status` run against the daemon at `base`.
async fn status_of(base: &str) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_crisisd"))
        .args(["status", "--url", base])
        .env("CRISISD_TOKEN", TOKEN)
        .env("CRISISD_CONFIG", "/nonexistent/crisisd.toml")
        .output()
        .await
        .expect("run crisisd status");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `/readyz` of the daemon at `base`, whatever its status.
async fn readyz(base: &str) -> Value {
    reqwest::get(format!("{base}/readyz"))
        .await
        .expect("readyz")
        .json()
        .await
        .expect("JSON")
}

#[tokio::test]
async fn status_says_which_daemon_leads_which_holds_deliveries_in_flight_and_which_plans() {
    const READERS: usize = 20_000;
    let smtp = SmtpServer::start().await;
    // Slow sends: both daemons hold deliveries in flight for a while.
    smtp.set_delay(Duration::from_millis(20));
    let url = postgres::database().await;
    let nodes: Vec<Daemon> = (0..2)
        .map(|n| node(&smtp, &url, READERS, n, ("30s", "5s")))
        .collect();
    let _processes = start_all(&nodes).await;
    let planner = nodes[0].base.clone();
    let _declaring = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("{planner}/v1/crises"))
            .bearer_auth(TOKEN)
            .json(&declaration("Payments are down"))
            .send()
            .await
    });

    // While daemon 0 plans and both send: each daemon's /readyz names it,
    // the leader, both daemons, the plan and its owner.
    let deadline = Instant::now() + WAIT;
    let (names, ready) = loop {
        let ready: Vec<Value> = vec![readyz(&nodes[0].base).await, readyz(&nodes[1].base).await];
        let busy = |r: &Value| {
            r["daemons"]["nodes"].as_array().is_some_and(|nodes| {
                nodes.len() == 2
                    && nodes
                        .iter()
                        .all(|n| n["leases"]["email"]["in_flight"].as_u64() > Some(0))
            }) && r["daemons"]["planning"]
                .as_array()
                .is_some_and(|p| p.len() == 1)
                && r["leader"]["node"].is_string()
        };
        if busy(&ready[1]) {
            let names = [ready[0]["node"].clone(), ready[1]["node"].clone()];
            break (names, ready);
        }
        assert!(
            Instant::now() < deadline,
            "never both busy while planning: {:#}",
            ready[1]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let view = &ready[1]["daemons"];
    assert_ne!(names[0], names[1], "each daemon has a name of its own");
    assert_eq!(view["this_node"], names[1]);
    let listed: BTreeSet<String> = view["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["node"].to_string())
        .collect();
    let expected: BTreeSet<String> = names.iter().map(Value::to_string).collect();
    assert_eq!(listed, expected, "{view:#}");
    assert_eq!(
        view["planning"][0]["owner"], names[0],
        "daemon 0 plans: {view:#}"
    );
    let leader = &ready[1]["leader"];
    assert!(
        leader["term"].as_u64() >= Some(1) && leader["expires_at"].is_string(),
        "{leader}"
    );

    // `crisisd status` says the same in words, on either daemon.
    let text = status_of(&nodes[1].base).await;
    let leader_name = leader["node"].as_str().expect("leader");
    assert!(
        text.contains(&format!("Leader: {leader_name} (term {}", leader["term"])),
        "{text}"
    );
    assert!(text.contains("Daemons: 2"), "{text}");
    for name in &names {
        let name = name.as_str().expect("name");
        let line = text
            .lines()
            .find(|line| line.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no line for {name}: {text}"));
        assert!(
            line.contains("email ") && line.contains(" in flight (leases until "),
            "{line}"
        );
    }
    assert!(
        text.lines().any(
            |line| line.starts_with("Planning: the initial announcement")
                && line.contains(&format!("by {}", names[0].as_str().expect("name")))
        ),
        "{text}"
    );
}

/// Two daemons in this process on one database.
async fn two_apps(smtp: &SmtpServer, extra: &str) -> (TestApp, TestApp) {
    let url = postgres::database().await;
    let mut apps = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("am.secret"), "am-pass").expect("secret");
        let mut config = TestConfig::new(smtp.port());
        config.store_url = Some(url.clone());
        config.extra = extra.replace("{dir}", &dir.path().display().to_string());
        apps.push(spawn_app_in(config, dir).await);
    }
    let second = apps.pop().expect("two");
    (apps.pop().expect("two"), second)
}

/// Polls `app`'s English banner until `check` holds; how long it took.
async fn banner_until(app: &TestApp, check: impl Fn(&Value) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        let banner = app.banner("en").await;
        if check(&banner) {
            return started.elapsed();
        }
        assert!(started.elapsed() < WAIT, "banner never changed: {banner}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_crisis_declared_or_resolved_on_one_daemon_shows_on_the_others_banner_within_a_second() {
    let smtp = SmtpServer::start().await;
    let (first, second) = two_apps(&smtp, "").await;
    let id = first.declare("Payments are down").await;
    let shown = banner_until(&second, |b| b.to_string().contains("Payments are down")).await;
    assert!(shown < Duration::from_secs(1), "shown after {shown:?}");

    let resolved = first
        .post(
            &format!("/v1/crises/{id}/resolve"),
            &json!({"message": "Payments work again."}),
        )
        .await;
    assert_eq!(resolved.status(), 200);
    let cleared = banner_until(&second, |b| !b.to_string().contains("Payments are down")).await;
    assert!(
        cleared < Duration::from_secs(1),
        "cleared after {cleared:?}"
    );
}

#[tokio::test]
async fn the_same_idempotency_key_sent_to_two_daemons_declares_once_and_both_answer_the_same() {
    let smtp = SmtpServer::start().await;
    let (first, second) = two_apps(&smtp, "").await;
    let send = |app: &TestApp| {
        app.http
            .post(app.url("/v1/crises"))
            .bearer_auth(TOKEN)
            .header("Idempotency-Key", "declare-1")
            .json(&declaration("Payments are down"))
            .send()
    };
    let (a, b) = tokio::join!(send(&first), send(&second));
    let (a, b) = (a.expect("first"), b.expect("second"));
    let statuses = (a.status().as_u16(), b.status().as_u16());
    let (a, b): (Value, Value) = (a.json().await.expect("JSON"), b.json().await.expect("JSON"));
    // The one that lost the race answers with the winner's answer, or (if
    // it asked while the winner was still planning) says the key is busy.
    assert!(
        statuses == (201, 201) || statuses == (201, 409) || statuses == (409, 201),
        "{statuses:?}: {a} {b}"
    );
    let list = second.get_json("/v1/crises").await;
    assert_eq!(list["crises"].as_array().map(Vec::len), Some(1), "{list}");
    let id = list["crises"][0]["id"].clone();
    for (status, answer) in [(statuses.0, &a), (statuses.1, &b)] {
        if status == 201 {
            assert_eq!(answer["crisis"]["id"], id, "{answer}");
        }
    }
    let again = send(&second).await.expect("retry");
    assert_eq!(again.status(), 201);
    let again: Value = again.json().await.expect("JSON");
    assert_eq!(
        again["crisis"]["id"], id,
        "a later retry replays the answer"
    );
    smtp.wait_for(3, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.accepted().len(), 3, "one declaration's three emails");
}

const ALERTMANAGER: &str = r#"
[[hooks]]
name = "alerts"
source = "alertmanager"
secret_file = "{dir}/am.secret"
"#;

fn firing() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"DatabaseDown\"}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "crisisd",
        "groupLabels": {"alertname": "DatabaseDown"},
        "commonLabels": {"env": "prod"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "DatabaseDown", "severity": "critical", "env": "prod"},
            "annotations": {"summary": "DatabaseDown on db1", "description": "The primary database does not answer."},
            "startsAt": "2026-11-23T03:00:00.000Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph",
            "fingerprint": "aaaa000000000001"
        }]
    }))
    .expect("JSON")
}

#[tokio::test]
async fn the_same_alertmanager_webhook_posted_to_two_daemons_at_once_declares_one_crisis() {
    use base64::Engine;
    let smtp = SmtpServer::start().await;
    let (first, second) = two_apps(&smtp, ALERTMANAGER).await;
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alertmanager:am-pass")
    );
    let post = |app: &TestApp| {
        app.http
            .post(app.url("/v1/hooks/alerts"))
            .header("authorization", auth.clone())
            .header("content-type", "application/json")
            .body(firing())
            .send()
    };
    // An Alertmanager HA pair: both members notify, each to another daemon.
    for _ in 0..3 {
        let (a, b) = tokio::join!(post(&first), post(&second));
        assert_eq!(a.expect("first").status(), 200);
        assert_eq!(b.expect("second").status(), 200);
    }
    let list = second.get_json("/v1/crises").await;
    assert_eq!(list["crises"].as_array().map(Vec::len), Some(1), "{list}");
    smtp.wait_for(3, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.accepted().len(), 3, "one crisis, announced once");
}
