//! Building the application from Settings, binding, and running until
//! stopped.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::http::HeaderValue;
use chrono::Utc;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::audience::Audience;
use crate::banner::Banner;
use crate::channels::{self, Channel};
use crate::clock::{Clock, SystemClock};
use crate::config::{ConfigError, Secret, SecretSource, Settings};
use crate::consent::UnsubscribeSigner;
use crate::crisis::{AnnouncementKind, Crisis, CrisisService, Kind, ServiceError, Severity};
use crate::dispatch::{Dispatcher, Wake};
use crate::flag_file::FlagFileWatcher;
use crate::follow_up::{FollowUpSpec, FollowUps, Library, Phase, Scheduler, Topic};
use crate::http::{self, AppState, NamedToken};
use crate::outbox::{CrisisFilter, SqliteStore, Store, StoreError};
use crate::plan::{ChannelProfile, FitError, PlanInputs, Planner, Reach, UnsubscribeLinks, fit};
use crate::render::{CompanyView, EMAIL_KINDS, RenderContext, Renderer};

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
}

/// Everything built from the config before touching the store or the
/// network; `check-config` stops here.
pub struct Prepared {
    pub settings: Settings,
    pub inputs: PlanInputs,
    pub channels: Vec<Arc<dyn Channel>>,
    pub tokens: Vec<NamedToken>,
    pub cors_origins: Vec<HeaderValue>,
    pub follow_ups: Arc<FollowUps>,
}

/// The sample context of a follow-up on `topic`, with every resource of
/// the library for the sample crisis's kind.
fn sample_follow_up(
    inputs: &PlanInputs,
    follow_ups: &FollowUps,
    locale: &str,
    topic: Topic,
    email: bool,
) -> RenderContext {
    let mut ctx = sample_context(inputs, locale, AnnouncementKind::FollowUp, email, false);
    let spec = FollowUpSpec {
        plan: "sample".into(),
        step: "sample".into(),
        phase: if topic == Topic::Satisfaction {
            Phase::AfterResolution
        } else {
            Phase::Active
        },
        topic,
        categories: Vec::new(),
        channels: Vec::new(),
        locales: Vec::new(),
        regions: Vec::new(),
    };
    ctx.follow_up = Some(
        follow_ups
            .library
            .follow_up_view(&spec, Kind::Outage, &ctx.locale, None),
    );
    ctx
}

/// A crisis and a context with every variable filled, to render each
/// template once before it is needed.
fn sample_context(
    inputs: &PlanInputs,
    locale: &str,
    kind: AnnouncementKind,
    email: bool,
    message: bool,
) -> RenderContext {
    let now = Utc::now();
    let mut crisis = Crisis {
        id: crate::crisis::CrisisId::new(),
        kind: Kind::Outage,
        severity: Severity::Critical,
        // Typical lengths, so limits are checked against realistic text.
        title: "Card payments are failing".into(),
        summary:
            "Card payments fail for most customers since 09:10; cash on delivery still works. \
                  We are working with our payment provider on a fix."
                .into(),
        localized: Default::default(),
        status: crate::crisis::Status::Declared,
        version: 1,
        last_message: message.then(|| "Sample message.".to_owned()),
        declared_at: now,
        updated_at: now,
        resolved_at: None,
    };
    if kind == AnnouncementKind::Resolved {
        crisis.status = crate::crisis::Status::Resolved;
        crisis.resolved_at = Some(now);
    }
    let recipient = email.then_some(("Sample Reader", chrono_tz::Tz::UTC));
    RenderContext::new(
        locale,
        inputs.company.clone(),
        &crisis,
        kind,
        recipient,
        inputs.contacts(locale, now),
        now,
    )
}

