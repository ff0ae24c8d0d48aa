//! The `smtp-source` scenario: how close the email fan-out comes to the
//! wire's limit on this machine. Postfix's own load generator,
//! `smtp-source`, and the crisisd fan-out take turns against one Postfix
//! `smtp-sink`, so both rates are measured side by side in one run and
//! their ratio is the figure (issue 18), not either rate alone.
//!
//! `smtp-source` runs over `-s 16` parallel sessions that stay connected
//! (`-d`), as crisisd's pool does, twice a round: with its default
//! payload (a few header lines, as issue 18's 0.22 was measured, and the
//! ratio its target judges) and with messages of the mean size crisisd's
//! messages have (measured first against the bench's own sink): the
//! like-for-like limit of the wire.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::daemon::{Daemon, SmtpTarget, Spec, free_port};
use crate::report::{Row, grouped};
use crate::smtp_sink::SmtpSink;
use crate::{Bench, scenarios};

/// `smtp-source -s`: the parallel sessions issue 18 compares against.
const SESSIONS: usize = 16;
/// Turns of each side; the medians are compared.
const ROUNDS: usize = 3;
/// Audience of the run that measures crisisd's mean message size.
const SIZING_RECIPIENTS: usize = 300;

/// Postfix's `smtp-sink`, killed on drop.
struct PostfixSink {
    _child: Child,
    port: u16,
}

