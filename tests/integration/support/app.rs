//! `spawn_app()`: the daemon built from a real config in a temporary
//! directory, bound to port 0, its email going to a test SMTP server.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crisisd::app::Application;
use crisisd::clock::{Clock, ManualClock};
use crisisd::config::Settings;
use crisisd::lifecycle::Reloader;
use serde_json::Value;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const TOKEN: &str = "test-token-0123456789";

/// What the daemon under test believes is its public address.
pub const PUBLIC_URL: &str = "https://crisis.example.com";

/// The sample audience: one reader per shipped language.
pub const AUDIENCE: &str = "id,name,email,phone,locale,timezone\n\
    ada,Ada Lovelace,ada@example.com,+14155550101,en,America/New_York\n\
    rahim,রহিম আহমেদ,rahim@example.org,+8801712345678,bn,Asia/Dhaka\n\
    ludoviko,Ludoviko Zamenhof,ludoviko@example.net,,eo,Europe/Warsaw\n";

pub fn templates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("templates")
}

/// What a test may change in the generated config.
#[derive(Debug, Clone)]
pub struct TestConfig {
    pub smtp_port: u16,
    pub audience: String,
    /// The drill audience's rows (`[audience] drill_file`), if any.
    pub drill_audience: Option<String>,
    pub concurrency: usize,
    pub lease: &'static str,
    pub retry_base: &'static str,
    pub retry_max: &'static str,
    /// The SMTP client's timeout for each step of a send; at most half the
    /// lease (check-config refuses more).
    pub smtp_timeout: &'static str,
    pub max_attempts: u32,
    pub flag_file: bool,
    /// The flag file's `settle`.
    pub flag_settle: &'static str,
    pub listen: &'static str,
    pub max_body_bytes: usize,
    /// SMTP username; the password is written to a file the config names.
    pub smtp_auth: Option<(&'static str, &'static str)>,
    /// Origins allowed to fetch the banner.
    pub cors_origins: Vec<String>,
    /// `none`, `starttls` or `tls`.
    pub smtp_tls: &'static str,
    /// PEM of a CA to trust, written to a file the config names.
    pub smtp_ca: Option<String>,
    /// More TOML appended to the config: extra channels and such.
    pub extra: String,
    /// More keys for the `[server]` section.
    pub server_extra: String,
    /// More keys for the `[dispatch]` section.
    pub dispatch_extra: String,
    /// More keys for the email channel (`rate_per_second = 10`).
    pub email_extra: String,
    /// The daemon's clock; the system clock when unset.
    pub clock: Option<Arc<ManualClock>>,
    /// The email channel's sender (a daemon of several tells its messages
    /// apart by it).
    pub email_from: &'static str,
    /// A PostgreSQL URL for `[store]`; a SQLite file in the directory when
    /// unset.
    pub store_url: Option<String>,
}

impl TestConfig {
    pub fn new(smtp_port: u16) -> Self {
        Self {
            smtp_port,
            audience: AUDIENCE.to_owned(),
            drill_audience: None,
            concurrency: 4,
            lease: "30s",
            retry_base: "100ms",
            retry_max: "1s",
            smtp_timeout: "5s",
            max_attempts: 5,
            flag_file: false,
            flag_settle: "300ms",
            listen: "127.0.0.1:0",
            max_body_bytes: 65536,
            smtp_auth: None,
            cors_origins: vec!["https://www.example.com".to_owned()],
            smtp_tls: "none",
            smtp_ca: None,
            extra: String::new(),
            server_extra: String::new(),
            dispatch_extra: String::new(),
            email_extra: String::new(),
            clock: None,
            email_from: "Test Co. Support <support@example.com>",
            store_url: None,
        }
    }

