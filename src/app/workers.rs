//! What the daemon runs on between reloads, and the generation of
//! background work a reload replaces.

use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::error;

use crate::channels::Channel;
use crate::clock::Clock;
use crate::config::Settings;
use crate::dispatch::Dispatcher;
use crate::health::{self, Health};
use crate::intake::flag_file::FlagFileWatcher;
use crate::lifecycle::Notifier;
use crate::liveness::Liveness;
use crate::outbox::{SharedFlow, Storage};
use crate::plan::UnsubscribeLinks;
use crate::service::CrisisService;

/// What the daemon runs on, kept between reloads.
pub(super) struct Runtime {
    pub(super) settings: Settings,
    pub(super) storage: Storage,
    pub(super) clock: Arc<dyn Clock>,
    /// The channels the dispatcher serves: the configured ones, and removed
    /// ones that still have deliveries to finish.
    pub(super) channels: Vec<Arc<dyn Channel>>,
    pub(super) health: Arc<Health>,
    pub(super) liveness: Liveness,
    pub(super) notifier: Notifier,
    /// The fan-out runtime's handle: the dispatcher runs there.
    pub(super) fanout: tokio::runtime::Handle,
    /// Rate limits and pauses shared with the other daemons (PostgreSQL).
    pub(super) flow: Option<SharedFlow>,
}

/// One generation of background work, replaced on reload: the dispatcher,
/// the flag file watcher and the channel health monitor.
pub(super) struct Workers {
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Workers {
    /// `answer_links`: where emails' answer links point (the `[consent]`
    /// key signs them), from the plan inputs of this generation.
    pub(super) fn start(
        runtime: &Runtime,
        service: &Arc<CrisisService>,
        answer_links: Option<UnsubscribeLinks>,
        shutdown: &CancellationToken,
    ) -> Self {
        let stop = shutdown.child_token();
        let mut tasks = JoinSet::new();
        let settings = &runtime.settings;
        let dispatcher = Dispatcher::new(
            runtime.storage.queue.clone(),
            runtime.channels.clone(),
            settings.dispatch.clone(),
            runtime.clock.clone(),
        )
        // Checked by prepare().
        .with_rate_limits(settings.channels.rate_limits().unwrap_or_default())
        .with_liveness(runtime.liveness.clone())
        .with_shared_flow(runtime.flow.clone())
        .with_answer_links(answer_links);
        tasks.spawn_on(dispatcher.run(stop.clone()), &runtime.fanout);
        if let Some(flag) = &settings.flag_file {
            let watcher = FlagFileWatcher::new(flag.clone(), service.clone(), &runtime.storage);
            tasks.spawn(watcher.run(stop.clone()));
        }
        tasks.spawn(health::monitor(
            runtime.health.clone(),
            runtime.channels.clone(),
            runtime.clock.clone(),
            settings.health.check_interval,
            stop.clone(),
        ));
        Self { stop, tasks }
    }

    /// Stops this generation: in-flight sends finish or are released, as
    /// at a stop.
    pub(super) async fn stop(mut self) {
        self.stop.cancel();
        while let Some(result) = self.tasks.join_next().await {
            if let Err(err) = result {
                error!(error = %err, "A background task ended abnormally.");
            }
        }
    }
}
