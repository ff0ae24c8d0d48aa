//! crisisd as a system service, run as its own process: the systemd notify
//! protocol over a real datagram socket, reload on SIGHUP, stop on SIGTERM,
//! and the Prometheus exposition.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::net::UnixDatagram;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::support::{SmtpServer, TOKEN, TestConfig, WAIT, copy_dir, declaration, free_port};

const BIN: &str = env!("CARGO_BIN_EXE_crisisd");

/// One notification datagram, as the daemon sent it, and when it came.
#[derive(Debug, Clone)]
struct Notification {
    at: Instant,
    text: String,
}

impl Notification {
    fn has(&self, line: &str) -> bool {
        self.text.lines().any(|l| l == line)
    }
}

/// The daemon as a child process started the way systemd starts a
/// `Type=notify` service, with the test as its service manager.
struct Service {
    dir: tempfile::TempDir,
    config: PathBuf,
    base: String,
    http: reqwest::Client,
    socket: UnixDatagram,
    child: Child,
}

impl Service {
    /// Writes `config` (its `listen` is replaced) and starts the daemon
    /// with `NOTIFY_SOCKET` set, and `WATCHDOG_USEC` when given.
    async fn start(config: TestConfig, watchdog: Option<Duration>) -> Self {
        Self::start_with(config, watchdog, |text| text).await
    }

    /// As `start`, with the config text passed through `edit` first.
    async fn start_with(
        mut config: TestConfig,
        watchdog: Option<Duration>,
        edit: impl FnOnce(String) -> String,
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        config.listen = Box::leak(format!("127.0.0.1:{port}").into_boxed_str());
        let path = dir.path().join("crisisd.toml");
        std::fs::write(&path, edit(config.write(dir.path()))).expect("write config");
        let socket_path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
        let log = std::fs::File::create(dir.path().join("crisisd.log")).expect("log file");
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--log-format", "json", "--config"])
            .arg(&path)
            .env("NOTIFY_SOCKET", &socket_path)
            .env("RUST_LOG", "info")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .env_remove("JOURNAL_STREAM")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        if let Some(watchdog) = watchdog {
            command.env("WATCHDOG_USEC", watchdog.as_micros().to_string());
        }
        let child = command.spawn().expect("start crisisd");
        Self {
            dir,
            config: path,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
            socket,
            child,
        }
    }

    fn pid(&self) -> String {
        self.child.id().expect("running").to_string()
    }

    fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &self.pid()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name}");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("crisisd.log")).unwrap_or_default()
    }

    /// The next notification, or none within `timeout`.
    async fn next(&self, timeout: Duration) -> Option<Notification> {
        let mut buf = vec![0u8; 4096];
        let len = tokio::time::timeout(timeout, self.socket.recv(&mut buf))
            .await
            .ok()?
            .expect("recv");
        Some(Notification {
            at: Instant::now(),
            text: String::from_utf8_lossy(&buf[..len]).into_owned(),
        })
    }

    /// Notifications up to and including the first with `line`.
    async fn until(&self, line: &str) -> Vec<Notification> {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Some(n) => {
                    let done = n.has(line);
                    seen.push(n);
                    if done {
                        return seen;
                    }
                }
                None => panic!(
                    "no {line} within {WAIT:?}; got {seen:#?}\nlog:\n{}",
                    self.log()
                ),
            }
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET")
    }

    async fn declare(&self, title: &str) -> String {
        let response = self
            .http
            .post(format!("{}/v1/crises", self.base))
            .bearer_auth(TOKEN)
            .json(&declaration(title))
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), 201, "declare");
        let body: serde_json::Value = response.json().await.expect("JSON");
        body["crisis"]["id"].as_str().expect("id").to_owned()
    }

    /// Sends SIGHUP and returns the notifications up to the READY=1 that
    /// ends the reload.
    async fn reload(&self) -> Vec<Notification> {
        self.signal("HUP");
        let mut seen = self.until("RELOADING=1").await;
        seen.extend(self.until("READY=1").await);
        seen
    }

    /// The exposition, parsed.
    async fn metrics(&self) -> prometheus_parse::Scrape {
        let response = self.get("/metrics").await;
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(content_type.starts_with("text/plain; version=0.0.4"));
        let text = response.text().await.expect("body");
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .expect("the exposition parses")
    }

    /// SIGTERM, then the exit status.
    async fn stop(mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("stops in time")
            .expect("wait")
    }
}

