//! Signals: the first SIGTERM or SIGINT stops gracefully; a second one
//! exits at once.

use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Cancels `shutdown` on the first signal. The returned task is the
/// caller's to abort once the daemon has stopped.
pub fn cancel_on_signal(shutdown: CancellationToken) -> std::io::Result<JoinHandle<()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: stopping gracefully."),
            _ = int.recv() => info!("SIGINT: stopping gracefully."),
        }
        shutdown.cancel();
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        warn!("Second signal: exiting now; leased deliveries are reclaimed after restart.");
        std::process::exit(1);
    }))
}
