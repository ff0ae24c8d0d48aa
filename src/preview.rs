//! Previews: every channel's message for a crisis that has not been
//! declared, rendered and measured exactly as planning would, sent nowhere.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{AnnouncementKind, Crisis, Declaration, DomainError, Status};
use crate::message::{
    ChannelProfile, Form, Measurement, ProviderKind, Reach, TextFamily, TextLimit,
};
use crate::plan::{FitError, PlanInputs, fit};
use crate::render::RenderContext;

/// What to preview.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    #[serde(flatten)]
    pub declaration: Declaration,
    /// `initial` (default), `update` or `resolved`.
    #[serde(default)]
    pub announcement: Option<AnnouncementKind>,
    /// Only this language; default: every language the channel may use.
    #[serde(default)]
    pub lang: Option<String>,
    /// A configured channel's name, or a channel type (`sms`, `social`,
    /// `chat`, `email`, or a provider such as `mastodon`) with its standard
    /// limits; default: every configured channel.
    #[serde(default)]
    pub channel: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Preview {
    pub channel: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub locale: String,
    /// For email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub text: String,
    pub form: Form,
    pub measurement: Measurement,
    /// Why this message would not be sent, when it would not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreviewResponse {
    pub previews: Vec<Preview>,
}

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(
        "no channel named `{0}` is configured, and it is not a channel type ({types})",
        types = channel_types()
    )]
    UnknownChannel(String),
    #[error("a preview is of an initial, update or resolved announcement")]
    UnsupportedKind,
}

const SAMPLE_READER: &str = "Sample Reader";

/// What a preview takes for a channel type: email, the text families, and
/// every provider.
fn channel_types() -> String {
    let email = ProviderKind::Email.as_str();
    let families = TextFamily::ALL.iter().map(TextFamily::as_str);
    let providers = ProviderKind::ALL
        .iter()
        .filter(|kind| **kind != ProviderKind::Email)
        .map(|kind| kind.as_str());
    std::iter::once(email)
        .chain(families)
        .chain(providers)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A channel type's standard profile, given its name and the default
/// locale: how a preview shows a channel that is not configured.
pub type StandardProfile = fn(&str, &str) -> Option<ChannelProfile>;

/// Renders and measures `request` for every channel and language it asks
/// about; a channel type that is not configured is looked up in `standard`.
pub fn preview(
    inputs: &PlanInputs,
    request: PreviewRequest,
    now: DateTime<Utc>,
    standard: StandardProfile,
) -> Result<PreviewResponse, PreviewError> {
    let kind = request.announcement.unwrap_or(AnnouncementKind::Initial);
    let mut crisis = Crisis::declare(request.declaration, now)?;
    crisis.status = match kind {
        AnnouncementKind::Initial => Status::Declared,
        AnnouncementKind::Update => Status::Updated,
        AnnouncementKind::Resolved => Status::Resolved,
        AnnouncementKind::FollowUp => return Err(PreviewError::UnsupportedKind),
    };
    let default_locale = inputs.renderer.default_locale().to_owned();
    let profiles: Vec<ChannelProfile> = match &request.channel {
        None => inputs.channels.clone(),
        Some(wanted) => match inputs.channels.iter().find(|p| &p.name == wanted) {
            Some(profile) => vec![profile.clone()],
            None => vec![
                standard(wanted, &default_locale)
                    .ok_or_else(|| PreviewError::UnknownChannel(wanted.clone()))?,
            ],
        },
    };
    let all_locales: Vec<String> = inputs.renderer.locales().map(str::to_owned).collect();
    let mut previews = Vec::new();
    for profile in &profiles {
        let locales = match (&request.lang, &profile.reach) {
            (Some(lang), _) => vec![inputs.renderer.resolve_locale(lang).to_owned()],
            (None, Reach::Broadcast { locale }) => {
                vec![inputs.renderer.resolve_locale(locale).to_owned()]
            }
            (None, _) => all_locales.clone(),
        };
        for locale in locales {
            let personal = matches!(profile.reach, Reach::Email | Reach::Phone);
            let recipient = personal.then_some((SAMPLE_READER, chrono_tz::Tz::UTC));
            let ctx = RenderContext::new(
                &locale,
                inputs.company.clone(),
                &crisis,
                kind,
                recipient,
                inputs.contacts(&locale, now),
                now,
            );
            previews.push(render_one(inputs, profile, locale, &ctx));
        }
    }
    Ok(PreviewResponse { previews })
}

fn render_one(
    inputs: &PlanInputs,
    profile: &ChannelProfile,
    locale: String,
    ctx: &RenderContext,
) -> Preview {
    let base = |text: String, form, measurement, problem| Preview {
        channel: profile.name.clone(),
        // A standard profile is named by its family: what it previews is
        // any provider of the family.
        kind: match (profile.kind, profile.family) {
            (Some(kind), _) => kind.as_str(),
            (None, Some(family)) => family.as_str(),
            (None, None) => "email",
        }
        .to_owned(),
        locale: locale.clone(),
        subject: None,
        text,
        form,
        measurement,
        problem,
    };
    let Some(family) = profile.family else {
        return match inputs.renderer.render_email(ctx) {
            Ok(email) => {
                let measurement = TextLimit::Unlimited.measure(&email.text);
                Preview {
                    subject: Some(email.subject),
                    ..base(email.text, Form::Long, measurement, None)
                }
            }
            Err(err) => base(
                String::new(),
                Form::Long,
                TextLimit::Unlimited.measure(""),
                Some(err.to_string()),
            ),
        };
    };
    match fit(&inputs.renderer, family, profile.limit, ctx) {
        Ok(fitted) => base(fitted.text, fitted.form, fitted.measurement, None),
        Err(FitError::TooLong(measurement)) => {
            // Show the short form that is still too long, so staff can see
            // what to cut.
            let text = inputs
                .renderer
                .render_text(family, Form::Short, ctx)
                .unwrap_or_default();
            base(
                text,
                Form::Short,
                measurement.clone(),
                Some(format!(
                    "too long even in the short form ({measurement}); it would not be sent"
                )),
            )
        }
        Err(FitError::Render(err)) => base(
            String::new(),
            Form::Long,
            profile.limit.measure(""),
            Some(err.to_string()),
        ),
    }
}