impl PostfixSink {
    async fn start() -> anyhow::Result<Self> {
        let program = postfix_tool("smtp-sink")?;
        let port = free_port()?;
        let mut command = Command::new(program);
        // As root smtp-sink refuses to run without a user to switch to.
        if is_root() {
            command.args(["-u", "nobody"]);
        }
        let child = command
            .arg(format!("127.0.0.1:{port}"))
            // The listen backlog: as many as both sides ever open at once.
            .arg("1024")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting smtp-sink")?;
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if started.elapsed() > Duration::from_secs(5) {
                bail!("smtp-sink did not listen on 127.0.0.1:{port} within 5 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Self {
            _child: child,
            port,
        })
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Postfix's test tools live in /usr/sbin, which a user's PATH may lack.
fn postfix_tool(name: &str) -> anyhow::Result<PathBuf> {
    let dirs = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&dirs)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .with_context(|| format!("no `{name}` found: install Postfix (apt-get install postfix)"))
}

/// One `smtp-source` run of `messages` messages of `payload` bytes (its
/// default when `None`); the messages per second it reached.
async fn smtp_source(port: u16, messages: usize, payload: Option<u64>) -> anyhow::Result<f64> {
    let program = postfix_tool("smtp-source")?;
    let mut command = Command::new(program);
    command
        .args(["-s", &SESSIONS.to_string(), "-d"])
        .args(["-m", &messages.to_string()]);
    if let Some(bytes) = payload {
        command.args(["-l", &bytes.to_string()]);
    }
    let started = Instant::now();
    let status = command
        .args(["-f", "bench@example.com", "-t", "reader@example.com"])
        .arg(format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .context("running smtp-source")?;
    let elapsed = started.elapsed();
    if !status.success() {
        bail!("smtp-source failed ({status})");
    }
    Ok(messages as f64 / elapsed.as_secs_f64())
}

/// The mean size of a crisisd message in this bench's audience (mixed
/// languages), from a small fan-out into the bench's own sink.
async fn crisisd_message_size(bench: &Bench) -> anyhow::Result<u64> {
    let sink = SmtpSink::start().await?;
    let spec = email_spec(
        SmtpTarget {
            host: "127.0.0.1".to_owned(),
            port: sink.addr.port(),
        },
        SIZING_RECIPIENTS,
    );
    let mut daemon = Daemon::prepare("smtp-source-size", bench, &spec)?;
    daemon.start().await?;
    let deadline = bench.deadline_for(SIZING_RECIPIENTS);
    let id = daemon.declare("Fan-out benchmark", deadline).await?;
    let started = Instant::now();
    while sink.stats.accepted() < SIZING_RECIPIENTS as u64 {
        if started.elapsed() > deadline {
            bail!("sizing: {}", daemon.explain(&id).await);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    daemon.kill().await?;
    sink.stats
        .mean_bytes()
        .context("the sink measured no message")
}

fn email_spec(target: SmtpTarget, recipients: usize) -> Spec {
    Spec {
        email: Some(target),
        sms: None,
        recipients,
        lease: "30s",
    }
}

/// One crisisd fan-out of `n` into smtp-sink: declare → the API shows all
/// sent (smtp-sink cannot tell the bench what it accepted).
async fn crisisd_fan_out(bench: &Bench, port: u16, n: usize) -> anyhow::Result<f64> {
    let target = SmtpTarget {
        host: "127.0.0.1".to_owned(),
        port,
    };
    let mut daemon = Daemon::prepare("smtp-source", bench, &email_spec(target, n))?;
    daemon.start().await?;
    let deadline = bench.deadline_for(n);
    let t0 = Instant::now();
    let id = daemon.declare("Fan-out benchmark", deadline).await?;
    let (at, counts) = scenarios::wait_all_sent(&daemon, &id, n, deadline).await?;
    daemon.kill().await?;
    if counts.sent < n as u64 {
        bail!("not all sent: {counts}");
    }
    Ok(n as f64 / at.saturating_duration_since(t0).as_secs_f64())
}

fn median(values: &[f64]) -> f64 {
    let mut values = values.to_vec();
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Messages per second of each side, one entry a round.
#[derive(Default)]
struct Rates {
    source_default: Vec<f64>,
    source_sized: Vec<f64>,
    crisisd: Vec<f64>,
}

async fn rounds(bench: &Bench, port: u16, n: usize, size: u64) -> anyhow::Result<Rates> {
    let mut rates = Rates::default();
    for round in 1..=ROUNDS {
        let plain = smtp_source(port, n, None).await?;
        let sized = smtp_source(port, n, Some(size)).await?;
        let crisisd = crisisd_fan_out(bench, port, n).await?;
        eprintln!(
            "  round {round}: smtp-source {}/s (default payload), {}/s ({size} bytes); crisisd {}/s",
            grouped(plain as i64),
            grouped(sized as i64),
            grouped(crisisd as i64)
        );
        rates.source_default.push(plain);
        rates.source_sized.push(sized);
        rates.crisisd.push(crisisd);
    }
    Ok(rates)
}

fn rate_row(figure: String, rate: f64) -> Row {
    Row::info(
        "smtp-source",
        format!("{figure}: messages/s (median of {ROUNDS})"),
        Some(rate),
        "/s",
        format!("{}/s", grouped(rate as i64)),
    )
}

pub async fn compare(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let n = bench.recipients.unwrap_or(100_000);
    let size = crisisd_message_size(bench).await?;
    eprintln!("  crisisd's messages average {size} bytes");
    let sink = PostfixSink::start().await?;
    let rates = rounds(bench, sink.port, n, size).await?;
    let crisisd = median(&rates.crisisd);
    let (plain, sized) = (median(&rates.source_default), median(&rates.source_sized));
    let messages = format!("{} messages into smtp-sink", grouped(n as i64));
    let source = format!("smtp-source -s {SESSIONS} -d -m {n}");
    Ok(vec![
        rate_row(format!("{source}, default payload, {messages}"), plain),
        rate_row(format!("{source} -l {size}, {messages}"), sized),
        rate_row(
            format!("crisisd fan-out of {messages} (mean {size} bytes): declare → all sent"),
            crisisd,
        ),
        Row::at_least(
            "smtp-source",
            "crisisd / smtp-source with its default payload (issue 18's measure)",
            crisisd / plain,
            0.5,
            "",
            format!("{:.2}", crisisd / plain),
        ),
        Row::info(
            "smtp-source",
            format!("crisisd / smtp-source with {size}-byte messages (like for like)"),
            Some(crisisd / sized),
            "",
            format!("{:.2}", crisisd / sized),
        ),
    ])
}
