//! Composing a declaration, an update or an all-clear: a form with every
//! locale side by side (prefilled from a prepared template or the crisis
//! as it is), a preview of every channel and locale, a confirmation that
//! states what goes where, then the send, through the same
//! `CrisisService` the API calls, or a submission for a second person.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{Value, context};
use serde::Deserialize;

use super::super::{ApiError, AppState};
use super::session::{Staff, random_token, same_token};
use super::{Page, csrf_refused, forbidden, send, text};
use crate::domain::draft::{Draft, DraftAction};
use crate::domain::{
    AudienceSelection, CrisisId, Kind, LocalizedText, Selection, Severity, Status,
};
use crate::message::Reach;
use crate::preview::{PreviewRequest, PreviewSource, preview};

#[derive(Debug, Deserialize)]
pub struct ComposeQuery {
    #[serde(default)]
    crisis: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    template: Option<usize>,
    #[serde(default)]
    lang: Option<String>,
}

/// The fields of a compose form, by name; checkboxes of one name give
/// several values.
pub struct Fields {
    one: BTreeMap<String, String>,
    pairs: Vec<(String, String)>,
}

impl Fields {
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self {
            one: pairs.iter().cloned().collect(),
            pairs,
        }
    }

    pub fn get(&self, name: &str) -> &str {
        self.one.get(name).map_or("", |v| v.as_str())
    }

    /// Every value given for `name` (checked checkboxes), in order.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }

    /// The audience and channels chosen. Every channel ticked is every
    /// channel (also one configured later); none ticked is refused, as
    /// is "chosen" with neither a locale nor a region. A form without the
    /// choices (`selection` absent) is for everyone on every channel.
    fn selection(&self, channels: &[String]) -> Result<Selection, &'static str> {
        if self.get("selection") != "on" {
            return Ok(Selection::default());
        }
        let ticked = self.all("channel");
        if ticked.is_empty() {
            return Err("choose_a_channel");
        }
        let every = channels.iter().all(|c| ticked.contains(c));
        let audience = match self.get("audience") {
            "chosen" => AudienceSelection {
                locales: self.all("locale"),
                regions: self.all("region"),
            },
            _ => AudienceSelection::default(),
        };
        if self.get("audience") == "chosen" && audience.is_everyone() {
            return Err("choose_an_audience");
        }
        Ok(Selection::new(
            audience,
            if every { Vec::new() } else { ticked },
        ))
    }

    fn optional(&self, name: &str) -> Option<String> {
        let value = self.get(name).trim();
        (!value.is_empty()).then(|| value.replace("\r\n", "\n"))
    }

    /// The draft the form describes, or what is wrong with it (a key of
    /// the UI strings when it is the selection).
    pub fn draft(&self, other_locales: &[String], channels: &[String]) -> Result<Draft, String> {
        let action: DraftAction = self
            .get("action")
            .parse()
            .map_err(|_| "choose a declaration, an update or an all-clear".to_owned())?;
        let crisis = match (action, self.get("crisis")) {
            (DraftAction::Declare, _) => None,
            (_, raw) => Some(
                raw.parse::<CrisisId>()
                    .map_err(|_| format!("`{raw}` is not a crisis id"))?,
            ),
        };
        let kind: Kind = self.get("kind").parse().map_err(|e| format!("{e}"))?;
        let severity: Severity = self.get("severity").parse().map_err(|e| format!("{e}"))?;
        let mut localized = BTreeMap::new();
        for locale in other_locales {
            let text = LocalizedText {
                title: self.optional(&format!("title.{locale}")),
                summary: self.optional(&format!("summary.{locale}")),
                message: self.optional(&format!("message.{locale}")),
            };
            if !text.is_empty() {
                localized.insert(locale.clone(), text);
            }
        }
        Ok(Draft {
            action,
            crisis,
            kind,
            severity,
            title: self.get("title").trim().to_owned(),
            summary: self.optional("summary").unwrap_or_default(),
            message: self.optional("message"),
            localized,
            fall_back: self.get("fall_back") == "on",
            drill: action == DraftAction::Declare && self.get("drill") == "on",
            // An all-clear goes to the crisis's own selection.
            selection: match action {
                DraftAction::Resolve => Selection::default(),
                _ => self.selection(channels).map_err(str::to_owned)?,
            },
        })
    }
}

