//! Building the application from Settings: checked first, then the store
//! opened, the service, intake and HTTP state made, and the listener bound.

use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::TimeDelta;
use tokio::net::TcpListener;
use tracing::{error, info};

use super::prepare::{Prepared, prepare};
use super::workers::Runtime;
use super::{Application, StartupError};
use crate::background::BackgroundRuntime;
use crate::banner::Banner;
use crate::clock::{Clock, SystemClock};
use crate::config::{S3Settings, Settings};
use crate::domain::follow_up::FollowUps;
use crate::health::{self, Health};
use crate::http::console::Console;
use crate::http::{self, AppState};
use crate::intake::{Hook, Intake};
use crate::lifecycle::{Notifier, Reloader};
use crate::liveness::Liveness;
use crate::outbox::{CrisisFilter, Leadership, Storage};
use crate::plan::SharedInputs;
use crate::publish::{Mirror, PublishOptions, Publisher, S3Options, S3Upload};
use crate::service::{CrisisService, Scheduler};

/// Takes the plans left unfinished for this daemon to resume. Alone on its
/// SQLite file (it holds the file's lock) every plan's owner is a previous
/// run, whatever its lease says; on a shared store only those whose lease
/// ran out are taken, the rest being planned by live daemons (or taken
/// over later, once their lease runs out).
async fn take_unfinished(
    storage: &Storage,
    shared: bool,
    clock: &dyn Clock,
) -> Result<Vec<crate::outbox::UnfinishedPlan>, crate::outbox::StoreError> {
    let now = clock.now();
    let expired_before = if shared {
        now
    } else {
        chrono::DateTime::<chrono::Utc>::MAX_UTC
    };
    let lease = crate::service::plan_lease(&crate::outbox::node_name(), now);
    storage.plans.take_plans(&lease, expired_before).await
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
        let mut prepared = prepare(settings)?;
        prepared.write_generated()?;
        let inputs: SharedInputs = Arc::new(ArcSwap::from_pointee(prepared.inputs));
        let (storage, events, leadership) =
            super::store::open_for_daemon(&prepared.settings).await?;
        let flow = super::store::shared_flow(events.as_ref(), &storage);
        let active = storage.crises.crises(CrisisFilter::Active).await?;
        // Before anything can start a new plan: only what a previous run
        // (or a daemon that died) left unfinished is resumed.
        let unfinished = take_unfinished(&storage, events.is_some(), clock.as_ref()).await?;
        let banner = Arc::new(Banner::new(inputs.clone(), active));
        let (publisher, mirror) = publishing(
            &prepared.settings,
            &prepared.follow_ups,
            &storage,
            &inputs,
            &banner,
            &clock,
        )?;
        let fanout = BackgroundRuntime::start(prepared.settings.dispatch.nice)
            .map_err(StartupError::Runtime)?;
        let service = crisis_service(
            &prepared.settings,
            &prepared.follow_ups,
            &storage,
            &inputs,
            (&banner, &publisher),
            &clock,
            &fanout,
        )
        .await?;
        let (scheduler, liveness) = scheduler(&service, &clock, &prepared.follow_ups, &leadership);
        let health = Arc::new(Health::default());
        health.set_channels(prepared.channels.iter().map(|c| c.name().to_owned()));
        let parts = Parts {
            settings: &prepared.settings,
            storage: &storage,
            service,
            banner,
            publisher,
            inputs,
            health: &health,
            clock: &clock,
        };
        let state = parts.state(prepared.hooks, prepared.tokens, prepared.metrics_token)?;
        // Installed before the first delivery can be counted.
        crate::telemetry::handle();
        let own_metrics = prepared.settings.metrics.listen;
        let router = http::router(state.clone(), &prepared.cors_origins, own_metrics.is_some());
        let (listener, metrics_listener) = listeners(&prepared.settings).await?;
        // A failing provider does not stop the start: its deliveries wait
        // and are retried, and /readyz says which channel is failing.
        health::check_channels(&health, &prepared.channels, clock.as_ref()).await;
        let (reloader, reloads) = Reloader::new();
        let Prepared {
            settings, channels, ..
        } = prepared;
        Ok(Self {
            listener,
            metrics_listener,
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
                flow,
            },
            scheduler,
            unfinished,
            mirror,
            events,
            leadership,
            fanout,
            reloads,
            reloader,
        })
    }
}

