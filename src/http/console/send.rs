//! Sending a confirmed draft through the `CrisisService`, as the API
//! does, with the person as the actor (`console:alice`); or submitting it
//! for a second person when the two-person rule applies.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{Value, context};
use tracing::info;
use uuid::Uuid;

use super::super::{ApiError, AppState};
use super::compose::{Fields, form_page, to_crisis};
use super::session::Staff;
use super::{Page, text};
use crate::domain::draft::{Draft, DraftAction};
use crate::domain::{Actor, CrisisId, Selection, Severity};
use crate::message::Reach;
use crate::outbox::{Submission, SubmissionState};
use crate::service::{Applied, IdempotencyRequest, ServiceError, TransitionContext};

/// Whether the two-person rule covers this draft: its severity, or for
/// an update or all-clear the crisis's severity now (lowering it does not
/// dodge the rule).
pub async fn needs_second_person(state: &AppState, draft: &Draft) -> Result<bool, ApiError> {
    let rule = &state.console.settings.two_person;
    let current = match draft.crisis {
        Some(id) => state.storage.crises.crisis(id).await?,
        None => None,
    };
    // A drill reaches only the drill audience: one person may send it.
    if is_drill(draft, current.as_ref()) {
        return Ok(false);
    }
    let severity: Option<Severity> = current.map(|c| c.severity);
    Ok(rule.applies(draft.severity) || severity.is_some_and(|s| rule.applies(s)))
}

/// Whether the draft is of a drill: declared as one, or about one.
pub fn is_drill(draft: &Draft, current: Option<&crate::domain::Crisis>) -> bool {
    draft.drill || current.is_some_and(|c| c.drill)
}

/// What a draft is sent to: its own selection, or for an all-clear the
/// crisis's.
pub fn effective_selection(draft: &Draft, current: Option<&crate::domain::Crisis>) -> Selection {
    match (draft.action, current) {
        (DraftAction::Resolve, Some(crisis)) => crisis.selection.clone(),
        _ => draft.selection.clone(),
    }
}

