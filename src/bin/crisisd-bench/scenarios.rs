//! The scenarios. Each starts its own sinks and daemon (fresh scratch
//! directory and database), so one scenario's backlog never slows the
//! next, and returns its rows.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::daemon::{
    Counts, Daemon, EMAIL_CONCURRENCY, SmsTarget, SmtpTarget, Spec, cpu_time, memory_bytes,
};
use crate::http_sink::HttpSink;
use crate::report::{Row, grouped};
use crate::sink::SinkStats;
use crate::smtp_sink::SmtpSink;
use crate::{Bench, load};

/// Declarations timed by the latency scenario.
const LATENCY_DECLARES: usize = 20;
/// Audience of the latency scenario and of the banner's first crisis.
const FEW: usize = 3;
/// Lease for most scenarios: long enough for any loopback send.
pub(crate) const LEASE: &str = "30s";
/// Lease for the crash scenario: after the restart, the killed process's
/// leases must expire before their deliveries are sent again.
const CRASH_LEASE: &str = "10s";
/// Concurrent connections of the banner load.
pub(crate) const BANNER_CONNECTIONS: usize = 64;
/// Length of each banner measurement.
pub(crate) const BANNER_WINDOW: Duration = Duration::from_secs(5);
/// How often progress is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// A sink that has not moved for this long makes us ask the daemon
/// whether anything is left to send.
const STALL: Duration = Duration::from_secs(10);

pub(crate) fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

pub(crate) fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The built-in SMTP sink unless `--smtp` names another server.
pub(crate) async fn email_target(bench: &Bench) -> anyhow::Result<(Option<SmtpSink>, SmtpTarget)> {
    match &bench.smtp {
        Some(target) => Ok((None, target.clone())),
        None => {
            let sink = SmtpSink::start().await?;
            let target = SmtpTarget {
                host: "127.0.0.1".to_owned(),
                port: sink.addr.port(),
            };
            Ok((Some(sink), target))
        }
    }
}

/// The built-in HTTP sink unless `--sms-url` names another gateway.
async fn sms_target(bench: &Bench) -> anyhow::Result<(Option<HttpSink>, SmsTarget)> {
    match &bench.sms_url {
        Some(url) => Ok((
            None,
            SmsTarget {
                url: url.clone(),
                own_sink: false,
            },
        )),
        None => {
            let sink = HttpSink::start().await?;
            let target = SmsTarget {
                url: sink.url(),
                own_sink: true,
            };
            Ok((Some(sink), target))
        }
    }
}

/// Prints "label: 12,345 of 100,000 (6,100/s)" every couple of seconds.
pub(crate) struct Progress {
    label: String,
    total: u64,
    started: Instant,
    last_print: Instant,
    last_count: u64,
}

impl Progress {
    pub(crate) fn new(label: impl Into<String>, total: u64) -> Self {
        let now = Instant::now();
        Self {
            label: label.into(),
            total,
            started: now,
            last_print: now,
            last_count: 0,
        }
    }

    pub(crate) fn tick(&mut self, count: u64) {
        let now = Instant::now();
        let since = now - self.last_print;
        if since < PROGRESS_EVERY {
            return;
        }
        let rate = count.saturating_sub(self.last_count) as f64 / since.as_secs_f64();
        eprintln!(
            "  {}: {} of {} after {:.0} s ({}/s)",
            self.label,
            grouped(count as i64),
            grouped(self.total as i64),
            (now - self.started).as_secs_f64(),
            grouped(rate as i64),
        );
        self.last_print = now;
        self.last_count = count;
    }
}

/// CPU used by the daemon and by this process (its sinks and load
/// generator share the machine with the daemon) over a stretch of time.
pub(crate) struct CpuMeter {
    pid: Option<u32>,
    daemon: Option<Duration>,
    bench: Option<Duration>,
    started: Instant,
}

impl CpuMeter {
    pub(crate) fn start(pid: Option<u32>) -> Self {
        Self {
            pid,
            daemon: pid.and_then(|p| cpu_time(Some(p))),
            bench: cpu_time(None),
            started: Instant::now(),
        }
    }