/// The locales with templates other than the default, in order.
pub fn other_locales(state: &AppState) -> Vec<String> {
    let inputs = state.inputs.load();
    let default = inputs.renderer.default_locale().to_owned();
    inputs
        .renderer
        .locales()
        .filter(|l| *l != default)
        .map(str::to_owned)
        .collect()
}

/// The configured channels' names, in order.
pub fn channel_names(state: &AppState) -> Vec<String> {
    state
        .inputs
        .load()
        .channels
        .iter()
        .map(|p| p.name.clone())
        .collect()
}

/// The choices of audience and channels, each marked as the draft has
/// it: every locale with templates, every region readers have (of the
/// live and the drill audience), every channel.
fn selection_view(state: &AppState, selection: &Selection) -> Value {
    let inputs = state.inputs.load();
    let has = |list: &[String], value: &str| list.iter().any(|v| v.eq_ignore_ascii_case(value));
    let locales: Vec<Value> = inputs
        .renderer
        .locales()
        .map(|l| context! { value => l, checked => has(&selection.audience.locales, l) })
        .collect();
    let mut regions: std::collections::BTreeSet<&String> = inputs.audience.regions.iter().collect();
    regions.extend(inputs.drill_audience.regions.iter());
    let regions: Vec<Value> = regions
        .into_iter()
        .map(|r| context! { value => r, checked => has(&selection.audience.regions, r) })
        .collect();
    let channels: Vec<Value> = inputs
        .channels
        .iter()
        .map(|p| {
            context! {
                value => p.name.clone(),
                reach => match &p.reach {
                    Reach::Email => "email".to_owned(),
                    Reach::Phone => "phone".to_owned(),
                    Reach::Broadcast { locale } => format!("broadcast:{locale}"),
                },
                checked => selection.uses_channel(&p.name),
            }
        })
        .collect();
    context! {
        locales => locales,
        regions => regions,
        channels => channels,
        ..selection_summary(selection)
    }
}

/// Who a selection sends to and on which channels, for showing it.
pub fn selection_summary(selection: &Selection) -> Value {
    context! {
        chosen => !selection.audience.is_everyone(),
        everything => selection.is_everything(),
        chosen_locales => selection.audience.locales.clone(),
        chosen_regions => selection.audience.regions.clone(),
        chosen_channels => selection.channels.clone(),
    }
}

/// A draft as the form and the confirmation show it.
pub fn draft_view(state: &AppState, draft: &Draft) -> Value {
    let locales: Vec<Value> = other_locales(state)
        .into_iter()
        .map(|locale| {
            let text = draft.localized.get(&locale);
            context! {
                locale => locale,
                title => text.and_then(|t| t.title.clone()),
                summary => text.and_then(|t| t.summary.clone()),
                message => text.and_then(|t| t.message.clone()),
            }
        })
        .collect();
    context! {
        action => draft.action.as_str(),
        crisis => draft.crisis.map(|id| id.to_string()),
        kind => draft.kind.as_str(),
        severity => draft.severity.as_str(),
        title => draft.title.clone(),
        summary => draft.summary.clone(),
        message => draft.message.clone(),
        fall_back => draft.fall_back,
        drill => draft.drill,
        default_locale => state.inputs.load().renderer.default_locale().to_owned(),
        locales => locales,
        selection => selection_view(state, &draft.selection),
        hash => draft.content_hash(),
    }
}

