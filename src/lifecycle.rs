//! Signals and systemd: the first SIGTERM or SIGINT stops gracefully (a
//! second one exits at once), SIGHUP reloads the configuration, and the
//! service manager hears about each step over `$NOTIFY_SOCKET`
//! (`Type=notify`), along with watchdog pings while the daemon is alive.

use std::path::PathBuf;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::app::Reloader;

/// Tells systemd what the daemon is doing. Without `$NOTIFY_SOCKET` (not
/// started by systemd with `Type=notify`) every call does nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Notifier;

impl Notifier {
    fn send(&self, states: &[NotifyState]) {
        // Losing a notification is not worth stopping for; systemd's own
        // timeouts then say what went wrong.
        if let Err(err) = sd_notify::notify(states) {
            warn!(error = %err, "Could not notify systemd.");
        }
    }

    /// Whether a service manager listens (`$NOTIFY_SOCKET` is set).
    pub fn is_listening(&self) -> bool {
        std::env::var_os("NOTIFY_SOCKET").is_some()
    }

    /// Started or reloaded: the store is open, migrations are applied and
    /// the listener is bound.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// A reload begins; systemd wants the monotonic time with it.
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(_) => self.send(&[NotifyState::Reloading]),
        }
    }

    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("Stopping.")]);
    }

    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    /// How often to ping the watchdog: half its timeout, as systemd
    /// advises; `None` when no watchdog is set for this process.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        sd_notify::watchdog_enabled().map(|timeout| timeout / 2)
    }
}

/// Handles the daemon's signals until it stops: SIGTERM and SIGINT cancel
/// `shutdown` (a second one exits at once, unless the caller has cancelled
/// `stopped`: the drain is over and the exit will be clean), SIGHUP
/// reloads `config`. The returned task is the caller's to abort once the
/// daemon has stopped.
pub fn handle_signals(
    shutdown: CancellationToken,
    stopped: CancellationToken,
    reloader: Reloader,
    config: PathBuf,
) -> std::io::Result<JoinHandle<()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => { info!("SIGTERM: stopping gracefully."); break; }
                _ = int.recv() => { info!("SIGINT: stopping gracefully."); break; }
                _ = hup.recv() => {
                    info!(config = %config.display(), "SIGHUP: reloading the configuration.");
                    // Applied by the daemon's own loop, which logs the
                    // result; signals keep being handled meanwhile.
                    reloader.request_file(&config);
                }
            }
        }
        Notifier.stopping();
        shutdown.cancel();
        // `timeout(1)` and a terminal's process group can deliver the same
        // signal twice at once: after a finished drain that is no reason
        // to exit 1 (which systemd's Restart=on-failure would act on).
        tokio::select! {
            biased;
            () = stopped.cancelled() => return,
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        error!("Second signal: exiting now; leased deliveries are reclaimed after restart.");
        std::process::exit(1);
    }))
}