    /// An info row; read before the daemon is killed.
    pub(crate) fn row(&self, scenario: &'static str, figure: &str) -> Row {
        let wall = self.started.elapsed().as_secs_f64();
        let used = |before: Option<Duration>, now: Option<Duration>| match (before, now) {
            (Some(b), Some(n)) => {
                let s = n.saturating_sub(b).as_secs_f64();
                format!("{s:.1} s ({:.0}% of one core)", s / wall * 100.0)
            }
            _ => "unknown".to_owned(),
        };
        let daemon = used(self.daemon, self.pid.and_then(|p| cpu_time(Some(p))));
        let bench = used(self.bench, cpu_time(None));
        Row::info(
            scenario,
            figure,
            None,
            "",
            format!("daemon {daemon}, crisisd-bench with its sinks {bench}, over {wall:.1} s"),
        )
    }
}

/// Polls the crisis's counts until `done` holds; returns when the answer
/// that showed it arrived, and the counts.
pub(crate) async fn wait_api(
    daemon: &Daemon,
    id: &str,
    what: &str,
    deadline: Duration,
    poll: Duration,
    mut progress: Option<&mut Progress>,
    mut done: impl FnMut(&Counts) -> bool,
) -> anyhow::Result<(Instant, Counts)> {
    let started = Instant::now();
    let mut last = None;
    loop {
        match daemon.counts(id).await {
            Ok(counts) => {
                let at = Instant::now();
                if done(&counts) {
                    return Ok((at, counts));
                }
                if let Some(p) = progress.as_deref_mut() {
                    p.tick(counts.sent + counts.dead);
                }
                last = Some(counts);
            }
            // A daemon busy writing a million rows may answer slowly or
            // time out: keep asking until the deadline.
            Err(err) => eprintln!("  ({what}: {err:#}; asking again)"),
        }
        if started.elapsed() > deadline {
            let last = last.map_or_else(|| "never answered".to_owned(), |c| c.to_string());
            bail!("{what}: not within {deadline:?}; last counts: {last}");
        }
        tokio::time::sleep(poll).await;
    }
}

/// Waits until the API shows all `n` deliveries of the crisis sent (or
/// none left to send); returns when the answer that showed it arrived.
pub async fn wait_all_sent(
    daemon: &Daemon,
    id: &str,
    n: usize,
    deadline: Duration,
) -> anyhow::Result<(Instant, Counts)> {
    let mut progress = Progress::new("sent", n as u64);
    wait_api(
        daemon,
        id,
        "all sent",
        deadline,
        Duration::from_millis(50),
        Some(&mut progress),
        |c| c.remaining() == 0 && c.total() >= n as u64,
    )
    .await
}

