//! The two-person rule: a submitted draft, approved by someone other than
//! its author who re-enters their password, for the content hash they
//! saw; then sent by anyone who may compose, only while the approval still
//! matches the content.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{Value, context};
use serde::Deserialize;
use tracing::{info, warn};
use uuid::Uuid;

use super::super::{ApiError, AppState};
use super::compose::{draft_view, form_page, to_crisis};
use super::pages::when;
use super::send::apply;
use super::session::{Staff, same_token};
use super::{Page, csrf_refused, forbidden, text};
use crate::domain::account::verify_password;
use crate::outbox::{Submission, SubmissionState};

#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    csrf: String,
    /// The content hash the person saw.
    #[serde(default)]
    hash: String,
    #[serde(default)]
    password: String,
}

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::NotFound(format!("no submission with id `{raw}`")))
}

async fn stored(state: &AppState, raw: &str) -> Result<Submission, ApiError> {
    let id = parse_id(raw)?;
    state
        .storage
        .submissions
        .submission(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no submission with id {id}")))
}

/// A submission as the dashboard and its page show it.
pub fn submission_view(state: &AppState, submission: &Submission) -> Value {
    context! {
        id => submission.id.to_string(),
        draft => draft_view(state, &submission.draft),
        author => submission.author.as_str(),
        state => submission.state.as_str(),
        approved_by => submission.approved_by.as_ref().map(|n| n.as_str().to_owned()),
        approval_holds => submission.approval_holds(),
        crisis => submission.crisis.map(|id| id.to_string()),
        created_at => when(submission.created_at),
        updated_at => when(submission.updated_at),
    }
}

fn show(
    page: &Page<'_>,
    staff: &Staff,
    submission: &Submission,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    let open = matches!(
        submission.state,
        SubmissionState::Submitted | SubmissionState::Approved
    );
    page.render(
        status,
        "submission.html.j2",
        context! {
            submission => submission_view(page.state, submission),
            own => submission.author == staff.name,
            may_approve => staff.role.can_approve()
                && submission.author != staff.name
                && submission.state == SubmissionState::Submitted,
            may_send => staff.role.can_compose() && submission.approval_holds(),
            may_edit => staff.role.can_compose() && open,
            drill_page => submission.draft.drill,
            error => error,
        },
    )
}

pub async fn page(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let lang = super::view::language(&headers, None);
    let submission = stored(&state, &id).await?;
    Ok(show(
        &Page::of(&state, &staff, lang),
        &staff,
        &submission,
        StatusCode::OK,
        None,
    ))
}

/// The compose form with the submission's draft, to revise it.
pub async fn edit(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let lang = super::view::language(&headers, None);
    if !staff.role.can_compose() {
        return Ok(forbidden(&state, &staff, lang));
    }
    let submission = stored(&state, &id).await?;
    let page = Page::of(&state, &staff, lang);
    Ok(form_page(
        &page,
        &submission.draft,
        StatusCode::OK,
        None,
        context! { submission => submission.id.to_string() },
    ))
}

/// Checks the password off the runtime, as signing in does (and counts
/// against the same limit, so approval is no way around it).
pub(super) async fn password_matches(
    state: &AppState,
    staff: &Staff,
    password: String,
) -> Result<bool, ApiError> {
    if state
        .console
        .sign_ins
        .attempt(staff.name.as_str(), None)
        .is_some()
    {
        return Ok(false);
    }
    let Some(account) = state.storage.accounts.user(&staff.name).await? else {
        return Ok(false);
    };
    let hash = account.password_hash;
    Ok(
        tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .unwrap_or(false),
    )
}

pub async fn approve(
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
    let submission = stored(&state, &id).await?;
    let page = Page::of(&state, &staff, lang);
    if !staff.role.can_approve() {
        return Ok(forbidden(&state, &staff, lang));
    }
    if submission.author == staff.name {
        let error = text(&state, lang, "cannot_approve_own");
        return Ok(show(
            &page,
            &staff,
            &submission,
            StatusCode::FORBIDDEN,
            Some(error),
        ));
    }
    if !password_matches(&state, &staff, form.password).await? {
        warn!(person = %staff.actor(), submission = %submission.id, "An approval's password did not match.");
        let error = text(&state, lang, "approval_password_wrong");
        return Ok(show(
            &page,
            &staff,
            &submission,
            StatusCode::UNAUTHORIZED,
            Some(error),
        ));
    }
    let approved = state
        .storage
        .submissions
        .approve(submission.id, &staff.name, &form.hash, state.clock.now())
        .await?;
    if !approved {
        let error = text(&state, lang, "changed_since_seen");
        let now = stored(&state, &id).await?;
        return Ok(show(&page, &staff, &now, StatusCode::CONFLICT, Some(error)));
    }
    info!(person = %staff.actor(), submission = %submission.id, author = %submission.author, "Approved in the console.");
    Ok(Redirect::to(&format!("/console/submissions/{}", submission.id)).into_response())
}

/// Sends an approved submission: claimed first (approved -> sent), so two
/// people clicking at once send it once; given back if the service
/// refuses.
pub async fn send(
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
    let submission = stored(&state, &id).await?;
    let page = Page::of(&state, &staff, lang);
    if !submission.approval_holds() || form.hash != submission.content_hash {
        let error = text(&state, lang, "needs_approval");
        return Ok(show(
            &page,
            &staff,
            &submission,
            StatusCode::FORBIDDEN,
            Some(error),
        ));
    }
    let submissions = &state.storage.submissions;
    let now = state.clock.now();
    if !submissions
        .advance(
            submission.id,
            SubmissionState::Approved,
            SubmissionState::Sent,
            None,
            now,
        )
        .await?
    {
        let error = text(&state, lang, "changed_since_seen");
        return Ok(show(
            &page,
            &staff,
            &stored(&state, &id).await?,
            StatusCode::CONFLICT,
            Some(error),
        ));
    }
    let key = format!("submission-{}", submission.id);
    match apply(&state, &submission.draft, staff.actor(), &key).await {
        Ok(crisis) => {
            submissions
                .advance(
                    submission.id,
                    SubmissionState::Sent,
                    SubmissionState::Sent,
                    Some(crisis),
                    now,
                )
                .await?;
            info!(person = %staff.actor(), submission = %submission.id, approved_by = ?submission.approved_by, crisis = %crisis, "An approved submission was sent from the console.");
            Ok(to_crisis(crisis))
        }
        Err(err) => {
            submissions
                .advance(
                    submission.id,
                    SubmissionState::Sent,
                    SubmissionState::Approved,
                    None,
                    now,
                )
                .await?;
            let message = err.to_string();
            let status = ApiError::from(err).status();
            Ok(show(&page, &staff, &submission, status, Some(message)))
        }
    }
}
