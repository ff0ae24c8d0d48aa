//! `/v1/crises`: declare, list, inspect, update and resolve crises.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::auth::Authenticated;
use super::{ApiError, AppState};
use crate::domain::{
    Actor, ActorSource, AnnouncementKind, Crisis, CrisisEvent, CrisisId, CrisisUpdate, Declaration,
};
use crate::outbox::{
    CrisisFilter, CrisisStore, DeadCause, DeadFilter, DeliveryCount, DeliveryState, Ledger,
    StoreError,
};
use crate::service::{Applied, IdempotencyRequest, TransitionContext, answer_status};

/// Sent by the CLI so the audit trail names the person, not only the token.
pub const ACTOR_HEADER: &str = "x-crisisd-actor";
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// How far back the delivery rate looks.
pub const RATE_WINDOW: TimeDelta = TimeDelta::seconds(10);

/// Delivery counts of one channel, by state, with the pace the daemon
/// measures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StateCounts {
    pub pending: u64,
    pub in_flight: u64,
    pub retrying: u64,
    pub sent: u64,
    pub dead: u64,
    /// Deliveries finished (sent or dead) per second over the last
    /// `RATE_WINDOW`, or since the crisis's last transition when that is
    /// more recent. `default`: an older daemon does not send it.
    #[serde(default)]
    pub rate_per_second: f64,
    /// Seconds until nothing is left pending, in flight or retrying at that
    /// rate: 0 when nothing is left, null while the rate is 0.
    #[serde(default)]
    pub eta_seconds: Option<u64>,
}

impl StateCounts {
    fn add(&mut self, state: DeliveryState, n: u64) {
        let slot = match state {
            DeliveryState::Pending => &mut self.pending,
            DeliveryState::InFlight => &mut self.in_flight,
            DeliveryState::Retrying => &mut self.retrying,
            DeliveryState::Sent => &mut self.sent,
            DeliveryState::Dead => &mut self.dead,
        };
        *slot += n;
    }

    pub fn total(&self) -> u64 {
        self.pending + self.in_flight + self.retrying + self.sent + self.dead
    }

    /// What is still to be sent or decided.
    pub fn remaining(&self) -> u64 {
        self.pending + self.in_flight + self.retrying
    }

    fn set_rate(&mut self, rate: f64) {
        // Two decimals: enough for a person, stable for a JSON reader.
        self.rate_per_second = (rate * 100.0).round() / 100.0;
        let remaining = self.remaining();
        self.eta_seconds = if remaining == 0 {
            Some(0)
        } else if rate > 0.0 {
            Some((remaining as f64 / rate).ceil() as u64)
        } else {
            None
        };
    }
}

/// Deliveries finished per second, by crisis and channel.
type Rates = HashMap<(CrisisId, String), f64>;

/// Measures the rates from `finished_at`: over the last `RATE_WINDOW`, or,
/// for a crisis whose last transition is more recent, since that
/// transition, so a fan-out that began 2 s ago is not divided by 10 s.
pub(crate) async fn measure_rates(
    ledger: &dyn Ledger,
    scope: Option<CrisisId>,
    crises: &[Crisis],
    now: DateTime<Utc>,
) -> Result<Rates, StoreError> {
    let window_start = now - RATE_WINDOW;
    let window = RATE_WINDOW.as_seconds_f64();
    let mut rates: Rates = ledger
        .finished_since(scope, window_start)
        .await?
        .into_iter()
        .map(|f| ((f.crisis_id, f.channel), f.count as f64 / window))
        .collect();
    for crisis in crises.iter().filter(|c| c.updated_at > window_start) {
        // At least a second, so the first few deliveries do not read as a
        // burst of thousands per second.
        let elapsed = (now - crisis.updated_at)
            .as_seconds_f64()
            .clamp(1.0, window);
        rates.retain(|(id, _), _| *id != crisis.id);
        for f in ledger
            .finished_since(Some(crisis.id), crisis.updated_at)
            .await?
        {
            rates.insert((f.crisis_id, f.channel), f.count as f64 / elapsed);
        }
    }
    Ok(rates)
}

/// Channel name -> counts.
pub type ChannelCounts = BTreeMap<String, StateCounts>;

