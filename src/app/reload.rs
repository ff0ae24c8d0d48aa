//! SIGHUP: the config is read and checked as at a start; on any problem the
//! running configuration stays, otherwise the inputs, tokens and secrets
//! are swapped and a new generation of workers starts on the new channels.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::prepare::{Prepared, load_and_prepare};
use super::supervise::status_line;
use super::workers::{Runtime, Workers};
use crate::channels::Channel;
use crate::config::Settings;
use crate::health;
use crate::http::AppState;
use crate::lifecycle::{ReloadError, Reloaded};
use crate::outbox::DeliveryState;

impl Runtime {
    /// Re-reads the configuration at `path` and applies it; on any problem
    /// the running configuration stays. Returns the workers to keep.
    pub(super) async fn reload(
        &mut self,
        path: &Path,
        state: &AppState,
        workers: Workers,
        shutdown: &CancellationToken,
    ) -> (Workers, Result<Reloaded, ReloadError>) {
        self.notifier.reloading();
        let prepared = match load_and_prepare(path) {
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
        let needs_restart: Vec<String> = restart_only_changes(&self.settings, &prepared.settings)
            .into_iter()
            .map(|setting| format!("{setting} changed: needs a restart"))
            .collect();
        for change in &needs_restart {
            warn!("{change}; the running value stays until then.");
        }
        let mut prepared = prepared;
        keep_running(&self.settings, &mut prepared.settings);
        let workers = self.apply(prepared, state, workers, shutdown).await;
        crate::telemetry::reloaded(true);
        info!(
            config = %path.display(),
            channels = self.channels.len(),
            "Configuration reloaded."
        );
        let status = status_line(state, self.storage.ledger.as_ref()).await;
        // systemd shows the STATUS= line (`systemctl status`): a setting
        // that silently kept its old value would look applied.
        if needs_restart.is_empty() {
            self.notifier.ready(&status);
        } else {
            self.notifier.ready(&format!(
                "Reloaded, but {}. {status}",
                needs_restart.join("; ")
            ));
        }
        (workers, Ok(Reloaded { needs_restart }))
    }

    /// Swaps in what a checked config built and restarts the workers on it.
    async fn apply(
        &mut self,
        prepared: Prepared,
        state: &AppState,
        workers: Workers,
        shutdown: &CancellationToken,
    ) -> Workers {
        let channels = self.with_removed_channels(prepared.channels).await;
        // Planned deliveries are in the outbox with their rendered text:
        // only what is planned from now on sees the new inputs.
        let mut inputs = prepared.inputs;
        // What is marked unavailable stays so across a reload.
        inputs.availability = state.inputs.load().availability.clone();
        state.inputs.store(Arc::new(inputs));
        state.tokens.store(Arc::new(prepared.tokens));
        state.metrics_token.store(Arc::new(prepared.metrics_token));
        state
            .inbound_sms
            .store(Arc::new(prepared.settings.channels.inbound_sms_secrets()));
        state
            .receipts
            .store(Arc::new(super::build::receipt_routes(&prepared.settings)));
        // The dispatcher, watcher and monitor restart on the new channels
        // and settings; in-flight sends finish first.
        workers.stop().await;
        self.channels = channels;
        self.settings = prepared.settings;
        self.health
            .set_channels(self.channels.iter().map(|c| c.name().to_owned()));
        health::check_channels(&self.health, &self.channels, self.clock.as_ref()).await;
        Workers::start(
            self,
            &state.service,
            state.inputs.load().unsubscribe.clone(),
            shutdown,
        )
    }

    /// Channels that are no longer configured keep sending what was
    /// planned for them: a reload never strands a delivery.
    async fn with_removed_channels(
        &self,
        mut channels: Vec<Arc<dyn Channel>>,
    ) -> Vec<Arc<dyn Channel>> {
        let configured: HashSet<String> = channels.iter().map(|c| c.name().to_owned()).collect();
        let unfinished: HashSet<String> = match self.storage.ledger.channel_counts().await {
            Ok(counts) => counts
                .into_iter()
                .filter(|c| c.state != DeliveryState::Dead)
                .map(|c| c.channel)
                .collect(),
            // Unknown: keep every removed channel until the next restart.
            Err(_) => self.channels.iter().map(|c| c.name().to_owned()).collect(),
        };
        for old in &self.channels {
            if !configured.contains(old.name()) && unfinished.contains(old.name()) {
                info!(channel = %old.name(), "Channel removed from the configuration; it finishes the deliveries already planned for it.");
                channels.push(old.clone());
            }
        }
        channels
    }
}

/// Puts back into `new` what only a restart applies, so the settings kept
/// say what runs and the next reload names the same changes again.
fn keep_running(old: &Settings, new: &mut Settings) {
    new.server.listen = old.server.listen;
    new.server.public_url.clone_from(&old.server.public_url);
    new.server.max_body_bytes = old.server.max_body_bytes;
    new.server.header_read_timeout = old.server.header_read_timeout;
    new.server.idle_timeout = old.server.idle_timeout;
    new.server.max_connections = old.server.max_connections;
    new.store.clone_from(&old.store);
    new.crises.duplicate_window = old.crises.duplicate_window;
    new.banner.cors_origins.clone_from(&old.banner.cors_origins);
    new.banner.max_age = old.banner.max_age;
    new.metrics.listen = old.metrics.listen;
    new.metrics.refresh_interval = old.metrics.refresh_interval;
    new.fallback.check_interval = old.fallback.check_interval;
    new.receipts.maildir.clone_from(&old.receipts.maildir);
    new.receipts.maildir_interval = old.receipts.maildir_interval;
    // The bounce reader checks tokens with the return paths it started
    // with: a channel keeps sending with those until a restart.
    for email in &mut new.channels.email {
        if let Some(running) = old.channels.email.iter().find(|o| o.name == email.name) {
            email.return_path.clone_from(&running.return_path);
            email
                .return_path_secret_env
                .clone_from(&running.return_path_secret_env);
            email
                .return_path_secret_file
                .clone_from(&running.return_path_secret_file);
        }
    }
}

/// An email channel's name and return path settings.
type ReturnPathSettings<'a> = (
    &'a str,
    &'a Option<String>,
    &'a Option<String>,
    &'a Option<std::path::PathBuf>,
);

