//! The scenarios of issue 13 (hard to break): what an unauthenticated
//! `/metrics` scrape costs with a million deliveries stored, and whether
//! a flood of refused webhooks slows a fan-out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::Bench;
use crate::daemon::{Daemon, Spec};
use crate::load::{self, Connection, LoadResult};
use crate::report::{Row, grouped};
use crate::scenarios::{
    BANNER_CONNECTIONS, BANNER_WINDOW, CpuMeter, LEASE, Progress, email_target, millis, secs,
    wait_api, wait_sink,
};

/// Scrapes timed one after the other on an otherwise idle daemon.
const SCRAPES: usize = 200;
/// The scrape rate of issue 13's finding 9 (it cut the banner by 77%).
const SCRAPES_PER_SECOND: u32 = 22;
/// Declarations that together store the metrics scenario's deliveries.
const SEED_DECLARATIONS: usize = 4;
/// Fan-outs of each kind (quiet, flooded) in the flood scenario.
const FLOOD_RUNS: usize = 5;
/// Connections of the webhook flood.
const FLOOD_CONNECTIONS: usize = 16;

fn address(daemon: &Daemon) -> anyhow::Result<SocketAddr> {
    daemon
        .base()
        .trim_start_matches("http://")
        .parse()
        .context("the daemon's address")
}

/// Sorted samples: the median and the nearest-rank percentile `p`.
struct Spread {
    sorted: Vec<Duration>,
}

impl Spread {
    fn new(mut samples: Vec<Duration>) -> anyhow::Result<Self> {
        if samples.is_empty() {
            bail!("no samples");
        }
        samples.sort();
        Ok(Self { sorted: samples })
    }

    fn median(&self) -> Duration {
        let n = self.sorted.len();
        if n % 2 == 1 {
            self.sorted[n / 2]
        } else {
            (self.sorted[n / 2 - 1] + self.sorted[n / 2]) / 2
        }
    }

    fn percentile(&self, p: usize) -> Duration {
        let rank = (self.sorted.len() * p).div_ceil(100).max(1);
        self.sorted[rank - 1]
    }

    fn max(&self) -> Duration {
        self.sorted[self.sorted.len() - 1]
    }

    fn describe(&self) -> String {
        format!(
            "median {:.2} ms, p99 {:.2} ms, max {:.2} ms, of {}",
            millis(self.median()),
            millis(self.percentile(99)),
            millis(self.max()),
            self.sorted.len()
        )
    }
}

/// `count` scrapes of `/metrics` on one keep-alive connection, `every`
/// apart (none: back to back), until `stop` when given. Each is timed
/// from the request's write to the answer's last byte.
async fn scrape(
    addr: SocketAddr,
    count: Option<usize>,
    every: Option<Duration>,
    stop: Option<&AtomicBool>,
) -> anyhow::Result<(Vec<Duration>, usize)> {
    let request = load::get_request(addr, "/metrics");
    let mut conn = Connection::open(addr).await?;
    let mut ticks = every.map(|every| {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        interval
    });
    let mut samples = Vec::new();
    let mut bytes = 0;
    while count.is_none_or(|n| samples.len() < n)
        && !stop.is_some_and(|s| s.load(Ordering::Relaxed))
    {
        if let Some(ticks) = ticks.as_mut() {
            ticks.tick().await;
        }
        let t0 = Instant::now();
        let (status, length) = conn.exchange(&request).await?;
        samples.push(t0.elapsed());
        if status != 200 {
            bail!("GET /metrics answered {status}");
        }
        bytes = length;
    }
    Ok((samples, bytes))
}