pub(crate) fn counts_for(id: CrisisId, counts: &[DeliveryCount], rates: &Rates) -> ChannelCounts {
    let mut by_channel = ChannelCounts::new();
    for count in counts.iter().filter(|c| c.crisis_id == id) {
        by_channel
            .entry(count.channel.clone())
            .or_default()
            .add(count.state, count.count);
    }
    for (channel, counts) in &mut by_channel {
        let rate = rates.get(&(id, channel.clone())).copied().unwrap_or(0.0);
        counts.set_rate(rate);
    }
    by_channel
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CrisisSummary {
    #[serde(flatten)]
    pub crisis: Crisis,
    pub deliveries: ChannelCounts,
    /// Per channel, who the delivery receipts say was reached and not.
    #[serde(default)]
    pub reach: BTreeMap<String, Reach>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CrisisList {
    pub crises: Vec<CrisisSummary>,
    /// Contact points that asked not to be contacted.
    pub opt_outs: OptOutCounts,
    /// Announcements whose subscribers are not all planned yet: planning
    /// failed (the audience file unreadable, the store unable to write)
    /// and the daemon retries it. `default`: an older daemon does not send it.
    #[serde(default)]
    pub planning_pending: Vec<crate::service::PendingPlan>,
    /// Which daemon holds what. `default`: an older daemon does not send it.
    #[serde(default)]
    pub daemons: Option<Daemons>,
}

/// The daemons sharing the store (this one alone, on SQLite): who leads,
/// who is alive with which deliveries in flight, who plans what.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Daemons {
    /// The daemon that answered.
    pub this_node: String,
    pub leader: Option<crate::outbox::Term>,
    pub nodes: Vec<DaemonState>,
    /// Announcements being planned, oldest first.
    pub planning: Vec<PlanState>,
}

/// One daemon: when it was last seen, and its deliveries in flight.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaemonState {
    pub node: String,
    /// `false`: not seen for 15 s (stopped or dead) and still holding
    /// leases, which other daemons take over once they run out.
    pub alive: bool,
    pub started_at: Option<DateTime<Utc>>,
    pub seen_at: Option<DateTime<Utc>>,
    pub leader: bool,
    /// By channel.
    pub leases: BTreeMap<String, LeaseState>,
}

/// A daemon's deliveries in flight on one channel.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LeaseState {
    pub in_flight: u64,
    /// The latest of their leases.
    pub until: Option<DateTime<Utc>>,
}

/// An announcement being planned, and who plans it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanState {
    pub crisis_id: CrisisId,
    pub announcement: AnnouncementKind,
    /// Subscribers planned so far.
    pub planned_through: u64,
    pub owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
}

