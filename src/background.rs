//! The runtime for fan-out work: planning deliveries and sending them.
//!
//! A large fan-out can keep every core busy for minutes, and that is when
//! customers reload the status banner most. So fan-out work runs on its own
//! tokio runtime whose threads run at a lower CPU priority (a higher nice
//! value) than the runtime serving HTTP: when both want the CPU the kernel
//! favours the API and the banner, and when the API is idle the fan-out
//! still takes every core. Threads the fan-out starts (SQLite's connection
//! threads among them) inherit the niceness.

use tokio::runtime::{Handle, Runtime};
use tracing::warn;

/// Highest niceness Linux knows; `dispatch.nice` is checked against it.
pub const MAX_NICE: u8 = 19;

pub struct BackgroundRuntime {
    /// Taken only by `drop`.
    runtime: Option<Runtime>,
    handle: Handle,
}

impl BackgroundRuntime {
    /// Starts one worker thread per core, each lowered to `nice`.
    pub fn start(nice: u8) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("crisisd-fanout")
            .on_thread_start(move || lower_priority(nice))
            .enable_all()
            .build()?;
        Ok(Self {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
    }

    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }
}

impl Drop for BackgroundRuntime {
    fn drop(&mut self) {
        // Dropped from async code at the end of a run: a blocking shutdown
        // would panic there. Everything on it was awaited before.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Raises the calling thread's niceness by `nice` (Linux applies `setpriority` with a
/// thread id to that thread alone). Lowering one's own priority needs no
/// privilege; a failure only costs the banner some speed, so it is logged.
fn lower_priority(nice: u8) {
    if nice == 0 {
        return;
    }
    // Relative to the daemon's own niceness (systemd's `Nice=`, say), as
    // nice(1) does.
    let thread = Some(rustix::thread::gettid());
    let lowered = rustix::process::getpriority_process(thread).and_then(|own| {
        let target = (own + i32::from(nice)).min(i32::from(MAX_NICE));
        rustix::process::setpriority_process(thread, target)
    });
    if let Err(err) = lowered {
        warn!(
            nice,
            error = %err,
            "Could not lower the fan-out threads' CPU priority; the banner may slow down during fan-outs."
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own_nice() -> i32 {
        rustix::process::getpriority_process(Some(rustix::thread::gettid())).expect("getpriority")
    }

    #[test]
    fn work_runs_at_the_lower_priority_and_the_caller_keeps_its_own() {
        let before = own_nice();
        let background = BackgroundRuntime::start(7).expect("runtime");
        let task = background.handle().spawn(async { own_nice() });
        let inside = background.handle().block_on(task).expect("task");
        assert_eq!(inside, (before + 7).min(19));
        assert_eq!(own_nice(), before);
    }
}