/// A sample's value, 0 when the series is absent.
fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            prometheus_parse::Value::Summary(_) => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn systemd_hears_ready_after_readyz_is_ok_then_watchdog_pings_reload_and_stop() {
    let smtp = SmtpServer::start().await;
    let watchdog = Duration::from_secs(3);
    let service = Service::start(TestConfig::new(smtp.port()), Some(watchdog)).await;

    let before = service.until("READY=1").await;
    let ready = before.last().expect("READY=1");
    assert!(
        before[..before.len() - 1]
            .iter()
            .all(|n| !n.has("READY=1") && !n.has("WATCHDOG=1")),
        "READY=1 comes first, once: {before:#?}"
    );
    assert!(
        ready.text.lines().any(|l| l.starts_with("STATUS=")),
        "READY=1 comes with a status line: {}",
        ready.text
    );
    // By the time systemd hears READY=1, the daemon is ready in every way
    // /readyz checks: store, listener and every channel's healthcheck.
    let readyz = service.get("/readyz").await;
    assert_eq!(readyz.status(), 200);
    let body: serde_json::Value = readyz.json().await.expect("JSON");
    assert_eq!(body["status"], "ok", "{body:#}");
    assert_eq!(body["channels"]["email"]["ok"], true, "{body:#}");
    assert_eq!(body["problems"], serde_json::json!([]));

    // Watchdog pings at half the timeout, never a full timeout apart.
    let mut pings = vec![ready.at];
    while pings.len() < 4 {
        let n = service
            .next(watchdog * 2)
            .await
            .expect("a watchdog ping within the timeout");
        if n.has("WATCHDOG=1") {
            pings.push(n.at);
        }
    }
    for pair in pings.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap < watchdog,
            "pings {gap:?} apart; the watchdog is {watchdog:?}"
        );
    }

    // SIGHUP: RELOADING=1 with the monotonic time, then READY=1.
    let reload = service.reload().await;
    let reloading = reload
        .iter()
        .find(|n| n.has("RELOADING=1"))
        .expect("RELOADING=1");
    assert!(
        reloading.text.lines().any(|l| l
            .strip_prefix("MONOTONIC_USEC=")
            .is_some_and(|v| v.parse::<u64>().is_ok())),
        "RELOADING=1 carries MONOTONIC_USEC: {}",
        reloading.text
    );
    assert!(reload.last().expect("READY=1").has("READY=1"));
    assert_eq!(service.get("/healthz").await.status(), 200);

    // SIGTERM: STOPPING=1, then a clean exit.
    service.signal("TERM");
    service.until("STOPPING=1").await;
    let mut service = service;
    let status = tokio::time::timeout(WAIT, service.child.wait())
        .await
        .expect("stops in time")
        .expect("wait");
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn a_broken_config_is_refused_on_reload_and_a_valid_one_applies_to_the_next_announcement() {
    let smtp = SmtpServer::start().await;
    let second = SmtpServer::start().await;
    let templates = tempfile::tempdir().expect("temp dir");
    copy_dir(&crate::support::app::templates_dir(), templates.path());
    let shipped = crate::support::app::templates_dir().display().to_string();
    let copy = templates.path().display().to_string();
    let service = Service::start_with(TestConfig::new(smtp.port()), None, |text| {
        text.replace(&shipped, &copy)
    })
    .await;
    service.until("READY=1").await;
    let valid = std::fs::read_to_string(&service.config).expect("config");

    service.declare("Before any reload").await;
    let first = smtp.wait_for(3, WAIT).await;
    assert!(first.iter().all(|m| !m.subject().contains("[drill]")));

    // A config with an unknown key: refused, the old one keeps serving.
    std::fs::write(&service.config, format!("{valid}\n[server2]\nlisten = 1\n")).expect("write");
    let reload = service.reload().await;
    assert!(
        reload
            .last()
            .expect("READY=1")
            .text
            .contains("Reload refused"),
        "{reload:#?}"
    );
    let log = service.log();
    assert!(log.contains("Reload refused"), "{log}");
    assert!(log.contains("server2"), "the reason is logged: {log}");
    service.declare("Still serving").await;
    let after_refusal = smtp.wait_for(6, WAIT).await;
    assert!(
        after_refusal
            .iter()
            .any(|m| m.subject().contains("Still serving"))
    );
    assert_eq!(second.accepted().len(), 0);

    // A valid change: a second email channel and a new subject template.
    let subject = templates.path().join("en/email/initial.subject.j2");
    std::fs::write(&subject, "[drill] {{ crisis.title }}").expect("write template");
    let with_channel = format!(
        "{valid}\n[[channels.email]]\nname = \"email-backup\"\nfrom = \"Test Co. <backup@example.com>\"\n\
         transport = \"smtp\"\n[channels.email.smtp]\nhost = \"localhost\"\nport = {}\ntls = \"none\"\ntimeout = \"5s\"\n",
        second.port()
    );
    std::fs::write(&service.config, with_channel).expect("write");
    let reload = service.reload().await;
    assert!(!reload.last().expect("READY=1").text.contains("refused"));

    service.declare("After the reload").await;
    let on_first = smtp.wait_for(9, WAIT).await;
    let on_second = second.wait_for(3, WAIT).await;
    let english = |messages: &[crate::support::smtp::Received]| {
        messages
            .iter()
            .filter(|m| m.subject().contains("After the reload"))
            .find(|m| m.header("To").is_some_and(|to| to.contains("ada@")))
            .map(|m| m.subject())
            .expect("Ada's message")
    };
    assert!(
        english(&on_first).starts_with("[drill] "),
        "{}",
        english(&on_first)
    );
    assert!(english(&on_second).starts_with("[drill] "));

    let scrape = service.metrics().await;
    assert_eq!(
        value(&scrape, "crisisd_reloads_total", &[("result", "refused")]),
        1.0
    );
    assert_eq!(
        value(&scrape, "crisisd_reloads_total", &[("result", "applied")]),
        1.0
    );
    assert!(service.stop().await.success());
}

