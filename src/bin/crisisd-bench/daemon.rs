//! The daemon under test: a generated config in a scratch directory, the
//! real `crisisd` binary started as a child process, and the few API calls
//! the scenarios make.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::Bench;

/// Sends of the email channel at once: the in-flight limit. High enough
/// that loopback round trips do not bound throughput.
pub const EMAIL_CONCURRENCY: usize = 64;
/// Pooled SMTP connections: one per concurrent send, so no send waits for
/// a connection.
pub const SMTP_POOL: usize = 64;
/// Sends of the SMS gateway channel at once.
pub const SMS_CONCURRENCY: usize = 64;

const TOKEN: &str = "crisisd-bench-token-0123456789abcdef";

/// Name of the email and SMS channels in the generated config (and in the
/// API's per-channel counts).
pub const EMAIL_CHANNEL: &str = "email";
pub const SMS_CHANNEL: &str = "sms";

/// Time zones the generated audience cycles through.
const TIME_ZONES: [&str; 6] = [
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Asia/Dhaka",
    "Asia/Tokyo",
    "Australia/Sydney",
];
/// Languages the shipped templates have.
const LOCALES: [&str; 3] = ["en", "bn", "eo"];

/// Where email goes.
#[derive(Debug, Clone)]
pub struct SmtpTarget {
    pub host: String,
    pub port: u16,
}

/// Where SMS go, and whether the answer is our sink's (whose body the
/// channel checks) or an unknown server's (any 2xx is success).
#[derive(Debug, Clone)]
pub struct SmsTarget {
    pub url: String,
    pub own_sink: bool,
}

/// What to configure.
#[derive(Debug, Clone)]
pub struct Spec {
    pub email: Option<SmtpTarget>,
    pub sms: Option<SmsTarget>,
    pub recipients: usize,
    /// `[dispatch] lease`; short where a crash is recovered.
    pub lease: &'static str,
}

/// Delivery counts of one crisis, summed over its channels.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub pending: u64,
    pub in_flight: u64,
    pub retrying: u64,
    pub sent: u64,
    pub dead: u64,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.pending + self.in_flight + self.retrying + self.sent + self.dead
    }

    pub fn remaining(&self) -> u64 {
        self.pending + self.in_flight + self.retrying
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pending {}, in flight {}, retrying {}, sent {}, dead {}",
            self.pending, self.in_flight, self.retrying, self.sent, self.dead
        )
    }
}