/// What `Daemons` says, read from the store at `now`.
pub(super) async fn daemons(state: &AppState) -> Result<Daemons, crate::outbox::StoreError> {
    let now = state.clock.now();
    let this_node = crate::outbox::node_name();
    let store = &state.storage.leader;
    let leader = store.leader(now).await?;
    let seen_since = now - crate::outbox::NODE_SEEN_WITHIN;
    let mut nodes: BTreeMap<String, DaemonState> = BTreeMap::new();
    let add = |node: &str, alive: bool| -> DaemonState {
        DaemonState {
            leader: leader.as_ref().is_some_and(|t| t.node == node),
            node: node.to_owned(),
            alive,
            started_at: None,
            seen_at: None,
            leases: BTreeMap::new(),
        }
    };
    // Alone on SQLite a daemon never says it is alive: it is.
    nodes.insert(this_node.clone(), add(&this_node, true));
    for seen in store.nodes(seen_since).await? {
        let entry = nodes
            .entry(seen.node.clone())
            .or_insert_with(|| add(&seen.node, true));
        entry.started_at = Some(seen.started_at);
        entry.seen_at = Some(seen.seen_at);
    }
    for held in store.held_leases().await? {
        let entry = nodes
            .entry(held.node().to_owned())
            .or_insert_with(|| add(held.node(), false));
        let lease = entry.leases.entry(held.channel.clone()).or_default();
        lease.in_flight += held.in_flight;
        lease.until = lease.until.max(Some(held.until));
    }
    let planning = state
        .storage
        .plans
        .unfinished_plans()
        .await?
        .into_iter()
        .map(|plan| PlanState {
            crisis_id: plan.announcement.crisis_id,
            announcement: plan.announcement.kind,
            planned_through: plan.planned_through,
            owner: plan.lease.as_ref().map(|l| l.owner.clone()),
            lease_until: plan.lease.map(|l| l.until),
        })
        .collect();
    Ok(Daemons {
        this_node,
        leader,
        nodes: nodes.into_values().collect(),
        planning,
    })
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptOutCounts {
    pub email: usize,
    pub phone: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadDelivery {
    pub id: String,
    pub channel: String,
    pub destination: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CrisisDetail {
    #[serde(flatten)]
    pub crisis: Crisis,
    pub deliveries: ChannelCounts,
    /// The audit trail, oldest first.
    pub events: Vec<CrisisEvent>,
    /// Up to 50 dead deliveries, newest first, with their reasons.
    pub dead: Vec<DeadDelivery>,
    /// How many follow-ups are in each state, and when the next is due.
    #[serde(default)]
    pub follow_ups: crate::domain::follow_up::FollowUpCounts,
    /// Per channel, who the delivery receipts say was reached and not.
    #[serde(default)]
    pub reach: BTreeMap<String, Reach>,
    /// Readers' replies: how many gave each answer, and the free text.
    #[serde(default)]
    pub answers: Vec<super::answers::TallyView>,
}

/// One channel's reach: the receipts' counts, and the two sums comms
/// staff ask for first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reach {
    /// A receipt said delivered.
    pub reached: u64,
    /// Undelivered, hard-bounced or dead.
    pub not_reached: u64,
    #[serde(flatten)]
    pub counts: crate::outbox::ReachCounts,
}

impl From<crate::outbox::ReachCounts> for Reach {
    fn from(counts: crate::outbox::ReachCounts) -> Self {
        Reach {
            reached: counts.reached(),
            not_reached: counts.not_reached(),
            counts,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `active`, `resolved` or `all` (the default).
    #[serde(default)]
    status: CrisisFilter,
}

/// The body of `POST /v1/crises/{id}/resolve`: its message, per locale
/// too.
pub type ResolveRequest = crate::domain::Resolution;

pub(super) fn parse_id(raw: &str) -> Result<CrisisId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::NotFound(format!("no crisis with id `{raw}` (ids are UUIDs)")))
}

pub(super) fn parse_json<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<(T, Bytes), ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(limit)
        } else {
            ApiError::BadRequest(format!("cannot read the request body: {rejection}"))
        }
    })?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "the request body is empty; send a JSON object".into(),
        ));
    }
    let value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("the request body is not valid: {e}")))?;
    Ok((value, body))
}

/// Who makes a request: the token's name, or the CLI user and the token.
pub(super) fn actor(auth: &Authenticated, headers: &HeaderMap) -> Actor {
    match headers.get(ACTOR_HEADER).and_then(|v| v.to_str().ok()) {
        Some(person) if !person.trim().is_empty() => {
            let person: String = person.trim().chars().take(100).collect();
            Actor::new(
                ActorSource::Cli,
                format!("{person} (token {})", auth.token_name),
            )
        }
        _ => Actor::new(ActorSource::Api, auth.token_name.clone()),
    }
}

/// The audit-trail actor and the Idempotency-Key of a request.
pub(super) fn transition_context(
    auth: &Authenticated,
    headers: &HeaderMap,
    method: &Method,
    uri: &Uri,
    body: &[u8],
) -> Result<TransitionContext, ApiError> {
    let actor = actor(auth, headers);
    let idempotency = match headers.get(IDEMPOTENCY_HEADER) {
        None => None,
        Some(value) => {
            let key = value
                .to_str()
                .ok()
                .map(str::trim)
                .filter(|k| !k.is_empty() && k.len() <= 255)
                .ok_or_else(|| {
                    ApiError::BadRequest(
                        "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
                    )
                })?;
            let mut hasher = Sha256::new();
            hasher.update(method.as_str().as_bytes());
            hasher.update(b" ");
            hasher.update(uri.path().as_bytes());
            hasher.update(b"\n");
            hasher.update(body);
            Some(IdempotencyRequest {
                scope: auth.token_name.clone(),
                key: key.to_owned(),
                fingerprint: format!("{:x}", hasher.finalize()),
            })
        }
    };
    Ok(TransitionContext {
        actor,
        idempotency,
        source: None,
    })
}

