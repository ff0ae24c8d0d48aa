//! The dispatcher: one worker per channel claims due deliveries with a
//! lease, sends them within the channel's concurrency, and records each
//! outcome as sent, retry-at or dead.

mod gate;
mod retry;

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

pub use gate::{Admission, Gate, Tripped};
pub use retry::RetryPolicy;

use crate::channels::{Channel, DeliveryError, RateLimit};
use crate::clock::Clock;
use crate::config::DispatchSettings;
use crate::domain::DeliveryId;
use crate::liveness::{Heartbeat, Liveness};
use crate::outbox::{DeadCause, Delivery, DeliveryQueue, Outcome, SharedFlow, StoreError};
use crate::plan::UnsubscribeLinks;
use crate::sync::lock;

pub struct Dispatcher {
    /// Also wakes the workers when new deliveries are written, so the first
    /// email of a crisis does not wait for the next poll.
    queue: Arc<dyn DeliveryQueue>,
    channels: Vec<Arc<dyn Channel>>,
    settings: DispatchSettings,
    clock: Arc<dyn Clock>,
    owner: String,
    rate_limits: std::collections::BTreeMap<String, RateLimit>,
    liveness: Liveness,
    /// Rate limits and pauses shared with other daemons on the store.
    flow: Option<SharedFlow>,
    /// Signs each email's answer links (`[consent]`).
    answer_links: Option<Arc<UnsubscribeLinks>>,
}

impl Dispatcher {
    pub fn new(
        queue: Arc<dyn DeliveryQueue>,
        channels: Vec<Arc<dyn Channel>>,
        settings: DispatchSettings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            queue,
            channels,
            settings,
            clock,
            // Unique per process start, so a restarted daemon never mistakes
            // a dead process's leases for its own; the node first, so
            // `crisisd status` says which daemon holds them.
            owner: format!("{}/{}", crate::outbox::node_name(), uuid::Uuid::new_v4()),
            rate_limits: Default::default(),
            liveness: Liveness::default(),
            flow: None,
            answer_links: None,
        }
    }

    /// Where emails' answer links point and how they are signed; without
    /// it, a message that asks a question carries no links.
    pub fn with_answer_links(mut self, links: Option<UnsubscribeLinks>) -> Self {
        self.answer_links = links.map(Arc::new);
        self
    }

    /// Where each channel worker's loop reports its progress, for the
    /// systemd watchdog.
    pub fn with_liveness(mut self, liveness: Liveness) -> Self {
        self.liveness = liveness;
        self
    }

    /// Per-channel rate limits, by channel name.
    pub fn with_rate_limits(
        mut self,
        limits: std::collections::BTreeMap<String, RateLimit>,
    ) -> Self {
        self.rate_limits = limits;
        self
    }

    /// Shares each channel's rate limit and pauses with the other daemons
    /// on the store (`None`: this daemon's alone).
    pub fn with_shared_flow(mut self, flow: Option<SharedFlow>) -> Self {
        self.flow = flow;
        self
    }

    /// The flow control of `channel`: its own, or shared.
    fn gate(&self, channel: &str) -> Gate {
        let rate = self.rate_limits.get(channel).copied();
        let gate = Gate::new(rate, &self.settings);
        match &self.flow {
            Some(flow) => gate.shared(flow.clone(), channel, rate, self.clock.clone()),
            None => gate,
        }
    }

    /// Runs until `shutdown`, then drains: in-flight sends get
    /// `drain_timeout` to finish; the rest are released for the next start.
    pub async fn run(self, shutdown: CancellationToken) {
        let known: Vec<String> = self.channels.iter().map(|c| c.name().to_owned()).collect();
        match self.queue.kill_unroutable(&known, self.clock.now()).await {
            Ok(0) => {}
            Ok(n) => error!(
                count = n,
                "Deliveries for channels that are no longer configured are dead."
            ),
            Err(err) => {
                warn!(error = %err, "Could not check for deliveries to unconfigured channels.")
            }
        }
        let (recorder, recording) =
            Recorder::start(self.queue.clone(), self.owner.clone(), self.clock.clone());
        let mut workers = JoinSet::new();
        for channel in &self.channels {
            let rate = self.rate_limits.get(channel.name()).copied();
            // A turn of the loop takes at most a poll, a claim or probe
            // (bounded by the lease) and a wait for the rate limit; the
            // margin is for a busy machine.
            let allowance = self.settings.poll_interval
                + self.settings.lease * 2
                + rate.map_or(Duration::ZERO, |r| {
                    Duration::from_secs_f64(1.0 / r.per_second)
                })
                + Duration::from_secs(60);
            let worker = ChannelWorker {
                heartbeat: self
                    .liveness
                    .register(format!("dispatcher:{}", channel.name()), allowance),
                gate: self.gate(channel.name()),
                recorder: recorder.clone(),
                channel: channel.clone(),
                queue: self.queue.clone(),
                policy: RetryPolicy::from(&self.settings),
                lease: self.settings.lease,
                poll_interval: self.settings.poll_interval,
                drain_timeout: self.settings.drain_timeout,
                clock: self.clock.clone(),
                owner: self.owner.clone(),
                answer_links: self.answer_links.clone(),
            };
            workers.spawn(worker.run(shutdown.clone()));
        }
        drop(recorder);
        while let Some(result) = workers.join_next().await {
            if let Err(err) = result {
                error!(error = %err, "A channel worker ended abnormally.");
            }
        }
        // Every worker is done: the recorder writes what is left and ends.
        if let Err(err) = recording.await {
            error!(error = %err, "The outcome recorder ended abnormally.");
        }
    }
}

