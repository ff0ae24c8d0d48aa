//! Previews: every channel's message for a crisis that has not been
//! declared, rendered and measured exactly as planning would, sent nowhere.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{AnnouncementKind, Crisis, Declaration, DomainError, Status};
use crate::message::{
    ChannelProfile, DeliveryContent, Form, Measurement, ProviderKind, Reach, TextFamily,
};
use crate::plan::PlanInputs;
use crate::render::sample::READER;
use crate::render::{Addressee, RenderContext, Unsendable};

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
    /// For email: the HTML part as the reader sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
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
    /// Falling back to the default language would show a text no reader
    /// of `lang` gets in that form unnoticed.
    #[error("no templates for the language `{lang}`; there are: {known}")]
    UnknownLanguage { lang: String, known: String },
}

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
        AnnouncementKind::FollowUp | AnnouncementKind::Correction => {
            return Err(PreviewError::UnsupportedKind);
        }
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
    if let Some(lang) = &request.lang {
        let language = lang.split('-').next().unwrap_or(lang);
        if !all_locales.iter().any(|l| l == lang || l == language) {
            return Err(PreviewError::UnknownLanguage {
                lang: lang.clone(),
                known: all_locales.join(", "),
            });
        }
    }
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
            let personal = Addressee::of(&profile.reach) == Addressee::Personal;
            let recipient = personal.then_some(READER);
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

/// One channel's message in one language, composed as planning would
/// compose it.
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
        html: None,
        text,
        form,
        measurement,
        problem,
    };
    match inputs.renderer.compose(profile, ctx) {
        Ok(composed) => match composed.content {
            DeliveryContent::Email(email) => Preview {
                subject: Some(email.subject),
                html: Some(email.html),
                ..base(email.text, composed.form, composed.measurement, None)
            },
            DeliveryContent::Message(message) => {
                base(message.text, composed.form, composed.measurement, None)
            }
        },
        Err(Unsendable::TooLong(measurement)) => {
            // Show the short form that is still too long, with no room for
            // anything optional, as its template wrote it, so staff can see
            // what to cut.
            let bare = RenderContext {
                room: 0,
                ..ctx.clone()
            };
            let text = profile
                .family
                .and_then(|family| inputs.renderer.render_text(family, Form::Short, &bare).ok())
                .unwrap_or_default();
            let problem =
                format!("too long even in the short form ({measurement}); it would not be sent");
            base(text, Form::Short, measurement, Some(problem))
        }
        Err(Unsendable::Render(err)) => base(
            String::new(),
            Form::Long,
            profile.limit.measure(""),
            Some(err.to_string()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::TextLimit;
    use crate::message::post::LengthRule;
    use crate::plan::tests::email_channel;
    use crate::render::Renderer;
    use crate::render::tests::shipped;

    fn inputs(dir: &std::path::Path, channels: Vec<ChannelProfile>) -> PlanInputs {
        crate::plan::tests::inputs(dir, "", shipped(), channels)
    }

    /// No channel type is previewed with standard limits here.
    fn no_standard(_: &str, _: &str) -> Option<ChannelProfile> {
        None
    }

    fn request(channel: &str) -> PreviewRequest {
        serde_json::from_value(serde_json::json!({
            "kind": "outage", "severity": "critical", "title": "Payments are down",
            "summary": "Card payments fail for most customers since 09:10; cash on delivery \
                        still works. We are working with our payment provider on a fix.",
            "channel": channel,
        }))
        .unwrap()
    }

    #[test]
    fn a_post_too_long_even_in_its_short_form_is_shown_in_it_with_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let limit = TextLimit::Length {
            rule: LengthRule::Graphemes,
            max: 40,
        };
        let tiny = ChannelProfile {
            name: "tiny".into(),
            kind: Some(ProviderKind::Bluesky),
            reach: Reach::Broadcast {
                locale: "en".into(),
            },
            family: Some(TextFamily::Social),
            limit,
        };
        let inputs = inputs(dir.path(), vec![tiny]);
        let now = Utc::now();
        let previews = preview(&inputs, request("tiny"), now, no_standard)
            .unwrap()
            .previews;
        assert_eq!(previews.len(), 1, "the channel's own language only");
        let shown = &previews[0];
        assert_eq!((shown.form, shown.locale.as_str()), (Form::Short, "en"));
        assert_eq!(shown.measurement, limit.measure(&shown.text));
        assert!(!shown.measurement.fits);
        assert!(shown.text.starts_with("URGENT"), "{}", shown.text);
        assert_eq!(
            shown.problem.as_deref(),
            Some(
                format!(
                    "too long even in the short form ({}); it would not be sent",
                    shown.measurement
                )
                .as_str()
            )
        );
    }

    #[test]
    fn an_email_preview_has_its_subject_and_one_form_and_an_unknown_template_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let mut inputs = inputs(dir.path(), vec![email_channel()]);
        let previews = preview(&inputs, request("email"), Utc::now(), no_standard)
            .unwrap()
            .previews;
        let locales: Vec<&str> = previews.iter().map(|p| p.locale.as_str()).collect();
        assert_eq!(locales, ["bn", "en", "eo"], "every language with templates");
        assert!(previews.iter().all(|p| p.form == Form::Long
            && p.problem.is_none()
            && p.subject.as_deref().is_some_and(|s| !s.is_empty())));

        let empty = tempfile::tempdir().unwrap();
        let en = empty.path().join("en");
        std::fs::create_dir(&en).unwrap();
        std::fs::copy(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/en/strings.toml"),
            en.join("strings.toml"),
        )
        .unwrap();
        inputs.renderer = Renderer::load(empty.path(), "en").unwrap();
        let previews = preview(&inputs, request("email"), Utc::now(), no_standard)
            .unwrap()
            .previews;
        assert_eq!(previews.len(), 1);
        assert_eq!(previews[0].subject, None);
        assert_eq!(previews[0].text, "");
        assert_eq!(
            previews[0].problem.as_deref(),
            Some("template en/email/initial.subject.j2 is missing")
        );
    }
}