#[tokio::test]
async fn metrics_count_sent_and_dead_deliveries_and_the_exposition_parses() {
    let smtp = SmtpServer::start().await;
    smtp.reject_recipient("rahim@example.org", "550 5.1.1 no such mailbox");
    let service = Service::start(TestConfig::new(smtp.port()), None).await;
    service.until("READY=1").await;

    let scrape = service.metrics().await;
    assert_eq!(
        value(&scrape, "crisisd_deliveries_total", &[("channel", "email")]),
        0.0
    );
    assert_eq!(
        value(&scrape, "crisisd_channel_healthy", &[("channel", "email")]),
        1.0
    );
    assert_eq!(
        value(&scrape, "crisisd_active_crises", &[("severity", "major")]),
        0.0
    );

    let id = service.declare("Payments are down").await;
    smtp.wait_for(2, WAIT).await;
    // Wait for the dead one too: the ledger has nothing left to send.
    let deadline = Instant::now() + WAIT;
    let scrape = loop {
        let scrape = service.metrics().await;
        let finished = value(&scrape, "crisisd_deliveries_total", &[("channel", "email")]);
        // Counted when sent; in the ledger once the outcome is written.
        let recorded = value(&scrape, "crisisd_dead_deliveries", &[("channel", "email")]);
        if (finished >= 3.0 && recorded >= 1.0) || Instant::now() > deadline {
            break scrape;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let email = |outcome| {
        value(
            &scrape,
            "crisisd_deliveries_total",
            &[("channel", "email"), ("outcome", outcome)],
        )
    };
    assert_eq!(email("sent"), 2.0);
    assert_eq!(email("dead"), 1.0);
    assert_eq!(
        value(
            &scrape,
            "crisisd_provider_errors_total",
            &[("channel", "email"), ("class", "permanent")]
        ),
        1.0
    );
    assert_eq!(
        value(&scrape, "crisisd_dead_deliveries", &[("channel", "email")]),
        1.0
    );
    assert_eq!(
        value(
            &scrape,
            "crisisd_queue_depth",
            &[("channel", "email"), ("state", "pending")]
        ),
        0.0
    );
    assert_eq!(
        value(&scrape, "crisisd_active_crises", &[("severity", "major")]),
        1.0
    );
    // Two latencies observed, in the histogram's count.
    assert_eq!(
        value(
            &scrape,
            "crisisd_delivery_latency_seconds_count",
            &[("channel", "email")]
        ),
        2.0
    );
    // Low cardinality: no recipient and no crisis id in any label.
    for sample in &scrape.samples {
        let labels = format!("{:?}", sample.labels);
        assert!(
            !labels.contains("example.") && !labels.contains(&id),
            "{labels}"
        );
    }

    // JSON logs: the dead delivery's line carries its ids in its span.
    let log = service.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).expect("every log line is JSON"))
        .collect();
    let dead = lines
        .iter()
        .find(|line| line["fields"]["message"] == "Delivery is dead.")
        .expect("the dead delivery is logged");
    assert_eq!(dead["level"], "ERROR");
    assert_eq!(dead["span"]["name"], "delivery");
    assert_eq!(dead["span"]["crisis_id"], id.as_str());
    assert_eq!(dead["span"]["channel"], "email");
    assert!(
        dead["span"]["delivery_id"]
            .as_str()
            .is_some_and(|d| d.len() == 36)
    );
    assert!(service.stop().await.success());
}

