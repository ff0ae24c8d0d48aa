//! The pages that show: the dashboard (proposals and holds first, then
//! active crises with per-channel progress, then recently resolved), a
//! crisis (progress, audit trail, follow-ups, dead deliveries with
//! requeue) and the webhook log.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use minijinja::{Value, context};
use serde::Deserialize;
use tracing::info;

use super::super::api::{ChannelCounts, StateCounts, counts_for, measure_rates};
use super::super::{ApiError, AppState};
use super::session::{Staff, same_token};
use super::{Page, csrf_refused};
use crate::domain::{Crisis, CrisisId, Status};
use crate::outbox::{CrisisFilter, DeadFilter, StoreError};

/// Resolved crises the dashboard still lists.
const RECENTLY_RESOLVED: usize = 10;
const DEAD_SHOWN: u32 = 50;
const HOOK_LOG_SHOWN: u32 = 100;

#[derive(Debug, Deserialize)]
pub struct LangQuery {
    #[serde(default)]
    pub(super) lang: Option<String>,
}

pub fn when(at: DateTime<Utc>) -> Value {
    context! {
        iso => at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        text => at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    }
}

fn channel_row(name: &str, counts: &StateCounts) -> Value {
    let total = counts.total();
    let finished = counts.sent + counts.dead;
    let percent = (finished * 100).checked_div(total).unwrap_or(100);
    context! {
        name => name,
        sent => counts.sent,
        // In flight is still waiting as far as a reader is concerned.
        pending => counts.pending + counts.in_flight,
        retrying => counts.retrying,
        dead => counts.dead,
        total => total,
        percent => percent,
        rate => format!("{:.1}", counts.rate_per_second),
        eta => counts.eta_seconds,
        done => counts.remaining() == 0,
    }
}

/// A crisis with its per-channel progress, as the pages show it.
pub fn crisis_card(crisis: &Crisis, channels: &ChannelCounts) -> Value {
    let rows: Vec<Value> = channels
        .iter()
        .map(|(name, counts)| channel_row(name, counts))
        .collect();
    let done = channels.values().all(|c| c.remaining() == 0);
    context! {
        id => crisis.id.to_string(),
        title => crisis.title.clone(),
        summary => crisis.summary.clone(),
        kind => crisis.kind.as_str(),
        severity => crisis.severity.as_str(),
        status => crisis.status.as_str(),
        resolved => crisis.status == Status::Resolved,
        drill => crisis.drill,
        selection => super::compose::selection_summary(&crisis.selection),
        message => crisis.last_message.clone(),
        declared_at => when(crisis.declared_at),
        updated_at => when(crisis.updated_at),
        channels => rows,
        done => done,
    }
}

/// Cards for `crises`, with their counts and rates measured now.
pub async fn cards(
    state: &AppState,
    crises: &[Crisis],
    scope: Option<CrisisId>,
) -> Result<Vec<Value>, StoreError> {
    let ledger = state.storage.ledger.as_ref();
    let counts = ledger.delivery_counts(scope).await?;
    let rates = measure_rates(ledger, scope, crises, state.clock.now()).await?;
    Ok(crises
        .iter()
        .map(|crisis| crisis_card(crisis, &counts_for(crisis.id, &counts, &rates)))
        .collect())
}

/// The dashboard's live part: active crises and proposals.
pub async fn dashboard_parts(state: &AppState) -> Result<Value, StoreError> {
    let storage = &state.storage;
    let active = storage.crises.crises(CrisisFilter::Active).await?;
    let mut resolved = storage.crises.crises(CrisisFilter::Resolved).await?;
    resolved.truncate(RECENTLY_RESOLVED);
    let pending: Vec<Value> = storage
        .hooks
        .open_pendings()
        .await?
        .into_iter()
        .map(|p| {
            context! {
                id => p.id.to_string(),
                hook => p.hook,
                state => p.state.as_str(),
                title => p.declaration.title,
                severity => p.declaration.severity.as_str(),
                due_at => p.due_at.map(when),
                created_at => when(p.created_at),
                second_person => state
                    .console
                    .settings
                    .two_person
                    .applies_to_hook(&p.hook, p.declaration.severity),
            }
        })
        .collect();
    let submissions: Vec<Value> = storage
        .submissions
        .open_submissions()
        .await?
        .iter()
        .map(|s| super::submissions::submission_view(state, s))
        .collect();
    Ok(context! {
        submissions => submissions,
        pending => pending,
        active => cards(state, &active, None).await?,
        resolved => cards(state, &resolved, None).await?,
    })
}

pub async fn dashboard(
    State(state): State<AppState>,
    staff: Staff,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let lang = super::view::language(&headers, query.lang.as_deref());
    let parts = dashboard_parts(&state).await?;
    Ok(Page::of(&state, &staff, lang).render(StatusCode::OK, "dashboard.html.j2", parts))
}

pub(super) fn parse_id(raw: &str) -> Result<CrisisId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::NotFound(format!("no crisis with id `{raw}`")))
}