/// The draft a compose page starts from: the crisis as it is for an
/// update or all-clear, a prepared template, or an empty declaration.
async fn starting_draft(state: &AppState, query: &ComposeQuery) -> Result<Draft, ApiError> {
    if let Some(raw) = &query.crisis {
        let crisis = super::pages::stored_crisis(state, super::pages::parse_id(raw)?).await?;
        if crisis.status == Status::Resolved {
            return Err(ApiError::Conflict(format!(
                "crisis {} is resolved; declare a new one",
                crisis.id
            )));
        }
        let action = match query.action.as_deref() {
            Some("resolve") => DraftAction::Resolve,
            _ => DraftAction::Update,
        };
        // The translations as they are, less the last announcement's
        // message: each announcement says its own.
        let mut localized = crisis.localized;
        for text in localized.values_mut() {
            text.message = None;
        }
        localized.retain(|_, text| !text.is_empty());
        return Ok(Draft {
            action,
            crisis: Some(crisis.id),
            kind: crisis.kind,
            severity: crisis.severity,
            title: crisis.title,
            summary: crisis.summary,
            message: None,
            localized,
            fall_back: false,
            drill: crisis.drill,
            selection: crisis.selection,
        });
    }
    let template = query
        .template
        .and_then(|i| state.console.settings.templates.get(i));
    Ok(match template {
        Some(t) => Draft {
            action: DraftAction::Declare,
            crisis: None,
            kind: t.kind,
            severity: t.severity,
            title: t.title.clone(),
            summary: t.summary.clone(),
            message: t.message.clone(),
            localized: t.localized.clone(),
            fall_back: false,
            drill: false,
            selection: Selection::default(),
        },
        None => Draft {
            action: DraftAction::Declare,
            crisis: None,
            kind: Kind::Outage,
            severity: Severity::Major,
            title: String::new(),
            summary: String::new(),
            message: None,
            localized: BTreeMap::new(),
            fall_back: false,
            drill: false,
            selection: Selection::default(),
        },
    })
}

fn choices() -> Value {
    context! {
        kinds => Kind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        severities => Severity::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
    }
}

fn prepared_templates(state: &AppState) -> Vec<Value> {
    state
        .console
        .settings
        .templates
        .iter()
        .enumerate()
        .map(|(i, t)| {
            context! {
                index => i,
                label => t.label.clone().unwrap_or_else(|| t.kind.to_string()),
                kind => t.kind.as_str(),
            }
        })
        .collect()
}

/// The compose form for `draft`, with an error and previews if any.
pub fn form_page(
    page: &Page<'_>,
    draft: &Draft,
    status: StatusCode,
    error: Option<String>,
    extra: Value,
) -> Response {
    let state = page.state;
    let form = context! {
        draft => draft_view(state, draft),
        templates => prepared_templates(state),
        error => error,
        // What `extra` may give: the previews, the submission revised.
        previews => Value::from(()),
        submission => Value::from(()),
        drill_page => draft.drill,
    };
    page.render(
        status,
        "compose.html.j2",
        // The first context that has a key wins.
        context! { ..extra, ..form, ..choices() },
    )
}

pub async fn page(
    State(state): State<AppState>,
    staff: Staff,
    Query(query): Query<ComposeQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let lang = super::view::language(&headers, query.lang.as_deref());
    if !staff.role.can_compose() {
        return Ok(forbidden(&state, &staff, lang));
    }
    let draft = starting_draft(&state, &query).await?;
    let page = Page::of(&state, &staff, lang);
    Ok(form_page(&page, &draft, StatusCode::OK, None, context! {}))
}

/// Every channel's message in every locale, as planning would compose it.
fn previews(state: &AppState, draft: &Draft) -> Result<Vec<Value>, String> {
    let announcement = match draft.action {
        DraftAction::Declare => crate::domain::AnnouncementKind::Initial,
        DraftAction::Update => crate::domain::AnnouncementKind::Update,
        DraftAction::Resolve => crate::domain::AnnouncementKind::Resolved,
    };
    let request = PreviewRequest {
        declaration: draft.declaration(),
        announcement: Some(announcement),
        lang: None,
        all_locales: false,
        channel: None,
    };
    let inputs = state.inputs.load();
    let source = PreviewSource {
        inputs: &inputs,
        follow_ups: state.service.follow_ups().map(|f| &**f),
        standard: crate::channels::standard_profile,
    };
    let response = preview(source, request, state.clock.now()).map_err(|e| e.to_string())?;
    Ok(response
        .previews
        .into_iter()
        .map(|p| {
            context! {
                channel => p.channel,
                kind => p.kind,
                locale => p.locale,
                subject => p.subject,
                html => p.html,
                text => p.text,
                form => p.form,
                measurement => p.measurement.to_string(),
                fits => p.measurement.fits && p.problem.is_none(),
                problem => p.problem,
            }
        })
        .collect())
}

/// What the compose form's buttons ask for.
enum Step {
    Preview,
    Confirm,
    Send,
    Submit,
}

