//! Running until stopped: the background tasks, the server, reloads as
//! they are asked for, and the ordered drain at the end.

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use super::supervise::{status_line, supervise};
use super::workers::{Runtime, Workers};
use super::{Application, StartupError};
use crate::http::AppState;
use crate::http::listener::ConnectionLimits;
use crate::lifecycle::ReloadRequest;
use crate::outbox::{Leadership, UnfinishedPlan};
use crate::service::{Scheduler, ServiceError};

impl Application {
    /// Serves until `shutdown` is cancelled, then stops taking requests,
    /// drains the dispatcher and returns.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), StartupError> {
        let addr = self.local_addr();
        let Self {
            listener,
            metrics_listener,
            state,
            router,
            mut runtime,
            unfinished,
            events,
            leadership,
            scheduler,
            mirror,
            mut reloads,
            reloader: _,
            // Kept to the end: the dispatcher and plans run on it.
            fanout: _fanout,
        } = self;
        let workers = Workers::start(
            &runtime,
            &state.service,
            state.inputs.load().unsubscribe.clone(),
            &shutdown,
        );
        let mut tasks = background(&state, unfinished, scheduler, &leadership, &shutdown);
        if let Some(mirror) = mirror {
            tasks.spawn(mirror.run(shutdown.clone()));
        }
        upkeep(&mut tasks, &state, &runtime, &leadership, &shutdown);
        if let Some(events) = events {
            shared_store(&mut tasks, events, &state, &leadership, &runtime, &shutdown);
        }
        let limits = connection_limits(&runtime.settings.server);
        let every = runtime.settings.metrics.refresh_interval;
        metrics(
            &mut tasks,
            metrics_listener,
            &state,
            every,
            limits,
            &shutdown,
        );
        // The listener is bound and accepts from here on.
        runtime.health.set_serving(true);
        let server = tokio::spawn(crate::http::listener::serve(
            listener,
            router,
            limits,
            shutdown.clone(),
        ));
        let status = status_line(&state, runtime.storage.ledger.as_ref()).await;
        runtime.notifier.ready(&status);
        info!(%addr, active_crises = state.banner.active_count(), "crisisd is ready.");
        // Watched until the very end, drain included: systemd's watchdog
        // keeps running while the service stops.
        let supervision = CancellationToken::new();
        let supervisor = tokio::spawn(supervise(
            runtime.storage.ledger.clone(),
            state.banner.clone(),
            runtime.liveness.clone(),
            runtime.notifier,
            supervision.clone(),
        ));
        let (served, workers) = runtime
            .serve(server, &mut reloads, &state, workers, &shutdown)
            .await;
        runtime.health.set_serving(false);
        // The server only returns early on failure: stop the rest too.
        shutdown.cancel();
        // Plans stop at their next batch and resume at the next start.
        state.service.stop().await;
        workers.stop().await;
        state.helpdesk.stop().await;
        join_all(&mut tasks, "A background task").await;
        supervision.cancel();
        if let Err(err) = supervisor.await {
            error!(error = %err, "The supervisor ended abnormally.");
        }
        info!("crisisd stopped.");
        match served {
            Ok(served) => served.map_err(StartupError::Serve),
            Err(err) => Err(StartupError::Serve(std::io::Error::other(err))),
        }
    }
}