/// A claim running in its own task.
type Claim = JoinHandle<Result<Vec<Delivery>, StoreError>>;

struct ChannelWorker {
    heartbeat: Heartbeat,
    channel: Arc<dyn Channel>,
    gate: Gate,
    recorder: Recorder,
    queue: Arc<dyn DeliveryQueue>,
    policy: RetryPolicy,
    lease: Duration,
    poll_interval: Duration,
    drain_timeout: Duration,
    clock: Arc<dyn Clock>,
    owner: String,
    answer_links: Option<Arc<UnsubscribeLinks>>,
}

/// A worker's sending state, carried from one turn of its loop to the next.
struct Slots {
    /// One permit per delivery that may be in flight.
    permits: Arc<Semaphore>,
    /// Claimed deliveries waiting for a slot. A claim is a transaction;
    /// made one claim ahead of the sends, and in its own task, it neither
    /// waits for slots to free up nor leaves freed slots idle while it runs.
    ready: VecDeque<Delivery>,
    /// The claim running, and how many it asked for.
    claiming: Option<(Claim, usize)>,
    /// Whether the outbox may hold more for this channel: after a wake, a
    /// poll, or a claim that came back full.
    more_waiting: bool,
    in_flight: Arc<Mutex<HashSet<DeliveryId>>>,
    sends: JoinSet<()>,
    /// How many to claim at a time when the channel has no rate limit.
    claim_size: usize,
    /// A rate-limited channel claims no more than it may send at once (its
    /// burst), so no lease is held waiting for the rate.
    rate_limited: bool,
}

/// What the gate lets a turn of the loop do.
enum Turn {
    Send,
    Again,
    Stop,
}

impl Slots {
    fn new(worker: &ChannelWorker) -> Self {
        let concurrency = worker.channel.concurrency();
        let burst = worker.gate.batch(usize::MAX);
        let rate_limited = burst < usize::MAX;
        Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            ready: VecDeque::new(),
            claiming: None,
            more_waiting: true,
            in_flight: Arc::default(),
            sends: JoinSet::new(),
            claim_size: if rate_limited {
                burst.min(concurrency).max(1)
            } else {
                (concurrency / 2).max(1)
            },
            rate_limited,
        }
    }
}

impl ChannelWorker {
    /// Fills in where an email's answer links start: a token over the
    /// delivery's id, so nothing per reader is stored for it. Every email
    /// reader's gets one (an HMAC), whether the message asks or not.
    fn sign_answer_links(&self, delivery: &mut Delivery) {
        let (Some(links), Some(personal)) = (&self.answer_links, &mut delivery.personal) else {
            return;
        };
        if matches!(*delivery.content, crate::message::DeliveryContent::Email(_)) {
            personal.answer_url = Some(links.answer_url(delivery.id));
        }
    }