#[test]
fn the_packaged_config_passes_check_config_where_the_package_puts_things() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("temp dir");
    let text = std::fs::read_to_string(root.join("deploy/debian/crisisd.toml")).expect("config");
    // Where dpkg would have put them.
    let text = text
        .replace(
            "/usr/share/crisisd/templates",
            &root.join("templates").display().to_string(),
        )
        .replace(
            "/etc/crisisd/audience.csv",
            &root
                .join("deploy/debian/audience.csv")
                .display()
                .to_string(),
        );
    let path = dir.path().join("crisisd.toml");
    std::fs::write(&path, text).expect("write");
    let output = std::process::Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .expect("run crisisd");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn every_subcommand_explains_itself_with_examples() {
    use clap::CommandFactory;
    let mut cli = crisisd::cli::Cli::command();
    for sub in cli.get_subcommands_mut() {
        let name = sub.get_name().to_owned();
        let help = sub.render_long_help().to_string();
        assert!(
            help.contains("Example"),
            "`crisisd {name} --help` has no example"
        );
    }
    let top = cli.render_long_help().to_string();
    assert!(top.contains("Exit codes:"), "{top}");
}

#[test]
fn completions_are_printed_for_bash_zsh_and_fish() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef crisisd"),
        ("fish", "complete -c crisisd"),
    ] {
        let output = std::process::Command::new(BIN)
            .args(["completions", shell])
            .output()
            .expect("run crisisd");
        assert!(output.status.success());
        let script = String::from_utf8(output.stdout).expect("utf-8");
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(
            script.contains("check-config"),
            "{shell} completes subcommands"
        );
    }
    let output = std::process::Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .expect("run crisisd");
    assert_eq!(
        output.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[tokio::test]
async fn readyz_names_the_channel_whose_healthcheck_fails_and_healthz_stays_ok() {
    let smtp = SmtpServer::start().await;
    let mut config = TestConfig::new(smtp.port());
    config.extra = format!(
        "[[channels.email]]\nname = \"email-down\"\nfrom = \"Test Co. <support@example.com>\"\n\
         transport = \"smtp\"\n[channels.email.smtp]\nhost = \"localhost\"\nport = {}\ntls = \"none\"\ntimeout = \"2s\"\n",
        free_port()
    );
    let app = crate::support::spawn_app(config).await;

    let healthz = app.http.get(app.url("/healthz")).send().await.expect("GET");
    assert_eq!(healthz.status(), 200);
    let readyz = app.http.get(app.url("/readyz")).send().await.expect("GET");
    assert_eq!(readyz.status(), 503);
    let body: serde_json::Value = readyz.json().await.expect("JSON");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["store"]["ok"], true);
    assert_eq!(body["listener"]["ok"], true);
    assert_eq!(body["channels"]["email"]["ok"], true);
    assert_eq!(body["channels"]["email-down"]["ok"], false);
    let problems = body["problems"].as_array().expect("problems");
    assert_eq!(problems.len(), 1, "{body:#}");
    assert!(
        problems[0]
            .as_str()
            .expect("text")
            .starts_with("channel `email-down`: healthcheck failed"),
        "{body:#}"
    );
}