pub(super) async fn stored_crisis(state: &AppState, id: CrisisId) -> Result<Crisis, ApiError> {
    state
        .storage
        .crises
        .crisis(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no crisis with id {id}")))
}

/// A crisis's page, less its live progress.
/// Callbacks shown on a crisis's page: the newest.
const CALLBACKS_SHOWN: u32 = 100;

/// A crisis's tallies and its callback list, labelled in `lang`.
async fn answer_details(
    state: &AppState,
    crisis: &Crisis,
    lang: &str,
) -> Result<(Vec<crate::http::answers::TallyView>, Vec<Value>), StoreError> {
    let inputs = state.inputs.load_full();
    let tallies = state.storage.answers.tallies(crisis.id).await?;
    let default = inputs.renderer.default_locale();
    let answers = crate::http::answers::tally_views(&inputs.answers, (lang, default), tallies);
    let filter = crate::outbox::AnswerFilter {
        crisis: Some(crisis.id),
        urgent_only: true,
        limit: CALLBACKS_SHOWN,
    };
    let callbacks: Vec<Value> = state
        .storage
        .answers
        .answers(&filter)
        .await?
        .into_iter()
        .map(|a| {
            let label = a
                .question
                .as_ref()
                .and_then(|q| inputs.answers.questions.get(q))
                .zip(a.answer)
                .and_then(|(q, n)| q.choice(n))
                .map(|c| crate::domain::question::localized(&c.label, lang, default).to_owned());
            context! {
                at => when(a.received_at),
                address => a.address,
                locale => a.locale,
                answer => a.answer,
                label => label,
                text => a.text,
            }
        })
        .collect();
    Ok((answers, callbacks))
}

async fn crisis_details(state: &AppState, crisis: &Crisis) -> Result<Value, StoreError> {
    let storage = &state.storage;
    let id = crisis.id;
    let events: Vec<Value> = storage
        .crises
        .events(id)
        .await?
        .into_iter()
        .map(|e| {
            context! {
                kind => e.kind.as_str(),
                status => e.status.as_str(),
                actor => e.actor.to_string(),
                message => e.message,
                at => when(e.at),
            }
        })
        .collect();
    let follow_ups: Vec<Value> = storage
        .follow_ups
        .follow_ups(Some(id))
        .await?
        .into_iter()
        .map(|f| {
            context! {
                step => f.spec.step,
                topic => f.spec.topic.as_str(),
                state => f.state.as_str(),
                due_at => when(f.due_at),
                reason => f.reason,
            }
        })
        .collect();
    let filter = DeadFilter {
        crisis: Some(id),
        channel: None,
    };
    let dead: Vec<Value> = storage
        .dead_letters
        .list(filter, DEAD_SHOWN)
        .await?
        .into_iter()
        .map(|d| {
            context! {
                channel => d.channel,
                destination => d.destination,
                attempts => d.attempts,
                cause => d.cause.as_str(),
                requeueable => d.cause.requeueable(),
                reason => d.reason,
                at => when(d.finished_at),
            }
        })
        .collect();
    let requeueable = storage.dead_letters.count_requeueable(filter).await?;
    let reach: Vec<Value> = storage
        .receipts
        .reach(Some(id))
        .await?
        .into_iter()
        .map(|row| {
            let c = &row.counts;
            context! {
                channel => row.channel,
                reached => c.reached(),
                not_reached => c.not_reached(),
                unconfirmed => c.unconfirmed,
                bounced_soft => c.bounced_soft,
                fallbacks => c.fallbacks,
            }
        })
        .collect();
    Ok(context! {
        events => events, follow_ups => follow_ups, dead => dead, requeueable => requeueable,
        reach => reach,
    })
}

pub async fn crisis(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let lang = super::view::language(&headers, query.lang.as_deref());
    let crisis = stored_crisis(&state, parse_id(&id)?).await?;
    let card = cards(&state, std::slice::from_ref(&crisis), Some(crisis.id))
        .await?
        .pop();
    let details = crisis_details(&state, &crisis).await?;
    let (answers, callbacks) = answer_details(&state, &crisis, lang).await?;
    Ok(Page::of(&state, &staff, lang).render(
        StatusCode::OK,
        "crisis.html.j2",
        context! { crisis => card, answers => answers, callbacks => callbacks, ..details },
    ))
}

#[derive(Debug, Deserialize)]
pub struct RequeueForm {
    #[serde(default)]
    csrf: String,
}

/// Sends a crisis's requeueable dead deliveries again, on the channels
/// configured now (as `POST /v1/deliveries/retry-dead` does).
pub async fn requeue(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<RequeueForm>,
) -> Result<Response, ApiError> {
    let lang = super::view::language(&headers, None);
    if !same_token(&staff.csrf, &form.csrf) {
        return Ok(csrf_refused(&state, lang));
    }
    if !staff.role.can_compose() {
        return Ok(super::forbidden(&state, &staff, lang));
    }
    let crisis = stored_crisis(&state, parse_id(&id)?).await?;
    let channels: Vec<String> = state
        .inputs
        .load()
        .channels
        .iter()
        .map(|c| c.name.clone())
        .collect();
    let mut requeued = 0;
    for channel in &channels {
        let filter = DeadFilter {
            crisis: Some(crisis.id),
            channel: Some(channel),
        };
        requeued += state
            .storage
            .dead_letters
            .requeue(filter, state.clock.now())
            .await?;
    }
    info!(requeued, crisis = %crisis.id, person = %staff.actor(), "Dead deliveries requeued from the console.");
    Ok(Redirect::to(&format!("/console/crises/{}", crisis.id)).into_response())
}

pub async fn hooks(
    State(state): State<AppState>,
    staff: Staff,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let lang = super::view::language(&headers, query.lang.as_deref());
    let entries: Vec<Value> = state
        .storage
        .hooks
        .hook_log(None, HOOK_LOG_SHOWN)
        .await?
        .into_iter()
        .map(|e| {
            context! {
                hook => e.hook,
                source => e.source,
                received_at => when(e.received_at),
                status => e.status,
                verdict => e.verdict.as_str(),
                transitions => e.transitions,
                error => e.error,
            }
        })
        .collect();
    Ok(Page::of(&state, &staff, lang).render(
        StatusCode::OK,
        "hooks.html.j2",
        context! { entries => entries },
    ))
}
