//! `crisisd-bench`: starts the real `crisisd` daemon against sinks on
//! loopback, drives it over its HTTP API and measures the figures of the
//! fan-out benchmark (docs/benchmarks.md).
//!
//! Progress goes to stderr; the result table (or, with `--json`, one JSON
//! object) to stdout.

// Each scenario reads as one script (set up, measure, report) and the
// generated config as one text; splitting them would hide the order.
#![allow(clippy::too_many_lines)]

mod daemon;
mod http_sink;
mod load;
mod postfix;
// The tests' throwaway cluster (initdb into a temporary directory, a
// loopback port), which uses only the crate's own dependencies.
#[path = "../../../tests/integration/support/postgres.rs"]
#[allow(dead_code)]
mod postgres;
mod report;
mod robustness;
mod scenarios;
mod sink;
mod smtp_sink;
mod stores;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use serde_json::json;

use crate::daemon::{EMAIL_CONCURRENCY, SMS_CONCURRENCY, SMTP_POOL, SmtpTarget};
use crate::report::{Row, Verdict};

const ABOUT: &str = "Benchmark of the crisisd fan-out: starts the crisisd binary found next to \
this one against its own SMTP and HTTP sinks on loopback, declares crises over the API and \
prints a table of figures against their targets.";

const EXAMPLES: &str = "Examples:
  cargo build --release && target/release/crisisd-bench --scenario all
  target/release/crisisd-bench --scenario email --recipients 5000
  target/release/crisisd-bench --scenario latency --json
  target/release/crisisd-bench --scenario email --smtp 127.0.0.1:2525   # another SMTP server
  target/release/crisisd-bench --scenario smtp-source   # against Postfix's smtp-source (apt-get install postfix)
  target/release/crisisd-bench --scenario stores --nodes 2 --recipients 20000   # SQLite vs PostgreSQL, 1 and 2 daemons
  target/release/crisisd-bench --scenario million --store postgres";

#[derive(Debug, Parser)]
#[command(name = "crisisd-bench", version, about = ABOUT, after_help = EXAMPLES)]
struct Cli {
    /// Which scenario to run.
    #[arg(long, value_enum, default_value_t = Scenario::All)]
    scenario: Scenario,
    /// Audience size of the fan-out scenarios [default: 100000 for email,
    /// sms, banner and crash; 1000000 for million and metrics; 10000 for correction and
    /// flood]. The latency scenario
    /// always uses a few recipients.
    #[arg(long, value_name = "N")]
    recipients: Option<usize>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// The repository's templates directory.
    #[arg(long, value_name = "DIR", default_value = "templates")]
    templates: PathBuf,
    /// Send email to this SMTP server (no TLS) instead of the built-in
    /// sink; messages are then counted through the API.
    #[arg(long, value_name = "HOST:PORT")]
    smtp: Option<String>,
    /// Send SMS to this gateway URL (a JSON POST) instead of the built-in
    /// sink; any 2xx answer counts as accepted.
    #[arg(long, value_name = "URL")]
    sms_url: Option<String>,
    /// Keep each scenario's scratch directory (config, database, daemon log).
    #[arg(long)]
    keep: bool,
    /// The crisisd binary [default: `crisisd` next to this executable].
    #[arg(long, value_name = "PATH")]
    daemon: Option<PathBuf>,
    /// Longest wait for any one stage of a scenario, in seconds [default:
    /// 60 + 5 ms per recipient, i.e. the slowest engine still measured
    /// sends 200 deliveries/s].
    #[arg(long, value_name = "SECONDS")]
    deadline: Option<u64>,
    /// `[dispatch] nice` of the daemon (0-19): how far its fan-out yields
    /// the CPU to the API and banner [default: the daemon's, 10]. `0`
    /// shows what the banner loses without it.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=19))]
    nice: Option<u8>,
    /// The store of the email, sms and million scenarios: `postgres` starts
    /// a throwaway PostgreSQL cluster (initdb into a temporary directory,
    /// a loopback port) and gives each scenario a fresh database. The
    /// `stores` scenario always runs both.
    #[arg(long, value_enum, default_value_t = StoreKind::Sqlite)]
    store: StoreKind,
    /// Daemons sharing PostgreSQL in the `stores` scenario's largest setup
    /// (it also runs one daemon on each store).
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=8))]
    nodes: u8,
    /// Rounds of each setup in the `stores` scenario; medians are reported.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=20))]
    rounds: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Latency,
    Email,
    Sms,
    Million,
    Banner,
    Crash,
    Correction,
    Metrics,
    Flood,
    /// Postfix's smtp-source against crisisd into one Postfix smtp-sink
    /// (needs Postfix; not part of `all`).
    SmtpSource,
    /// The email fan-out rate on SQLite, on PostgreSQL with one daemon
    /// and with `--nodes` daemons, side by side (needs PostgreSQL's
    /// programs; not part of `all`).
    Stores,
    All,
}