#[tokio::test]
async fn a_channel_removed_by_a_reload_still_sends_what_was_planned_for_it() {
    let smtp = SmtpServer::start().await;
    // The second relay is down when the crisis is declared.
    let backup_addr: std::net::SocketAddr =
        format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let backup_channel = format!(
        "[[channels.email]]\nname = \"email-backup\"\nfrom = \"Test Co. <backup@example.com>\"\n\
         transport = \"smtp\"\n[channels.email.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ntimeout = \"2s\"\n",
        backup_addr.port()
    );
    let mut config = TestConfig::new(smtp.port());
    config.max_attempts = 100;
    config.dispatch_extra =
        "breaker_cooldown = \"100ms\"\nbreaker_max_cooldown = \"200ms\"\n".into();
    config.extra = backup_channel.clone();
    let app = crate::support::spawn_app(config).await;
    let id = app.declare("Payments are down").await;
    smtp.wait_for(3, WAIT).await;

    // Reload without the backup channel while its three deliveries wait.
    let path = app.dir.path().join("crisisd.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    std::fs::write(&path, text.replace(&backup_channel, "")).expect("write");
    app.reloader
        .reload_file(&path)
        .await
        .expect("the reload applies");

    // The relay comes back: what was planned for the channel is sent.
    let backup = SmtpServer::start_on(backup_addr).await;
    backup.wait_for(3, WAIT).await;
    let detail = app
        .wait_until(&id, WAIT, |d| {
            d["deliveries"]["email-backup"]["sent"].as_u64() == Some(3)
        })
        .await;
    assert_eq!(
        detail["deliveries"]["email-backup"]["dead"]
            .as_u64()
            .unwrap_or(0),
        0
    );

    // The next announcement goes to the configured channels only.
    let sent_before = backup.accepted().len();
    app.declare("Second crisis").await;
    smtp.wait_for(6, WAIT).await;
    assert_eq!(backup.accepted().len(), sent_before);
}

#[tokio::test]
async fn a_reload_that_fails_validation_changes_nothing() {
    let smtp = SmtpServer::start().await;
    let app = crate::support::spawn_app(TestConfig::new(smtp.port())).await;
    let path = app.dir.path().join("crisisd.toml");
    let valid = std::fs::read_to_string(&path).expect("config");
    // Parses, but fails validation: no directory entry says how to reach support.
    let broken = valid
        .split("[[directory]]")
        .next()
        .expect("head")
        .to_owned();
    std::fs::write(&path, broken).expect("write");
    let refused = app.reloader.reload_file(&path).await;
    let message = refused.expect_err("refused").to_string();
    assert!(
        message.contains("directory: no contact entries"),
        "{message}"
    );

    app.declare("After a refused reload").await;
    let messages = smtp.wait_for(3, WAIT).await;
    // The old directory is still in every announcement.
    assert!(messages.iter().all(|m| m.text().contains("+1 555 0100")));
}

#[tokio::test]
async fn a_second_sigterm_during_the_drain_exits_at_once_with_code_1() {
    let smtp = SmtpServer::start().await;
    // Sends hang in the relay, so the drain has something to wait for.
    smtp.set_delay(Duration::from_secs(30));
    let mut config = TestConfig::new(smtp.port());
    // The lease (and the send timeout within it) outlasts the test.
    config.lease = "60s";
    let mut service = Service::start_with(config, None, |text| {
        text.replace("drain_timeout = \"2s\"", "drain_timeout = \"20s\"")
    })
    .await;
    service.until("READY=1").await;
    service.declare("Payments are down").await;
    let deadline = Instant::now() + WAIT;
    while smtp.attempts() == 0 {
        assert!(Instant::now() < deadline, "no send started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    service.signal("TERM");
    service.until("STOPPING=1").await;
    // Still draining: the sends are held for 30 s, the drain allows 20 s.
    assert!(service.child.try_wait().expect("wait").is_none());
    service.signal("TERM");
    let status = tokio::time::timeout(WAIT, service.child.wait())
        .await
        .expect("exits at once")
        .expect("wait");
    assert_eq!(status.code(), Some(1), "{}", service.log());
    assert!(service.log().contains("Second signal"));
}

/// Issue 13: a reload that changes `[metrics]` was silently not applied.
/// The token is applied at once (a rotated token must not keep the old
/// one valid); the listener and the refresh interval need a restart, and
/// the reload says so in its STATUS= answer and in the log.
#[tokio::test]
async fn a_reload_applies_the_metrics_token_and_says_a_new_metrics_listener_needs_a_restart() {
    let smtp = SmtpServer::start().await;
    let service = Service::start(TestConfig::new(smtp.port()), None).await;
    service.until("READY=1").await;
    assert_eq!(service.get("/metrics").await.status(), 200);
    let valid = std::fs::read_to_string(&service.config).expect("config");
    let token = service.dir.path().join("metrics.token");
    std::fs::write(&token, "metrics-secret-0123456789").expect("write token");
    let port = free_port();
    std::fs::write(
        &service.config,
        format!(
            "{valid}\n[metrics]\nlisten = \"127.0.0.1:{port}\"\nrefresh_interval = \"1s\"\ntoken_file = \"{}\"\n",
            token.display()
        ),
    )
    .expect("write");
    let reload = service.reload().await;
    let status = &reload.last().expect("READY=1").text;
    assert!(
        status.contains("[metrics] listen changed: needs a restart"),
        "{status}"
    );
    assert!(
        status.contains("[metrics] refresh_interval changed: needs a restart"),
        "{status}"
    );
    let log = service.log();
    assert!(
        log.contains("[metrics] listen changed: needs a restart"),
        "{log}"
    );

    // Still served where it was, now behind the new token; nothing on
    // the new port until a restart.
    assert_eq!(service.get("/metrics").await.status(), 401);
    let with_token = service
        .http
        .get(format!("{}/metrics", service.base))
        .bearer_auth("metrics-secret-0123456789")
        .send()
        .await
        .expect("GET");
    assert_eq!(with_token.status(), 200);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens on the new metrics port before a restart"
    );

    // The token rotated again: the new one is let in and the old one, which
    // a leaked copy may still hold, is refused from this reload on. The
    // listener change still waits for a restart, and the reload says so.
    std::fs::write(&token, "metrics-rotated-9876543210").expect("rotate token");
    let again = service.reload().await;
    let status = &again.last().expect("READY=1").text;
    assert!(
        status.contains("[metrics] listen changed: needs a restart"),
        "{status}"
    );
    let scrape = |bearer: &'static str| {
        service
            .http
            .get(format!("{}/metrics", service.base))
            .bearer_auth(bearer)
            .send()
    };
    assert_eq!(
        scrape("metrics-secret-0123456789")
            .await
            .expect("GET")
            .status(),
        401
    );
    assert_eq!(
        scrape("metrics-rotated-9876543210")
            .await
            .expect("GET")
            .status(),
        200
    );
    assert!(service.stop().await.success());
}
