//! Leadership among daemons sharing one store: a lease row with terms.
//! The leader alone fires due follow-ups and webhook holds, rescues
//! expired leases and applies retention; every node tries to take or keep
//! the lead every few seconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreError;

/// Who leads, since which term, until when (unless renewed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Term {
    pub node: String,
    /// Grows by one each time the lead changes hands; renewing keeps it.
    pub term: u64,
    pub elected_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A daemon not seen for this long is no longer listed as alive (it says
/// so every 5 s).
pub const NODE_SEEN_WITHIN: Duration = Duration::from_secs(15);

/// This daemon's name among those sharing the store: its host and process.
pub fn node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "crisisd".to_owned());
    format!("{host}:{}", std::process::id())
}

#[async_trait]
pub trait LeaderStore: Send + Sync + 'static {
    /// Takes the lead for `node` until `now + ttl` when nobody holds it or
    /// its holder's lease ran out, or renews it when `node` holds it;
    /// returns the term when `node` leads, `None` when another does.
    async fn elect(
        &self,
        node: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Option<Term>, StoreError>;
    /// Gives the lead up (a stop), so another takes it at once.
    async fn resign(&self, node: &str) -> Result<(), StoreError>;
    /// The lead as it stands at `now`: `None` when it is free.
    async fn leader(&self, now: DateTime<Utc>) -> Result<Option<Term>, StoreError>;
    /// Records that `node` (running since `started_at`) is alive at `now`.
    async fn heartbeat(
        &self,
        node: &str,
        started_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Forgets `node` (a stop).
    async fn leave(&self, node: &str) -> Result<(), StoreError>;
    /// The daemons seen alive since `since`, by name.
    async fn nodes(&self, since: DateTime<Utc>) -> Result<Vec<NodeSeen>, StoreError>;
    /// The deliveries in flight, by lease owner and channel, with the
    /// latest lease among them.
    async fn held_leases(&self) -> Result<Vec<HeldLeases>, StoreError>;
}

/// A daemon sharing the store, as it last said it was alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSeen {
    pub node: String,
    pub started_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
}

/// One lease owner's deliveries in flight on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldLeases {
    /// The dispatcher holding them: `<node>/<run>`.
    pub owner: String,
    pub channel: String,
    pub in_flight: u64,
    /// The latest of their leases: by then all are sent or taken over.
    pub until: DateTime<Utc>,
}

impl HeldLeases {
    /// The daemon whose dispatcher holds them.
    pub fn node(&self) -> &str {
        self.owner.split('/').next().unwrap_or(&self.owner)
    }
}

/// Whether this daemon leads now, as its election task last found: the
/// scheduler and the webhook hold timer act only while it does. A daemon
/// alone on its store (SQLite) always leads.
#[derive(Debug, Clone)]
pub struct Leadership(Arc<AtomicBool>);

impl Leadership {
    /// Leading from the start: one daemon on its own store.
    pub fn alone() -> Self {
        Self(Arc::new(AtomicBool::new(true)))
    }

    /// Not leading until elected: one of several daemons.
    pub fn elected() -> Self {
        Self(Arc::new(AtomicBool::new(false)))
    }

    pub fn is_leading(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    pub fn set(&self, leading: bool) {
        self.0.store(leading, Ordering::SeqCst);
    }
}
