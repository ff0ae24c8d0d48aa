//! Signals and systemd: the first SIGTERM or SIGINT stops gracefully (a
//! second one exits at once), SIGHUP reloads the configuration, and the
//! service manager hears about each step over `$NOTIFY_SOCKET`
//! (`Type=notify`), along with watchdog pings while the daemon is alive.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use tokio::sync::{mpsc, oneshot};

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

/// Why a reload was not applied; the daemon keeps running as it was.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// With every problem found, as check-config would list them.
    #[error("the new configuration was refused: {0}")]
    Refused(String),
    #[error("a reload is already waiting")]
    Busy,
    #[error("the daemon is stopping")]
    Stopping,
}

/// A reload that was applied, and what in it waits for a restart.
#[derive(Debug, Default)]
pub struct Reloaded {
    /// One sentence per changed setting a reload cannot apply, e.g.
    /// "[metrics] listen changed: needs a restart".
    pub needs_restart: Vec<String>,
}

/// One reload asked for: the file to read, and who waits for the result.
pub struct ReloadRequest {
    pub path: PathBuf,
    pub reply: Option<oneshot::Sender<Result<Reloaded, ReloadError>>>,
}

/// Asks the running daemon to re-read its configuration; cheap to clone.
#[derive(Clone)]
pub struct Reloader {
    requests: mpsc::Sender<ReloadRequest>,
}

impl Reloader {
    /// A reloader, and the queue its requests arrive on (one waits at most).
    pub fn new() -> (Self, mpsc::Receiver<ReloadRequest>) {
        let (requests, queue) = mpsc::channel(1);
        (Self { requests }, queue)
    }

    /// Reloads from `path` and waits for the result.
    pub async fn reload_file(&self, path: &Path) -> Result<Reloaded, ReloadError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .try_send(ReloadRequest {
                path: path.to_path_buf(),
                reply: Some(reply),
            })
            .map_err(|err| match err {
                mpsc::error::TrySendError::Full(_) => ReloadError::Busy,
                mpsc::error::TrySendError::Closed(_) => ReloadError::Stopping,
            })?;
        answer.await.unwrap_or(Err(ReloadError::Stopping))
    }

    /// Asks for a reload from `path` without waiting (a signal handler);
    /// the result is logged. Requests while one is waiting are merged.
    pub fn request_file(&self, path: &Path) {
        let _ = self.requests.try_send(ReloadRequest {
            path: path.to_path_buf(),
            reply: None,
        });
    }
}
