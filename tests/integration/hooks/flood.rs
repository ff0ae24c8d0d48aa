//! A flood of unauthenticated webhooks (made-up hook names, bad tokens)
//! against the daemon process: counted in memory, logged a line per 10 s,
//! nothing written to the store's webhook log, and the fan-out keeps its
//! speed. An address with too many refusals is answered 429 unread.

use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::control::declare;
use crate::support::{Daemon, SmtpServer, TOKEN, TestConfig};

const READERS: usize = 1000;

fn daemon(smtp: &SmtpServer, secrets: &tempfile::TempDir) -> Daemon {
    std::fs::write(secrets.path().join("kuma.secret"), "k").unwrap();
    let mut config = TestConfig::new(smtp.port());
    config.audience = std::iter::once("id,name,email,phone,locale,timezone\n".to_owned())
        .chain((0..READERS).map(|i| format!("r{i},Reader {i},reader{i}@example.com,,en,UTC\n")))
        .collect();
    config.concurrency = 8;
    config.extra = format!(
        "[[hooks]]\nname = \"kuma\"\nsource = \"uptime_kuma\"\nsecret_file = \"{}\"\n",
        secrets.path().join("kuma.secret").display()
    );
    Daemon::new(config)
}

/// The flood comes from another loopback address than the tests' own
/// requests, as an outsider's would.
const FLOODER: [u8; 4] = [127, 0, 0, 2];

/// Posts unauthenticated webhooks, alternately to an unknown hook and with
/// a wrong token, from `workers` clients until `stop` or `limit` each;
/// counts the answers by status.
fn flood(
    base: &str,
    workers: usize,
    limit: usize,
    stop: &CancellationToken,
) -> JoinSet<[usize; 3]> {
    let mut tasks = JoinSet::new();
    for worker in 0..workers {
        let (base, stop) = (base.to_owned(), stop.clone());
        tasks.spawn(async move {
            let http = reqwest::Client::builder()
                .local_address(std::net::IpAddr::from(FLOODER))
                .build()
                .unwrap();
            let body = declare("flood", "Flood");
            let mut answers = [0; 3];
            let mut sent = 0;
            while sent < limit && !stop.is_cancelled() {
                let path = if (worker + sent) % 2 == 0 {
                    "/v1/hooks/nosuch"
                } else {
                    "/v1/hooks/kuma?token=wrong"
                };
                let answer = http
                    .post(format!("{base}{path}"))
                    .body(body.clone())
                    .send()
                    .await
                    .expect("post");
                match answer.status().as_u16() {
                    401 => answers[0] += 1,
                    404 => answers[1] += 1,
                    429 => answers[2] += 1,
                    other => panic!("{other} to an unauthenticated webhook"),
                }
                sent += 1;
            }
            answers
        });
    }
    tasks
}

async fn fan_out_time(daemon: &Daemon, smtp: &SmtpServer) -> Duration {
    let started = Instant::now();
    let id = daemon.declare().await;
    daemon
        .settled(&id, READERS as u64, Duration::from_secs(120))
        .await;
    smtp.wait_for(READERS, Duration::from_secs(10)).await;
    started.elapsed()
}

fn hook_log_rows(daemon: &Daemon) -> i64 {
    let db = daemon.dir().join("crisisd.db");
    let out = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("SELECT count(*) FROM hook_log")
        .output()
        .expect("sqlite3");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a count")
}

