//! The correction, from a crisis's page: one button opens the prepared,
//! pre-translated text ("the message you received at HH:MM was sent in
//! error") in every locale, or lets the person edit it, and one person who
//! may compose sends it, through the same service as the API
//! (`CrisisService::correct`), to exactly those the original reached.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{Value, context};
use serde::Deserialize;

use super::super::{ApiError, AppState};
use super::pages::{LangQuery, parse_id, stored_crisis, when};
use super::session::{Staff, random_token, same_token};
use super::{Page, csrf_refused, forbidden};
use crate::domain::{AnnouncementId, Crisis};
use crate::plan::CorrectionText;
use crate::service::{
    CorrectionError, CorrectionRequest, IdempotencyRequest, MAX_CORRECTION_CHARS,
    RECENT_CORRECTION, ServiceError, TransitionContext,
};

/// The correction form's page: which announcement, the prepared text in
/// every locale, and a field per locale for an edited one.
pub async fn page(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let lang = super::view::language(&headers, query.lang.as_deref());
    if !staff.role.can_compose() {
        return Ok(forbidden(&state, &staff, lang));
    }
    let crisis = stored_crisis(&state, parse_id(&id)?).await?;
    form(&state, &staff, lang, &crisis, StatusCode::OK, None).await
}

/// Why the form is shown again: the error, and whether to offer sending
/// another correction although one went out minutes ago.
struct Refusal {
    error: String,
    offer_again: bool,
}

async fn form(
    state: &AppState,
    staff: &Staff,
    lang: &'static str,
    crisis: &Crisis,
    status: StatusCode,
    refusal: Option<Refusal>,
) -> Result<Response, ApiError> {
    let correctable = state.service.correctable(crisis.id).await?;
    let inputs = state.inputs.load();
    let renderer = &inputs.renderer;
    let locales: Vec<Value> = renderer
        .locales()
        .map(|locale| {
            let strings = &renderer.strings(locale).correction;
            context! {
                locale => locale,
                marker => strings.marker.clone(),
                prepared => strings.sent_in_error.replace("{time}", "HH:MM"),
            }
        })
        .collect();
    let originals: Vec<Value> = correctable
        .iter()
        .map(|a| context! { id => a.id.to_string(), kind => a.kind.as_str(), at => when(a.created_at), sent => a.sent })
        .collect();
    let card = super::pages::cards(state, std::slice::from_ref(crisis), Some(crisis.id))
        .await?
        .pop();
    Ok(Page::of(state, staff, lang).render(
        status,
        "correction.html.j2",
        context! {
            crisis => card,
            originals => originals,
            locales => locales,
            send_key => random_token(),
            error => refusal.as_ref().map(|r| r.error.clone()),
            offer_again => refusal.is_some_and(|r| r.offer_again),
        },
    ))
}

#[derive(Debug, Deserialize)]
pub struct CorrectionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    send_key: String,
    #[serde(default)]
    original: String,
    /// `prepared` or `edited`.
    #[serde(default)]
    mode: String,
    /// The "Send another correction" box, ticked: a correction of this
    /// crisis went out minutes ago and this one is meant as well.
    #[serde(default)]
    again: Option<String>,
    /// `text_<locale>`: the edited text per locale.
    #[serde(flatten)]
    texts: BTreeMap<String, String>,
}

impl CorrectionForm {
    fn request(&self) -> Result<CorrectionRequest, String> {
        let original = match self.original.trim() {
            "" => None,
            raw => Some(
                raw.parse::<AnnouncementId>()
                    .map_err(|_| format!("`{raw}` is not an announcement"))?,
            ),
        };
        let text = match self.mode.as_str() {
            "edited" => CorrectionText::Edited(
                self.texts
                    .iter()
                    .filter_map(|(k, v)| {
                        Some((k.strip_prefix("text_")?.to_owned(), v.trim().to_owned()))
                    })
                    .filter(|(_, v)| !v.is_empty())
                    .collect(),
            ),
            _ => CorrectionText::Prepared,
        };
        Ok(CorrectionRequest {
            original,
            text,
            again: self.again.is_some(),
        })
    }
}

/// Sends the correction; back on the crisis's page with its progress.
pub async fn send(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<CorrectionForm>,
) -> Result<Response, ApiError> {
    let lang = super::view::language(&headers, None);
    if !same_token(&staff.csrf, &form.csrf) {
        return Ok(csrf_refused(&state, lang));
    }
    if !staff.role.can_compose() {
        return Ok(forbidden(&state, &staff, lang));
    }
    let crisis = stored_crisis(&state, parse_id(&id)?).await?;
    let request = match form.request() {
        Ok(request) => request,
        Err(error) => {
            let refusal = Refusal {
                error,
                offer_again: false,
            };
            return form_error(&state, &staff, lang, &crisis, refusal).await;
        }
    };
    let actor = staff.actor();
    let ctx = TransitionContext {
        idempotency: (!form.send_key.is_empty()).then(|| IdempotencyRequest {
            scope: format!("console:{}", actor.name),
            key: form.send_key.clone(),
            fingerprint: format!("correction {} {:?}", crisis.id, request),
        }),
        ..TransitionContext::by(actor)
    };
    match state.service.correct(crisis.id, request, ctx).await {
        Ok(_) => Ok(Redirect::to(&format!("/console/crises/{}", crisis.id)).into_response()),
        Err(ServiceError::Correction(error)) => {
            let refusal = Refusal {
                offer_again: matches!(error, CorrectionError::CorrectedRecently(_)),
                error: refusal_text(&state, lang, &error),
            };
            form_error(&state, &staff, lang, &crisis, refusal).await
        }
        Err(other) => Err(other.into()),
    }
}

/// The service's refusal in the person's language (the API's stays
/// English, with the field names a program needs).
fn refusal_text(state: &AppState, lang: &str, error: &CorrectionError) -> String {
    let text = |key| super::text(state, lang, key);
    match error {
        CorrectionError::NothingSent => text("correction_nothing_sent"),
        CorrectionError::NotCorrectable(_) => text("correction_not_correctable"),
        CorrectionError::CorrectedRecently(at) => text("correction_recent")
            .replace("{time}", &at.format("%H:%M:%S UTC").to_string())
            .replace("{minutes}", &RECENT_CORRECTION.num_minutes().to_string()),
        CorrectionError::Empty => text("correction_empty"),
        CorrectionError::TooLong(locale) => text("correction_too_long")
            .replace("{locale}", locale)
            .replace("{max}", &MAX_CORRECTION_CHARS.to_string()),
    }
}

async fn form_error(
    state: &AppState,
    staff: &Staff,
    lang: &'static str,
    crisis: &Crisis,
    refusal: Refusal,
) -> Result<Response, ApiError> {
    let status = if refusal.offer_again {
        StatusCode::CONFLICT
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    form(state, staff, lang, crisis, status, Some(refusal)).await
}