/// Validates the whole configuration, templates and audience included,
/// reporting every problem at once.
pub fn prepare(settings: Settings) -> Result<Prepared, StartupError> {
    let mut problems = Vec::new();
    let default_locale = settings.locales.default.clone();

    if settings.company.name.trim().is_empty() {
        problems.push("company.name is empty; announcements are signed with it".to_owned());
    }
    let status_url = &settings.company.status_url;
    if !(status_url.starts_with("https://") || status_url.starts_with("http://")) {
        problems.push(format!(
            "company.status_url `{status_url}` must be an http(s) URL"
        ));
    }

    let mut names = HashSet::new();
    for name in settings.channels.names() {
        if name.trim().is_empty() {
            problems.push("channels: a channel has an empty name".to_owned());
        } else if !names.insert(name) {
            problems.push(format!("channels: the name `{name}` is used twice"));
        }
    }
    if names.is_empty() {
        problems.push(
            "channels: no channel is configured; add at least one [[channels.email]]".to_owned(),
        );
    }

    let mut ids = HashSet::new();
    for entry in &settings.directory {
        if !ids.insert(entry.id.as_str()) {
            problems.push(format!("directory: the id `{}` is used twice", entry.id));
        }
        problems.extend(entry.problems(&default_locale));
    }
    if settings.directory.is_empty() {
        problems.push(
            "directory: no contact entries; every announcement must say how to reach support"
                .into(),
        );
    }

    let mut cors_origins = Vec::new();
    for origin in &settings.banner.cors_origins {
        let valid = origin == "*"
            || ((origin.starts_with("https://") || origin.starts_with("http://"))
                && !origin.ends_with('/'));
        match HeaderValue::from_str(origin) {
            Ok(value) if valid => cors_origins.push(value),
            _ => problems.push(format!(
                "banner.cors_origins: `{origin}` is not an origin (scheme://host[:port], no path, or \"*\")"
            )),
        }
    }

    let mut tokens = Vec::new();
    let mut token_names = HashSet::new();
    for token in &settings.api.tokens {
        if !token_names.insert(token.name.as_str()) {
            problems.push(format!(
                "api.tokens: the name `{}` is used twice",
                token.name
            ));
        }
        let source = token.secret();
        if !source.is_set() {
            problems.push(format!(
                "api.tokens `{}`: set token_env or token_file",
                token.name
            ));
            continue;
        }
        let generated_later =
            token.generate_if_missing && source.resolved_file().is_some_and(|p| !p.exists());
        match source.read() {
            Ok(secret) => tokens.push(NamedToken::new(&token.name, &secret)),
            Err(_) if generated_later => {}
            Err(err) => problems.push(format!("api.tokens `{}`: {err}", token.name)),
        }
    }
    if settings.api.tokens.is_empty() {
        problems.push(
            "api.tokens: no API token is configured; the API and CLI could not be used".into(),
        );
    }

    if let Some(flag) = &settings.flag_file
        && flag.path.is_dir()
    {
        problems.push(format!(
            "flag_file.path: {} is a directory",
            flag.path.display()
        ));
    }

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
    match &settings.server.public_url {
        Some(url) if !(url.starts_with("https://") || url.starts_with("http://")) => {
            problems.push(format!("server.public_url `{url}` must be an http(s) URL"));
        }
        None if settings.server.listen.ip().is_unspecified()
            && (settings.consent.is_some() || !settings.channels.twilio.is_empty()) =>
        {
            problems.push(format!(
                "server.public_url is needed: the daemon listens on {} and unsubscribe links and \
                 webhook signatures need the address the outside world uses",
                settings.server.listen
            ));
        }
        _ => {}
    }
    if let Err(problem) = settings.channels.rate_limits() {
        problems.push(format!("channels: {problem}"));
    }
    let unsubscribe = match &settings.consent {
        None => None,
        Some(consent) => {
            let source = consent.signing_key();
            let generated_later =
                consent.generate_if_missing && source.resolved_file().is_some_and(|p| !p.exists());
            match source.read() {
                Ok(key) => Some(UnsubscribeLinks {
                    base_url: settings.server.public_url(),
                    signer: UnsubscribeSigner::new(key),
                }),
                Err(_) if generated_later => None,
                Err(err) => {
                    problems.push(format!("consent.signing_key: {err}"));
                    None
                }
            }
        }
    };

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
        channels: ChannelProfile::all(&settings.channels, &default_locale),
        unsubscribe,
    };
    problems.extend(
        inputs
            .renderer
            .check(|locale, kind, email, message| {
                sample_context(&inputs, locale, kind, email, message)
            })
            .into_iter()
            .map(|e| format!("templates: {e}")),
    );
    let topics = follow_ups.topics();
    problems.extend(
        inputs
            .renderer
            .check_follow_ups(&topics, |locale, topic, email| {
                sample_follow_up(&inputs, &follow_ups, locale, topic, email)
            })
            .into_iter()
            .map(|e| format!("templates: {e}")),
    );
    problems.extend(unfit_messages(&inputs));
    problems.extend(unfit_follow_ups(&inputs, &follow_ups, &topics));
    if !problems.is_empty() {
        return Err(StartupError::Invalid(problems));
    }
    Ok(Prepared {
        settings,
        inputs,
        channels,
        tokens,
        cors_origins,
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

/// Problems with messages that do not fit their channel even in the short
/// form, found with representative content before any crisis.
fn unfit_messages(inputs: &PlanInputs) -> Vec<String> {
    unfit(inputs, |locale, personal| {
        EMAIL_KINDS
            .iter()
            .map(|kind| {
                let ctx = sample_context(inputs, locale, *kind, personal, true);
                (format!("{kind} message"), kind.to_string(), ctx)
            })
            .collect()
    })
}

/// The same for the follow-up topics the plans use, with every resource of
/// the library in the message: a step whose short form cannot fit is found
/// before a crisis, not as dead deliveries during one.
fn unfit_follow_ups(inputs: &PlanInputs, follow_ups: &FollowUps, topics: &[Topic]) -> Vec<String> {
    unfit(inputs, |locale, personal| {
        topics
            .iter()
            .map(|topic| {
                let ctx = sample_follow_up(inputs, follow_ups, locale, *topic, personal);
                (format!("{topic} follow-up"), "follow_up".to_owned(), ctx)
            })
            .collect()
    })
}

/// Fits every text channel's messages, in each language it writes, as
/// `samples(locale, personal)` gives them (what, template name, context);
/// a problem for each that does not fit even in its short form.
fn unfit(
    inputs: &PlanInputs,
    samples: impl Fn(&str, bool) -> Vec<(String, String, RenderContext)>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for profile in &inputs.channels {
        let Some(family) = profile.family else {
            continue;
        };
        let locales: Vec<String> = match &profile.reach {
            Reach::Broadcast { locale } => vec![locale.clone()],
            _ => inputs.renderer.locales().map(str::to_owned).collect(),
        };
        let personal = profile.reach == Reach::Phone;
        for locale in &locales {
            for (what, template, ctx) in samples(locale, personal) {
                if let Err(FitError::TooLong(measurement)) =
                    fit(&inputs.renderer, family, profile.limit, &ctx)
                {
                    problems.push(format!(
                        "channel `{}`: the {locale} {what} does not fit even in its short form \
                         with a typical title ({measurement}); shorten templates/{locale}/{}/{template}.short.j2 \
                         or raise the limit",
                        profile.name,
                        family.as_str()
                    ));
                }
            }
        }
    }
    problems
}

/// Twilio auth tokens by channel name, to check inbound-message webhooks.
fn inbound_sms_secrets(settings: &Settings) -> std::collections::HashMap<String, Secret> {
    settings
        .channels
        .twilio
        .iter()
        .filter_map(|t| {
            t.auth_token()
                .read()
                .ok()
                .map(|token| (t.name.clone(), token))
        })
        .collect()
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

pub struct Application {
    listener: TcpListener,
    state: AppState,
    router: axum::Router,
    dispatcher: Dispatcher,
    flag_watcher: Option<FlagFileWatcher>,
    scheduler: Scheduler,
    unfinished: Vec<crate::outbox::UnfinishedPlan>,
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
            follow_ups,
        } = prepare(settings)?;
        tokens.extend(generate_missing_tokens(&settings)?);
        generate_consent_key(&settings, &mut inputs)?;
        create_spool_dirs(&settings)?;
        let inputs = Arc::new(inputs);
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&settings.store.sqlite_path).await?);
        let active = store.crises(CrisisFilter::Active).await?;
        // Read before anything can start a new plan, so only what a previous
        // run left unfinished is resumed.
        let unfinished = store.unfinished_plans().await?;
        let banner = Arc::new(Banner::new(inputs.clone(), active));
        let wake = Wake::default();
        let service = Arc::new(
            CrisisService::new(
                store.clone(),
                Planner::new(inputs.clone()).with_follow_ups(follow_ups.clone()),
                banner.clone(),
                wake.clone(),
                clock.clone(),
            )
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
        let scheduler = Scheduler::new(service.clone(), clock.clone(), follow_ups.poll_interval);
        let dispatcher = Dispatcher::new(
            store.clone(),
            channels.clone(),
            settings.dispatch.clone(),
            clock.clone(),
            wake,
        )
        // Checked by prepare().
        .with_rate_limits(settings.channels.rate_limits().unwrap_or_default());
        let flag_watcher = settings
            .flag_file
            .as_ref()
            .map(|flag| FlagFileWatcher::new(flag.clone(), service.clone()));
        let state = AppState {
            service,
            banner,
            inputs: inputs.clone(),
            tokens: Arc::new(tokens),
            inbound_sms: Arc::new(inbound_sms_secrets(&settings)),
            public_url: settings.server.public_url(),
            clock,
            max_body_bytes: settings.server.max_body_bytes,
            banner_max_age: settings.banner.max_age,
        };
        let router = http::router(state.clone(), &cors_origins);
        let addr = settings.server.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartupError::Bind { addr, source })?;
        // All at once: each is bounded by its channel's timeout.
        let checks = channels
            .iter()
            .map(|channel| async move { (channel.name(), channel.healthcheck().await) });
        for (name, result) in futures::future::join_all(checks).await {
            if let Err(err) = result {
                warn!(channel = %name, error = %err, "Channel healthcheck failed at start; deliveries will be retried.");
            }
        }
        Ok(Self {
            listener,
            state,
            router,
            dispatcher,
            flag_watcher,
            scheduler,
            unfinished,
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

    /// Serves until `shutdown` is cancelled, then stops taking requests,
    /// drains the dispatcher and returns.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), StartupError> {
        let addr = self.local_addr();
        let mut tasks = JoinSet::new();
        tasks.spawn(self.dispatcher.run(shutdown.clone()));
        if let Some(watcher) = self.flag_watcher {
            tasks.spawn(watcher.run(shutdown.clone()));
        }
        // Planning stops at its next batch as soon as a stop is asked for,
        // not after the requests waiting on it time out.
        let stopping = self.state.service.stopping();
        let asked = shutdown.clone();
        tasks.spawn(async move {
            asked.cancelled().await;
            stopping.cancel();
        });
        let service = self.state.service.clone();
        let unfinished = self.unfinished;
        let scheduler = self.scheduler;
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
        info!(%addr, active_crises = self.state.banner.active_count(), "crisisd is ready.");
        let served = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .await;
        // The server only returns early on failure: stop the rest too.
        shutdown.cancel();
        // Plans stop at their next batch and resume at the next start.
        self.state.service.stop().await;
        while let Some(result) = tasks.join_next().await {
            if let Err(err) = result {
                error!(error = %err, "A background task ended abnormally.");
            }
        }
        info!("crisisd stopped.");
        served.map_err(StartupError::Serve)
    }
}
