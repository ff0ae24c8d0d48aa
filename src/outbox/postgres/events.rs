//! What other daemons on the database did, as it happens: LISTEN/NOTIFY on
//! a connection of its own (not a pooled one, and so not through a pooler
//! in transaction mode, which does not keep LISTEN). Every commit that
//! queues work or changes a crisis notifies inside its transaction, so a
//! notification arrives only once the change is visible. A notification
//! lost while the connection was down is reported as `Missed`, so the
//! listener looks again instead of waiting for the next one.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgListener;

use super::{PostgresStore, Tx};
use crate::domain::CrisisId;
use crate::outbox::StoreError;

/// Deliveries were queued (a transition, a plan batch, a follow-up, a
/// requeue).
pub(super) const WORK_DUE: &str = "crisisd_work_due";
/// A crisis changed; the payload is its id.
pub(super) const CRISIS_CHANGED: &str = "crisisd_crisis_changed";
/// A channel was paused on every daemon; the payload is the pause's end
/// (Unix milliseconds), a space and the channel's name.
pub(super) const FLOW_PAUSED: &str = "crisisd_flow_paused";

/// One thing another daemon (or this one) committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreEvent {
    WorkDue,
    CrisisChanged(CrisisId),
    /// A channel is paused on every daemon until then.
    FlowPaused {
        channel: String,
        until: DateTime<Utc>,
    },
    /// The connection dropped: notifications may have been lost meanwhile.
    Missed,
}

/// The daemon's subscription to the store's notifications.
pub struct StoreEvents {
    listener: PgListener,
}

impl std::fmt::Debug for StoreEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreEvents")
    }
}

impl StoreEvents {
    /// The next event. An error means the connection could not be made
    /// again; the caller waits a little and asks again.
    pub async fn next(&mut self) -> Result<StoreEvent, StoreError> {
        loop {
            let Some(notification) = self.listener.try_recv().await? else {
                return Ok(StoreEvent::Missed);
            };
            match notification.channel() {
                WORK_DUE => return Ok(StoreEvent::WorkDue),
                CRISIS_CHANGED => {
                    if let Ok(id) = notification.payload().parse() {
                        return Ok(StoreEvent::CrisisChanged(id));
                    }
                }
                FLOW_PAUSED => {
                    if let Some(event) = flow_paused(notification.payload()) {
                        return Ok(event);
                    }
                }
                _ => {}
            }
        }
    }
}

impl PostgresStore {
    /// Listens for what every daemon on the database commits.
    pub async fn events(&self) -> Result<StoreEvents, StoreError> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener
            .listen_all([WORK_DUE, CRISIS_CHANGED, FLOW_PAUSED])
            .await?;
        Ok(StoreEvents { listener })
    }
}

/// Notifies every listening daemon when `tx` commits.
pub(super) async fn notify(
    tx: &mut Tx<'_>,
    channel: &str,
    payload: &str,
) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(payload)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A `FLOW_PAUSED` payload read back.
fn flow_paused(payload: &str) -> Option<StoreEvent> {
    let (until, channel) = payload.split_once(' ')?;
    Some(StoreEvent::FlowPaused {
        channel: channel.to_owned(),
        until: DateTime::from_timestamp_millis(until.parse().ok()?)?,
    })
}