/// Each email channel's return path settings, by name.
fn return_paths(settings: &Settings) -> Vec<ReturnPathSettings<'_>> {
    settings
        .channels
        .email
        .iter()
        .map(|e| {
            (
                e.name.as_str(),
                &e.return_path,
                &e.return_path_secret_env,
                &e.return_path_secret_file,
            )
        })
        .collect()
}

/// The parts of the configuration a reload cannot change: they are read
/// once, when the listener, the store and the router are made.
fn restart_only_changes(old: &Settings, new: &Settings) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if old.server.listen != new.server.listen {
        changed.push("[server] listen");
    }
    if old.server.public_url != new.server.public_url {
        changed.push("[server] public_url");
    }
    if old.server.max_body_bytes != new.server.max_body_bytes {
        changed.push("[server] max_body_bytes");
    }
    if (
        old.server.header_read_timeout,
        old.server.idle_timeout,
        old.server.max_connections,
    ) != (
        new.server.header_read_timeout,
        new.server.idle_timeout,
        new.server.max_connections,
    ) {
        changed.push("[server] connection limits");
    }
    if old.store != new.store {
        changed.push("[store]");
    }
    // The crisis service is made once, with its duplicate window.
    if old.crises.duplicate_window != new.crises.duplicate_window {
        changed.push("[crises] duplicate_window");
    }
    if old.banner.cors_origins != new.banner.cors_origins {
        changed.push("[banner] cors_origins");
    }
    if old.banner.max_age != new.banner.max_age {
        changed.push("[banner] max_age");
    }
    // The metrics listener is bound, and the gauges' task started, once.
    // The token is not here: a reload swaps it.
    if old.metrics.listen != new.metrics.listen {
        changed.push("[metrics] listen");
    }
    if old.metrics.refresh_interval != new.metrics.refresh_interval {
        changed.push("[metrics] refresh_interval");
    }
    // The fallback and bounce tasks start once, with these.
    if old.fallback.check_interval != new.fallback.check_interval {
        changed.push("[fallback] check_interval");
    }
    if (&old.receipts.maildir, old.receipts.maildir_interval)
        != (&new.receipts.maildir, new.receipts.maildir_interval)
    {
        changed.push("[receipts] maildir");
    }
    if return_paths(old) != return_paths(new) {
        changed.push("[channels.email] return_path");
    }
    changed
}
