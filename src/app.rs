//! Building the application from Settings, binding, and running until
//! stopped.

use std::collections::HashSet;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use axum::http::HeaderValue;
use chrono::Utc;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::background::BackgroundRuntime;
use crate::banner::Banner;
use crate::channels::{self, Channel};
use crate::clock::{Clock, SystemClock};
use crate::config::{ConfigError, Settings};
use crate::dispatch::Dispatcher;
use crate::domain::audience::Audience;
use crate::domain::consent::UnsubscribeSigner;
use crate::domain::follow_up::{FollowUps, Library};
use crate::health::{self, Health};
use crate::http::{self, AppState, NamedToken};
use crate::intake::flag_file::FlagFileWatcher;
use crate::intake::{Hook, Intake};
use crate::lifecycle::{Notifier, ReloadError, ReloadRequest, Reloader};
use crate::liveness::Liveness;
use crate::outbox::{CrisisFilter, Ledger, SqliteStore, Storage, StoreError};
use crate::plan::{PlanInputs, SharedInputs, UnsubscribeLinks};
use crate::render::{CompanyView, Renderer};
use crate::secret::{Secret, SecretSource};
use crate::service::{CrisisService, Scheduler, ServiceError};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<String>),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot write the generated secret to {path}: {source}")]
    SecretFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the spool directory {path}: {source}")]
    SpoolDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
    #[error("cannot start the fan-out runtime: {0}")]
    Runtime(std::io::Error),
}

/// Everything built from the config before touching the store or the
/// network; `check-config` stops here.
pub struct Prepared {
    pub settings: Settings,
    pub inputs: PlanInputs,
    pub channels: Vec<Arc<dyn Channel>>,
    pub tokens: Vec<NamedToken>,
    pub cors_origins: Vec<HeaderValue>,
    /// `[[hooks]]`, their secrets read and rules compiled.
    pub hooks: Vec<Hook>,
    pub follow_ups: Arc<FollowUps>,
}

/// Validates the whole configuration, templates and audience included,
/// reporting every problem at once.
pub fn prepare(settings: Settings) -> Result<Prepared, StartupError> {
    let mut problems = settings.problems();
    let default_locale = settings.locales.default.clone();
    let cors_origins = settings.banner.cors_origins(&mut problems);
    let tokens = settings
        .api
        .tokens(&mut problems)
        .iter()
        .map(|(name, secret)| NamedToken::new(name, secret))
        .collect();
    let renderer = match Renderer::load(&settings.templates.dir, &default_locale) {
        Ok(renderer) => Some(renderer),
        Err(err) => {
            problems.push(format!("templates: {err}"));
            None
        }
    };
    let audience = match Audience::load(&settings.audience.file, &default_locale) {
        Ok(audience) => audience,
        Err(err) => {
            problems.push(format!("audience: {err}"));
            Audience::default()
        }
    };
    let channels: Vec<Arc<dyn Channel>> = match channels::build_all(&settings.channels) {
        Ok(channels) => channels,
        Err(errors) => {
            problems.extend(errors.iter().map(|e| format!("channels: {e}")));
            Vec::new()
        }
    };
    let unsubscribe = settings.consent.as_ref().and_then(|consent| {
        Some(UnsubscribeLinks {
            base_url: settings.server.public_url(),
            signer: UnsubscribeSigner::new(consent.key(&mut problems)?),
        })
    });

    let hooks = Hook::build_all(&settings).unwrap_or_else(|errors| {
        problems.extend(errors);
        Vec::new()
    });

    let locales: Vec<String> = renderer
        .as_ref()
        .map(|r| r.locales().map(str::to_owned).collect())
        .unwrap_or_default();
    let channel_names: Vec<String> = settings.channels.names().map(str::to_owned).collect();
    let follow_ups = match Library::load(&settings.follow_ups, &settings.locales.default, &locales)
        .and_then(|library| FollowUps::build(&settings.follow_ups, library, &channel_names))
    {
        Ok(follow_ups) => Some(follow_ups),
        Err(found) => {
            problems.extend(found);
            None
        }
    };
    let (Some(renderer), Some(follow_ups)) = (renderer, follow_ups) else {
        return Err(StartupError::Invalid(problems));
    };
    let inputs = PlanInputs {
        company: CompanyView {
            name: settings.company.name.clone(),
            status_url: settings.company.status_url.clone(),
        },
        directory: settings.directory.clone(),
        audience,
        renderer,
        channels: settings.channels.profiles(&default_locale),
        unsubscribe,
    };
    problems.extend(inputs.template_problems(&follow_ups, Utc::now()));
    if !problems.is_empty() {
        return Err(StartupError::Invalid(problems));
    }
    Ok(Prepared {
        settings,
        inputs,
        channels,
        tokens,
        cors_origins,
        hooks,
        follow_ups: Arc::new(follow_ups),
    })
}

