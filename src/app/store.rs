//! Opening the store the config names, and `check-config --connect`'s
//! look at it: reachable, and migrated as far as this binary expects.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::banner::Banner;
use crate::clock::Clock;
use crate::config::{Settings, StoreLocation};
use crate::outbox::{
    CrisisFilter, Leadership, PostgresStore, SharedFlow, SqliteStore, Storage, StoreError,
    StoreEvent, StoreEvents,
};
use crate::telemetry;

use super::StartupError;

/// How often a daemon on a shared store looks at the crises itself, in
/// case a notification was lost: the banner is right within this long
/// even without LISTEN/NOTIFY.
const RESYNC_EVERY: Duration = Duration::from_secs(5);
/// How long to wait before listening again after the connection failed.
const RELISTEN_AFTER: Duration = Duration::from_secs(1);

/// Opens (and migrates) the store at `location`.
pub async fn open_location(location: &StoreLocation) -> Result<Storage, StoreError> {
    info!(store = %location, "opening the store");
    Ok(match location {
        StoreLocation::Sqlite(path) => Storage::new(SqliteStore::open(path).await?),
        StoreLocation::Postgres(url) => Storage::new(PostgresStore::open(url.expose()).await?),
    })
}

/// The daemon's store; on PostgreSQL its subscription to what other
/// daemons commit. Alone on its SQLite file a daemon leads; on a shared
/// store it leads once elected.
pub(super) async fn open_for_daemon(
    settings: &Settings,
) -> Result<(Storage, Option<StoreEvents>, Leadership), StartupError> {
    let location = settings
        .store
        .location()
        .map_err(|problem| StartupError::Invalid(vec![problem]))?;
    info!(store = %location, "opening the store");
    Ok(match location {
        StoreLocation::Sqlite(path) => (
            Storage::new(SqliteStore::open_for_daemon(&path).await?),
            None,
            Leadership::alone(),
        ),
        StoreLocation::Postgres(url) => {
            let store = PostgresStore::open(url.expose()).await?;
            let events = store.events().await?;
            (Storage::new(store), Some(events), Leadership::elected())
        }
    })
}

/// On a shared store (one with events), the flow control the daemons share.
pub(super) fn shared_flow(events: Option<&StoreEvents>, storage: &Storage) -> Option<SharedFlow> {
    events.map(|_| SharedFlow::new(storage.flow.clone()))
}

/// Follows what every daemon on the shared store commits: queued work
/// wakes this daemon's workers at once, and a crisis changed elsewhere
/// shows on this daemon's banner. A lost notification is made up for by
/// looking again (and every `RESYNC_EVERY` regardless). A channel paused
/// elsewhere is paused here too.
pub(super) async fn follow_events(
    mut events: StoreEvents,
    storage: Storage,
    (banner, flow): (Arc<Banner>, Option<SharedFlow>),
    clock: Arc<dyn Clock>,
    stop: CancellationToken,
) {
    let mut resync = tokio::time::interval(RESYNC_EVERY);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = resync.tick() => {
                refresh_banner(&storage, &banner).await;
                refresh_pauses(flow.as_ref(), clock.as_ref()).await;
            }
            event = events.next() => match event {
                Ok(StoreEvent::FlowPaused { channel, until }) => {
                    if let Some(flow) = &flow {
                        flow.pauses.note(&channel, until, clock.now());
                    }
                }
                Ok(StoreEvent::WorkDue) => storage.queue.work_due().notify(),
                Ok(StoreEvent::CrisisChanged(id)) => match storage.crises.crisis(id).await {
                    Ok(Some(crisis)) => banner.apply(&crisis),
                    Ok(None) => {}
                    Err(err) => warn!(error = %err, crisis = %id, "Could not read a crisis another daemon changed."),
                },
                Ok(StoreEvent::Missed) => {
                    storage.queue.work_due().notify();
                    refresh_banner(&storage, &banner).await;
                    refresh_pauses(flow.as_ref(), clock.as_ref()).await;
                }
                Err(err) => {
                    warn!(error = %err, "Lost the store's notifications; listening again shortly.");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(RELISTEN_AFTER) => {}
                    }
                }
            },
        }
    }
}

/// The channels paused by other daemons, read again.
async fn refresh_pauses(flow: Option<&SharedFlow>, clock: &dyn Clock) {
    if let Some(flow) = flow
        && let Err(err) = flow.refresh(clock.now()).await
    {
        warn!(error = %err, "Could not read the channels other daemons paused.");
    }
}

