//! `/v1/crises`: declare, list, inspect, update and resolve crises.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::auth::Authenticated;
use super::{ApiError, AppState};
use crate::crisis::{
    Actor, ActorSource, Applied, Crisis, CrisisEvent, CrisisId, CrisisUpdate, Declaration,
    IdempotencyRequest, TransitionContext,
};
use crate::outbox::{CrisisFilter, DeliveryCount, DeliveryState};

/// Sent by the CLI so the audit trail names the person, not only the token.
pub const ACTOR_HEADER: &str = "x-crisisd-actor";
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// Delivery counts of one channel, by state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateCounts {
    pub pending: u64,
    pub in_flight: u64,
    pub retrying: u64,
    pub sent: u64,
    pub dead: u64,
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
}

/// Channel name -> counts.
pub type ChannelCounts = BTreeMap<String, StateCounts>;

fn counts_for(id: CrisisId, counts: &[DeliveryCount]) -> ChannelCounts {
    let mut by_channel = ChannelCounts::new();
    for count in counts.iter().filter(|c| c.crisis_id == id) {
        by_channel
            .entry(count.channel.clone())
            .or_default()
            .add(count.state, count.count);
    }
    by_channel
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CrisisSummary {
    #[serde(flatten)]
    pub crisis: Crisis,
    pub deliveries: ChannelCounts,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CrisisList {
    pub crises: Vec<CrisisSummary>,
    /// Contact points that asked not to be contacted.
    pub opt_outs: OptOutCounts,
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    status: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    #[serde(default)]
    pub message: Option<String>,
}

fn parse_id(raw: &str) -> Result<CrisisId, ApiError> {
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

/// The audit-trail actor and the Idempotency-Key of a request.
fn transition_context(
    auth: &Authenticated,
    headers: &HeaderMap,
    method: &Method,
    uri: &Uri,
    body: &[u8],
) -> Result<TransitionContext, ApiError> {
    let actor = match headers.get(ACTOR_HEADER).and_then(|v| v.to_str().ok()) {
        Some(person) if !person.trim().is_empty() => {
            let person: String = person.trim().chars().take(100).collect();
            Actor::new(
                ActorSource::Cli,
                format!("{person} (token {})", auth.token_name),
            )
        }
        _ => Actor::new(ActorSource::Api, auth.token_name.clone()),
    };
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

fn respond(applied: Applied, status: StatusCode) -> Response {
    match applied {
        Applied::New(outcome) => (status, Json(outcome)).into_response(),
        Applied::Replayed { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut response = (status, body).into_response();
            let headers = response.headers_mut();
            headers.insert(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
            response
        }
    }
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
    Ok(respond(applied, StatusCode::CREATED))
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
    Ok(respond(applied, StatusCode::OK))
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
    let applied = state.service.resolve(id, request.message, ctx).await?;
    Ok(respond(applied, StatusCode::OK))
}

pub async fn list(
    State(state): State<AppState>,
    _auth: Authenticated,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<CrisisList>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let filter = match query.status.as_deref() {
        None | Some("all") => CrisisFilter::All,
        Some("active") => CrisisFilter::Active,
        Some("resolved") => CrisisFilter::Resolved,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "unknown status filter `{other}` (expected active, resolved or all)"
            )));
        }
    };
    let store = state.service.store();
    let crises = store.crises(filter).await?;
    let counts = store.delivery_counts(None).await?;
    let opt_outs = store.opt_outs().await?;
    Ok(Json(CrisisList {
        opt_outs: OptOutCounts {
            email: opt_outs.emails.len(),
            phone: opt_outs.phones.len(),
        },
        crises: crises
            .into_iter()
            .map(|crisis| CrisisSummary {
                deliveries: counts_for(crisis.id, &counts),
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
    let store = state.service.store();
    let crisis = store
        .crisis(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no crisis with id {id}")))?;
    let counts = store.delivery_counts(Some(id)).await?;
    let events = store.events(id).await?;
    let dead = store
        .dead_deliveries(Some(id), 50)
        .await?
        .into_iter()
        .map(|d| DeadDelivery {
            id: d.id.to_string(),
            channel: d.channel,
            destination: d.destination,
            reason: d.last_error.unwrap_or_default(),
        })
        .collect();
    Ok(Json(CrisisDetail {
        deliveries: counts_for(id, &counts),
        crisis,
        events,
        dead,
    }))
}