impl Scenario {
    const EACH: [Scenario; 9] = [
        Scenario::Latency,
        Scenario::Email,
        Scenario::Sms,
        Scenario::Million,
        Scenario::Banner,
        Scenario::Crash,
        Scenario::Correction,
        Scenario::Metrics,
        Scenario::Flood,
    ];

    fn name(self) -> &'static str {
        match self {
            Scenario::Latency => "latency",
            Scenario::Email => "email",
            Scenario::Sms => "sms",
            Scenario::Million => "million",
            Scenario::Banner => "banner",
            Scenario::Crash => "crash",
            Scenario::Correction => "correction",
            Scenario::Metrics => "metrics",
            Scenario::Flood => "flood",
            Scenario::SmtpSource => "smtp-source",
            Scenario::Stores => "stores",
            Scenario::All => "all",
        }
    }
}

/// The run's PostgreSQL cluster; it stops when the bench exits.
pub struct Throwaway(postgres::Cluster);

impl std::fmt::Debug for Throwaway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgreSQL on 127.0.0.1:{}", self.0.port)
    }
}

impl std::ops::Deref for Throwaway {
    type Target = postgres::Cluster;
    fn deref(&self) -> &postgres::Cluster {
        &self.0
    }
}

/// What every scenario needs to know.
#[derive(Debug, Clone)]
pub struct Bench {
    pub binary: PathBuf,
    pub templates: PathBuf,
    pub smtp: Option<SmtpTarget>,
    pub sms_url: Option<String>,
    pub keep: bool,
    pub recipients: Option<usize>,
    pub deadline: Option<Duration>,
    pub nice: Option<u8>,
    /// The throwaway PostgreSQL cluster, when a scenario needs one.
    pub postgres: Option<std::sync::Arc<Throwaway>>,
    /// Whether the email, sms and million scenarios run on it.
    pub on_postgres: bool,
    pub nodes: usize,
    pub rounds: usize,
}