/// A transition's answer: 201 for a declaration, 200 for a change (the
/// convention stored answers are replayed with), or the stored answer of
/// a repeated Idempotency-Key with `Idempotent-Replayed: true`.
fn respond(applied: Applied) -> Response {
    let status = |code| StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    match applied {
        Applied::New(outcome) => {
            (status(answer_status(outcome.announcement)), Json(outcome)).into_response()
        }
        Applied::Replayed { status, body } => replayed(status, body),
    }
}

/// The stored answer of a repeated Idempotency-Key, as it was given, with
/// `Idempotent-Replayed: true`.
pub(super) fn replayed(code: u16, body: String) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    response
}

pub async fn declare(
    State(state): State<AppState>,
    auth: Authenticated,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (declaration, raw): (Declaration, _) = parse_json(body, state.max_body_bytes)?;
    let ctx = transition_context(&auth, &headers, &method, &uri, &raw)?;
    let applied = state.service.declare(declaration, ctx).await?;
    Ok(respond(applied))
}

pub async fn update(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let (update, raw): (CrisisUpdate, _) = parse_json(body, state.max_body_bytes)?;
    let ctx = transition_context(&auth, &headers, &method, &uri, &raw)?;
    let applied = state.service.update(id, update, ctx).await?;
    Ok(respond(applied))
}

pub async fn resolve(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    // An empty body is a resolve without a message.
    let (request, raw) = match &body {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => {
            (ResolveRequest::default(), Bytes::new())
        }
        _ => parse_json::<ResolveRequest>(body, state.max_body_bytes)?,
    };
    let ctx = transition_context(&auth, &headers, &method, &uri, &raw)?;
    let applied = state.service.resolve_with(id, request, ctx).await?;
    Ok(respond(applied))
}

pub async fn list(
    State(state): State<AppState>,
    _auth: Authenticated,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<CrisisList>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let filter = query.status;
    let storage = &state.storage;
    let crises = storage.crises.crises(filter).await?;
    let counts = storage.ledger.delivery_counts(None).await?;
    let rates = measure_rates(storage.ledger.as_ref(), None, &crises, state.clock.now()).await?;
    let opt_outs = storage.consent.opt_outs().await?;
    let mut reach: HashMap<CrisisId, BTreeMap<String, Reach>> = HashMap::new();
    for row in storage.receipts.reach(None).await? {
        reach
            .entry(row.crisis_id)
            .or_default()
            .insert(row.channel, Reach::from(row.counts));
    }
    Ok(Json(CrisisList {
        daemons: Some(daemons(&state).await?),
        planning_pending: state.service.pending_plans(),
        opt_outs: OptOutCounts {
            email: opt_outs.emails.len(),
            phone: opt_outs.phones.len(),
        },
        crises: crises
            .into_iter()
            .map(|crisis| CrisisSummary {
                deliveries: counts_for(crisis.id, &counts, &rates),
                reach: reach.remove(&crisis.id).unwrap_or_default(),
                crisis,
            })
            .collect(),
    }))
}