/// The server's listener, and `/metrics`'s own when it has one.
async fn listeners(
    settings: &Settings,
) -> Result<(TcpListener, Option<TcpListener>), StartupError> {
    let listener = bind(settings.server.listen).await?;
    let metrics = match settings.metrics.listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    Ok((listener, metrics))
}

/// The service every transition goes through, caught up with what
/// happened before this start (follow-up plans, directory availability).
async fn crisis_service(
    settings: &Settings,
    follow_ups: &Arc<FollowUps>,
    storage: &Storage,
    inputs: &SharedInputs,
    (banner, publisher): (&Arc<Banner>, &Arc<Publisher>),
    clock: &Arc<dyn Clock>,
    fanout: &BackgroundRuntime,
) -> Result<Arc<CrisisService>, StartupError> {
    let service = Arc::new(
        CrisisService::new(
            storage.clone(),
            inputs.clone(),
            banner.clone(),
            clock.clone(),
        )
        .plan_on(fanout.handle())
        .with_follow_ups(follow_ups.clone())
        .with_duplicate_window(settings.crises.duplicate_window)
        .with_reader_cap(settings.fatigue.max_per_reader_per_hour)
        .publish_with(publisher.clone()),
    );
    reconcile_follow_ups(&service).await;
    // What was marked unavailable before this start, or by another daemon.
    service.refresh_availability().await?;
    Ok(service)
}

async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })
}

/// The store the settings name, opened with its migrations applied.
pub async fn open_store(settings: &Settings) -> Result<Storage, StartupError> {
    let location = settings
        .store
        .location()
        .map_err(|problem| StartupError::Invalid(vec![problem]))?;
    Ok(super::open_location(&location).await?)
}

/// The follow-up scheduler, and the liveness registry it beats first.
fn scheduler(
    service: &Arc<CrisisService>,
    clock: &Arc<dyn Clock>,
    follow_ups: &FollowUps,
    leadership: &Leadership,
) -> (Scheduler, Liveness) {
    let liveness = Liveness::default();
    let scheduler = Scheduler::new(service.clone(), clock.clone(), follow_ups.poll_interval)
        .with_liveness(liveness.clone())
        .with_leadership(leadership.clone());
    (scheduler, liveness)
}

/// The crisis page, CAP documents and feeds, and the static mirror's
/// writer when `[publish] dir` or `[publish.s3]` is set.
fn publishing(
    all: &Settings,
    follow_ups: &Arc<FollowUps>,
    storage: &Storage,
    inputs: &SharedInputs,
    banner: &Arc<Banner>,
    clock: &Arc<dyn Clock>,
) -> Result<(Arc<Publisher>, Option<Mirror>), StartupError> {
    let settings = &all.publish;
    let publisher = Arc::new(Publisher::new(
        storage.clone(),
        inputs.clone(),
        banner.clone(),
        follow_ups.clone(),
        PublishOptions {
            public_url: all.server.public_url(),
            cap_expires: TimeDelta::from_std(settings.cap_expires).unwrap_or(TimeDelta::MAX),
        },
    ));
    if settings.dir.is_none() && settings.s3.is_none() {
        return Ok((publisher, None));
    }
    let mut mirror = Mirror::new(publisher.clone(), settings.base_url.clone(), clock.clone());
    if let Some(dir) = &settings.dir {
        mirror = mirror.with_dir(dir.clone());
    }
    if let Some(s3) = &settings.s3 {
        mirror = mirror.with_s3(s3_upload(s3, all.banner.max_age)?);
    }
    Ok((publisher, Some(mirror)))
}