/// The banner made to agree with the store: every active crisis, and the
/// shown ones as they are now (resolved ones leave).
async fn refresh_banner(storage: &Storage, banner: &Banner) {
    let active = match storage.crises.crises(CrisisFilter::Active).await {
        Ok(active) => active,
        Err(err) => {
            warn!(error = %err, "Could not read the active crises for the banner.");
            return;
        }
    };
    let shown = banner.shown();
    for crisis in &active {
        banner.apply(crisis);
    }
    for id in shown
        .into_iter()
        .filter(|id| active.iter().all(|c| c.id != *id))
    {
        if let Ok(Some(crisis)) = storage.crises.crisis(id).await {
            banner.apply(&crisis);
        }
    }
}

/// How often a daemon on a shared store tries to take or keep the lead.
const ELECT_EVERY: Duration = Duration::from_secs(5);
/// How long a lead lasts unless renewed.
pub const LEADER_TTL: Duration = Duration::from_secs(15);
/// A leader that could not renew stops acting this long before its lease
/// ends, so two daemons never act as leader at once.
const STEP_DOWN_BEFORE: Duration = Duration::from_secs(5);

use crate::outbox::node_name;

/// Says this daemon is alive (what `crisisd status` lists), bounded so a
/// slow store cannot hold the election up.
async fn heartbeat(storage: &Storage, node: &str, started_at: DateTime<Utc>, now: DateTime<Utc>) {
    let beat = storage.leader.heartbeat(node, started_at, now);
    if !matches!(tokio::time::timeout(ELECT_EVERY, beat).await, Ok(Ok(()))) {
        warn!(node = %node, "Could not say this daemon is alive in the store.");
    }
}

/// Takes or keeps the lead every `ELECT_EVERY`, says this daemon is
/// alive, and gives the lead up (and leaves the list) at stop.
pub(super) async fn elect(
    storage: Storage,
    leadership: Leadership,
    clock: Arc<dyn Clock>,
    stop: CancellationToken,
) {
    let node = node_name();
    let started_at = clock.now();
    let mut renewed_at: Option<DateTime<Utc>> = None;
    let mut every = tokio::time::interval(ELECT_EVERY);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = every.tick() => {}
        }
        let now = clock.now();
        heartbeat(&storage, &node, started_at, now).await;
        let elected =
            tokio::time::timeout(ELECT_EVERY, storage.leader.elect(&node, now, LEADER_TTL)).await;
        match elected {
            Ok(Ok(Some(term))) => {
                if !leadership.is_leading() {
                    info!(node = %node, term = term.term, "This daemon leads now.");
                }
                leadership.set(true);
                renewed_at = Some(now);
                telemetry::leader(true, term.term);
            }
            Ok(Ok(None)) => {
                if leadership.is_leading() {
                    warn!(node = %node, "Another daemon leads now.");
                }
                leadership.set(false);
                renewed_at = None;
                telemetry::leader(false, 0);
            }
            Ok(Err(_)) | Err(_) => {
                let stale = renewed_at.is_some_and(|at| {
                    (now - at).to_std().unwrap_or_default() >= LEADER_TTL - STEP_DOWN_BEFORE
                });
                warn!(node = %node, "Could not renew the lead.");
                if stale && leadership.is_leading() {
                    warn!(node = %node, "Stopped leading: the lead could not be renewed in time.");
                    leadership.set(false);
                    renewed_at = None;
                    telemetry::leader(false, 0);
                }
            }
        }
    }
    if leadership.is_leading() {
        leadership.set(false);
        if let Err(err) = storage.leader.resign(&node).await {
            warn!(error = %err, "Could not give the lead up; another daemon takes it when it runs out.");
        }
    }
    let leave = storage.leader.leave(&node);
    if !matches!(tokio::time::timeout(ELECT_EVERY, leave).await, Ok(Ok(()))) {
        warn!(node = %node, "Could not take this daemon off the store's list; it drops off in 15 s.");
    }
}

/// What `check-config --connect` found: the store answers, and which of
/// this binary's migrations it still lacks (a start applies them).
#[derive(Debug)]
pub struct StoreCheck {
    pub missing_migrations: Vec<String>,
    /// A SQLite file that does not exist yet (a start creates it).
    pub created_at_start: bool,
}

/// Connects to the store without changing it.
pub async fn check_store(location: &StoreLocation) -> Result<StoreCheck, StoreError> {
    match location {
        StoreLocation::Sqlite(path) if !path.exists() => Ok(StoreCheck {
            missing_migrations: Vec::new(),
            created_at_start: true,
        }),
        StoreLocation::Sqlite(path) => Ok(StoreCheck {
            missing_migrations: SqliteStore::missing_migrations(path).await?,
            created_at_start: false,
        }),
        StoreLocation::Postgres(url) => Ok(StoreCheck {
            missing_migrations: PostgresStore::missing_migrations(url.expose()).await?,
            created_at_start: false,
        }),
    }
}