pub async fn show(
    State(state): State<AppState>,
    _auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<CrisisDetail>, ApiError> {
    let id = parse_id(&id)?;
    let storage = &state.storage;
    let crisis = storage
        .crises
        .crisis(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no crisis with id {id}")))?;
    let counts = storage.ledger.delivery_counts(Some(id)).await?;
    let rates = measure_rates(
        storage.ledger.as_ref(),
        Some(id),
        std::slice::from_ref(&crisis),
        state.clock.now(),
    )
    .await?;
    let events = storage.crises.events(id).await?;
    let dead = storage
        .dead_letters
        .list(
            DeadFilter {
                crisis: Some(id),
                channel: None,
            },
            50,
        )
        .await?
        .into_iter()
        .map(|d| DeadDelivery {
            id: d.id.to_string(),
            channel: d.channel,
            destination: d.destination,
            reason: d.reason,
        })
        .collect();
    let follow_ups = crate::domain::follow_up::FollowUpCounts::of(
        &storage.follow_ups.follow_ups(Some(id)).await?,
    );
    let reach = storage
        .receipts
        .reach(Some(id))
        .await?
        .into_iter()
        .map(|row| (row.channel, Reach::from(row.counts)))
        .collect();
    Ok(Json(CrisisDetail {
        deliveries: counts_for(id, &counts, &rates),
        crisis,
        events,
        dead,
        follow_ups,
        reach,
        answers: super::answers::crisis_tallies(&state, id).await?,
    }))
}

/// Default and largest page of `GET /v1/deliveries/dead`.
pub const DEAD_LIMIT_DEFAULT: u32 = 100;
pub const DEAD_LIMIT_MAX: u32 = 1000;

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crisis: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// One dead delivery in `GET /v1/deliveries/dead`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadEntry {
    pub id: String,
    pub crisis_id: CrisisId,
    pub channel: String,
    pub destination: String,
    pub attempts: u32,
    /// When it died.
    pub finished_at: DateTime<Utc>,
    /// Why, as a word a script can act on (`opted_out`, `corrected`, ...).
    pub cause: DeadCause,
    /// Why, for people.
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadList {
    /// Newest first, at most `limit`.
    pub deliveries: Vec<DeadEntry>,
    /// All dead deliveries matching the filters, beyond the limit too.
    pub total: u64,
}

/// `POST /v1/deliveries/retry-dead`; every field optional, an empty body
/// means every dead delivery.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetryDeadRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crisis: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Count what would be requeued, change nothing (the CLI's confirmation).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RetryDeadResponse {
    /// Deliveries put back to pending (0 for a dry run).
    pub requeued: u64,
    /// For a dry run: how many would be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub would_requeue: Option<u64>,
    /// Dead deliveries in scope that requeueing cannot help: their message
    /// could not be rendered or fitted at planning, the all-clear
    /// cancelled them, or their reader is opted out now.
    #[serde(default)]
    pub left_dead: u64,
}

/// Dead deliveries of these channels (of `crisis`, if given), from the
/// per-state counts the store keeps.
async fn dead_count(
    storage: &crate::outbox::Storage,
    crisis: Option<CrisisId>,
    channels: &[String],
) -> Result<u64, ApiError> {
    Ok(storage
        .ledger
        .delivery_counts(crisis)
        .await?
        .iter()
        .filter(|c| c.state == DeliveryState::Dead && channels.contains(&c.channel))
        .map(|c| c.count)
        .sum())
}

/// A crisis named in a filter: 400 when it is not an id, 404 when unknown.
async fn existing_crisis(crises: &dyn CrisisStore, raw: &str) -> Result<CrisisId, ApiError> {
    let id: CrisisId = raw.trim().parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "`crisis` must be a crisis id (a UUID), not `{raw}`"
        ))
    })?;
    match crises.crisis(id).await? {
        Some(_) => Ok(id),
        None => Err(ApiError::NotFound(format!("no crisis with id {id}"))),
    }
}

fn channel_filter(raw: Option<String>) -> Result<Option<String>, ApiError> {
    match raw {
        Some(channel) if channel.trim().is_empty() => Err(ApiError::BadRequest(
            "`channel` must be a channel name, not empty".into(),
        )),
        other => Ok(other.map(|c| c.trim().to_owned())),
    }
}

pub async fn dead(
    State(state): State<AppState>,
    _auth: Authenticated,
    query: Result<Query<DeadQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DeadList>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = query.limit.unwrap_or(DEAD_LIMIT_DEFAULT);
    if !(1..=DEAD_LIMIT_MAX).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "`limit` must be 1 to {DEAD_LIMIT_MAX}, not {limit}"
        )));
    }
    let storage = &state.storage;
    let crisis = match query.crisis.as_deref() {
        Some(raw) => Some(existing_crisis(storage.crises.as_ref(), raw).await?),
        None => None,
    };
    let channel = channel_filter(query.channel)?;
    let filter = DeadFilter {
        crisis,
        channel: channel.as_deref(),
    };
    let letters = storage.dead_letters.list(filter, limit).await?;
    // The total comes from the per-state counts, which the store keeps
    // indexed; it tells whether the page is all there is.
    let total = storage
        .ledger
        .delivery_counts(crisis)
        .await?
        .iter()
        .filter(|c| c.state == DeliveryState::Dead)
        .filter(|c| channel.as_deref().is_none_or(|ch| c.channel == ch))
        .map(|c| c.count)
        .sum();
    Ok(Json(DeadList {
        deliveries: letters
            .into_iter()
            .map(|d| DeadEntry {
                id: d.id.to_string(),
                crisis_id: d.crisis_id,
                channel: d.channel,
                destination: d.destination,
                attempts: d.attempts,
                finished_at: d.finished_at,
                cause: d.cause,
                reason: d.reason,
            })
            .collect(),
        total,
    }))
}

