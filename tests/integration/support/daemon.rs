//! The daemon as a separate process (which a test may `kill -9`), on a
//! config in a directory of its own.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::{TOKEN, TestConfig, WAIT, declaration, free_port};

const BIN: &str = env!("CARGO_BIN_EXE_crisisd");

/// The daemon as a separate process, on a config in its own directory.
pub struct Daemon {
    _dir: tempfile::TempDir,
    config: PathBuf,
    pub base: String,
    pub http: reqwest::Client,
}

impl Daemon {
    /// A daemon on `config`, listening on a port of its own.
    pub fn new(mut config: TestConfig) -> Self {
        let port = free_port();
        let dir = tempfile::tempdir().expect("temp dir");
        config.listen = Box::leak(format!("127.0.0.1:{port}").into_boxed_str());
        let path = dir.path().join("crisisd.toml");
        std::fs::write(&path, config.write(dir.path())).expect("write config");
        Self {
            _dir: dir,
            config: path,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                // A declaration to a large audience answers once its first
                // batches are written, which takes a while on a loaded machine.
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
        }
    }

    /// The daemon's own directory: its config, audience and, on SQLite,
    /// its store (`crisisd.db`).
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// Where the process's warnings go, appended across restarts.
    fn log_file(&self) -> Stdio {
        let path = self._dir.path().join("crisisd.log");
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_or_else(|_| Stdio::null(), Stdio::from)
    }

    /// What the process logged (warnings and errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("crisisd.log")).unwrap_or_default()
    }

    /// Starts the process and waits until it answers /healthz.
    pub async fn start(&self) -> Child {
        self.start_under(&[]).await
    }

    /// Starts the process under `wrapper` (a command that runs the rest of
    /// its arguments, e.g. `prlimit --nofile=256`), like `start`.
    pub async fn start_under(&self, wrapper: &[&str]) -> Child {
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(BIN);
                command
            }
            None => Command::new(BIN),
        };
        let child = command
            .args(["serve", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(self.log_file())
            .kill_on_drop(true)
            .spawn()
            .expect("start crisisd");
        let deadline = tokio::time::Instant::now() + WAIT;
        while self
            .http
            .get(format!("{}/healthz", self.base))
            .send()
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the daemon did not come up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        child
    }

    /// Declares a crisis and returns its id. On a very busy machine the
    /// daemon may answer 408 after 30 s while it goes on planning the
    /// fan-out; the same request with the same Idempotency-Key then answers
    /// 409 until the plan is written, and the stored answer after that.
    pub async fn declare(&self) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos();
        let key = format!("declare-{nanos}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
        loop {
            let answer = self
                .http
                .post(format!("{}/v1/crises", self.base))
                .bearer_auth(TOKEN)
                .header("Idempotency-Key", &key)
                .json(&declaration("Payments are down"))
                .send()
                .await
                .expect("declare");
            let still_planning = answer.status() == 408
                || (answer.status() == 409 && answer.headers().contains_key("retry-after"));
            if !still_planning {
                assert_eq!(answer.status(), 201);
                let body: serde_json::Value = answer.json().await.expect("JSON");
                return body["crisis"]["id"].as_str().expect("id").to_owned();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "still planning after 3 minutes"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Posts an update or the all-clear (`action`: `updates`, `resolve`).
    pub async fn post(&self, id: &str, action: &str, message: &str) {
        let response = self
            .http
            .post(format!("{}/v1/crises/{id}/{action}", self.base))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({ "message": message }))
            .send()
            .await
            .expect(action);
        assert_eq!(response.status(), 200, "{action}");
    }

    /// The crisis's detail, as `GET /v1/crises/{id}` answers.
    pub async fn crisis(&self, id: &str) -> serde_json::Value {
        self.http
            .get(format!("{}/v1/crises/{id}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON")
    }

    /// The crisis's email deliveries by state, once all `planned` are
    /// written and none is left to send.
    pub async fn settled(&self, id: &str, planned: u64, within: Duration) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let detail = self.crisis(id).await;
            let email = &detail["deliveries"]["email"];
            let unfinished: u64 = ["pending", "in_flight", "retrying"]
                .iter()
                .map(|state| email[state].as_u64().unwrap_or(0))
                .sum();
            let finished: u64 = ["sent", "dead"]
                .iter()
                .map(|state| email[state].as_u64().unwrap_or(0))
                .sum();
            if unfinished == 0 && finished == planned {
                return email.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "still unfinished after {within:?}: {detail:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A failing test shows what its daemons logged.
impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("daemon {} logged:\n{}", self.base, self.log());
        }
    }
}