pub async fn post(
    State(state): State<AppState>,
    staff: Staff,
    headers: HeaderMap,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let lang = super::view::language(&headers, None);
    let fields = Fields::new(pairs);
    if !same_token(&staff.csrf, fields.get("csrf")) {
        return Ok(csrf_refused(&state, lang));
    }
    if !staff.role.can_compose() {
        return Ok(forbidden(&state, &staff, lang));
    }
    let page = Page::of(&state, &staff, lang);
    let step = match fields.get("step") {
        "confirm" => Step::Confirm,
        "send" => Step::Send,
        "submit" => Step::Submit,
        _ => Step::Preview,
    };
    let draft = match fields.draft(&other_locales(&state), &channel_names(&state)) {
        Ok(draft) => draft,
        Err(error) => {
            // A selection's problem is a key of the UI strings.
            let error = match error.as_str() {
                "choose_a_channel" | "choose_an_audience" => text(&state, lang, &error),
                _ => error,
            };
            let draft = starting_draft(&state, &ComposeQuery::empty()).await?;
            return Ok(form_page(
                &page,
                &draft,
                StatusCode::BAD_REQUEST,
                Some(error),
                context! {},
            ));
        }
    };
    // Preview also checks the text as the domain would (lengths, locales).
    let previews = match previews(&state, &draft) {
        Ok(previews) => previews,
        Err(error) => {
            return Ok(form_page(
                &page,
                &draft,
                StatusCode::BAD_REQUEST,
                Some(error),
                context! {},
            ));
        }
    };
    if let Err(error) = check_against_crisis(&state, &draft).await? {
        return Ok(form_page(
            &page,
            &draft,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(error),
            context! { previews => previews },
        ));
    }
    match step {
        Step::Preview => Ok(form_page(
            &page,
            &draft,
            StatusCode::OK,
            None,
            context! { previews => previews },
        )),
        Step::Confirm => confirm(&page, &draft, previews).await,
        Step::Send => send::send_confirmed(&page, &staff, &draft, &fields).await,
        Step::Submit => send::submit(&page, &staff, &draft, &fields).await,
    }
}

/// An update or all-clear tried on a copy of the crisis as it is now, so
/// the form says before any confirmation what the domain would refuse:
/// a translation left stale, a crisis already resolved.
async fn check_against_crisis(
    state: &AppState,
    draft: &Draft,
) -> Result<Result<(), String>, ApiError> {
    let Some(id) = draft.crisis else {
        return Ok(Ok(()));
    };
    let mut crisis = super::pages::stored_crisis(state, id).await?;
    let now = state.clock.now();
    let tried = match draft.action {
        DraftAction::Declare => Ok(()),
        DraftAction::Update => crisis.apply_update(draft.update(&crisis.clone()), now),
        DraftAction::Resolve => crisis.resolve_with(draft.resolution(), now),
    };
    Ok(tried.map_err(|e| e.to_string()))
}

impl ComposeQuery {
    fn empty() -> Self {
        Self {
            crisis: None,
            action: None,
            template: None,
            lang: None,
        }
    }
}

/// The confirmation: live, how many deliveries per channel and language,
/// the exact text, and whether a second person must approve it first.
async fn confirm(
    page: &Page<'_>,
    draft: &Draft,
    previews: Vec<Value>,
) -> Result<Response, ApiError> {
    let state = page.state;
    let second_person = send::needs_second_person(state, draft).await?;
    let current = match draft.crisis {
        Some(id) => state.storage.crises.crisis(id).await?,
        None => None,
    };
    let drill = send::is_drill(draft, current.as_ref());
    let selection = send::effective_selection(draft, current.as_ref());
    let counts = send::reach_counts(state, drill, selection.clone()).await;
    let total: u64 = counts
        .iter()
        .map(|c| {
            c.get_attr("total")
                .ok()
                .and_then(|t| u64::try_from(t).ok())
                .unwrap_or(0)
        })
        .sum();
    Ok(page.render(
        StatusCode::OK,
        "confirm.html.j2",
        context! {
            draft => draft_view(state, draft),
            previews => previews,
            counts => counts,
            total => total,
            second_person => second_person,
            send_key => random_token(),
            drill => drill,
            drill_page => drill,
            live_label => text(state, page.lang, "live"),
            sent_to => selection_view(state, &selection),
        },
    ))
}

/// Where a sent draft lands: its crisis page.
pub fn to_crisis(id: CrisisId) -> Response {
    Redirect::to(&format!("/console/crises/{id}")).into_response()
}