/// The directory's watch, fallback releases and retention: on every
/// daemon, acting (probes, releases, pruning) only on the leader.
fn upkeep(
    tasks: &mut JoinSet<()>,
    state: &AppState,
    runtime: &Runtime,
    leadership: &Leadership,
    shutdown: &CancellationToken,
) {
    tasks.spawn(super::directory::watch(
        state.service.clone(),
        leadership.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(super::fallbacks::run(
        state.storage.fallbacks.clone(),
        runtime.settings.fallback.check_interval,
        (leadership.clone(), runtime.clock.clone()),
        shutdown.clone(),
    ));
    // Bounces are read on every daemon that has the Maildir: a file is
    // taken by one rename, and a receipt read twice changes nothing.
    if let Some(reader) = crate::intake::bounces::BounceReader::new(
        &runtime.settings,
        state.storage.receipts.clone(),
        runtime.clock.clone(),
    ) {
        tasks.spawn(reader.run(shutdown.clone()));
    }
    tasks.spawn(super::retention::run(
        state.storage.clone(),
        runtime.settings.retention.clone(),
        (leadership.clone(), runtime.clock.clone()),
        shutdown.clone(),
    ));
}

/// With several daemons on one store: the election and the events that
/// keep the banner in step.
fn shared_store(
    tasks: &mut JoinSet<()>,
    events: crate::outbox::StoreEvents,
    state: &AppState,
    leadership: &Leadership,
    runtime: &Runtime,
    shutdown: &CancellationToken,
) {
    tasks.spawn(super::store::elect(
        state.storage.clone(),
        leadership.clone(),
        runtime.clock.clone(),
        shutdown.clone(),
    ));
    // Plans of a daemon that died are finished by another.
    tasks.spawn(state.service.clone().take_over_plans(shutdown.clone()));
    tasks.spawn(super::store::follow_events(
        events,
        state.storage.clone(),
        (state.banner.clone(), runtime.flow.clone()),
        runtime.clock.clone(),
        shutdown.clone(),
    ));
}

/// The task keeping the store's gauges, and `/metrics`'s own listener
/// when it has one.
fn metrics(
    tasks: &mut JoinSet<()>,
    listener: Option<tokio::net::TcpListener>,
    state: &AppState,
    every: std::time::Duration,
    limits: ConnectionLimits,
    shutdown: &CancellationToken,
) {
    tasks.spawn(crate::http::ops::keep_gauges(
        state.clone(),
        every,
        shutdown.clone(),
    ));
    if let Some(listener) = listener {
        let router = crate::http::metrics_router(state.clone());
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            if let Err(err) = crate::http::listener::serve(listener, router, limits, shutdown).await
            {
                error!(error = %err, "The metrics listener failed.");
            }
        });
    }
}

/// The listener's limits, its connections fitted to the descriptor limit
/// (raised first where it can be).
fn connection_limits(server: &crate::config::ServerSettings) -> ConnectionLimits {
    let open_files = super::descriptors::raise_limit();
    ConnectionLimits {
        header_read_timeout: server.header_read_timeout,
        idle_timeout: server.idle_timeout,
        max_connections: super::descriptors::fit_connections(server.max_connections, open_files),
    }
}

type Server = tokio::task::JoinHandle<std::io::Result<()>>;

impl Runtime {
    /// Waits for the server to return, applying reloads meanwhile; returns
    /// how it ended and the workers running then.
    async fn serve(
        &mut self,
        server: Server,
        reloads: &mut mpsc::Receiver<ReloadRequest>,
        state: &AppState,
        mut workers: Workers,
        shutdown: &CancellationToken,
    ) -> (Result<std::io::Result<()>, tokio::task::JoinError>, Workers) {
        tokio::pin!(server);
        loop {
            tokio::select! {
                served = &mut server => return (served, workers),
                Some(request) = reloads.recv(), if !shutdown.is_cancelled() => {
                    let result = self.reload(&request.path, state, workers, shutdown).await;
                    workers = result.0;
                    if let Some(reply) = request.reply {
                        let _ = reply.send(result.1);
                    }
                }
            }
        }
    }
}

/// The tasks that run beside the server for the daemon's whole life: the
/// webhook hold timer, the stop of planning, and the resumption of
/// unfinished plans followed by the follow-up scheduler.
fn background(
    state: &AppState,
    unfinished: Vec<UnfinishedPlan>,
    scheduler: Scheduler,
    leadership: &Leadership,
    shutdown: &CancellationToken,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    // Webhook holds (`declare_after`) run out here, also those a previous
    // run left waiting (on the leader, among daemons sharing a store).
    tasks.spawn(
        state
            .intake
            .clone()
            .run(shutdown.clone(), leadership.clone()),
    );
    // Planning stops at its next batch as soon as a stop is asked for, not
    // after the requests waiting on it time out.
    let stopping = state.service.stopping();
    let asked = shutdown.clone();
    tasks.spawn(async move {
        asked.cancelled().await;
        stopping.cancel();
    });
    let service = state.service.clone();
    let stop_scheduling = shutdown.clone();
    tasks.spawn(async move {
        // Unfinished plans first: a follow-up due while the daemon was down
        // then queues behind the announcements it interrupted.
        match service.resume_unfinished(unfinished).await {
            Ok(0) => {}
            Ok(n) => info!(count = n, "Finished planning announcements a previous run left unfinished."),
            Err(ServiceError::Stopping) => {}
            Err(err) => error!(error = %err, "Could not resume unfinished plans; they are tried at the next start."),
        }
        scheduler.run(stop_scheduling).await;
    });
    tasks
}

/// Waits for every task, logging those that panicked.
pub(super) async fn join_all(tasks: &mut JoinSet<()>, what: &str) {
    while let Some(result) = tasks.join_next().await {
        if let Err(err) = result {
            error!(error = %err, "{what} ended abnormally.");
        }
    }
}
