//! `crisisd serve`: run the daemon until a signal stops it.

use std::path::Path;

use anyhow::anyhow;
use tokio_util::sync::CancellationToken;

use super::Failure;
use crate::app::Application;
use crate::config::Settings;

pub const ABOUT: &str = "Run the daemon: HTTP API and banner, dispatcher, flag file watcher";

pub const LONG_ABOUT: &str = "Run the daemon: HTTP API and banner, dispatcher, flag file watcher, \
    /healthz, /readyz and /metrics. Under systemd (Type=notify) it sends READY=1 once the store is \
    open and the listener bound, pings the watchdog while its loops make progress, and reports \
    STATUS=. SIGHUP reloads the config, templates, directory and audience (a config that fails \
    validation is refused and the running one stays); SIGTERM or SIGINT stops after in-flight sends \
    finish, a second one exits at once.";

pub const AFTER_HELP: &str = "Examples:\n  \
    crisisd serve                                       config/crisisd.toml, text logs\n  \
    crisisd serve --config /etc/crisisd/crisisd.toml --log-format json\n  \
    RUST_LOG=info,crisisd=debug crisisd serve            more detail from crisisd only\n  \
    kill -HUP $(pidof crisisd)                          reload (systemctl reload crisisd)\n\n\
    Exit codes: 0 stopped cleanly, 1 runtime error (e.g. the port is taken), 2 configuration error.";

pub async fn run(config: &Path) -> Result<(), Failure> {
    let settings = Settings::load(config).map_err(|e| Failure::Usage(e.into()))?;
    let application = Application::build(settings).await?;
    let shutdown = CancellationToken::new();
    let stopped = CancellationToken::new();
    let signals = crate::lifecycle::handle_signals(
        shutdown.clone(),
        stopped.clone(),
        application.reloader(),
        config.to_path_buf(),
    )
    .map_err(|e| Failure::Runtime(anyhow!("cannot install signal handlers: {e}")))?;
    let result = application.run_until_stopped(shutdown).await;
    stopped.cancel();
    signals.abort();
    result.map_err(Failure::from)
}