    /// Writes the audience and token files and returns the config text.
    pub fn write(&self, dir: &Path) -> String {
        std::fs::write(dir.join("audience.csv"), &self.audience).expect("write audience");
        let drill_file = match &self.drill_audience {
            Some(rows) => {
                let path = dir.join("drill.csv");
                std::fs::write(&path, rows).expect("write the drill audience");
                format!("drill_file = \"{}\"\n", path.display())
            }
            None => String::new(),
        };
        std::fs::write(dir.join("token"), TOKEN).expect("write token");
        let auth = match self.smtp_auth {
            Some((username, password)) => {
                let file = dir.join("smtp-password");
                std::fs::write(&file, format!("{password}\n")).expect("write password");
                format!(
                    "username = \"{username}\"\npassword_file = \"{}\"\n",
                    file.display()
                )
            }
            None => String::new(),
        };
        let ca = match &self.smtp_ca {
            Some(pem) => {
                let file = dir.join("smtp-ca.pem");
                std::fs::write(&file, pem).expect("write CA");
                format!("ca_file = \"{}\"\n", file.display())
            }
            None => String::new(),
        };
        let flag = if self.flag_file {
            format!(
                "[flag_file]\npath = \"{}\"\npoll_interval = \"100ms\"\nsettle = \"{}\"\n",
                dir.join("crisis.flag.toml").display(),
                self.flag_settle
            )
        } else {
            String::new()
        };
        format!(
            r#"
[company]
name = "Test Co."
status_url = "https://status.example.com"

[server]
listen = "{listen}"
max_body_bytes = {max_body}
public_url = "{public_url}"
{server_extra}

[store]
{store}

[[api.tokens]]
name = "tests"
token_file = "{token}"

[templates]
dir = "{templates}"

[audience]
file = "{audience}"
{drill_file}
[[channels.email]]
name = "email"
from = "{email_from}"
transport = "smtp"
concurrency = {concurrency}
{email_extra}
[channels.email.smtp]
host = "localhost"
port = {smtp_port}
tls = "{tls}"
timeout = "{smtp_timeout}"
{auth}{ca}
[dispatch]
lease = "{lease}"
max_attempts = {max_attempts}
retry_base = "{retry_base}"
retry_max = "{retry_max}"
poll_interval = "50ms"
drain_timeout = "2s"
{dispatch_extra}

[consent]
signing_key_file = "{consent_key}"
generate_if_missing = true

[banner]
cors_origins = {cors}
max_age = "15s"

{flag}
[[directory]]
id = "emergency-line"
type = "phone"
address = "+1 555 0100"
emergency = true
label = {{ en = "Emergency line", bn = "জরুরি লাইন", eo = "Kriza linio" }}
best_for = {{ en = "Emergencies", bn = "জরুরি অবস্থা", eo = "Krizoj" }}
hours = {{ time_zone = "America/New_York", always_open = true }}

[[directory]]
id = "chat"
type = "chat"
address = "https://example.com/chat"
label = {{ en = "Live chat", bn = "লাইভ চ্যাট", eo = "Tujbabilo" }}
best_for = {{ en = "Technical problems", bn = "প্রযুক্তিগত সমস্যা", eo = "Teknikaj problemoj" }}
hours = {{ time_zone = "America/New_York", weekly = [{{ days = "mon-fri", open = "08:00", close = "20:00" }}] }}

{extra}
"#,
            listen = self.listen,
            max_body = self.max_body_bytes,
            store = match &self.store_url {
                Some(url) => format!("url = \"{url}\""),
                None => format!("sqlite_path = \"{}\"", dir.join("crisisd.db").display()),
            },
            token = dir.join("token").display(),
            templates = templates_dir().display(),
            audience = dir.join("audience.csv").display(),
            concurrency = self.concurrency,
            smtp_port = self.smtp_port,
            lease = self.lease,
            email_from = self.email_from,
            max_attempts = self.max_attempts,
            retry_base = self.retry_base,
            retry_max = self.retry_max,
            smtp_timeout = self.smtp_timeout,
            cors = serde_json::to_string(&self.cors_origins).expect("origins"),
            tls = self.smtp_tls,
            public_url = PUBLIC_URL,
            consent_key = dir.join("consent.key").display(),
            extra = self.extra,
            dispatch_extra = self.dispatch_extra,
            server_extra = self.server_extra,
            email_extra = self.email_extra,
        )
    }
}

pub struct TestApp {
    pub base: String,
    pub dir: TempDir,
    pub http: reqwest::Client,
    /// Reloads the daemon from `dir/crisisd.toml`, as SIGHUP does.
    pub reloader: Reloader,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn spawn_app(config: TestConfig) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    spawn_app_in(config, dir).await
}

/// Starts the daemon on an existing directory (to restart on the same
/// store).
pub async fn spawn_app_in(config: TestConfig, dir: TempDir) -> TestApp {
    let text = config.write(dir.path());
    let path = dir.path().join("crisisd.toml");
    std::fs::write(&path, &text).expect("write config");
    let settings = Settings::parse(&path, &text).expect("the test config parses");
    let clock: Arc<dyn Clock> = match &config.clock {
        Some(clock) => clock.clone(),
        None => Arc::new(crisisd::clock::SystemClock),
    };
    let app = Application::build_with_clock(settings, clock)
        .await
        .expect("the application builds");
    let addr = app.local_addr();
    let reloader = app.reloader();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            app.run_until_stopped(shutdown)
                .await
                .expect("the daemon runs");
        }
    });
    TestApp {
        base: format!("http://{addr}"),
        dir,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client"),
        reloader,
        shutdown,
        task: Some(task),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("GET");
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.json().await.expect("JSON")
    }

    /// Declares a crisis and returns its id.
    pub async fn declare(&self, title: &str) -> String {
        let response = self.post("/v1/crises", &declaration(title)).await;
        assert_eq!(response.status(), 201, "declare");
        let body: Value = response.json().await.expect("JSON");
        body["crisis"]["id"].as_str().expect("id").to_owned()
    }

    /// `/readyz`: its status and body.
    pub async fn readyz(&self) -> (u16, Value) {
        let response = self
            .http
            .get(self.url("/readyz"))
            .send()
            .await
            .expect("GET /readyz");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON"))
    }

    pub async fn banner(&self, lang: &str) -> Value {
        self.http
            .get(self.url(&format!("/v1/banner?lang={lang}")))
            .send()
            .await
            .expect("GET banner")
            .json()
            .await
            .expect("JSON")
    }

    /// Polls until `check` holds for the crisis detail; panics after `timeout`.
    pub async fn wait_until(
        &self,
        id: &str,
        timeout: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let detail = self.get_json(&format!("/v1/crises/{id}")).await;
            if check(&detail) {
                return detail;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("condition not met within {timeout:?}; last detail: {detail:#}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the daemon gracefully and hands back its directory.
    pub async fn stop(mut self) -> TempDir {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("the daemon stopped cleanly");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.dir, dir)
    }
}

pub fn declaration(title: &str) -> Value {
    serde_json::json!({
        "kind": "outage",
        "severity": "major",
        "title": title,
        "summary": "Card payments fail; we are working on it.",
    })
}