/// Waits until the sink has accepted `target` messages; returns when the
/// last of them was accepted. Gives up early when the daemon has nothing
/// left to send (everything dead, say).
pub(crate) async fn wait_sink(
    daemon: &Daemon,
    id: &str,
    stats: &SinkStats,
    target: u64,
    deadline: Duration,
    progress: &mut Progress,
) -> anyhow::Result<Instant> {
    let started = Instant::now();
    let mut seen = stats.accepted();
    let mut moved = Instant::now();
    loop {
        let count = stats.accepted();
        if count >= target {
            return stats.last().context("the sink accepted nothing");
        }
        progress.tick(count);
        if count != seen {
            seen = count;
            moved = Instant::now();
        } else if moved.elapsed() > STALL {
            moved = Instant::now();
            if let Ok(counts) = daemon.counts(id).await
                && counts.remaining() == 0
                && counts.total() >= progress.total
            {
                bail!(
                    "the daemon has nothing left to send, but the sink accepted only {} of {}; {}",
                    grouped(count as i64),
                    grouped(target as i64),
                    daemon.explain(id).await
                );
            }
        }
        if started.elapsed() > deadline {
            bail!(
                "the sink accepted only {} of {} within {deadline:?}; {}",
                grouped(count as i64),
                grouped(target as i64),
                daemon.explain(id).await
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `declare` → first email accepted, 20 times, with a few recipients.
pub async fn latency(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let (sink, target) = email_target(bench).await?;
    let spec = Spec {
        email: Some(target),
        sms: None,
        recipients: FEW,
        lease: LEASE,
    };
    let mut daemon = Daemon::prepare("latency", bench, &spec)?;
    daemon.start().await?;
    let per_wait = Duration::from_secs(30);
    let mut samples = Vec::with_capacity(LATENCY_DECLARES);
    let mut expected = 0u64;
    for k in 0..LATENCY_DECLARES {
        if let Some(sink) = &sink {
            sink.stats.arm();
        }
        let t0 = Instant::now();
        let id = daemon
            .declare(&format!("Latency probe {k}"), per_wait)
            .await?;
        let first = match &sink {
            Some(sink) => loop {
                if let Some(at) = sink.stats.first_since_arm() {
                    break at;
                }
                if t0.elapsed() > per_wait {
                    bail!(
                        "declare {k}: no email within {per_wait:?}; {}",
                        daemon.explain(&id).await
                    );
                }
                tokio::time::sleep(Duration::from_micros(500)).await;
            },
            None => {
                let what = format!("declare {k}: first email sent");
                let (at, _) = wait_api(
                    &daemon,
                    &id,
                    &what,
                    per_wait,
                    Duration::from_millis(2),
                    None,
                    |c| c.sent >= 1,
                )
                .await?;
                at
            }
        };
        samples.push(first.saturating_duration_since(t0));
        // The rest of this declaration and its all-clear must be out
        // before the next declaration, or one of them could pass for the
        // next one's first email.
        match &sink {
            Some(sink) => {
                let mut progress = Progress::new(format!("latency {k}: declaration"), FEW as u64);
                expected += FEW as u64;
                wait_sink(&daemon, &id, &sink.stats, expected, per_wait, &mut progress).await?;
                daemon.resolve(&id).await?;
                expected += FEW as u64;
                let mut progress = Progress::new(format!("latency {k}: all-clear"), FEW as u64);
                wait_sink(&daemon, &id, &sink.stats, expected, per_wait, &mut progress).await?;
            }
            None => {
                let what = format!("declare {k}: every email sent");
                wait_api(
                    &daemon,
                    &id,
                    &what,
                    per_wait,
                    Duration::from_millis(20),
                    None,
                    |c| c.remaining() == 0 && c.total() >= FEW as u64,
                )
                .await?;
                daemon.resolve(&id).await?;
                let what = format!("declare {k}: every all-clear sent");
                wait_api(
                    &daemon,
                    &id,
                    &what,
                    per_wait,
                    Duration::from_millis(20),
                    None,
                    |c| c.remaining() == 0 && c.total() >= 2 * FEW as u64,
                )
                .await?;
            }
        }
        eprintln!(
            "  declare {k}: first email after {:.1} ms",
            millis(samples[k])
        );
    }
    daemon.kill().await?;
    samples.sort();
    let mid = samples.len() / 2;
    let median = (samples[mid - 1] + samples[mid]) / 2;
    let p95 = samples[(samples.len() * 95).div_ceil(100) - 1];
    let max = samples[samples.len() - 1];
    let how = if sink.is_some() {
        "accepted by the SMTP sink"
    } else {
        "sent (via the API)"
    };
    Ok(vec![
        Row::at_most(
            "latency",
            format!("declare → first email {how}, median of {LATENCY_DECLARES}"),
            millis(median),
            50.0,
            "ms",
            format!("{:.1} ms", millis(median)),
        ),
        Row::info(
            "latency",
            format!("declare → first email {how}, p95 of {LATENCY_DECLARES}"),
            Some(millis(p95)),
            "ms",
            format!(
                "{:.1} ms (min {:.1} ms, max {:.1} ms)",
                millis(p95),
                millis(samples[0]),
                millis(max)
            ),
        ),
    ])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Channel {
    Email,
    Sms,
}

pub async fn email(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    fan_out(bench, Channel::Email).await
}

pub async fn sms(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    fan_out(bench, Channel::Sms).await
}

/// N recipients on one channel: declare → all N accepted.
async fn fan_out(bench: &Bench, channel: Channel) -> anyhow::Result<Vec<Row>> {
    let n = bench.recipients.unwrap_or(100_000);
    let (scenario, noun) = match channel {
        Channel::Email => ("email", "email"),
        Channel::Sms => ("sms", "SMS"),
    };
    let deadline = bench.deadline_for(n);
    // Only the channel under test is configured; the sinks live as long
    // as this function.
    let (smtp_sink, http_sink);
    let (spec, stats) = match channel {
        Channel::Email => {
            let (sink, target) = email_target(bench).await?;
            let stats = sink.as_ref().map(|s| Arc::clone(&s.stats));
            smtp_sink = sink;
            http_sink = None;
            let spec = Spec {
                email: Some(target),
                sms: None,
                recipients: n,
                lease: LEASE,
            };
            (spec, stats)
        }
        Channel::Sms => {
            let (sink, target) = sms_target(bench).await?;
            let stats = sink.as_ref().map(|s| Arc::clone(&s.stats));
            http_sink = sink;
            smtp_sink = None;
            let spec = Spec {
                email: None,
                sms: Some(target),
                recipients: n,
                lease: LEASE,
            };
            (spec, stats)
        }
    };
    let store = bench.fresh_store(bench.on_postgres).await?;
    let mut daemon = Daemon::prepare_on(scenario, bench, &spec, store.as_deref())?;
    eprintln!(
        "  starting the daemon with {} recipients",
        grouped(n as i64)
    );
    daemon.start().await?;

    let cpu = CpuMeter::start(daemon.pid());
    let by = if stats.is_some() {
        "accepted by the sink"
    } else {
        "sent (via the API)"
    };
    let t0 = Instant::now();
    let id = daemon.declare("Fan-out benchmark", deadline).await?;
    let answered = t0.elapsed();
    eprintln!("  declared {id} (answered in {})", secs(answered));
    let mut progress = Progress::new(format!("{scenario}: accepted"), n as u64);
    let all_accepted = match &stats {
        Some(stats) => wait_sink(&daemon, &id, stats, n as u64, deadline, &mut progress).await?,
        None => {
            let (at, counts) = wait_api(
                &daemon,
                &id,
                "all sent",
                deadline,
                Duration::from_millis(50),
                Some(&mut progress),
                |c| c.remaining() == 0 && c.total() >= n as u64,
            )
            .await?;
            if counts.sent < n as u64 {
                bail!("not all sent: {counts}; {}", daemon.explain(&id).await);
            }
            at
        }
    };
    let elapsed = all_accepted.saturating_duration_since(t0);
    let cpu_row = cpu.row(
        scenario,
        &format!("{noun} fan-out: CPU time, declare → all {by}"),
    );
    let (api_at, counts) = wait_api(
        &daemon,
        &id,
        "the API showing every delivery sent",
        deadline,
        Duration::from_millis(50),
        None,
        |c| c.remaining() == 0 && c.total() >= n as u64,
    )
    .await?;
    daemon.kill().await?;
    drop((smtp_sink, http_sink));
    if counts.sent < n as u64 {
        bail!("not all sent: {counts}");
    }
    let rate = n as f64 / elapsed.as_secs_f64();
    Ok(vec![
        Row::at_least(
            scenario,
            format!(
                "{noun} fan-out, {} recipients: deliveries/s",
                grouped(n as i64)
            ),
            rate,
            10_000.0,
            "/s",
            format!("{}/s", grouped(rate as i64)),
        ),
        Row::info(
            scenario,
            format!("{noun} fan-out: declare → all {by}"),
            Some(elapsed.as_secs_f64()),
            "s",
            secs(elapsed),
        ),
        Row::info(
            scenario,
            format!("{noun} fan-out: declare → the API shows all sent"),
            Some(api_at.saturating_duration_since(t0).as_secs_f64()),
            "s",
            secs(api_at.saturating_duration_since(t0)),
        ),
        Row::info(
            scenario,
            format!("{noun} fan-out: the declare request answered in"),
            Some(answered.as_secs_f64()),
            "s",
            secs(answered),
        ),
        cpu_row,
    ])
}

/// Samples a process's resident memory every 100 ms until dropped.
struct RssSampler {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let peak = Arc::clone(&peak);
            let stop = Arc::clone(&stop);
            async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(rss) = memory_bytes(pid, "VmRSS:") {
                        peak.fetch_max(rss, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        Self { peak, stop, task }
    }

    fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.abort();
    }
}

fn megabytes(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// 1,000,000 recipients: time to write every delivery, peak memory, and
/// when the last email went.
pub async fn million(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let n = bench.recipients.unwrap_or(1_000_000);
    let deadline = bench.deadline_for(n);
    let (sink, target) = email_target(bench).await?;
    let spec = Spec {
        email: Some(target),
        sms: None,
        recipients: n,
        lease: LEASE,
    };
    let store = bench.fresh_store(bench.on_postgres).await?;
    let mut daemon = Daemon::prepare_on("million", bench, &spec, store.as_deref())?;
    eprintln!(
        "  starting the daemon with {} recipients",
        grouped(n as i64)
    );
    daemon.start().await?;
    let pid = daemon.pid().context("the daemon has no pid")?;
    let before = memory_bytes(pid, "VmRSS:").unwrap_or(0);
    let sampler = RssSampler::start(pid);
    let cpu = CpuMeter::start(Some(pid));

    let t0 = Instant::now();
    let id = daemon.declare("Million benchmark", deadline).await?;
    let answered = t0.elapsed();
    eprintln!("  declared {id} (answered in {})", secs(answered));
    let mut progress = Progress::new("million: written", n as u64);
    // Polled more slowly than the deadline warrants: every poll counts a
    // million rows, and the poller must not become the load.
    let written = wait_api(
        &daemon,
        &id,
        "every delivery written",
        deadline,
        Duration::from_millis(100),
        None,
        |c| {
            progress.tick(c.total());
            c.total() >= n as u64
        },
    )
    .await
    .map(|(at, _)| at.saturating_duration_since(t0));
    let mut rows = Vec::new();
    match &written {
        Ok(took) => {
            eprintln!("  every delivery written after {}", secs(*took));
            rows.push(Row::at_most(
                "million",
                format!(
                    "{}-recipient declare: time to write all deliveries",
                    grouped(n as i64)
                ),
                took.as_secs_f64(),
                15.0,
                "s",
                secs(*took),
            ));
        }
        Err(err) => rows.push(Row::failed(
            "million",
            format!(
                "{}-recipient declare: time to write all deliveries",
                grouped(n as i64)
            ),
            format!("{err:#}"),
        )),
    }
    let last_email = match (&sink, &written) {
        (Some(sink), Ok(_)) => {
            let mut progress = Progress::new("million: accepted", n as u64);
            wait_sink(&daemon, &id, &sink.stats, n as u64, deadline, &mut progress)
                .await
                .map(|at| at.saturating_duration_since(t0))
        }
        (None, Ok(_)) => {
            let mut progress = Progress::new("million: sent", n as u64);
            wait_api(
                &daemon,
                &id,
                "every email sent",
                deadline,
                Duration::from_millis(250),
                Some(&mut progress),
                |c| c.remaining() == 0,
            )
            .await
            .map(|(at, _)| at.saturating_duration_since(t0))
        }
        (_, Err(_)) => Err(anyhow::anyhow!(
            "not waited for: the deliveries were not all written"
        )),
    };
    let sampled = sampler.peak();
    drop(sampler);
    let cpu_row = cpu.row("million", "CPU time, declare → last email (or deadline)");
    let hwm = memory_bytes(pid, "VmHWM:").unwrap_or(0);
    daemon.kill().await?;
    let peak = sampled.max(hwm);
    rows.push(Row::at_most(
        "million",
        "peak resident memory of the daemon during the fan-out",
        megabytes(peak),
        200.0,
        "MB",
        format!(
            "{:.0} MB (VmHWM {:.0} MB; VmRSS sampled every 100 ms peaked at {:.0} MB; {:.0} MB before the declare)",
            megabytes(peak),
            megabytes(hwm),
            megabytes(sampled),
            megabytes(before)
        ),
    ));
    match last_email {
        Ok(took) => rows.push(Row::info(
            "million",
            "declare → last email accepted",
            Some(took.as_secs_f64()),
            "s",
            format!(
                "{} ({}/s overall)",
                secs(took),
                grouped((n as f64 / took.as_secs_f64()) as i64)
            ),
        )),
        Err(err) => rows.push(Row::failed(
            "million",
            "declare → last email accepted",
            format!("{err:#}"),
        )),
    }
    rows.push(Row::info(
        "million",
        "the declare request answered in",
        Some(answered.as_secs_f64()),
        "s",
        secs(answered),
    ));
    rows.push(cpu_row);
    Ok(rows)
}

/// `GET /v1/banner` with 64 connections: idle, during a fan-out, and idle
/// again once it is over (the banner then shows what it showed during the
/// fan-out: two crises, so that window is the like-for-like baseline).
pub async fn banner(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let n = bench.recipients.unwrap_or(100_000);
    let deadline = bench.deadline_for(n);
    let (sink, target) = email_target(bench).await?;
    // A crisis is declared to a tiny audience first, so the banner has
    // something to show without a fan-out running; then the daemon is
    // restarted on the same database with the full audience.
    let spec = Spec {
        email: Some(target),
        sms: None,
        recipients: FEW,
        lease: LEASE,
    };
    let mut daemon = Daemon::prepare("banner", bench, &spec)?;
    daemon.start().await?;
    let first = daemon
        .declare("Banner benchmark", Duration::from_secs(30))
        .await?;
    wait_api(
        &daemon,
        &first,
        "the first crisis's emails sent",
        Duration::from_secs(60),
        Duration::from_millis(50),
        None,
        |c| c.remaining() == 0 && c.total() >= FEW as u64,
    )
    .await?;
    daemon.kill().await?;
    daemon.rewrite_audience(n)?;
    eprintln!(
        "  restarting the daemon with {} recipients",
        grouped(n as i64)
    );
    daemon.start().await?;

    let addr: SocketAddr = daemon
        .base()
        .trim_start_matches("http://")
        .parse()
        .context("the daemon's address")?;
    let path = "/v1/banner?lang=en";
    check_banner(daemon.base(), path).await?;

    eprintln!("  idle: {BANNER_CONNECTIONS} connections for {BANNER_WINDOW:?}");
    let cpu = CpuMeter::start(daemon.pid());
    let idle = load::run(addr, path, BANNER_CONNECTIONS, BANNER_WINDOW).await?;
    let idle_cpu = cpu.row("banner", "CPU time during the idle window");
    eprintln!("  idle: {}/s", grouped(idle.per_second() as i64));

    let base_count = sink.as_ref().map_or(0, |s| s.stats.accepted());
    eprintln!(
        "  declaring a {}-recipient fan-out, then the same load",
        grouped(n as i64)
    );
    let cpu = CpuMeter::start(daemon.pid());
    let load_started = Instant::now();
    // The load starts with the declare, not after its answer: an engine
    // that plans inside the request is already busy by then. What the
    // window saw is read when the load ends, which may be before the
    // declare answers.
    let (declared, (during, load_ended, during_cpu, accepted_at_end)) = tokio::join!(
        async {
            let result = daemon.declare("Banner under load", deadline).await;
            (result, load_started.elapsed())
        },
        async {
            let result = load::run(addr, path, BANNER_CONNECTIONS, BANNER_WINDOW).await;
            let ended = Instant::now();
            let cpu = cpu.row("banner", "CPU time during the fan-out window");
            let accepted = sink.as_ref().map(|s| s.stats.accepted());
            (result, ended, cpu, accepted)
        }
    );
    let (second, answered) = declared;
    let second = second?;
    let during = during?;
    eprintln!("  during: {}/s", grouped(during.per_second() as i64));
    let sent_in_window = match accepted_at_end {
        Some(accepted) => accepted - base_count,
        // Via the API only after the declare answered: an upper bound.
        None => daemon.counts(&second).await.map_or(0, |c| c.sent),
    };
    let finished_early = match &sink {
        Some(sink) => sink
            .stats
            .last()
            .filter(|_| sent_in_window >= n as u64)
            .map(|at| at.saturating_duration_since(load_started)),
        None => None,
    };
    wait_api(
        &daemon,
        &second,
        "the fan-out sent",
        deadline,
        Duration::from_millis(100),
        None,
        |c| c.remaining() == 0 && c.total() >= n as u64,
    )
    .await?;
    eprintln!(
        "  idle again, after the fan-out: {BANNER_CONNECTIONS} connections for {BANNER_WINDOW:?}"
    );
    let after = load::run(addr, path, BANNER_CONNECTIONS, BANNER_WINDOW).await?;
    eprintln!("  after: {}/s", grouped(after.per_second() as i64));
    daemon.kill().await?;

    let drop_percent = (1.0 - during.per_second() / after.per_second()) * 100.0;
    let drop_from_first = (1.0 - during.per_second() / idle.per_second()) * 100.0;
    let errors = |r: &load::LoadResult| {
        if r.errors > 0 {
            format!(", {} errors", grouped(r.errors as i64))
        } else {
            String::new()
        }
    };
    let window_note = match finished_early {
        Some(at) if load_ended.saturating_duration_since(load_started) > at => {
            format!("; the fan-out finished {} into the window", secs(at))
        }
        _ => format!(
            "; {} of {} emails went out during the window",
            grouped(sent_in_window as i64),
            grouped(n as i64)
        ),
    };
    Ok(vec![
        Row::at_least(
            "banner",
            format!("GET /v1/banner, {BANNER_CONNECTIONS} connections, idle"),
            idle.per_second(),
            30_000.0,
            "req/s",
            format!(
                "{} req/s{}",
                grouped(idle.per_second() as i64),
                errors(&idle)
            ),
        ),
        Row::info(
            "banner",
            format!(
                "GET /v1/banner, {BANNER_CONNECTIONS} connections, during a {}-recipient fan-out",
                grouped(n as i64)
            ),
            Some(during.per_second()),
            "req/s",
            format!(
                "{} req/s{}{window_note}; the declare answered after {}",
                grouped(during.per_second() as i64),
                errors(&during),
                secs(answered)
            ),
        ),
        Row::info(
            "banner",
            format!(
                "GET /v1/banner, {BANNER_CONNECTIONS} connections, idle after the fan-out (the same two crises shown)"
            ),
            Some(after.per_second()),
            "req/s",
            format!(
                "{} req/s{}",
                grouped(after.per_second() as i64),
                errors(&after)
            ),
        ),
        Row::at_most(
            "banner",
            "banner throughput lost during the fan-out, against the idle window after it",
            drop_percent,
            20.0,
            "%",
            format!(
                "{drop_percent:.1} % ({drop_from_first:.1} % against the first idle window, which shows one crisis)"
            ),
        ),
        idle_cpu,
        during_cpu,
    ])
}

/// The banner must have a crisis to show, or the scenario measures the
/// empty answer.
pub(crate) async fn check_banner(base: &str, path: &str) -> anyhow::Result<()> {
    let body: serde_json::Value = reqwest::get(format!("{base}{path}"))
        .await
        .context("GET /v1/banner")?
        .json()
        .await
        .context("the banner's JSON")?;
    let active = body["crises"].as_array().map_or(0, Vec::len);
    if active == 0 {
        bail!("the banner shows no crisis after the restart: {body}");
    }
    Ok(())
}

/// SIGKILL at half of a fan-out, restart: delivered / lost / duplicated.
pub async fn crash(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let n = bench.recipients.unwrap_or(100_000);
    let deadline = bench.deadline_for(n);
    let (sink, target) = email_target(bench).await?;
    if let Some(sink) = &sink {
        sink.stats.set_recording(true);
    }
    let spec = Spec {
        email: Some(target),
        sms: None,
        recipients: n,
        lease: CRASH_LEASE,
    };
    let mut daemon = Daemon::prepare("crash", bench, &spec)?;
    eprintln!(
        "  starting the daemon with {} recipients",
        grouped(n as i64)
    );
    daemon.start().await?;
    let t0 = Instant::now();
    let id = daemon.declare("Crash benchmark", deadline).await?;
    let half = (n as u64).div_ceil(2);
    let mut progress = Progress::new("crash: accepted before the kill", n as u64);
    match &sink {
        Some(sink) => {
            wait_sink(&daemon, &id, &sink.stats, half, deadline, &mut progress).await?;
        }
        None => {
            wait_api(
                &daemon,
                &id,
                "half sent",
                deadline,
                Duration::from_millis(20),
                Some(&mut progress),
                |c| c.sent >= half,
            )
            .await?;
        }
    }
    daemon.kill().await?;
    let at_kill = sink.as_ref().map(|s| s.stats.accepted());
    eprintln!(
        "  SIGKILL after {}{}",
        secs(t0.elapsed()),
        at_kill.map_or_else(String::new, |a| format!(", {} accepted", grouped(a as i64)))
    );
    let restarted = Instant::now();
    daemon.start().await?;
    // The killed process's leases must expire before its in-flight
    // deliveries go again.
    let deadline = deadline + Duration::from_secs(10);
    let mut notes = Vec::new();
    let (delivered, duplicated) = match &sink {
        Some(sink) => {
            let mut progress = Progress::new("crash: distinct recipients reached", n as u64);
            let mut moved = Instant::now();
            let mut seen = sink.stats.distinct();
            loop {
                let distinct = sink.stats.distinct();
                if distinct >= n as u64 {
                    break;
                }
                progress.tick(distinct);
                if distinct != seen {
                    seen = distinct;
                    moved = Instant::now();
                } else if moved.elapsed() > STALL {
                    moved = Instant::now();
                    if let Ok(c) = daemon.counts(&id).await
                        && c.remaining() == 0
                        && c.total() >= n as u64
                    {
                        notes.push(format!(
                            "the daemon finished with recipients unreached: {}",
                            daemon.explain(&id).await
                        ));
                        break;
                    }
                }
                if restarted.elapsed() > deadline {
                    notes.push(format!(
                        "gave up waiting after {deadline:?}: {}",
                        daemon.explain(&id).await
                    ));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let reached = restarted.elapsed();
            // Whatever is still in flight may duplicate: let it land.
            if let Err(err) = wait_api(
                &daemon,
                &id,
                "every delivery finished",
                Duration::from_secs(60),
                Duration::from_millis(50),
                None,
                |c| c.remaining() == 0,
            )
            .await
            {
                notes.push(format!("{err:#}"));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            notes.push(format!(
                "after the restart, every recipient reached in {}",
                secs(reached)
            ));
            if sink.stats.without_id() > 0 {
                notes.push(format!(
                    "{} messages without a Message-ID (not counted)",
                    sink.stats.without_id()
                ));
            }
            let distinct = sink.stats.distinct();
            let total = sink.stats.accepted() - sink.stats.without_id();
            (distinct, Some(total - distinct))
        }
        None => {
            let (_, counts) = wait_api(
                &daemon,
                &id,
                "every delivery finished after the restart",
                deadline,
                Duration::from_millis(100),
                None,
                |c| c.remaining() == 0 && c.total() >= n as u64,
            )
            .await?;
            (counts.sent, None)
        }
    };
    daemon.kill().await?;
    for note in &notes {
        eprintln!("  {note}");
    }
    let lost = (n as u64).saturating_sub(delivered);
    let percent = delivered as f64 / n as f64 * 100.0;
    let mut rows = vec![
        Row::judged(
            "crash",
            format!(
                "kill -9 at half of a {}-recipient fan-out, restart: delivered",
                grouped(n as i64)
            ),
            "100%",
            Some(percent),
            "%",
            format!(
                "{percent:.2} % ({} of {})",
                grouped(delivered as i64),
                grouped(n as i64)
            ),
            lost == 0,
        ),
        Row::judged(
            "crash",
            "… lost",
            "0",
            Some(lost as f64),
            "",
            grouped(lost as i64),
            lost == 0,
        ),
    ];
    match duplicated {
        Some(d) => rows.push(Row::at_most(
            "crash",
            format!("… duplicated (in-flight limit: email concurrency {EMAIL_CONCURRENCY})"),
            d as f64,
            EMAIL_CONCURRENCY as f64,
            "",
            grouped(d as i64),
        )),
        None => rows.push(Row::info(
            "crash",
            "… duplicated",
            None,
            "",
            "not measurable: an external SMTP server counts them".to_owned(),
        )),
    }
    if !notes.is_empty() {
        rows.push(Row::info("crash", "… notes", None, "", notes.join("; ")));
    }
    Ok(rows)
}

/// A correction of a message sent to N readers by email and SMS: after the
/// original has reached everyone, correction → each channel's first
/// correction accepted, and → all N accepted on each.
pub async fn correction(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let n = bench.recipients.unwrap_or(10_000);
    let deadline = bench.deadline_for(n);
    let (smtp, email) = email_target(bench).await?;
    let (http, sms) = sms_target(bench).await?;
    let (Some(smtp), Some(http)) = (smtp, http) else {
        bail!("the correction scenario times the built-in sinks: leave out --smtp and --sms-url");
    };
    let spec = Spec {
        email: Some(email),
        sms: Some(sms),
        recipients: n,
        lease: LEASE,
    };
    let mut daemon = Daemon::prepare("correction", bench, &spec)?;
    daemon.start().await?;
    let id = daemon.declare("Correction benchmark", deadline).await?;
    let sinks = [("email", &smtp.stats), ("SMS", &http.stats)];
    for (noun, stats) in sinks {
        let mut progress = Progress::new(format!("correction: original {noun}"), n as u64);
        wait_sink(&daemon, &id, stats, n as u64, deadline, &mut progress).await?;
        stats.arm();
    }
    let t0 = Instant::now();
    let answer = daemon.correct(&id).await?;
    let answered = t0.elapsed();
    eprintln!("  correction answered in {}: {answer}", secs(answered));
    let mut rows = vec![Row::info(
        "correction",
        "the correction request answered in",
        Some(answered.as_secs_f64()),
        "s",
        secs(answered),
    )];
    for (noun, stats) in sinks {
        let mut progress = Progress::new(format!("correction: {noun}"), n as u64);
        let all = wait_sink(&daemon, &id, stats, 2 * n as u64, deadline, &mut progress).await?;
        let first = stats.first_since_arm().context("no correction accepted")?;
        let (first, all) = (
            first.saturating_duration_since(t0),
            all.saturating_duration_since(t0),
        );
        rows.push(Row::at_most(
            "correction",
            format!("correction → first {noun} accepted"),
            first.as_secs_f64(),
            10.0,
            "s",
            format!("{:.1} ms", millis(first)),
        ));
        rows.push(Row::at_most(
            "correction",
            format!("correction → all {} {noun} accepted", grouped(n as i64)),
            all.as_secs_f64(),
            60.0,
            "s",
            secs(all),
        ));
    }
    daemon.kill().await?;
    Ok(rows)
}