impl Bench {
    /// A fresh database on the run's cluster for one setup: its URL, or
    /// `None` to run on SQLite.
    pub async fn fresh_store(&self, wanted: bool) -> anyhow::Result<Option<String>> {
        let Some(cluster) = self.postgres.as_ref().filter(|_| wanted) else {
            return Ok(None);
        };
        use sqlx::{Connection, Executor};
        let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&cluster.url("postgres"))
            .await
            .context("connecting to the benchmark's PostgreSQL")?;
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .context("creating a database")?;
        Ok(Some(cluster.url(&name)))
    }

    /// How long any one stage may take with `recipients` recipients.
    pub fn deadline_for(&self, recipients: usize) -> Duration {
        self.deadline.unwrap_or_else(|| {
            Duration::from_secs(60) + Duration::from_millis(5 * recipients as u64)
        })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Ctrl-C drops the running scenario, and with it the daemon child
    // (kill_on_drop) and the scratch directory.
    tokio::select! {
        result = run(cli) => match result {
            Ok(code) => code,
            Err(err) => {
                eprintln!("crisisd-bench: {err:#}");
                ExitCode::from(2)
            }
        },
        _ = tokio::signal::ctrl_c() => {
            eprintln!("crisisd-bench: interrupted");
            ExitCode::from(130)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let bench = setup(&cli)?;
    let machine = machine();
    let header = header(&cli, &bench, &machine);
    for line in &header {
        eprintln!("{line}");
    }
    let scenarios: Vec<Scenario> = if cli.scenario == Scenario::All {
        Scenario::EACH.to_vec()
    } else {
        vec![cli.scenario]
    };
    let mut rows: Vec<Row> = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    for scenario in scenarios {
        let name = scenario.name();
        eprintln!("\n== {name}");
        let result = match scenario {
            Scenario::Latency => scenarios::latency(&bench).await,
            Scenario::Email => scenarios::email(&bench).await,
            Scenario::Sms => scenarios::sms(&bench).await,
            Scenario::Million => scenarios::million(&bench).await,
            Scenario::Banner => scenarios::banner(&bench).await,
            Scenario::Crash => scenarios::crash(&bench).await,
            Scenario::Correction => scenarios::correction(&bench).await,
            Scenario::Metrics => robustness::metrics(&bench).await,
            Scenario::Flood => robustness::flood(&bench).await,
            Scenario::SmtpSource => postfix::compare(&bench).await,
            Scenario::Stores => stores::compare(&bench).await,
            Scenario::All => unreachable!("expanded above"),
        };
        match result {
            Ok(mut scenario_rows) => {
                for row in &scenario_rows {
                    eprintln!("  {}: {} (target {})", row.figure, row.measured, row.target);
                }
                // A figure that could not be measured (a deadline passed)
                // fails the scenario, though its other figures stand.
                if scenario_rows.iter().any(|r| r.verdict == Verdict::Failed) {
                    failed.push(name.to_owned());
                }
                rows.append(&mut scenario_rows);
            }
            Err(err) => {
                eprintln!("  {name} failed: {err:#}");
                rows.push(Row::failed(name, "scenario", format!("{err:#}")));
                failed.push(name.to_owned());
            }
        }
    }
    if cli.json {
        let settings = json!({
            "command": command_line(),
            "daemon": bench.binary.display().to_string(),
            "email_concurrency": EMAIL_CONCURRENCY,
            "smtp_pool_size": SMTP_POOL,
            "sms_concurrency": SMS_CONCURRENCY,
            "smtp": bench.smtp.as_ref().map(|s| format!("{}:{}", s.host, s.port)),
            "sms_url": bench.sms_url,
            "dispatch_nice": bench.nice,
        });
        let out = report::json(machine.json, settings, &rows, &failed);
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", report::table(&header, &rows));
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn setup(cli: &Cli) -> anyhow::Result<Bench> {
    let binary = match &cli.daemon {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .context("finding this executable")?
            .with_file_name("crisisd"),
    };
    if !binary.is_file() {
        bail!(
            "no daemon binary at {} (build it with `cargo build --release`, or pass --daemon)",
            binary.display()
        );
    }
    // The daemon runs in its scratch directory (and maybe under taskset):
    // a relative path would not name it there.
    let binary = binary
        .canonicalize()
        .with_context(|| format!("resolving {}", binary.display()))?;
    let templates = cli.templates.canonicalize().with_context(|| {
        format!(
            "no templates directory at {} (run from the repository root or pass --templates)",
            cli.templates.display()
        )
    })?;
    if !templates.join("en").is_dir() {
        bail!(
            "{} has no `en` locale: not a crisisd templates directory",
            templates.display()
        );
    }
    let smtp = cli.smtp.as_deref().map(parse_smtp).transpose()?;
    if let Some(url) = &cli.sms_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        bail!("--sms-url must be an http(s) URL, not `{url}`");
    }
    let on_postgres = cli.store == StoreKind::Postgres;
    let postgres = if on_postgres || cli.scenario == Scenario::Stores {
        eprintln!("starting a throwaway PostgreSQL cluster");
        // The server's defaults otherwise (fsync and synchronous commit
        // on), as a production server would run.
        let cluster = postgres::Cluster::start(&[("max_connections", "200")])
            .map_err(|why| anyhow::anyhow!("PostgreSQL did not start: {why}"))?;
        Some(std::sync::Arc::new(Throwaway(cluster)))
    } else {
        None
    };
    Ok(Bench {
        binary,
        templates,
        smtp,
        sms_url: cli.sms_url.clone(),
        keep: cli.keep,
        recipients: cli.recipients,
        deadline: cli.deadline.map(Duration::from_secs),
        nice: cli.nice,
        postgres,
        on_postgres,
        nodes: usize::from(cli.nodes),
        rounds: usize::from(cli.rounds),
    })
}

fn parse_smtp(text: &str) -> anyhow::Result<SmtpTarget> {
    let (host, port) = text
        .rsplit_once(':')
        .with_context(|| format!("--smtp wants HOST:PORT, not `{text}`"))?;
    let port = port
        .parse()
        .with_context(|| format!("--smtp: bad port in `{text}`"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        bail!("--smtp wants HOST:PORT, not `{text}`");
    }
    Ok(SmtpTarget {
        host: host.to_owned(),
        port,
    })
}

struct Machine {
    summary: String,
    json: serde_json::Value,
}

fn machine() -> Machine {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map(|kib| kib * 1024);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("model name"))?;
            Some(line.split_once(':')?.1.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let memory_text = memory.map_or_else(
        || "unknown memory".to_owned(),
        |b| format!("{:.1} GiB memory", b as f64 / (1u64 << 30) as f64),
    );
    Machine {
        summary: format!("{cpus} CPUs (nproc), {memory_text}, {model}"),
        json: json!({ "nproc": cpus, "memory_bytes": memory, "cpu": model }),
    }
}

fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

fn header(cli: &Cli, bench: &Bench, machine: &Machine) -> Vec<String> {
    let email = match &bench.smtp {
        Some(s) => format!("SMTP server {}:{} (counted via the API)", s.host, s.port),
        None => "built-in SMTP sink on loopback".to_owned(),
    };
    let sms = match &bench.sms_url {
        Some(url) => format!("gateway {url} (counted via the API)"),
        None => "built-in HTTP gateway sink on loopback".to_owned(),
    };
    vec![
        format!(
            "crisisd-bench {} — {}",
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
            cli.scenario.name()
        ),
        format!("machine: {}", machine.summary),
        format!("command: {}", command_line()),
        format!("daemon: {}", bench.binary.display()),
        format!(
            "email channel: concurrency {EMAIL_CONCURRENCY} (the in-flight limit), SMTP pool {SMTP_POOL}, to the {email}"
        ),
        format!("sms_gateway channel: concurrency {SMS_CONCURRENCY}, to the {sms}"),
        match bench.nice {
            Some(nice) => format!("fan-out niceness: {nice} (--nice)"),
            None => "fan-out niceness: the daemon's default".to_owned(),
        },
        match (&bench.postgres, bench.on_postgres) {
            (Some(cluster), true) => format!(
                "store: PostgreSQL (throwaway cluster on 127.0.0.1:{}, a fresh database per scenario)",
                cluster.port
            ),
            (Some(cluster), false) => format!(
                "store: SQLite; the stores scenario also uses a throwaway PostgreSQL on 127.0.0.1:{}",
                cluster.port
            ),
            (None, _) => "store: SQLite (a file in each scenario's scratch directory)".to_owned(),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_smtp_targets() {
        let t = parse_smtp("127.0.0.1:2525").expect("parses");
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 2525));
        let t = parse_smtp("[::1]:25").expect("parses");
        assert_eq!((t.host.as_str(), t.port), ("::1", 25));
        assert!(parse_smtp("localhost").is_err());
    }

    #[test]
    fn the_cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
