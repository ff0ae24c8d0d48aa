//! Building the application from Settings, binding, and running until
//! stopped: `prepare` checks the config (all that `check-config` does),
//! `build` opens the store and binds, `run` serves, reloads and drains,
//! `supervise` keeps systemd informed.

mod build;
mod descriptors;
mod directory;
mod fallbacks;
mod prepare;
mod reload;
mod retention;
mod run;
mod store;
mod supervise;
mod workers;

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::mpsc;

pub use build::open_store;
pub use prepare::{Prepared, check_config, prepare};
pub use store::{StoreCheck, check_store, open_location};

use crate::background::BackgroundRuntime;
use crate::config::ConfigError;
use crate::http::AppState;
use crate::lifecycle::{ReloadRequest, Reloader};
use crate::outbox::{Leadership, StoreError, StoreEvents, UnfinishedPlan};
use crate::service::Scheduler;
use workers::Runtime;

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
    #[error(transparent)]
    Console(#[from] crate::http::console::ViewError),
}

pub struct Application {
    listener: TcpListener,
    /// `[metrics] listen`, when `/metrics` has a listener of its own.
    metrics_listener: Option<TcpListener>,
    state: AppState,
    router: axum::Router,
    runtime: Runtime,
    scheduler: Scheduler,
    unfinished: Vec<UnfinishedPlan>,
    /// The static mirror's writer, when `[publish] dir` is set.
    mirror: Option<crate::publish::Mirror>,
    /// What other daemons on a shared store commit (PostgreSQL only).
    events: Option<StoreEvents>,
    /// Whether this daemon leads (always, alone on SQLite).
    leadership: Leadership,
    /// Plans and sends run here, below the API's CPU priority.
    fanout: BackgroundRuntime,
    reloads: mpsc::Receiver<ReloadRequest>,
    reloader: Reloader,
}

/// The store of the config file at `config`, for commands that work on
/// it directly (`crisisd user`).
pub async fn open_storage(
    config: &std::path::Path,
) -> Result<crate::outbox::Storage, StartupError> {
    let settings = crate::config::Settings::load(config)?;
    open_store(&settings).await
}

impl Application {
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
}
