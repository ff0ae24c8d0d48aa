//! Liveness: loops that must keep turning (the dispatcher's channel
//! workers, the follow-up scheduler) register a heartbeat here and beat it
//! on every turn. The systemd watchdog is only fed while every heartbeat is
//! fresh, so a loop stuck on a hung call gets the daemon restarted.
//!
//! A loop that is idle on purpose (a channel paused by its provider) says
//! until when with [`Heartbeat::quiet_until`], so waiting is not mistaken
//! for hanging.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
struct Beat {
    name: String,
    /// Longest silence that still counts as alive.
    allowance: Duration,
    last: Instant,
    quiet_until: Option<Instant>,
}

#[derive(Debug, Default)]
struct Registry {
    next_id: u64,
    beats: BTreeMap<u64, Beat>,
}

/// The heartbeats of a running daemon; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Liveness(Arc<Mutex<Registry>>);

/// A loop that stopped beating: its name and how long it has been silent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stalled {
    pub name: String,
    pub silent_for: Duration,
}

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} has not made progress for {}",
            self.name,
            humantime::format_duration(Duration::from_secs(self.silent_for.as_secs()))
        )
    }
}

impl Liveness {
    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        crate::sync::lock(&self.0)
    }

    /// Registers a loop that promises to beat at least every `allowance`.
    /// It counts until the returned heartbeat is dropped.
    pub fn register(&self, name: impl Into<String>, allowance: Duration) -> Heartbeat {
        let mut registry = self.registry();
        let id = registry.next_id;
        registry.next_id += 1;
        registry.beats.insert(
            id,
            Beat {
                name: name.into(),
                allowance,
                last: Instant::now(),
                quiet_until: None,
            },
        );
        Heartbeat {
            liveness: self.clone(),
            id,
        }
    }

    /// The loops that are overdue, none when everything is alive.
    pub fn stalled(&self) -> Vec<Stalled> {
        let now = Instant::now();
        self.registry()
            .beats
            .values()
            .filter(|beat| beat.quiet_until.is_none_or(|until| now > until))
            .filter_map(|beat| {
                let since = beat.quiet_until.map_or(beat.last, |q| q.max(beat.last));
                let silent_for = now.saturating_duration_since(since);
                (silent_for > beat.allowance).then(|| Stalled {
                    name: beat.name.clone(),
                    silent_for,
                })
            })
            .collect()
    }

    /// How many loops are registered.
    pub fn len(&self) -> usize {
        self.registry().beats.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One loop's heartbeat; unregisters itself when dropped.
#[derive(Debug)]
pub struct Heartbeat {
    liveness: Liveness,
    id: u64,
}

impl Heartbeat {
    /// The loop made progress.
    pub fn beat(&self) {
        if let Some(beat) = self.liveness.registry().beats.get_mut(&self.id) {
            beat.last = Instant::now();
            beat.quiet_until = None;
        }
    }

    /// The loop is waiting on purpose until `until`; its allowance starts
    /// counting again from then.
    pub fn quiet_until(&self, until: Instant) {
        if let Some(beat) = self.liveness.registry().beats.get_mut(&self.id) {
            beat.last = Instant::now();
            beat.quiet_until = Some(until);
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.liveness.registry().beats.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_loop_that_stops_beating_is_reported_after_its_allowance() {
        let liveness = Liveness::default();
        let heartbeat = liveness.register("dispatch:email", Duration::from_secs(10));
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(liveness.stalled().is_empty());
        heartbeat.beat();
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(liveness.stalled().is_empty(), "a beat restarts the count");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let stalled = liveness.stalled();
        assert_eq!(stalled.len(), 1);
        assert_eq!(stalled[0].name, "dispatch:email");
        assert_eq!(stalled[0].silent_for, Duration::from_secs(11));
        assert_eq!(
            stalled[0].to_string(),
            "dispatch:email has not made progress for 11s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_loop_is_alive_until_its_pause_and_allowance_are_over() {
        let liveness = Liveness::default();
        let heartbeat = liveness.register("dispatch:sms", Duration::from_secs(10));
        heartbeat.quiet_until(Instant::now() + Duration::from_secs(300));
        tokio::time::sleep(Duration::from_secs(305)).await;
        assert!(liveness.stalled().is_empty());
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(liveness.stalled().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_heartbeat_no_longer_counts() {
        let liveness = Liveness::default();
        let heartbeat = liveness.register("scheduler", Duration::from_secs(1));
        assert_eq!(liveness.len(), 1);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(liveness.stalled().len(), 1);
        drop(heartbeat);
        assert!(liveness.stalled().is_empty());
        assert!(liveness.is_empty());
    }
}
