//! The live directory's task: every few seconds it takes what the store
//! says (another daemon's or a person's change), and it probes the entries
//! that have a `health` URL, marking one unavailable after `down_after`
//! failures in a row and available again after `up_after` successes. Only
//! the leader probes, so daemons sharing a store do not contradict each
//! other; every daemon follows the store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::domain::directory::HealthProbe;
use crate::outbox::Leadership;
use crate::service::CrisisService;

/// How often the store's states are read again.
const FOLLOW_EVERY: Duration = Duration::from_secs(5);
/// How often the task looks for a probe that is due.
const TICK: Duration = Duration::from_millis(200);
/// Who the audit trail names for a probe's change.
const PROBE_ACTOR: &str = "probe";

/// One entry's probe record: when it is next due and its run of results.
#[derive(Debug, Default)]
struct ProbeState {
    next_at: Option<Instant>,
    failures: u32,
    successes: u32,
}

pub(super) async fn watch(
    service: Arc<CrisisService>,
    leadership: Leadership,
    stop: CancellationToken,
) {
    let client = match reqwest::Client::builder()
        .user_agent(concat!(
            "crisisd/",
            env!("CARGO_PKG_VERSION"),
            " directory-probe"
        ))
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
    {
        Ok(client) => client,
        Err(err) => {
            warn!(error = %err, "Cannot build the directory probe's HTTP client; not probing.");
            return;
        }
    };
    let mut probes: HashMap<String, ProbeState> = HashMap::new();
    let mut followed = Instant::now();
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if followed.elapsed() >= FOLLOW_EVERY {
            followed = Instant::now();
            if let Err(err) = service.refresh_availability().await {
                warn!(error = %err, "Cannot read the directory's availability from the store.");
            }
        }
        if leadership.is_leading() {
            probe_due(&service, &client, &mut probes, &stop).await;
        }
    }
}

/// Probes every entry whose probe is due, one after another (each within
/// its own timeout), and records what changes.
async fn probe_due(
    service: &CrisisService,
    client: &reqwest::Client,
    probes: &mut HashMap<String, ProbeState>,
    stop: &CancellationToken,
) {
    let entries: Vec<(String, HealthProbe)> = service
        .directory_entries()
        .into_iter()
        .filter_map(|e| e.health.map(|h| (e.id, h)))
        .collect();
    probes.retain(|id, _| entries.iter().any(|(e, _)| e == id));
    for (id, probe) in entries {
        let state = probes.entry(id.clone()).or_default();
        if state.next_at.is_some_and(|at| at > Instant::now()) {
            continue;
        }
        state.next_at = Some(Instant::now() + probe.interval);
        let outcome = tokio::select! {
            () = stop.cancelled() => return,
            outcome = check(client, &probe) => outcome,
        };
        let verdict = match outcome {
            Ok(()) => {
                state.failures = 0;
                state.successes += 1;
                (state.successes >= probe.up_after).then_some((true, None))
            }
            Err(why) => {
                state.successes = 0;
                state.failures += 1;
                (state.failures >= probe.down_after).then_some((false, Some(why)))
            }
        };
        let Some((available, reason)) = verdict else {
            continue;
        };
        if service.entry_available(&id) == available {
            continue;
        }
        match service
            .set_availability(&id, available, reason.clone(), PROBE_ACTOR.to_owned())
            .await
        {
            Ok(_) => {
                info!(entry = %id, available, reason = ?reason, "Directory entry marked by its health probe.")
            }
            Err(err) => {
                warn!(entry = %id, error = %err, "Cannot record the directory probe's verdict.")
            }
        }
    }
}

/// One probe: a 2xx answer within the timeout.
async fn check(client: &reqwest::Client, probe: &HealthProbe) -> Result<(), String> {
    let answer = client
        .get(&probe.url)
        .timeout(probe.timeout)
        .send()
        .await
        .map_err(|err| {
            if err.is_timeout() {
                format!("health probe: no answer within {:?}", probe.timeout)
            } else {
                "health probe: cannot connect".to_owned()
            }
        })?;
    let status = answer.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("health probe answered {status}"))
    }
}
