//! Leadership among daemons sharing one store: a lease row with terms.
//! The leader alone fires due follow-ups and webhook holds, rescues
//! expired leases and applies retention; every node tries to take or keep
//! the lead every few seconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::StoreError;

/// Who leads, since which term, until when (unless renewed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Term {
    pub node: String,
    /// Grows by one each time the lead changes hands; renewing keeps it.
    pub term: u64,
    pub elected_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

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