/// Writes a random token where the config asks for one to be generated and
/// none exists yet; returns the tokens it wrote.
fn generate_missing_tokens(settings: &Settings) -> Result<Vec<NamedToken>, StartupError> {
    let mut generated = Vec::new();
    for token in settings.api.tokens.iter().filter(|t| t.generate_if_missing) {
        if let Some(value) = generate_secret_file(&token.secret(), token.token_file.as_deref())? {
            info!(name = %token.name, "Generated an API token; the CLI reads it from its token_file.");
            generated.push(NamedToken::new(&token.name, &value));
        }
    }
    Ok(generated)
}

/// Writes 32 random bytes, hex, to `path` (mode 0600) when the secret's
/// file does not exist yet; returns the new secret.
fn generate_secret_file(
    source: &SecretSource,
    path: Option<&Path>,
) -> Result<Option<Secret>, StartupError> {
    use rand::RngCore;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let (Some(path), Some(resolved)) = (path, source.resolved_file()) else {
        return Ok(None);
    };
    if resolved.exists() {
        return Ok(None);
    }
    let io_err = |source| StartupError::SecretFile {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_err)?;
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let value: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err)?;
    file.write_all(value.as_bytes()).map_err(io_err)?;
    Ok(Some(Secret::new(value)))
}

/// The unsubscribe signing key, generated on first start when asked.
fn generate_consent_key(settings: &Settings, inputs: &mut PlanInputs) -> Result<(), StartupError> {
    let Some(consent) = settings.consent.as_ref().filter(|c| c.generate_if_missing) else {
        return Ok(());
    };
    if let Some(key) =
        generate_secret_file(&consent.signing_key(), consent.signing_key_file.as_deref())?
    {
        info!("Generated the key that signs unsubscribe links.");
        inputs.unsubscribe = Some(UnsubscribeLinks {
            base_url: settings.server.public_url(),
            signer: UnsubscribeSigner::new(key),
        });
    }
    Ok(())
}