/// N deliveries stored (declarations to N / 4 readers each, every email
/// sent), then: the cost of a `/metrics` scrape alone, and the banner
/// idle, with 22 scrapes/s, and idle again.
pub async fn metrics(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let total = bench.recipients.unwrap_or(1_000_000);
    // Four declarations of a quarter each: one of a million is planned
    // inside its request, which on a busy machine outlasts the API's 30 s
    // request timeout.
    let n = total.div_ceil(SEED_DECLARATIONS);
    let deadline = bench.deadline_for(n);
    let (sink, target) = email_target(bench).await?;
    let Some(sink) = sink else {
        bail!("the metrics scenario waits on the built-in sink: leave out --smtp");
    };
    let spec = Spec {
        email: Some(target),
        sms: None,
        recipients: n,
        lease: LEASE,
    };
    let mut daemon = Daemon::prepare("metrics", bench, &spec)?;
    eprintln!(
        "  starting the daemon with {} recipients",
        grouped(n as i64)
    );
    daemon.start().await?;
    let mut stored = 0;
    for k in 0..SEED_DECLARATIONS {
        let id = daemon
            .declare(&format!("Metrics benchmark {k}"), deadline)
            .await?;
        let target = ((k + 1) * n) as u64;
        let mut progress = Progress::new("metrics: emails sent in all", target);
        wait_sink(&daemon, &id, &sink.stats, target, deadline, &mut progress).await?;
        let (_, counts) = wait_api(
            &daemon,
            &id,
            "every delivery finished",
            deadline,
            Duration::from_millis(250),
            None,
            |c| c.remaining() == 0 && c.total() >= n as u64,
        )
        .await?;
        eprintln!("  declaration {k}: {counts}");
        stored += counts.total();
    }
    // The gauges are refreshed every 5 s: let one refresh see the final
    // ledger, so the scrapes below render what a steady daemon holds.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let addr = address(&daemon)?;

    let (alone, bytes) = scrape(addr, Some(SCRAPES), None, None).await?;
    let alone = Spread::new(alone)?;
    eprintln!("  {SCRAPES} scrapes back to back: {}", alone.describe());

    let path = "/v1/banner?lang=en";
    let idle = load::run(addr, path, BANNER_CONNECTIONS, BANNER_WINDOW).await?;
    eprintln!("  banner idle: {}/s", grouped(idle.per_second() as i64));
    let cpu = CpuMeter::start(daemon.pid());
    let stop = AtomicBool::new(false);
    let every = Duration::from_secs(1) / SCRAPES_PER_SECOND;
    let (scraped, loaded) = tokio::join!(scrape(addr, None, Some(every), Some(&stop)), async {
        let result = load::run(addr, path, BANNER_CONNECTIONS, BANNER_WINDOW).await;
        stop.store(true, Ordering::Relaxed);
        result
    });
    let scraped_cpu = cpu.row("metrics", "CPU time during the window with scrapes");
    let (scraped, _) = scraped?;
    let loaded = loaded?;
    let scraped = Spread::new(scraped)?;
    eprintln!(
        "  banner with {SCRAPES_PER_SECOND} scrapes/s: {}/s; scrapes {}",
        grouped(loaded.per_second() as i64),
        scraped.describe()
    );
    let after = load::run(addr, path, BANNER_CONNECTIONS, BANNER_WINDOW).await?;
    eprintln!(
        "  banner idle again: {}/s",
        grouped(after.per_second() as i64)
    );
    daemon.kill().await?;

    let baseline = f64::midpoint(idle.per_second(), after.per_second());
    let lost = (1.0 - loaded.per_second() / baseline) * 100.0;
    let stored = grouped(stored as i64);
    Ok(vec![
        Row::at_most(
            "metrics",
            format!(
                "GET /metrics with {stored} deliveries stored, median of {SCRAPES} back to back"
            ),
            millis(alone.median()),
            10.0,
            "ms",
            format!(
                "{:.2} ms ({}; {} bytes)",
                millis(alone.median()),
                alone.describe(),
                grouped(bytes as i64)
            ),
        ),
        Row::at_most(
            "metrics",
            format!("… p99 of the {SCRAPES}"),
            millis(alone.percentile(99)),
            10.0,
            "ms",
            format!("{:.2} ms", millis(alone.percentile(99))),
        ),
        Row::info(
            "metrics",
            format!(
                "GET /metrics at {SCRAPES_PER_SECOND}/s while {BANNER_CONNECTIONS} connections load the banner"
            ),
            Some(millis(scraped.median())),
            "ms",
            scraped.describe(),
        ),
        Row::info(
            "metrics",
            format!("GET /v1/banner, {BANNER_CONNECTIONS} connections, idle (before / after)"),
            Some(baseline),
            "req/s",
            format!(
                "{} / {} req/s{}",
                grouped(idle.per_second() as i64),
                grouped(after.per_second() as i64),
                errors(&[&idle, &after])
            ),
        ),
        Row::at_most(
            "metrics",
            format!("GET /v1/banner with {SCRAPES_PER_SECOND} scrapes/s: lost against idle"),
            lost,
            20.0,
            "%",
            format!(
                "{lost:.1} % ({} req/s{})",
                grouped(loaded.per_second() as i64),
                errors(&[&loaded])
            ),
        ),
        scraped_cpu,
    ])
}