/// A scratch directory, removed on drop unless it is to be kept.
struct Workspace {
    path: PathBuf,
    keep: bool,
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("  kept {}", self.path.display());
        } else {
            // Best effort: a leftover scratch directory harms nothing.
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

pub struct Daemon {
    // Declared before `workspace` so the child is killed (kill_on_drop)
    // before its directory is removed.
    child: Option<Child>,
    pid: Option<u32>,
    binary: PathBuf,
    config: PathBuf,
    log: PathBuf,
    base: String,
    http: reqwest::Client,
    recipients: usize,
    /// CPUs the daemon is confined to (`taskset -c`), when set.
    cpus: Option<String>,
    workspace: Workspace,
}

impl Daemon {
    /// Writes the config, token and audience for `spec` into a fresh
    /// scratch directory. Nothing is started yet.
    pub fn prepare(label: &str, bench: &Bench, spec: &Spec) -> anyhow::Result<Self> {
        Self::prepare_on(label, bench, spec, None)
    }

    /// Like `prepare`, on the PostgreSQL database at `store_url` when
    /// given (else a SQLite file in the scratch directory).
    pub fn prepare_on(
        label: &str,
        bench: &Bench,
        spec: &Spec,
        store_url: Option<&str>,
    ) -> anyhow::Result<Self> {
        let (binary, templates, keep) = (&bench.binary, &bench.templates, bench.keep);
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let path = std::env::temp_dir().join(format!(
            "crisisd-bench-{label}-{}-{stamp}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        let workspace = Workspace { path, keep };
        let dir = workspace.path.clone();
        let port = free_port()?;
        std::fs::write(dir.join("token"), TOKEN).context("writing the token file")?;
        write_audience(&dir.join("audience.csv"), spec.recipients)?;
        let config = dir.join("crisisd.toml");
        std::fs::write(
            &config,
            config_text(&dir, templates, port, spec, (bench.nice, store_url)),
        )
        .context("writing the config")?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(4)
            .build()
            .context("building the API client")?;
        Ok(Self {
            child: None,
            pid: None,
            binary: binary.to_owned(),
            config,
            log: dir.join("daemon.log"),
            base: format!("http://127.0.0.1:{port}"),
            http,
            recipients: spec.recipients,
            cpus: None,
            workspace,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The scratch directory (config, database, log).
    pub fn dir(&self) -> &Path {
        &self.workspace.path
    }

    /// Adds `text` to the generated config (read by the daemon at start).
    pub fn append_config(&self, text: &str) -> anyhow::Result<()> {
        let mut file = File::options()
            .append(true)
            .open(&self.config)
            .with_context(|| format!("opening {}", self.config.display()))?;
        file.write_all(text.as_bytes())
            .context("appending to the config")?;
        Ok(())
    }

    /// Confines the daemon started next to `cpus` (a `taskset -c` list),
    /// so a load generator can have a core of its own.
    pub fn pin(&mut self, cpus: &str) {
        self.cpus = Some(cpus.to_owned());
    }

    /// Replaces the audience (read by the daemon at start).
    pub fn rewrite_audience(&mut self, recipients: usize) -> anyhow::Result<()> {
        write_audience(&self.workspace.path.join("audience.csv"), recipients)?;
        self.recipients = recipients;
        Ok(())
    }

    /// Starts the daemon and waits until it answers `/healthz`.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("the daemon is already running");
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        // taskset execs the daemon, so the child's pid is the daemon's.
        let mut command = match &self.cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpus).arg(&self.binary);
                c
            }
            None => Command::new(&self.binary),
        };
        let child = command
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .current_dir(&self.workspace.path)
            .env("RUST_LOG", "warn")
            .env_remove("CRISISD_CONFIG")
            .env_remove("CRISISD_TOKEN")
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("duplicating the log handle")?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        self.pid = child.id();
        self.child = Some(child);
        // Start-up reads and validates the whole audience file.
        let deadline = Duration::from_secs(60) + Duration::from_micros(50 * self.recipients as u64);
        let started = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                bail!(
                    "the daemon exited at start-up ({status}); its log ends with:\n{}",
                    self.log_tail()
                );
            }
            let healthy = self
                .http
                .get(format!("{}/healthz", self.base))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if healthy {
                return Ok(());
            }
            if started.elapsed() > deadline {
                bail!(
                    "the daemon did not answer /healthz within {deadline:?}; its log ends with:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL, then reap.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await.context("killing the daemon")?;
        }
        self.pid = None;
        Ok(())
    }

    /// Declares a crisis and returns its id. `timeout` bounds the request:
    /// an engine that plans inside the request answers only when planned.
    pub async fn declare(&self, title: &str, timeout: Duration) -> anyhow::Result<String> {
        let response = self
            .http
            .post(format!("{}/v1/crises", self.base))
            .bearer_auth(TOKEN)
            .timeout(timeout)
            .json(&json!({
                "kind": "outage",
                "severity": "major",
                "title": title,
                "summary": "Card payments fail; we are working on it.",
            }))
            .send()
            .await
            .context("POST /v1/crises")?;
        let status = response.status();
        let text = response.text().await.context("the declare answer")?;
        let body: Value = serde_json::from_str(&text)
            .with_context(|| format!("the declare answer ({status}): `{text}`"))?;
        if status.as_u16() != 201 {
            bail!("POST /v1/crises answered {status}: {body}");
        }
        body.pointer("/crisis/id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .with_context(|| format!("no crisis.id in the declare answer: {body}"))
    }

    pub async fn resolve(&self, id: &str) -> anyhow::Result<()> {
        let response = self
            .http
            .post(format!("{}/v1/crises/{id}/resolve", self.base))
            .bearer_auth(TOKEN)
            .json(&json!({ "message": "Payments work again." }))
            .send()
            .await
            .context("POST /v1/crises/{id}/resolve")?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            bail!("resolve answered {status}: {body}");
        }
        Ok(())
    }

    /// `POST /v1/crises/{id}/correction`: the prepared correction of the
    /// newest announcement that reached anyone.
    pub async fn correct(&self, id: &str) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{}/v1/crises/{id}/correction", self.base))
            .bearer_auth(TOKEN)
            .json(&json!({}))
            .send()
            .await
            .context("POST /v1/crises/{id}/correction")?;
        let status = response.status();
        let body: Value = response.json().await.context("the correction answer")?;
        if !status.is_success() {
            bail!("correction answered {status}: {body}");
        }
        Ok(body)
    }

    /// `GET /v1/crises/{id}`.
    pub async fn detail(&self, id: &str) -> anyhow::Result<Value> {
        let response = self
            .http
            .get(format!("{}/v1/crises/{id}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .context("GET /v1/crises/{id}")?;
        let status = response.status();
        let body: Value = response.json().await.context("the crisis detail")?;
        if !status.is_success() {
            bail!("GET /v1/crises/{id} answered {status}: {body}");
        }
        Ok(body)
    }

    /// The crisis's delivery counts, summed over its channels.
    pub async fn counts(&self, id: &str) -> anyhow::Result<Counts> {
        Ok(counts_of(&self.detail(id).await?))
    }

    /// The counts plus up to three dead reasons, for error messages.
    pub async fn explain(&self, id: &str) -> String {
        match self.detail(id).await {
            Ok(detail) => {
                let mut text = format!("daemon counts: {}", counts_of(&detail));
                let reasons: Vec<&str> = detail["dead"]
                    .as_array()
                    .map(|dead| {
                        dead.iter()
                            .take(3)
                            .filter_map(|d| d["reason"].as_str())
                            .collect()
                    })
                    .unwrap_or_default();
                if !reasons.is_empty() {
                    let _ = write!(text, "; dead because: {}", reasons.join(" | "));
                }
                text
            }
            Err(err) => format!("daemon counts unavailable: {err:#}"),
        }
    }

    /// The last lines of the daemon's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        if tail.is_empty() {
            "(empty)".to_owned()
        } else {
            tail
        }
    }
}

fn counts_of(detail: &Value) -> Counts {
    let mut counts = Counts::default();
    if let Some(channels) = detail["deliveries"].as_object() {
        for c in channels.values() {
            let n = |key: &str| c[key].as_u64().unwrap_or(0);
            counts.pending += n("pending");
            counts.in_flight += n("in_flight");
            counts.retrying += n("retrying");
            counts.sent += n("sent");
            counts.dead += n("dead");
        }
    }
    counts
}

/// A port nobody listens on now. The daemon binds it a moment later; on a
/// quiet loopback nothing else takes it in between.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// `r{i},Reader {i},r{i}@example.com,+1555{i:07},{locale},{zone}`.
fn write_audience(path: &Path, recipients: usize) -> anyhow::Result<()> {
    if recipients > 10_000_000 {
        bail!("at most 10,000,000 recipients (the generated phone numbers have 7 free digits)");
    }
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    writeln!(out, "id,name,email,phone,locale,timezone")?;
    for i in 0..recipients {
        writeln!(
            out,
            "r{i},Reader {i},r{i}@example.com,+1555{i:07},{},{}",
            LOCALES[i % LOCALES.len()],
            TIME_ZONES[i % TIME_ZONES.len()],
        )?;
    }
    out.flush()?;
    Ok(())
}

/// A TOML basic string: JSON's escapes are a subset of TOML's.
fn toml_str(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

fn config_text(
    dir: &Path,
    templates: &Path,
    port: u16,
    spec: &Spec,
    (nice, store_url): (Option<u8>, Option<&str>),
) -> String {
    let path = |name: &str| toml_str(&dir.join(name).display().to_string());
    let store = match store_url {
        Some(url) => format!("url = {}", toml_str(url)),
        None => format!("sqlite_path = {}", path("crisisd.db")),
    };
    let mut channels = String::new();
    if let Some(smtp) = &spec.email {
        let _ = write!(
            channels,
            r#"
[[channels.email]]
name = "{EMAIL_CHANNEL}"
from = "Bench Co. Support <support@example.com>"
transport = "smtp"
concurrency = {EMAIL_CONCURRENCY}

[channels.email.smtp]
host = {host}
port = {port}
tls = "none"
timeout = "10s"
pool_size = {SMTP_POOL}
"#,
            host = toml_str(&smtp.host),
            port = smtp.port,
        );
    }
    if let Some(sms) = &spec.sms {
        // Our sink's answer is checked like a real gateway's; an unknown
        // server is only held to a 2xx.
        let success = if sms.own_sink {
            r#"success = { status = [200], json_pointer = "/status", equals = "queued" }"#
        } else {
            ""
        };
        let _ = write!(
            channels,
            r#"
[[channels.sms_gateway]]
name = "{SMS_CHANNEL}"
method = "POST"
url = {url}
headers = {{ "Content-Type" = "application/json" }}
body = '''
{{"to": {{{{ to_digits|tojson }}}}, "text": {{{{ text|tojson }}}}, "encoding": {{{{ encoding|tojson }}}}, "parts": {{{{ segments }}}}, "reference": {{{{ id|tojson }}}}}}
'''
{success}
max_segments = 3
concurrency = {SMS_CONCURRENCY}
timeout = "10s"
"#,
            url = toml_str(&sms.url),
        );
    }
    format!(
        r#"# Generated by crisisd-bench.
[company]
name = "Bench Co."
status_url = "https://status.example.com"

[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"

[store]
{store}

[[api.tokens]]
name = "bench"
token_file = {token}

[locales]
default = "en"

[templates]
dir = {templates}

[audience]
file = {audience}
{channels}
[dispatch]
lease = "{lease}"
max_attempts = 8
retry_base = "500ms"
retry_max = "5s"
poll_interval = "100ms"
drain_timeout = "5s"
{nice}
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
"#,
        token = path("token"),
        templates = toml_str(&templates.display().to_string()),
        audience = path("audience.csv"),
        lease = spec.lease,
        nice = nice.map(|n| format!("nice = {n}\n")).unwrap_or_default(),
    )
}

/// Resident memory of a process, from `/proc/<pid>/status`, in bytes.
pub fn memory_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())?;
    Some(kib * 1024)
}

/// CPU time (user + system) a process has used so far, from
/// `/proc/<pid>/stat`. `pid` None is this process.
pub fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may hold spaces) start with
    // the state, field 3; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    // Linux reports clock ticks of USER_HZ, which is 100 on every
    // architecture it runs on today.
    Some(Duration::from_millis((user + system) * 10))
}
