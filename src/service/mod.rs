//! The crisis service applies transitions: it checks them, plans the
//! announcement, writes everything in one transaction (the store then
//! wakes the dispatcher), then lights the banner. It knows nothing of HTTP: flag sources
//! (the API, the flag file, webhooks) map its outcomes to their own
//! answers.

mod correction;
mod directory;
mod error;
mod fatigue;
mod follow_ups;
mod idempotency;
mod planning;
mod scheduler;
mod transition;

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use correction::{
    Corrected, CorrectionError, CorrectionOutcome, CorrectionRequest, MAX_CORRECTION_CHARS,
    RECENT_CORRECTION,
};
pub use directory::DirectoryEntryState;
pub use error::ServiceError;
pub use idempotency::{IdempotencyRequest, answer_status};
pub use planning::{PLAN_LEASE, PendingPlan, plan_lease};
pub use scheduler::Scheduler;
pub use transition::{Applied, SourceRef, Transition, TransitionContext, TransitionOutcome};

use crate::banner::Banner;
use crate::clock::Clock;
use crate::domain::follow_up::FollowUps;
use crate::outbox::Storage;
use crate::plan::{Planner, SharedInputs};
use crate::publish::Publisher;

/// `[crises] duplicate_window` when unset: a day.
pub const DEFAULT_DUPLICATE_WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

pub struct CrisisService {
    storage: Storage,
    /// What plans read; a reload swaps it, and each plan keeps the
    /// snapshot it started with.
    inputs: SharedInputs,
    banner: Arc<Banner>,
    clock: Arc<dyn Clock>,
    /// Plans in progress, owned here so a stop can wait for them.
    tasks: TaskTracker,
    /// Where plans run: the fan-out runtime, when there is one.
    fanout: Option<tokio::runtime::Handle>,
    stopping: CancellationToken,
    /// Follow-up plans, when configured.
    follow_ups: Option<Arc<FollowUps>>,
    /// Wakes the scheduler when a transition stored new follow-ups.
    schedule_wake: Arc<tokio::sync::Notify>,
    /// Plans waiting to be retried.
    pending_plans: Arc<planning::PendingPlans>,
    /// How recent an active crisis of the same kind and title must be for
    /// a new declaration to be refused as its duplicate; zero: never.
    duplicate_window: std::time::Duration,
    /// Told of every transition: the crisis page, feeds and mirror.
    publisher: Option<Arc<Publisher>>,
    /// `[fatigue] max_per_reader_per_hour`: non-critical announcements a
    /// reader may be sent in an hour; 0: no cap.
    reader_cap: u32,
    /// This daemon's name among those sharing the store: the owner of the
    /// plans it writes.
    node: String,
}

impl CrisisService {
    pub fn new(
        storage: Storage,
        inputs: SharedInputs,
        banner: Arc<Banner>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            storage,
            inputs,
            banner,
            clock,
            tasks: TaskTracker::new(),
            fanout: None,
            stopping: CancellationToken::new(),
            follow_ups: None,
            schedule_wake: Arc::default(),
            pending_plans: Arc::default(),
            duplicate_window: DEFAULT_DUPLICATE_WINDOW,
            publisher: None,
            reader_cap: 0,
            node: crate::outbox::node_name(),
        }
    }

    /// Announcements whose subscribers are not all planned yet because
    /// planning failed and is being retried (see `PendingPlans`).
    pub fn pending_plans(&self) -> Vec<PendingPlan> {
        self.pending_plans.list()
    }

    /// See `[crises] duplicate_window`.
    pub fn with_duplicate_window(mut self, window: std::time::Duration) -> Self {
        self.duplicate_window = window;
        self
    }

    /// Tells `publisher` of every transition once it is written.
    pub fn publish_with(mut self, publisher: Arc<Publisher>) -> Self {
        self.publisher = Some(publisher);
        self
    }

    /// Runs plans on `fanout` (see `crate::background`) rather than on the
    /// runtime of the request that caused them.
    pub fn plan_on(mut self, fanout: tokio::runtime::Handle) -> Self {
        self.fanout = Some(fanout);
        self
    }

    /// The store keeps milliseconds; so does every time this service hands
    /// out, so an answer reads the same before and after a restart.
    fn now(&self) -> DateTime<Utc> {
        self.clock.now().trunc_subsecs(3)
    }

    /// The follow-up plans and their resources, when configured.
    pub fn follow_ups(&self) -> Option<&Arc<FollowUps>> {
        self.follow_ups.as_ref()
    }

    /// A planner on the inputs as they are now.
    fn planner(&self) -> Planner {
        let planner = Planner::new(self.inputs.load_full());
        match &self.follow_ups {
            Some(follow_ups) => planner.with_follow_ups(follow_ups.clone()),
            None => planner,
        }
    }

    /// The token that stops planning at the next batch; cancelled as soon
    /// as the daemon is asked to stop.
    pub fn stopping(&self) -> CancellationToken {
        self.stopping.clone()
    }

    /// Stops planning at the next batch and waits for plans in progress.
    pub async fn stop(&self) {
        self.stopping.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}