fn errors(results: &[&LoadResult]) -> String {
    let errors: u64 = results.iter().map(|r| r.errors).sum();
    if errors == 0 {
        String::new()
    } else {
        format!(", {} errors", grouped(errors as i64))
    }
}

/// The flood's two requests: a hook name nobody configured, and the
/// configured PagerDuty hook with a signature made with the wrong secret.
fn flood_requests(addr: SocketAddr) -> Vec<Vec<u8>> {
    let body = r#"{"event":{"id":"01FLOOD","event_type":"incident.triggered","resource_type":"incident","occurred_at":"2026-12-02T07:00:00Z","data":{"id":"PFLOOD","type":"incident","number":1,"status":"triggered","title":"Flood","urgency":"high"}}}"#;
    let bad = format!("X-PagerDuty-Signature: v1={}", "0".repeat(64));
    vec![
        load::post_request(addr, "/v1/hooks/nosuch", &[], body),
        load::post_request(addr, "/v1/hooks/pagerduty", &[bad], body),
    ]
}

/// The thread's id, for `taskset -p`.
fn thread_id() -> anyhow::Result<String> {
    let link = std::fs::read_link("/proc/thread-self").context("reading /proc/thread-self")?;
    link.file_name()
        .map(|tid| tid.to_string_lossy().into_owned())
        .context("no thread id in /proc/thread-self")
}