/// Spool directories are made at start, not by `check-config`.
fn create_spool_dirs(settings: &Settings) -> Result<(), StartupError> {
    for dir in settings
        .channels
        .email
        .iter()
        .filter_map(|e| e.spool_dir.as_deref())
    {
        std::fs::create_dir_all(dir).map_err(|source| StartupError::SpoolDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

/// Checks a config file the way `serve` would, without starting anything.
pub fn check_config(path: &Path) -> Result<Prepared, StartupError> {
    prepare(Settings::load(path)?)
}

/// What the daemon runs on, kept between reloads.
struct Runtime {
    settings: Settings,
    storage: Storage,
    clock: Arc<dyn Clock>,
    /// The channels the dispatcher serves: the configured ones, and removed
    /// ones that still have deliveries to finish.
    channels: Vec<Arc<dyn Channel>>,
    health: Arc<Health>,
    liveness: Liveness,
    notifier: Notifier,
    /// The fan-out runtime's handle: the dispatcher runs there.
    fanout: tokio::runtime::Handle,
}

/// One generation of background work, replaced on reload: the dispatcher,
/// the flag file watcher and the channel health monitor.
struct Workers {
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Workers {
    fn start(
        runtime: &Runtime,
        service: &Arc<CrisisService>,
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
        .with_liveness(runtime.liveness.clone());
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
    async fn stop(mut self) {
        self.stop.cancel();
        while let Some(result) = self.tasks.join_next().await {
            if let Err(err) = result {
                error!(error = %err, "A background task ended abnormally.");
            }
        }
    }
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
    router: axum::Router,
    runtime: Runtime,
    scheduler: Scheduler,
    unfinished: Vec<crate::outbox::UnfinishedPlan>,
    /// Plans and sends run here, below the API's CPU priority.
    fanout: BackgroundRuntime,
    reloads: mpsc::Receiver<ReloadRequest>,
    reloader: Reloader,
}

/// The parts of the configuration a reload cannot change: they are read
/// once, when the listener, the store and the router are made.
fn restart_only_changes(old: &Settings, new: &Settings) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if old.server.listen != new.server.listen {
        changed.push("server.listen");
    }
    if old.server.public_url != new.server.public_url {
        changed.push("server.public_url");
    }
    if old.server.max_body_bytes != new.server.max_body_bytes {
        changed.push("server.max_body_bytes");
    }
    if old.store.sqlite_path != new.store.sqlite_path {
        changed.push("store.sqlite_path");
    }
    if old.banner.cors_origins != new.banner.cors_origins {
        changed.push("banner.cors_origins");
    }
    if old.banner.max_age != new.banner.max_age {
        changed.push("banner.max_age");
    }
    changed
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        // Validate first: a broken config must not leave files behind.
        let Prepared {
            settings,
            mut inputs,
            channels,
            mut tokens,
            cors_origins,
            hooks,
            follow_ups,
        } = prepare(settings)?;
        tokens.extend(generate_missing_tokens(&settings)?);
        generate_consent_key(&settings, &mut inputs)?;
        create_spool_dirs(&settings)?;
        let inputs: SharedInputs = Arc::new(ArcSwap::from_pointee(inputs));
        let storage = Storage::new(SqliteStore::open(&settings.store.sqlite_path).await?);
        let active = storage.crises.crises(CrisisFilter::Active).await?;
        // Read before anything can start a new plan, so only what a previous
        // run left unfinished is resumed.
        let unfinished = storage.plans.unfinished_plans().await?;
        let banner = Arc::new(Banner::new(inputs.clone(), active));
        let fanout =
            BackgroundRuntime::start(settings.dispatch.nice).map_err(StartupError::Runtime)?;
        let service = Arc::new(
            CrisisService::new(
                storage.clone(),
                inputs.clone(),
                banner.clone(),
                clock.clone(),
            )
            .plan_on(fanout.handle())
            .with_follow_ups(follow_ups.clone()),
        );
        // Before anything can declare: only crises already under way are
        // compared with the plans.
        match service.reconcile_follow_ups().await {
            Ok(0) => {}
            Ok(n) => info!(
                crises = n,
                "Follow-up plans changed since the last run; their schedules were replaced."
            ),
            Err(err) => error!(
                error = %err,
                "Could not compare the stored follow-ups with the plans; they are kept as they are."
            ),
        }
        let liveness = Liveness::default();
        let scheduler = Scheduler::new(service.clone(), clock.clone(), follow_ups.poll_interval)
            .with_liveness(liveness.clone());
        let intake = Arc::new(Intake::new(hooks, service.clone(), &storage, clock.clone()));
        let health = Arc::new(Health::default());
        health.set_channels(channels.iter().map(|c| c.name().to_owned()));
        let state = AppState {
            intake,
            service,
            storage: storage.clone(),
            banner,
            inputs,
            tokens: Arc::new(ArcSwap::from_pointee(tokens)),
            inbound_sms: Arc::new(ArcSwap::from_pointee(
                settings.channels.inbound_sms_secrets(),
            )),
            health: health.clone(),
            public_url: settings.server.public_url(),
            clock: clock.clone(),
            max_body_bytes: settings.server.max_body_bytes,
            banner_max_age: settings.banner.max_age,
        };
        // Installed before the first delivery can be counted.
        crate::telemetry::handle();
        let router = http::router(state.clone(), &cors_origins);
        let addr = settings.server.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartupError::Bind { addr, source })?;
        // A failing provider does not stop the start: its deliveries wait
        // and are retried, and /readyz says which channel is failing.
        health::check_channels(&health, &channels, clock.as_ref()).await;
        let (reloader, reloads) = Reloader::new();
        Ok(Self {
            listener,
            state,
            router,
            runtime: Runtime {
                settings,
                storage,
                clock,
                channels,
                health,
                liveness,
                notifier: Notifier,
                fanout: fanout.handle(),
            },
            scheduler,
            unfinished,
            fanout,
            reloads,
            reloader,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The handle that reloads the configuration of this daemon once it
    /// runs (SIGHUP uses it).
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// Serves until `shutdown` is cancelled, then stops taking requests,
    /// drains the dispatcher and returns.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), StartupError> {
        let addr = self.local_addr();
        let Self {
            listener,
            state,
            router,
            mut runtime,
            unfinished,
            scheduler,
            mut reloads,
            reloader: _,
            // Kept to the end: the dispatcher and plans run on it.
            fanout: _fanout,
        } = self;
        let mut workers = Workers::start(&runtime, &state.service, &shutdown);
        let mut tasks = JoinSet::new();
        // Webhook holds (`declare_after`) run out here, also those a
        // previous run left waiting.
        tasks.spawn(state.intake.clone().run(shutdown.clone()));
        // Planning stops at its next batch as soon as a stop is asked for,
        // not after the requests waiting on it time out.
        let stopping = state.service.stopping();
        let asked = shutdown.clone();
        tasks.spawn(async move {
            asked.cancelled().await;
            stopping.cancel();
        });
        let service = state.service.clone();
        let stop_scheduling = shutdown.clone();
        tasks.spawn(async move {
            // Unfinished plans first: a follow-up due while the daemon was
            // down then queues behind the announcements it interrupted.
            match service.resume_unfinished(unfinished).await {
                Ok(0) => {}
                Ok(n) => info!(count = n, "Finished planning announcements a previous run left unfinished."),
                Err(ServiceError::Stopping) => {}
                Err(err) => error!(error = %err, "Could not resume unfinished plans; they are tried at the next start."),
            }
            scheduler.run(stop_scheduling).await;
        });
        // The listener is bound and accepts from here on.
        runtime.health.set_serving(true);
        let server = tokio::spawn(
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown.clone().cancelled_owned())
                .into_future(),
        );
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
        tokio::pin!(server);
        let served = loop {
            tokio::select! {
                served = &mut server => break served,
                Some(request) = reloads.recv(), if !shutdown.is_cancelled() => {
                    let result = runtime.reload(&request.path, &state, workers, &shutdown).await;
                    workers = result.0;
                    if let Some(reply) = request.reply {
                        let _ = reply.send(result.1);
                    }
                }
            }
        };
        runtime.health.set_serving(false);
        // The server only returns early on failure: stop the rest too.
        shutdown.cancel();
        // Plans stop at their next batch and resume at the next start.
        state.service.stop().await;
        workers.stop().await;
        while let Some(result) = tasks.join_next().await {
            if let Err(err) = result {
                error!(error = %err, "A background task ended abnormally.");
            }
        }
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

impl Runtime {
    /// Re-reads the configuration at `path` and applies it; on any problem
    /// the running configuration stays. Returns the workers to keep.
    async fn reload(
        &mut self,
        path: &Path,
        state: &AppState,
        workers: Workers,
        shutdown: &CancellationToken,
    ) -> (Workers, Result<(), ReloadError>) {
        self.notifier.reloading();
        let prepared = Settings::load(path)
            .map_err(StartupError::from)
            .and_then(prepare)
            .and_then(|mut prepared| {
                prepared
                    .tokens
                    .extend(generate_missing_tokens(&prepared.settings)?);
                generate_consent_key(&prepared.settings, &mut prepared.inputs)?;
                create_spool_dirs(&prepared.settings)?;
                Ok(prepared)
            });
        let prepared = match prepared {
            Ok(prepared) => prepared,
            Err(err) => {
                crate::telemetry::reloaded(false);
                error!(config = %path.display(), error = %err, "Reload refused; the running configuration stays.");
                let status = status_line(state, self.storage.ledger.as_ref()).await;
                self.notifier
                    .ready(&format!("Reload refused (see the log). {status}"));
                return (workers, Err(ReloadError::Refused(err.to_string())));
            }
        };
        let restart_only = restart_only_changes(&self.settings, &prepared.settings);
        if !restart_only.is_empty() {
            warn!(
                settings = %restart_only.join(", "),
                "These settings changed but only take effect at the next restart."
            );
        }
        // Channels that are no longer configured keep sending what was
        // planned for them: a reload never strands a delivery.
        let configured: HashSet<String> = prepared
            .channels
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        let unfinished: HashSet<String> = match self.storage.ledger.channel_counts().await {
            Ok(counts) => counts
                .into_iter()
                .filter(|c| c.state != crate::outbox::DeliveryState::Dead)
                .map(|c| c.channel)
                .collect(),
            // Unknown: keep every removed channel until the next restart.
            Err(_) => self.channels.iter().map(|c| c.name().to_owned()).collect(),
        };
        let mut channels = prepared.channels;
        for old in &self.channels {
            if !configured.contains(old.name()) && unfinished.contains(old.name()) {
                info!(channel = %old.name(), "Channel removed from the configuration; it finishes the deliveries already planned for it.");
                channels.push(old.clone());
            }
        }
        // Planned deliveries are in the outbox with their rendered text:
        // only what is planned from now on sees the new inputs.
        state.inputs.store(Arc::new(prepared.inputs));
        state.tokens.store(Arc::new(prepared.tokens));
        state
            .inbound_sms
            .store(Arc::new(prepared.settings.channels.inbound_sms_secrets()));
        // The dispatcher, watcher and monitor restart on the new channels
        // and settings; in-flight sends finish first.
        workers.stop().await;
        self.channels = channels;
        self.settings = prepared.settings;
        self.health
            .set_channels(self.channels.iter().map(|c| c.name().to_owned()));
        health::check_channels(&self.health, &self.channels, self.clock.as_ref()).await;
        let workers = Workers::start(self, &state.service, shutdown);
        crate::telemetry::reloaded(true);
        info!(
            config = %path.display(),
            channels = self.channels.len(),
            "Configuration reloaded."
        );
        let status = status_line(state, self.storage.ledger.as_ref()).await;
        self.notifier.ready(&status);
        (workers, Ok(()))
    }
}

/// The one-line summary systemd shows in `systemctl status`.
async fn status_line(state: &AppState, store: &dyn Ledger) -> String {
    let active = state.banner.active_count();
    match store.channel_counts().await {
        Ok(counts) => {
            let pending: u64 = counts
                .iter()
                .filter(|c| c.state != crate::outbox::DeliveryState::Dead)
                .map(|c| c.count)
                .sum();
            format!("{active} active crisis(es); {pending} delivery(ies) pending.")
        }
        Err(_) => format!("{active} active crisis(es); store not answering."),
    }
}

/// While the daemon runs: pings systemd's watchdog as long as the store
/// answers and every registered loop makes progress, and keeps the status
/// line current.
async fn supervise(
    store: Arc<dyn Ledger>,
    banner: Arc<Banner>,
    liveness: Liveness,
    notifier: Notifier,
    stop: CancellationToken,
) {
    const STATUS_EVERY: Duration = Duration::from_secs(10);
    if !notifier.is_listening() {
        return;
    }
    let watchdog = notifier.watchdog_interval();
    let period = watchdog.map_or(STATUS_EVERY, |w| w.min(STATUS_EVERY));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_status = tokio::time::Instant::now();
    let mut healthy = true;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let counts = tokio::time::timeout(health::CHECK_TIMEOUT, store.channel_counts()).await;
        let mut problems: Vec<String> =
            liveness.stalled().iter().map(ToString::to_string).collect();
        let pending = match counts {
            Ok(Ok(counts)) => Some(
                counts
                    .iter()
                    .filter(|c| c.state != crate::outbox::DeliveryState::Dead)
                    .map(|c| c.count)
                    .sum::<u64>(),
            ),
            Ok(Err(err)) => {
                problems.push(format!("the store fails: {err}"));
                None
            }
            Err(_) => {
                problems.push("the store does not answer".to_owned());
                None
            }
        };
        if watchdog.is_some() {
            if problems.is_empty() {
                notifier.watchdog();
                if !healthy {
                    info!("The daemon makes progress again; watchdog pings resumed.");
                }
                healthy = true;
            } else {
                if healthy {
                    error!(problems = %problems.join("; "), "Not pinging the watchdog; systemd restarts the daemon if this lasts.");
                }
                healthy = false;
            }
        }
        if last_status.elapsed() >= STATUS_EVERY || watchdog.is_none() {
            last_status = tokio::time::Instant::now();
            let active = banner.active_count();
            let status = match pending {
                Some(pending) => {
                    format!("{active} active crisis(es); {pending} delivery(ies) pending.")
                }
                None => format!("{active} active crisis(es); {}.", problems.join("; ")),
            };
            notifier.status(&status);
        }
    }
}