#[tokio::test]
async fn a_flood_of_unauthenticated_webhooks_writes_nothing_and_is_counted() {
    let smtp = SmtpServer::start().await;
    let secrets = tempfile::tempdir().unwrap();
    let daemon = daemon(&smtp, &secrets);
    let _child = daemon.start().await;
    let stop = CancellationToken::new();
    let mut posts = flood(&daemon.base, 16, 250, &stop);
    let answers = answer_counts(&mut posts).await;
    assert_eq!(answers.iter().sum::<usize>(), 4000);
    let [unauthorized, unknown, barred] = answers;
    assert!(
        barred >= 3900,
        "the flooding address is barred after a few refusals: {answers:?}"
    );
    let legit = daemon
        .http
        .post(format!("{}/v1/hooks/kuma?token=k", daemon.base))
        .body(declare("1", "Checkout"))
        .send()
        .await
        .unwrap();
    assert_eq!(legit.status(), 200);

    assert_eq!(hook_log_rows(&daemon), 1, "only the accepted webhook");
    let log: serde_json::Value = daemon
        .http
        .get(format!("{}/v1/hooks/log?limit=1000", daemon.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log["entries"][0]["hook"], "kuma");
    assert_eq!(log["entries"][0]["verdict"], "applied");

    let metrics = daemon
        .http
        .get(format!("{}/metrics", daemon.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        format!(
            r#"crisisd_webhook_refusals_total{{hook="unknown",reason="unknown_hook"}} {unknown}"#
        ),
        format!(
            r#"crisisd_webhook_refusals_total{{hook="kuma",reason="unauthorized"}} {unauthorized}"#
        ),
        format!(
            r#"crisisd_webhook_refusals_total{{hook="unknown",reason="rate_limited"}} {barred}"#
        ),
    ] {
        assert!(
            metrics
                .lines()
                .any(|l| sort_labels(l) == sort_labels(&series)),
            "{series} in\n{metrics}"
        );
    }
    let lines = daemon.log().matches("Webhook refused").count();
    assert!(
        (2..=20).contains(&lines),
        "{lines} log lines for 4000 refusals"
    );
}

async fn answer_counts(posts: &mut JoinSet<[usize; 3]>) -> [usize; 3] {
    let mut total = [0; 3];
    while let Some(answers) = posts.join_next().await {
        for (sum, n) in total.iter_mut().zip(answers.unwrap()) {
            *sum += n;
        }
    }
    total
}

/// Once barred, an address is answered before its body is read: a request
/// that announces a body and never sends it still gets 429 at once. The
/// tests' own address is not barred, and the flooder is let through
/// again a second later, when its quota allows.
#[tokio::test]
async fn a_barred_address_is_answered_429_unread_and_others_go_on() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let smtp = SmtpServer::start().await;
    let secrets = tempfile::tempdir().unwrap();
    let daemon = daemon(&smtp, &secrets);
    let _child = daemon.start().await;
    let stop = CancellationToken::new();
    let [_, _, barred] = answer_counts(&mut flood(&daemon.base, 1, 40, &stop)).await;
    assert!(barred > 0, "40 refusals in a row bar the address");

    let port = daemon.base.rsplit(':').next().unwrap().parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind((std::net::Ipv4Addr::from(FLOODER), 0).into())
        .unwrap();
    let mut stream = socket
        .connect((std::net::Ipv4Addr::LOCALHOST, port).into())
        .await
        .unwrap();
    stream
        .write_all(
            b"POST /v1/hooks/kuma?token=k HTTP/1.1\r\nHost: x\r\n\
              Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n",
        )
        .await
        .unwrap();
    let mut head = vec![0; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut head))
        .await
        .expect("answered without waiting for the body")
        .unwrap();
    let head = String::from_utf8_lossy(&head[..n]).to_lowercase();
    assert!(head.starts_with("http/1.1 429"), "{head}");
    assert!(head.contains("retry-after: 1"), "{head}");

    let mine = daemon
        .http
        .post(format!("{}/v1/hooks/kuma?token=k", daemon.base))
        .body(declare("1", "Checkout"))
        .send()
        .await
        .unwrap();
    assert_eq!(mine.status(), 200, "another address is not barred");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fixed = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(FLOODER))
        .build()
        .unwrap()
        .post(format!("{}/v1/hooks/kuma?token=k", daemon.base))
        .body(declare("2", "Search"))
        .send()
        .await
        .unwrap();
    assert_eq!(fixed.status(), 200, "a fixed sender is let through");
}

/// A sample line with its labels in a fixed order.
fn sort_labels(line: &str) -> String {
    let Some((name, rest)) = line.split_once('{') else {
        return line.to_owned();
    };
    let Some((labels, value)) = rest.split_once('}') else {
        return line.to_owned();
    };
    let mut labels: Vec<&str> = labels.split(',').collect();
    labels.sort_unstable();
    format!("{name}{{{}}}{value}", labels.join(","))
}

#[tokio::test]
async fn a_fan_out_keeps_its_speed_during_a_webhook_flood() {
    let smtp = SmtpServer::start().await;
    let secrets = tempfile::tempdir().unwrap();
    let quiet = daemon(&smtp, &secrets);
    let child = quiet.start().await;
    let baseline = fan_out_time(&quiet, &smtp).await;
    drop(child);

    let smtp = SmtpServer::start().await;
    let flooded = daemon(&smtp, &secrets);
    let _child = flooded.start().await;
    let stop = CancellationToken::new();
    let mut posts = flood(&flooded.base, 16, usize::MAX, &stop);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = fan_out_time(&flooded, &smtp).await;
    stop.cancel();
    let sent: usize = answer_counts(&mut posts).await.iter().sum();
    eprintln!(
        "fan-out of {READERS}: {baseline:?} quiet, {during:?} during a flood of {sent} refused webhooks"
    );
    assert_eq!(hook_log_rows(&flooded), 0);
    assert!(sent > 1000, "the flood ran: {sent}");
    let answer = flooded
        .http
        .get(format!("{}/v1/crises", flooded.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
}

/// A hook name in the URL is the one text an outsider can put into the
/// log unauthenticated: escape sequences and line breaks in it must reach
/// the log escaped, so it can neither drive the terminal nor forge a line.
#[tokio::test]
async fn a_hook_name_with_control_characters_cannot_forge_a_log_line() {
    let smtp = SmtpServer::start().await;
    let secrets = tempfile::tempdir().unwrap();
    let daemon = daemon(&smtp, &secrets);
    let _child = daemon.start().await;
    let forged = "%1B%5B2J%0D%0A2001-01-01T00:00:00Z%20INFO%20crisisd:%20forged";
    let answer = daemon
        .http
        .post(format!("{}/v1/hooks/{forged}", daemon.base))
        .body(declare("1", "Checkout"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);

    let deadline = Instant::now() + Duration::from_secs(5);
    while !daemon.log().contains("Webhook refused") {
        assert!(
            Instant::now() < deadline,
            "no refusal logged:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = daemon.log();
    assert!(!log.contains('\u{1b}'), "a raw ESC in the log:\n{log}");
    assert!(
        !log.contains('\r'),
        "a raw carriage return in the log:\n{log}"
    );
    assert!(
        !log.lines().any(|line| line.starts_with("2001-01-01")),
        "a forged line in the log:\n{log}"
    );
    let refusal = log
        .lines()
        .find(|line| line.contains("Webhook refused"))
        .expect("the refusal line");
    assert!(
        refusal.contains(r"\u{1b}[2J\r\n2001-01-01"),
        "the name shown escaped: {refusal}"
    );
}