/// Deliveries per channel and language the audience file would get now
/// (before opt-outs) for `selection`: one per chosen subscriber with an
/// address or a number, one per chosen broadcast channel in its locale.
pub async fn reach_counts(state: &AppState, drill: bool, selection: Selection) -> Vec<Value> {
    let inputs = state.inputs.load_full();
    let counted = tokio::task::spawn_blocking(move || {
        let mut email: BTreeMap<String, u64> = BTreeMap::new();
        let mut phone: BTreeMap<String, u64> = BTreeMap::new();
        let audience = if drill {
            &inputs.drill_audience
        } else {
            &inputs.audience
        };
        let readable = audience.count > 0;
        if let Some(subscribers) = readable.then(|| audience.subscribers(0).ok()).flatten() {
            for subscriber in subscribers.flatten() {
                let locale = inputs
                    .renderer
                    .resolve_locale(&subscriber.locale)
                    .to_owned();
                if !selection.audience.admits(
                    &[subscriber.locale.as_str(), locale.as_str()],
                    subscriber.region.as_deref(),
                ) {
                    continue;
                }
                if subscriber.email.is_some() {
                    *email.entry(locale.clone()).or_default() += 1;
                }
                if subscriber.phone.is_some() {
                    *phone.entry(locale).or_default() += 1;
                }
            }
        }
        inputs
            .channels
            .iter()
            // A drill posts on no broadcast channel.
            .filter(|profile| !drill || !matches!(profile.reach, Reach::Broadcast { .. }))
            .filter(|profile| crate::plan::posts_for(&selection, profile))
            .map(|profile| {
                let by_locale = match &profile.reach {
                    Reach::Email => email.clone(),
                    Reach::Phone => phone.clone(),
                    Reach::Broadcast { locale } => {
                        BTreeMap::from([(inputs.renderer.resolve_locale(locale).to_owned(), 1)])
                    }
                };
                (profile.name.clone(), by_locale)
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    counted
        .into_iter()
        .map(|(channel, by_locale)| {
            let total: u64 = by_locale.values().sum();
            context! { channel => channel, by_locale => by_locale, total => total }
        })
        .collect()
}

/// Applies the draft through the service. `key` makes a repeated click
/// (the same confirmation sent twice) replay the first answer.
pub async fn apply(
    state: &AppState,
    draft: &Draft,
    actor: Actor,
    key: &str,
) -> Result<CrisisId, ServiceError> {
    let ctx = TransitionContext {
        idempotency: (!key.is_empty()).then(|| IdempotencyRequest {
            scope: format!("console:{}", actor.name),
            key: key.to_owned(),
            fingerprint: draft.content_hash(),
        }),
        ..TransitionContext::by(actor)
    };
    let service = &state.service;
    let applied = match (draft.action, draft.crisis) {
        (DraftAction::Declare, _) => service.declare(draft.declaration(), ctx).await?,
        (DraftAction::Update, Some(id)) => {
            let current = state
                .storage
                .crises
                .crisis(id)
                .await
                .map_err(ServiceError::Store)?
                .ok_or(ServiceError::NotFound(id))?;
            service.update(id, draft.update(&current), ctx).await?
        }
        (DraftAction::Resolve, Some(id)) => {
            service.resolve_with(id, draft.resolution(), ctx).await?
        }
        (_, None) => {
            return Err(ServiceError::Domain(crate::domain::DomainError::Empty {
                field: "crisis",
            }));
        }
    };
    match applied {
        Applied::New(outcome) => Ok(outcome.crisis.id),
        // The first click's answer: the crisis it declared or changed.
        Applied::Replayed { body, .. } => serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["crisis"]["id"].as_str().and_then(|id| id.parse().ok()))
            .or(draft.crisis)
            .ok_or_else(|| ServiceError::Planning("the first send's answer is unreadable".into())),
    }
}

/// The form again with the service's refusal, nothing sent.
fn refused(page: &Page<'_>, draft: &Draft, err: ServiceError) -> Response {
    let message = err.to_string();
    let status = ApiError::from(err).status();
    form_page(page, draft, status, Some(message), context! {})
}

/// Sends a confirmed draft that needs no second person. The confirmation
/// carried the content hash it showed: a draft changed since is refused.
pub async fn send_confirmed(
    page: &Page<'_>,
    staff: &Staff,
    draft: &Draft,
    fields: &Fields,
) -> Result<Response, ApiError> {
    let state = page.state;
    if fields.get("hash") != draft.content_hash() {
        let error = text(state, page.lang, "changed_since_confirmed");
        return Ok(form_page(
            page,
            draft,
            StatusCode::CONFLICT,
            Some(error),
            context! {},
        ));
    }
    if needs_second_person(state, draft).await? {
        let error = text(state, page.lang, "needs_approval");
        return Ok(form_page(
            page,
            draft,
            StatusCode::FORBIDDEN,
            Some(error),
            context! {},
        ));
    }
    match apply(state, draft, staff.actor(), fields.get("send_key")).await {
        Ok(id) => {
            info!(crisis = %id, person = %staff.actor(), action = %draft.action, "Sent from the console.");
            Ok(to_crisis(id))
        }
        Err(err) => Ok(refused(page, draft, err)),
    }
}

/// Submits a draft for a second person, or revises a submission (which
/// voids any approval it had).
pub async fn submit(
    page: &Page<'_>,
    staff: &Staff,
    draft: &Draft,
    fields: &Fields,
) -> Result<Response, ApiError> {
    let state = page.state;
    let now = state.clock.now();
    let submissions = &state.storage.submissions;
    if let Ok(id) = fields.get("submission").parse::<Uuid>() {
        if !submissions.revise(id, draft, now).await? {
            return Err(ApiError::Conflict(format!(
                "submission {id} was sent or withdrawn; compose a new one"
            )));
        }
        info!(submission = %id, person = %staff.actor(), "A console submission was revised; its approval, if any, is void.");
        return Ok(Redirect::to(&format!("/console/submissions/{id}")).into_response());
    }
    let submission = Submission {
        id: Uuid::now_v7(),
        draft: draft.clone(),
        content_hash: draft.content_hash(),
        author: staff.name.clone(),
        state: SubmissionState::Submitted,
        approved_by: None,
        approved_hash: None,
        crisis: None,
        created_at: now,
        updated_at: now,
    };
    submissions.submit(&submission).await?;
    info!(submission = %submission.id, person = %staff.actor(), "Submitted from the console for approval.");
    Ok(Redirect::to(&format!("/console/submissions/{}", submission.id)).into_response())
}