/// The bucket's uploader, its keys read (check-config has said whether
/// they can be).
fn s3_upload(s3: &S3Settings, max_age: std::time::Duration) -> Result<S3Upload, StartupError> {
    let read = |key: &str, source: crate::secret::SecretSource| {
        source
            .read()
            .map_err(|err| StartupError::Invalid(vec![format!("publish.s3.{key}: {err}")]))
    };
    let options = S3Options {
        endpoint: s3.endpoint.clone(),
        bucket: s3.bucket.clone(),
        region: s3.region.clone(),
        prefix: s3.prefix.clone(),
        path_style: s3.path_style,
        access_key_id: read("access_key_id", s3.access_key_id())?,
        secret_access_key: read("secret_access_key", s3.secret_access_key())?,
        timeout: s3.timeout,
        max_age,
    };
    S3Upload::new(options).map_err(|err| StartupError::Invalid(vec![err.to_string()]))
}

/// Before anything can declare: only crises already under way are compared
/// with the follow-up plans as configured now.
async fn reconcile_follow_ups(service: &Arc<CrisisService>) {
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
}

/// What the HTTP state is made of.
struct Parts<'a> {
    settings: &'a Settings,
    storage: &'a Storage,
    service: Arc<CrisisService>,
    banner: Arc<Banner>,
    publisher: Arc<Publisher>,
    inputs: SharedInputs,
    health: &'a Arc<Health>,
    clock: &'a Arc<dyn Clock>,
}

impl Parts<'_> {
    fn state(
        self,
        hooks: Vec<Hook>,
        tokens: Vec<http::NamedToken>,
        metrics_token: Option<http::NamedToken>,
    ) -> Result<AppState, StartupError> {
        let fatigue = &self.settings.fatigue;
        let intake = Arc::new(
            Intake::new(
                hooks,
                self.service.clone(),
                self.storage,
                self.clock.clone(),
            )
            .with_storm_limit(fatigue.max_webhook_crises, fatigue.storm_window),
        );
        let public_url = self.settings.server.public_url();
        let console = Console::new(self.settings.console.clone(), &public_url)?;
        Ok(AppState {
            intake,
            service: self.service,
            storage: self.storage.clone(),
            banner: self.banner,
            publisher: self.publisher,
            helpdesk: Arc::new(crate::http::helpdesk::Helpdesk::new(
                crate::channels::http::client()
                    .map_err(|e| StartupError::Invalid(vec![e.to_string()]))?,
                self.inputs.clone(),
            )),
            inputs: self.inputs,
            tokens: Arc::new(ArcSwap::from_pointee(tokens)),
            metrics_token: Arc::new(ArcSwap::from_pointee(metrics_token)),
            inbound_sms: Arc::new(ArcSwap::from_pointee(
                self.settings.channels.inbound_sms_secrets(),
            )),
            receipts: Arc::new(ArcSwap::from_pointee(receipt_routes(self.settings))),
            health: self.health.clone(),
            public_url,
            clock: self.clock.clone(),
            max_body_bytes: self.settings.server.max_body_bytes,
            banner_max_age: self.settings.banner.max_age,
            console: Arc::new(console),
        })
    }
}

/// The receipt routes' secrets and policy, from the settings.
pub(super) fn receipt_routes(settings: &Settings) -> crate::http::receipts::ReceiptRoutes {
    crate::http::receipts::ReceiptRoutes {
        secrets: settings.channels.receipt_secrets(),
        mark_bad: settings.receipts.mark_bad_on_hard_bounce,
        // Checked by prepare().
        sendgrid: settings
            .receipts
            .sendgrid_public_key
            .as_deref()
            .and_then(|key| crate::channels::sendgrid::SendgridKey::parse(key).ok()),
        email_channels: settings
            .channels
            .email
            .iter()
            .map(|email| email.name.clone())
            .collect(),
    }
}