/// Runs the flood on a thread of its own (its own runtime), pinned to
/// `cpus` when given, until `stop`.
fn start_flood(
    addr: SocketAddr,
    cpus: Option<String>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<anyhow::Result<LoadResult>> {
    std::thread::spawn(move || {
        if let Some(cpus) = cpus {
            let tid = thread_id()?;
            let status = std::process::Command::new("taskset")
                .args(["-p", "-c", &cpus, &tid])
                .stdout(std::process::Stdio::null())
                .status()
                .context("running taskset")?;
            if !status.success() {
                bail!("taskset -p -c {cpus} {tid}: {status}");
            }
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("the flood's runtime")?;
        runtime.block_on(load::run_until(
            addr,
            flood_requests(addr),
            FLOOD_CONNECTIONS,
            &stop,
            &[401, 404],
        ))
    })
}

/// One fan-out of `n` emails: declare → the sink has accepted them all.
async fn timed_fan_out(
    daemon: &Daemon,
    stats: &crate::sink::SinkStats,
    title: &str,
    n: usize,
    deadline: Duration,
) -> anyhow::Result<Duration> {
    let before = stats.accepted();
    let t0 = Instant::now();
    let id = daemon.declare(title, deadline).await?;
    let target = before + n as u64;
    let mut progress = Progress::new(format!("{title}: emails accepted in all"), target);
    let last = wait_sink(daemon, &id, stats, target, deadline, &mut progress).await?;
    // Every outcome written before the next run starts.
    wait_api(
        daemon,
        &id,
        "every delivery finished",
        deadline,
        Duration::from_millis(50),
        None,
        |c| c.remaining() == 0 && c.total() >= n as u64,
    )
    .await?;
    Ok(last.saturating_duration_since(t0))
}

/// A fan-out of N emails, quiet and during a flood of refused webhooks
/// (an unknown hook, a bad signature), alternated ABBA so a drift in the
/// machine's load falls on both; medians and their ratio.
pub async fn flood(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let n = bench.recipients.unwrap_or(10_000);
    let deadline = bench.deadline_for(n);
    let (sink, target) = email_target(bench).await?;
    let Some(sink) = sink else {
        bail!("the flood scenario times the built-in sink: leave out --smtp");
    };
    let spec = Spec {
        email: Some(target),
        sms: None,
        recipients: n,
        lease: LEASE,
    };
    let mut daemon = Daemon::prepare("flood", bench, &spec)?;
    std::fs::write(daemon.dir().join("pd.secret"), "the-right-secret")
        .context("writing the hook's secret")?;
    let secret = daemon.dir().join("pd.secret");
    daemon.append_config(&format!(
        "\n[[hooks]]\nname = \"pagerduty\"\nsource = \"pagerduty\"\nsecret_file = {:?}\n",
        secret.display().to_string()
    ))?;
    // The daemon on the first core, the flood client on the second: the
    // flood then costs the daemon what it would from another machine
    // (its share of the loopback TCP work aside). The sinks float.
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let flood_cpus = (cpus >= 2).then(|| "1".to_owned());
    if cpus >= 2 {
        daemon.pin("0");
        eprintln!(
            "  the daemon on CPU 0 (taskset -c 0), the flood client's thread on CPU 1 (taskset -p -c 1)"
        );
    } else {
        eprintln!("  one CPU: the daemon and the flood client share it");
    }
    daemon.start().await?;
    let addr = address(&daemon)?;

    let mut quiet = Vec::new();
    let mut flooded = Vec::new();
    let mut refused = Vec::new();
    for run in 0..2 * FLOOD_RUNS {
        // A B B A A B B A ...: quiet first in runs 0, 3, 4, 7, 8.
        let with_flood = matches!(run % 4, 1 | 2);
        let title = format!("Flood benchmark {run}");
        if !with_flood {
            let took = timed_fan_out(&daemon, &sink.stats, &title, n, deadline).await?;
            eprintln!("  run {run}, quiet: {}", secs(took));
            quiet.push(took);
            continue;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flood = start_flood(addr, flood_cpus.clone(), Arc::clone(&stop));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let took = timed_fan_out(&daemon, &sink.stats, &title, n, deadline).await;
        stop.store(true, Ordering::Relaxed);
        let result = flood
            .join()
            .map_err(|_| anyhow::anyhow!("the flood thread panicked"))??;
        let took = took?;
        eprintln!(
            "  run {run}, during a flood: {} ({} refused posts, {}/s, {} errors)",
            secs(took),
            grouped(result.ok as i64),
            grouped(result.per_second() as i64),
            result.errors
        );
        flooded.push(took);
        refused.push(result);
    }
    let log = std::fs::read_to_string(daemon.dir().join("daemon.log")).unwrap_or_default();
    daemon.kill().await?;

    let quiet = Spread::new(quiet)?;
    let flooded = Spread::new(flooded)?;
    let ratio = flooded.median().as_secs_f64() / quiet.median().as_secs_f64();
    let rate = refused.iter().map(LoadResult::per_second).sum::<f64>() / refused.len() as f64;
    let posts: u64 = refused.iter().map(|r| r.ok).sum();
    let errors: u64 = refused.iter().map(|r| r.errors).sum();
    let runs = |s: &Spread| {
        s.sorted
            .iter()
            .map(|d| format!("{:.2}", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let noun = grouped(n as i64);
    Ok(vec![
        Row::info(
            "flood",
            format!("{noun}-email fan-out, quiet: median of {FLOOD_RUNS}"),
            Some(quiet.median().as_secs_f64()),
            "s",
            format!(
                "{} ({}/s; runs {} s)",
                secs(quiet.median()),
                grouped((n as f64 / quiet.median().as_secs_f64()) as i64),
                runs(&quiet)
            ),
        ),
        Row::info(
            "flood",
            format!("{noun}-email fan-out during a webhook flood: median of {FLOOD_RUNS}"),
            Some(flooded.median().as_secs_f64()),
            "s",
            format!(
                "{} ({}/s; runs {} s)",
                secs(flooded.median()),
                grouped((n as f64 / flooded.median().as_secs_f64()) as i64),
                runs(&flooded)
            ),
        ),
        Row::info(
            "flood",
            format!(
                "the flood: {FLOOD_CONNECTIONS} connections, unknown hook and bad signature in turn"
            ),
            Some(rate),
            "req/s",
            format!(
                "{} refused/s on average ({} posts, all 404 or 401; {errors} errors); {} log lines about refusals",
                grouped(rate as i64),
                grouped(posts as i64),
                log.lines().filter(|l| l.contains("refused")).count()
            ),
        ),
        Row::at_most(
            "flood",
            "fan-out time during the flood / quiet (medians)",
            ratio,
            1.1,
            "×",
            format!("{ratio:.2}×"),
        ),
    ])
}
