//! A webhook's proposals (and holds), confirmed or discarded from the
//! dashboard through the same `Intake` as the API, audited with the
//! person. Confirming one the two-person rule covers (by its severity or
//! its hook, `[console.two_person]`) takes an approver who enters their
//! password again: the webhook proposed it, a second person decides.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;
use tracing::{info, warn};

use super::super::{ApiError, AppState};
use super::pages::parse_id;
use super::session::{Staff, same_token};
use super::submissions::password_matches;
use super::{Page, csrf_refused, forbidden, text};

#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
}

/// Declares the proposal as it stands now.
pub async fn confirm(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<DecisionForm>,
) -> Result<Response, ApiError> {
    let lang = super::view::language(&headers, None);
    if !same_token(&staff.csrf, &form.csrf) {
        return Ok(csrf_refused(&state, lang));
    }
    if !staff.role.can_compose() {
        return Ok(forbidden(&state, &staff, lang));
    }
    let id = parse_id(&id)?;
    let pending = state
        .storage
        .hooks
        .open_pendings()
        .await?
        .into_iter()
        .find(|p| p.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("no open proposal {id}")))?;
    let rule = &state.console.settings.two_person;
    if rule.applies_to_hook(&pending.hook, pending.declaration.severity) {
        if !staff.role.can_approve() {
            return Ok(forbidden(&state, &staff, lang));
        }
        if !password_matches(&state, &staff, form.password).await? {
            warn!(person = %staff.actor(), proposal = %id, "A confirmation's password did not match.");
            return Ok(Page::of(&state, &staff, lang).render(
                StatusCode::FORBIDDEN,
                "message.html.j2",
                context! {
                    heading => text(&state, lang, "forbidden_heading"),
                    body => text(&state, lang, "approval_password_wrong"),
                },
            ));
        }
    }
    let outcome = state.intake.confirm(id, staff.actor()).await?;
    info!(person = %staff.actor(), crisis = %outcome.crisis.id, "Proposal confirmed from the console.");
    Ok(Redirect::to(&format!("/console/crises/{}", outcome.crisis.id)).into_response())
}

/// Drops the proposal: nothing is declared.
pub async fn discard(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<DecisionForm>,
) -> Result<Response, ApiError> {
    let lang = super::view::language(&headers, None);
    if !same_token(&staff.csrf, &form.csrf) {
        return Ok(csrf_refused(&state, lang));
    }
    if !staff.role.can_compose() {
        return Ok(forbidden(&state, &staff, lang));
    }
    let id = parse_id(&id)?;
    state.intake.discard(id, staff.actor()).await?;
    info!(person = %staff.actor(), proposal = %id, "Proposal discarded from the console.");
    Ok(Redirect::to("/console").into_response())
}
