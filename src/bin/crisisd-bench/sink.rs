//! What the loopback sinks count, shared by the SMTP and the HTTP sink.
//!
//! The hot path (`accept`) is a handful of atomic operations, so counting
//! does not slow the sink down; the set of Message-IDs is only kept when a
//! scenario asks for it (the crash scenario, which needs distinct counts).

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct SinkStats {
    /// Times are kept as nanoseconds since this instant, so they fit in atomics.
    epoch: Instant,
    accepted: AtomicU64,
    /// Message bytes received (the SMTP sink's DATA), for the mean size.
    bytes: AtomicU64,
    /// First acceptance since the last `arm`, in nanoseconds since `epoch`
    /// plus one (0: none yet).
    first: AtomicU64,
    /// Latest acceptance, in nanoseconds since `epoch` plus one (0: none).
    last: AtomicU64,
    recording: AtomicBool,
    ids: Mutex<HashSet<Box<str>>>,
    distinct: AtomicU64,
    without_id: AtomicU64,
}

impl SinkStats {
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
            accepted: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            first: AtomicU64::new(0),
            last: AtomicU64::new(0),
            recording: AtomicBool::new(false),
            ids: Mutex::new(HashSet::new()),
            distinct: AtomicU64::new(0),
            without_id: AtomicU64::new(0),
        }
    }

    /// Whether the sink should look for and keep each message's id.
    pub fn recording(&self) -> bool {
        self.recording.load(Ordering::Relaxed)
    }

    pub fn set_recording(&self, on: bool) {
        self.recording.store(on, Ordering::Relaxed);
    }

    /// Records one accepted message. `id` is its Message-ID when recording.
    pub fn accept(&self, id: Option<&[u8]>) {
        let now = self.stamp(Instant::now());
        self.last.fetch_max(now, Ordering::SeqCst);
        if self.first.load(Ordering::Relaxed) == 0 {
            // Losing the race means another acceptance was first: fine.
            let _ = self
                .first
                .compare_exchange(0, now, Ordering::SeqCst, Ordering::Relaxed);
        }
        if self.recording() {
            match id {
                Some(id) => {
                    let id: Box<str> = String::from_utf8_lossy(id).into();
                    // A poisoned lock only means another connection task
                    // panicked; the set itself is still sound.
                    let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
                    if ids.insert(id) {
                        self.distinct.fetch_add(1, Ordering::SeqCst);
                    }
                }
                None => {
                    self.without_id.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        // Counted last, so a reader that sees the count also sees the times.
        self.accepted.fetch_add(1, Ordering::SeqCst);
    }

    /// Adds a message's size; called before `accept`, so a reader that
    /// sees the count sees its bytes.
    pub fn add_bytes(&self, bytes: usize) {
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Mean size of the messages accepted so far, in bytes.
    pub fn mean_bytes(&self) -> Option<u64> {
        let count = self.accepted();
        (count > 0).then(|| self.bytes.load(Ordering::Relaxed) / count)
    }

    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Distinct Message-IDs seen while recording.
    pub fn distinct(&self) -> u64 {
        self.distinct.load(Ordering::SeqCst)
    }

    /// Messages accepted while recording that had no Message-ID.
    pub fn without_id(&self) -> u64 {
        self.without_id.load(Ordering::SeqCst)
    }

    /// Forgets the first acceptance, so the next one is timed.
    pub fn arm(&self) {
        self.first.store(0, Ordering::SeqCst);
    }

    /// When the first message since `arm` was accepted.
    pub fn first_since_arm(&self) -> Option<Instant> {
        self.instant(self.first.load(Ordering::SeqCst))
    }

    /// When the latest message was accepted.
    pub fn last(&self) -> Option<Instant> {
        self.instant(self.last.load(Ordering::SeqCst))
    }

    fn stamp(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX - 1) + 1
    }

    fn instant(&self, stamp: u64) -> Option<Instant> {
        (stamp != 0).then(|| self.epoch + Duration::from_nanos(stamp - 1))
    }
}
