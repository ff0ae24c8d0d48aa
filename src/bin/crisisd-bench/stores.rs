//! The `stores` scenario: the email fan-out rate on SQLite, on PostgreSQL
//! with one daemon and with `--nodes` daemons sharing it, side by side in
//! one run, each setup `--rounds` times in turn (so a slow moment of the
//! machine falls on every setup alike); medians are reported.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::Bench;
use crate::daemon::{Daemon, Spec};
use crate::report::{Row, grouped};
use crate::scenarios::{LEASE, Progress, email_target, secs, wait_sink};

const SCENARIO: &str = "stores";

/// One setup: which store, how many daemons.
#[derive(Debug, Clone, Copy)]
struct Setup {
    postgres: bool,
    nodes: usize,
}

impl Setup {
    fn label(self) -> String {
        match (self.postgres, self.nodes) {
            (false, _) => "SQLite, 1 daemon".to_owned(),
            (true, 1) => "PostgreSQL, 1 daemon".to_owned(),
            (true, n) => format!("PostgreSQL, {n} daemons"),
        }
    }
}

pub async fn compare(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let n = bench.recipients.unwrap_or(20_000);
    let mut setups = vec![
        Setup {
            postgres: false,
            nodes: 1,
        },
        Setup {
            postgres: true,
            nodes: 1,
        },
    ];
    if bench.nodes > 1 {
        setups.push(Setup {
            postgres: true,
            nodes: bench.nodes,
        });
    }
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
    for round in 1..=bench.rounds {
        for (i, setup) in setups.iter().enumerate() {
            eprintln!("  round {round}: {}", setup.label());
            let rate = fan_out(bench, *setup, n).await?;
            eprintln!("    {rate:.0} emails/s");
            rates[i].push(rate);
        }
    }
    let medians: Vec<f64> = rates.iter().map(|r| median(r)).collect();
    let mut rows = Vec::new();
    let each = |rates: &[f64]| {
        rates
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let sqlite = medians[0];
    rows.push(Row::info(
        SCENARIO,
        format!("email fan-out rate, {} (median)", setups[0].label()),
        Some(sqlite),
        "/s",
        format!("{sqlite:.0}/s (rounds: {})", each(&rates[0])),
    ));
    let one = medians[1];
    rows.push(Row::at_least(
        SCENARIO,
        format!("email fan-out rate, {} (median)", setups[1].label()),
        one,
        (0.7 * sqlite).round(),
        "/s",
        format!(
            "{one:.0}/s = {:.2}× SQLite (rounds: {})",
            one / sqlite,
            each(&rates[1])
        ),
    ));
    if let (Some(setup), Some(&many)) = (setups.get(2), medians.get(2)) {
        rows.push(Row::at_least(
            SCENARIO,
            format!("email fan-out rate, {} (median)", setup.label()),
            many,
            one.round(),
            "/s",
            format!(
                "{many:.0}/s = {:.2}× one daemon (rounds: {})",
                many / one,
                each(&rates[2])
            ),
        ));
    }
    eprintln!("  {} recipients per run", grouped(n as i64));
    Ok(rows)
}

/// One fan-out of `n` emails on `setup`: declared on the first daemon,
/// timed until the sink accepted every one; emails per second.
async fn fan_out(bench: &Bench, setup: Setup, n: usize) -> anyhow::Result<f64> {
    let (sink, target) = email_target(bench).await?;
    let stats = sink
        .as_ref()
        .map(|s| std::sync::Arc::clone(&s.stats))
        .context("the stores scenario counts at its own SMTP sink (no --smtp)")?;
    let spec = Spec {
        email: Some(target),
        sms: None,
        recipients: n,
        lease: LEASE,
    };
    let store = bench.fresh_store(setup.postgres).await?;
    if setup.postgres && store.is_none() {
        bail!("no PostgreSQL cluster was started");
    }
    let mut daemons = Vec::new();
    for node in 0..setup.nodes {
        let label = format!("stores-{node}");
        let mut daemon = Daemon::prepare_on(&label, bench, &spec, store.as_deref())?;
        daemon.start().await?;
        daemons.push(daemon);
    }
    let deadline = bench.deadline_for(n);
    let first = &daemons[0];
    let t0 = Instant::now();
    let id = first.declare("Stores benchmark", deadline).await?;
    eprintln!("    declared (answered in {})", secs(t0.elapsed()));
    let mut progress = Progress::new(format!("{}: accepted", setup.label()), n as u64);
    let done = wait_sink(first, &id, &stats, n as u64, deadline, &mut progress).await?;
    let took = done
        .saturating_duration_since(t0)
        .max(Duration::from_millis(1));
    for daemon in &mut daemons {
        daemon.kill().await?;
    }
    Ok(n as f64 / took.as_secs_f64())
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        len if len % 2 == 1 => sorted[len / 2],
        len => (sorted[len / 2 - 1] + sorted[len / 2]) / 2.0,
    }
}