/// Requeues dead deliveries; the store wakes the dispatcher for them.
pub async fn retry_dead(
    State(state): State<AppState>,
    auth: Authenticated,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<RetryDeadResponse>, ApiError> {
    let request = match &body {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => RetryDeadRequest::default(),
        _ => parse_json::<RetryDeadRequest>(body, state.max_body_bytes)?.0,
    };
    let storage = &state.storage;
    let crisis = match request.crisis.as_deref() {
        Some(raw) => Some(existing_crisis(storage.crises.as_ref(), raw).await?),
        None => None,
    };
    let inputs = state.inputs.load();
    let configured: Vec<&str> = inputs.channels.iter().map(|c| c.name.as_str()).collect();
    // Only configured channels: a requeued delivery of a channel without a
    // worker would wait forever instead of staying visibly dead.
    let channels = match channel_filter(request.channel)? {
        Some(channel) if configured.contains(&channel.as_str()) => vec![channel],
        Some(channel) => {
            return Err(ApiError::BadRequest(format!(
                "channel `{channel}` is not configured (configured: {}); its deliveries cannot be sent",
                configured.join(", ")
            )));
        }
        None => configured.iter().map(|c| (*c).to_owned()).collect(),
    };
    let dead = dead_count(storage, crisis, &channels).await?;
    let mut n = 0;
    for channel in &channels {
        let filter = DeadFilter {
            crisis,
            channel: Some(channel.as_str()),
        };
        n += if request.dry_run {
            storage.dead_letters.count_requeueable(filter).await?
        } else {
            storage
                .dead_letters
                .requeue(filter, state.clock.now())
                .await?
        };
    }
    let left_dead = dead.saturating_sub(n);
    if request.dry_run {
        return Ok(Json(RetryDeadResponse {
            requeued: 0,
            would_requeue: Some(n),
            left_dead,
        }));
    }
    // Not a crisis transition, so not in the audit trail; the log names who.
    let person = headers
        .get(ACTOR_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|p| p.trim().chars().take(100).collect::<String>());
    tracing::info!(
        requeued = n,
        crisis = ?crisis.map(|c| c.to_string()),
        channels = ?channels,
        token = %auth.token_name,
        person = ?person,
        "Dead deliveries requeued."
    );
    Ok(Json(RetryDeadResponse {
        requeued: n,
        would_requeue: None,
        left_dead,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pending: u64, in_flight: u64, retrying: u64) -> StateCounts {
        StateCounts {
            pending,
            in_flight,
            retrying,
            sent: 10,
            ..Default::default()
        }
    }

    #[test]
    fn the_eta_is_what_is_left_over_the_rate_rounded_up() {
        let mut c = counts(90, 5, 5);
        c.set_rate(30.0);
        assert_eq!(c.eta_seconds, Some(4), "100 left at 30/s");
        assert_eq!(c.rate_per_second, 30.0);
    }

    #[test]
    fn without_a_rate_there_is_no_eta_and_with_nothing_left_it_is_zero() {
        let mut waiting = counts(0, 0, 3);
        waiting.set_rate(0.0);
        assert_eq!(waiting.eta_seconds, None);
        let mut done = counts(0, 0, 0);
        done.set_rate(0.0);
        assert_eq!(done.eta_seconds, Some(0));
    }

    #[test]
    fn the_rate_is_kept_to_two_decimals() {
        let mut c = counts(1, 0, 0);
        c.set_rate(1.0 / 3.0);
        assert_eq!(c.rate_per_second, 0.33);
        assert_eq!(c.eta_seconds, Some(3));
    }
}
