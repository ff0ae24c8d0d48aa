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
use crate::channels::{Channel, ChannelError, build_email_channels};
use crate::clock::{Clock, SystemClock};
use crate::config::{ConfigError, Settings};
use crate::crisis::{AnnouncementKind, Crisis, CrisisService, Kind, Severity};
use crate::dispatch::{Dispatcher, Wake};
use crate::flag_file::FlagFileWatcher;
use crate::http::{self, AppState, NamedToken};
use crate::outbox::{CrisisFilter, SqliteStore, Store, StoreError};
use crate::plan::{PlanInputs, Planner};
use crate::render::{CompanyView, RenderContext, Renderer};

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
    #[error("cannot write the generated API token to {path}: {source}")]
    TokenFile {
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
    pub inputs: Arc<PlanInputs>,
    pub channels: Vec<Arc<dyn Channel>>,
    pub tokens: Vec<NamedToken>,
    pub cors_origins: Vec<HeaderValue>,
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
        title: "Sample title".into(),
        summary: "Sample summary.".into(),
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
    let channels: Vec<Arc<dyn Channel>> = match build_email_channels(&settings.channels.email) {
        Ok(channels) => channels
            .into_iter()
            .map(|c| Arc::new(c) as Arc<dyn Channel>)
            .collect(),
        Err(ChannelError::Config { channel, message }) => {
            problems.push(format!("channels `{channel}`: {message}"));
            Vec::new()
        }
    };

    let Some(renderer) = renderer else {
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
        email_channels: settings
            .channels
            .email
            .iter()
            .map(|e| e.name.clone())
            .collect(),
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
    if !problems.is_empty() {
        return Err(StartupError::Invalid(problems));
    }
    Ok(Prepared {
        settings,
        inputs: Arc::new(inputs),
        channels,
        tokens,
        cors_origins,
    })
}

/// Writes a random token where the config asks for one to be generated and
/// none exists yet; returns the tokens it wrote.
fn generate_missing_tokens(settings: &Settings) -> Result<Vec<NamedToken>, StartupError> {
    use rand::RngCore;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let mut generated = Vec::new();
    for token in settings.api.tokens.iter().filter(|t| t.generate_if_missing) {
        if token.secret().resolved_file().is_none_or(|p| p.exists()) {
            continue;
        }
        let Some(path) = token.token_file.as_deref() else {
            continue;
        };
        let io_err = |source| StartupError::TokenFile {
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
        info!(name = %token.name, path = %path.display(), "Generated an API token; the CLI reads it from there.");
        generated.push(NamedToken::new(
            &token.name,
            &crate::config::Secret::new(value),
        ));
    }
    Ok(generated)
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
        let generated = generate_missing_tokens(&prepared.settings)?;
        prepared.tokens.extend(generated);
        create_spool_dirs(&prepared.settings)?;
        let settings = &prepared.settings;
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&settings.store.sqlite_path).await?);
        let active = store.crises(CrisisFilter::Active).await?;
        let banner = Arc::new(Banner::new(prepared.inputs.clone(), active));
        let wake = Wake::default();
        let service = Arc::new(CrisisService::new(
            store.clone(),
            Planner::new(prepared.inputs.clone()),
            banner.clone(),
            wake.clone(),
            clock.clone(),
        ));
        let dispatcher = Dispatcher::new(
            store.clone(),
            prepared.channels.clone(),
            settings.dispatch.clone(),
            clock.clone(),
            wake,
        );
        let flag_watcher = settings
            .flag_file
            .as_ref()
            .map(|flag| FlagFileWatcher::new(flag.clone(), service.clone()));
        let state = AppState {
            service,
            banner,
            inputs: prepared.inputs.clone(),
            tokens: Arc::new(prepared.tokens.clone()),
            clock,
            max_body_bytes: settings.server.max_body_bytes,
            banner_max_age: settings.banner.max_age,
        };
        let router = http::router(state.clone(), &prepared.cors_origins);
        let addr = settings.server.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartupError::Bind { addr, source })?;
        for channel in &prepared.channels {
            if let Err(err) = channel.healthcheck().await {
                warn!(channel = %channel.name(), error = %err, "Channel healthcheck failed at start; deliveries will be retried.");
            }
        }
        Ok(Self {
            listener,
            state,
            router,
            dispatcher,
            flag_watcher,
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
        info!(%addr, active_crises = self.state.banner.active_count(), "crisisd is ready.");
        let served = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .await;
        // The server only returns early on failure: stop the rest too.
        shutdown.cancel();
        while let Some(result) = tasks.join_next().await {
            if let Err(err) = result {
                error!(error = %err, "A background task ended abnormally.");
            }
        }
        info!("crisisd stopped.");
        served.map_err(StartupError::Serve)
    }
}