    async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let mut slots = Slots::new(&this);
        debug!(channel = %this.channel.name(), "Channel worker started.");
        loop {
            this.heartbeat.beat();
            // Registered before claiming, so a wake between the claim and the
            // wait is not lost.
            let notified = this.queue.work_due().notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match this.admit(&mut slots, &shutdown).await {
                Turn::Send => {}
                Turn::Again => continue,
                Turn::Stop => break,
            }
            this.fill_slots(&mut slots, &shutdown).await;
            while slots.sends.try_join_next().is_some() {}
            this.claim_ahead(&mut slots, &shutdown);
            if !this.wait(&mut slots, notified, &shutdown).await {
                break;
            }
        }
        // A claim still running: what it took goes back unsent.
        if let Some((claim, _)) = slots.claiming.take()
            && let Ok(Ok(batch)) = claim.await
        {
            slots.ready.extend(batch);
        }
        this.release(&mut slots.ready).await;
        this.drain(slots.sends, slots.in_flight).await;
    }

    /// Asks the gate: sending, or paused by the provider (until then), or
    /// a probe of the channel after the breaker opened.
    async fn admit(&self, slots: &mut Slots, shutdown: &CancellationToken) -> Turn {
        match self.gate.admission() {
            Admission::Open => Turn::Send,
            Admission::PausedUntil(until) => {
                // Handed back unsent, with their attempts.
                self.release(&mut slots.ready).await;
                self.heartbeat.quiet_until(until);
                tokio::select! {
                    _ = shutdown.cancelled() => return Turn::Stop,
                    _ = tokio::time::sleep_until(until) => {}
                    Some(_) = slots.sends.join_next(), if !slots.sends.is_empty() => {}
                }
                Turn::Again
            }
            Admission::Probe => {
                self.release(&mut slots.ready).await;
                self.probe().await;
                Turn::Again
            }
        }
    }

    /// Every free slot gets a claimed delivery, after the rate limit; a
    /// stop or a pause asked for meanwhile hands the rest back.
    async fn fill_slots(self: &Arc<Self>, slots: &mut Slots, shutdown: &CancellationToken) {
        while !slots.ready.is_empty() && slots.permits.available_permits() > 0 {
            let go = tokio::select! {
                _ = shutdown.cancelled() => false,
                _ = self.gate.permit(slots.ready.len()) => !self.gate.is_paused(),
            };
            self.heartbeat.beat();
            let (Some(permit), Some(mut delivery)) = (
                go.then(|| slots.permits.clone().try_acquire_owned().ok())
                    .flatten(),
                slots.ready.pop_front(),
            ) else {
                self.release(&mut slots.ready).await;
                break;
            };
            lock(&slots.in_flight).insert(delivery.id);
            self.sign_answer_links(&mut delivery);
            let (worker, in_flight) = (self.clone(), slots.in_flight.clone());
            // Every line about this delivery, the channel's own included,
            // carries its ids.
            let span = info_span!(
                "delivery",
                crisis_id = %delivery.crisis_id,
                channel = %self.channel.name(),
                delivery_id = %delivery.id,
            );
            slots.sends.spawn(async move {
                let id = delivery.id;
                worker.deliver(delivery).instrument(span).await;
                lock(&in_flight).remove(&id);
                drop(permit);
            });
        }
    }

    /// Starts the next claim while the sends run, when the outbox may hold
    /// more and there is room for it.
    fn claim_ahead(self: &Arc<Self>, slots: &mut Slots, shutdown: &CancellationToken) {
        let wanted = if slots.rate_limited {
            if slots.ready.is_empty() {
                self.gate.batch(slots.permits.available_permits())
            } else {
                0
            }
        } else {
            slots.claim_size.saturating_sub(slots.ready.len())
        };
        if slots.claiming.is_some() || !slots.more_waiting || wanted == 0 || shutdown.is_cancelled()
        {
            return;
        }
        let (worker, limit) = (self.clone(), u32::try_from(wanted).unwrap_or(u32::MAX));
        let claim = tokio::spawn(async move {
            let now = worker.clock.now();
            worker
                .queue
                .claim(
                    worker.channel.name(),
                    &worker.owner,
                    now,
                    worker.lease,
                    limit,
                )
                .await
        });
        slots.claiming = Some((claim, wanted));
        // Known again when the claim answers.
        slots.more_waiting = false;
    }

    /// Waits for the first of: the claim, a wake, a send finishing, the
    /// poll interval. False when the worker is to stop.
    async fn wait(
        &self,
        slots: &mut Slots,
        notified: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>,
        shutdown: &CancellationToken,
    ) -> bool {
        let claim_running = slots.claiming.is_some();
        let claim_done = async {
            match slots.claiming.as_mut() {
                Some((claim, _)) => claim.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            claimed = claim_done, if claim_running => {
                let asked = slots.claiming.take().map_or(0, |(_, asked)| asked);
                self.claimed(slots, claimed, asked);
            }
            _ = notified => slots.more_waiting = true,
            Some(_) = slots.sends.join_next(), if !slots.sends.is_empty() => {}
            _ = tokio::time::sleep(self.poll_interval) => slots.more_waiting = true,
        }
        true
    }

    /// Takes a claim's answer: its deliveries wait for slots; a full batch
    /// means more may be waiting.
    fn claimed(
        &self,
        slots: &mut Slots,
        claimed: Result<Result<Vec<Delivery>, StoreError>, tokio::task::JoinError>,
        asked: usize,
    ) {
        let name = self.channel.name();
        match claimed {
            Ok(Ok(batch)) => {
                slots.more_waiting = batch.len() >= asked;
                slots.ready.extend(batch);
            }
            Ok(Err(err)) => {
                warn!(channel = %name, error = %err, "Could not claim deliveries; will try again.");
            }
            Err(err) => {
                error!(channel = %name, error = %err, "A claim ended abnormally; its leases expire on their own.");
            }
        }
    }

    /// Hands claimed but unsent deliveries back, with their attempts.
    async fn release(&self, ready: &mut VecDeque<Delivery>) {
        let unsent: Vec<DeliveryId> = ready.drain(..).map(|d| d.id).collect();
        self.release_ids(&unsent).await;
    }

    /// Gives leases back, with their attempts; a failure only means they
    /// expire on their own.
    async fn release_ids(&self, ids: &[DeliveryId]) {
        if ids.is_empty() {
            return;
        }
        if let Err(err) = self.queue.release(ids, &self.owner).await {
            warn!(channel = %self.channel.name(), error = %err, "Could not release leases; they expire on their own.");
        }
    }

    async fn drain(&self, mut sends: JoinSet<()>, in_flight: Arc<Mutex<HashSet<DeliveryId>>>) {
        let name = self.channel.name();
        let drained = tokio::time::timeout(self.drain_timeout, async {
            while sends.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            sends.abort_all();
            while sends.join_next().await.is_some() {}
            let unfinished: Vec<DeliveryId> = lock(&in_flight).drain().collect();
            warn!(
                channel = %name,
                count = unfinished.len(),
                "Sends still running at the drain deadline were abandoned; they are released for the next start."
            );
            self.release_ids(&unfinished).await;
        }
        info!(channel = %name, "Channel worker stopped.");
    }

    /// After the breaker's cooldown: a passing healthcheck lets the channel
    /// send again; a failing one pauses it longer.
    async fn probe(&self) {
        let name = self.channel.name();
        let healthy = match tokio::time::timeout(self.lease, self.channel.healthcheck()).await {
            Ok(Ok(())) => true,
            Ok(Err(err)) => {
                warn!(channel = %name, error = %err, "Channel healthcheck failed; it stays paused.");
                false
            }
            Err(_) => {
                warn!(channel = %name, "Channel healthcheck did not answer; it stays paused.");
                false
            }
        };
        match self.gate.probe_result(healthy) {
            None => info!(channel = %name, "Channel healthcheck passed; sending again."),
            Some(pause) => {
                warn!(
                    channel = %name,
                    pause = %humantime::format_duration(pause),
                    "Channel still failing; paused again."
                );
                self.gate.share_pause(pause).await;
            }
        }
    }

    async fn deliver(&self, delivery: Delivery) {
        let name = self.channel.name();
        // A send must finish well inside its lease, or another worker could
        // take it over while it is still going.
        let send_timeout = self.lease.mul_f32(0.8);
        let outcome = match tokio::time::timeout(send_timeout, self.channel.send(&delivery)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(DeliveryError::transient(format!(
                "send did not finish within {}",
                humantime::format_duration(send_timeout)
            ))),
        };
        crate::telemetry::provider_answered(name, &outcome);
        let now = self.clock.now();
        let (crisis_id, delivery_id, attempt) =
            (delivery.crisis_id, delivery.id, delivery.attempts);
        // What the outcome says about the channel as a whole.
        match &outcome {
            Ok(_) | Err(DeliveryError::Permanent { .. }) => self.gate.record_success(),
            Err(DeliveryError::Transient {
                retry_after: Some(wait),
                ..
            }) => {
                self.gate.pause_for(*wait);
                self.gate.share_pause(*wait).await;
                warn!(channel = %name, pause = %humantime::format_duration(*wait), "Provider asked the channel to wait; pausing it.");
            }
            Err(DeliveryError::Transient {
                retry_after: None, ..
            }) => {
                if let Tripped::Yes(pause) = self.gate.record_failure() {
                    self.gate.share_pause(pause).await;
                    warn!(
                        channel = %name,
                        pause = %humantime::format_duration(pause),
                        "Channel keeps failing; pausing it and probing it with its healthcheck (circuit breaker)."
                    );
                }
            }
        }
        let outcome = match outcome {
            Ok(receipt) => {
                debug!(%crisis_id, channel = %name, %delivery_id, "Delivery sent.");
                Outcome::Sent {
                    provider_ref: receipt.provider_ref,
                }
            }
            Err(DeliveryError::Permanent { reason }) => {
                error!(%crisis_id, channel = %name, %delivery_id, %reason, "Delivery is dead.");
                Outcome::Dead {
                    cause: DeadCause::Permanent,
                    reason,
                }
            }
            Err(DeliveryError::Transient {
                reason,
                retry_after,
            }) => {
                if attempt >= self.policy.max_attempts {
                    let reason = format!("gave up after {attempt} attempts; last error: {reason}");
                    error!(%crisis_id, channel = %name, %delivery_id, %reason, "Delivery is dead.");
                    Outcome::Dead {
                        cause: DeadCause::AttemptsExhausted,
                        reason,
                    }
                } else {
                    let delay = self.policy.delay(attempt, retry_after);
                    warn!(
                        %crisis_id, channel = %name, %delivery_id, attempt, %reason,
                        retry_in = %humantime::format_duration(delay),
                        "Delivery failed; will retry."
                    );
                    // The policy caps the delay, so this cannot overflow.
                    let at = chrono::Duration::from_std(delay)
                        .ok()
                        .and_then(|delay| now.checked_add_signed(delay))
                        .unwrap_or(now);
                    Outcome::Retry { at, error: reason }
                }
            }
        };
        crate::telemetry::delivery_finished(name, &outcome, delivery.created_at, now);
        self.recorder.record(delivery.id, outcome).await;
    }
}

/// Writes outcomes to the store in batches: one transaction for many
/// deliveries, which is what lets a durable ledger keep up with a fast
/// provider. A sender waits until its outcome is written, and keeps its
/// concurrency slot until then, so the deliveries a crash can repeat stay
/// bounded by the in-flight limit.
#[derive(Clone)]
struct Recorder {
    queue: mpsc::Sender<(DeliveryId, Outcome, oneshot::Sender<()>)>,
}

/// Outcomes written per transaction at most.
const RECORD_BATCH: usize = 512;

impl Recorder {
    fn start(
        store: Arc<dyn DeliveryQueue>,
        owner: String,
        clock: Arc<dyn Clock>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (queue, mut pending) =
            mpsc::channel::<(DeliveryId, Outcome, oneshot::Sender<()>)>(RECORD_BATCH * 4);
        let task = tokio::spawn(async move {
            // Ends when every worker has dropped its sender: after the drain.
            while let Some(first) = pending.recv().await {
                let mut batch = vec![first];
                while batch.len() < RECORD_BATCH {
                    match pending.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let outcomes: Vec<(DeliveryId, Outcome)> = batch
                    .iter()
                    .map(|(id, outcome, _)| (*id, outcome.clone()))
                    .collect();
                if let Err(err) = store.record_outcomes(&owner, clock.now(), &outcomes).await {
                    // The leases expire and the deliveries are tried again:
                    // at least once, never lost.
                    warn!(count = outcomes.len(), error = %err, "Could not record outcomes; their leases will expire and they are retried.");
                }
                for (_, _, done) in batch {
                    let _ = done.send(());
                }
            }
        });
        (Self { queue }, task)
    }

    async fn record(&self, id: DeliveryId, outcome: Outcome) {
        let (done, written) = oneshot::channel();
        if self.queue.send((id, outcome, done)).await.is_ok() {
            let _ = written.await;
        }
    }
}
