//! The scheduler: one task that sends follow-ups when they fall due, woken
//! by new schedules and otherwise sleeping until the next one (at most
//! `poll_interval`, so a clock set forward in tests is noticed).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::error;

use crate::clock::Clock;
use crate::liveness::Liveness;
use crate::outbox::Leadership;
use crate::service::{CrisisService, ServiceError};

/// Shortest sleep between rounds, so a follow-up that stays due (its
/// store write keeps failing) does not spin.
const MIN_WAIT: Duration = Duration::from_millis(20);

pub struct Scheduler {
    service: Arc<CrisisService>,
    clock: Arc<dyn Clock>,
    poll_interval: Duration,
    liveness: Option<Liveness>,
    /// Only the leader among daemons sharing a store sends follow-ups.
    leadership: Leadership,
}

/// Beyond two polls, how long a round may take before the watchdog calls
/// the scheduler stalled (a round writes a few rows; plans run elsewhere).
const ROUND_MARGIN: Duration = Duration::from_secs(120);

impl Scheduler {
    pub fn new(
        service: Arc<CrisisService>,
        clock: Arc<dyn Clock>,
        poll_interval: Duration,
    ) -> Self {
        Self {
            service,
            clock,
            poll_interval,
            liveness: None,
            leadership: Leadership::alone(),
        }
    }

    /// Sends follow-ups only while `leadership` says this daemon leads.
    pub fn with_leadership(mut self, leadership: Leadership) -> Self {
        self.leadership = leadership;
        self
    }

    /// Beats a heartbeat every round, for the systemd watchdog.
    pub fn with_liveness(mut self, liveness: Liveness) -> Self {
        self.liveness = Some(liveness);
        self
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let wake = self.service.schedule_wake();
        // Registered here, not when built: the resume that runs first may
        // take as long as a whole plan.
        let heartbeat = self
            .liveness
            .as_ref()
            .map(|l| l.register("scheduler", self.poll_interval * 2 + ROUND_MARGIN));
        loop {
            if let Some(heartbeat) = &heartbeat {
                heartbeat.beat();
            }
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.leadership.is_leading() {
                // Another daemon sends them; look again after a poll.
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(self.poll_interval) => {}
                }
                continue;
            }
            let wait = match self.service.send_due_follow_ups().await {
                Ok(Some(next)) => (next - self.clock.now())
                    .to_std()
                    .unwrap_or_default()
                    .min(self.poll_interval),
                Ok(None) => self.poll_interval,
                Err(ServiceError::Stopping) => break,
                Err(err) => {
                    error!(error = %err, "Could not send due follow-ups; trying again.");
                    self.poll_interval
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(wait.max(MIN_WAIT)) => {}
                () = &mut notified => {}
            }
        }
    }
}
