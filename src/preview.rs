//! Previews: every channel's message for a crisis that has not been
//! declared, rendered and measured exactly as planning would, sent nowhere.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::banner::{BannerView, view_of};
use crate::domain::follow_up::{FollowUpSpec, FollowUps, Phase, Topic};
use crate::domain::{AnnouncementKind, Crisis, Declaration, DomainError, Kind, Status};
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
    /// `initial` (default), `update`, `resolved` or `follow_up` (every step
    /// of the kind's follow-up plan).
    #[serde(default)]
    pub announcement: Option<AnnouncementKind>,
    /// Only this language; default: every language the channel may use.
    #[serde(default)]
    pub lang: Option<String>,
    /// Every language with templates, on social and chat channels too
    /// (which otherwise show their own `locale` only).
    #[serde(default)]
    pub all_locales: bool,
    /// A configured channel's name, or a channel type (`sms`, `social`,
    /// `chat`, `email`, or a provider such as `mastodon`) with its standard
    /// limits; default: every configured channel.
    #[serde(default)]
    pub channel: Option<String>,
}

/// The follow-up step a preview is of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewedStep {
    pub plan: String,
    pub step: String,
    pub topic: Topic,
    pub phase: Phase,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Preview {
    pub channel: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub locale: String,
    /// For a follow-up: its step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up: Option<PreviewedStep>,
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
    /// The banner the website would show, per language shown (none for an
    /// all-clear or a follow-up, which take no banner up).
    #[serde(default)]
    pub banners: Vec<BannerView>,
    /// What staff should know: text given for a language without
    /// templates, a channel whose language has none.
    #[serde(default)]
    pub warnings: Vec<String>,
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
    #[error("the follow-up plan for `{0}` has no step, so there is no follow-up to preview")]
    NoFollowUps(Kind),
    #[error("a correction is not previewed here: it is prepared from the crisis it corrects")]
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

/// What a preview renders with: the plan inputs, the follow-up plans and
/// their resources (when configured), and the standard profiles.
#[derive(Clone, Copy)]
pub struct PreviewSource<'a> {
    pub inputs: &'a PlanInputs,
    pub follow_ups: Option<&'a FollowUps>,
    pub standard: StandardProfile,
}

/// One announcement to show: the crisis as it would be, and the follow-up
/// step when it is one.
struct Subject {
    crisis: Crisis,
    kind: AnnouncementKind,
    step: Option<FollowUpSpec>,
}

/// Renders and measures `request` for every channel and language it asks
/// about; a channel type that is not configured is looked up in
/// `source.standard`.
pub fn preview(
    source: PreviewSource<'_>,
    request: PreviewRequest,
    now: DateTime<Utc>,
) -> Result<PreviewResponse, PreviewError> {
    let inputs = source.inputs;
    let kind = request.announcement.unwrap_or(AnnouncementKind::Initial);
    let warnings = language_warnings(inputs, &request.declaration);
    let crisis = Crisis::declare(request.declaration.clone(), now)?;
    let subjects = subjects(source, crisis, kind)?;
    let profiles = profiles(source, request.channel.as_deref())?;
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
    let shown_locales = match &request.lang {
        Some(lang) => vec![inputs.renderer.resolve_locale(lang).to_owned()],
        None => all_locales.clone(),
    };
    let mut previews = Vec::new();
    for subject in &subjects {
        for profile in &profiles {
            // A step sends on its own channels; one asked for by name is
            // shown anyway.
            let unused = subject
                .step
                .as_ref()
                .is_some_and(|step| !step.uses_channel(&profile.name));
            if unused && request.channel.is_none() {
                continue;
            }
            for locale in locales_of(inputs, &request, profile, &all_locales) {
                previews.push(render_for(
                    inputs,
                    source.follow_ups,
                    subject,
                    profile,
                    locale,
                    now,
                ));
            }
        }
    }
    let banners = match kind {
        AnnouncementKind::Initial | AnnouncementKind::Update => shown_locales
            .iter()
            .map(|locale| {
                view_of(
                    inputs,
                    std::slice::from_ref(&subjects[0].crisis),
                    locale,
                    None,
                    now,
                )
            })
            .collect(),
        AnnouncementKind::Resolved | AnnouncementKind::FollowUp | AnnouncementKind::Correction => {
            Vec::new()
        }
    };
    let mut warnings = warnings;
    warnings.extend(broadcast_warnings(inputs, &profiles));
    Ok(PreviewResponse {
        previews,
        banners,
        warnings,
    })
}

/// The announcements to show: one, or one per step of the kind's
/// follow-up plan.
fn subjects(
    source: PreviewSource<'_>,
    mut crisis: Crisis,
    kind: AnnouncementKind,
) -> Result<Vec<Subject>, PreviewError> {
    let status = match kind {
        AnnouncementKind::Initial => Status::Declared,
        AnnouncementKind::Update => Status::Updated,
        AnnouncementKind::Resolved => Status::Resolved,
        AnnouncementKind::Correction => return Err(PreviewError::UnsupportedKind),
        AnnouncementKind::FollowUp => {
            let steps = source
                .follow_ups
                .map(|f| f.steps_for(crisis.kind))
                .unwrap_or_default();
            if steps.is_empty() {
                return Err(PreviewError::NoFollowUps(crisis.kind));
            }
            return Ok(steps
                .into_iter()
                .map(|spec| {
                    let mut crisis = crisis.clone();
                    crisis.status = match spec.phase {
                        Phase::Active => Status::Declared,
                        Phase::AfterResolution => Status::Resolved,
                    };
                    Subject {
                        crisis,
                        kind,
                        step: Some(spec.clone()),
                    }
                })
                .collect());
        }
    };
    crisis.status = status;
    Ok(vec![Subject {
        crisis,
        kind,
        step: None,
    }])
}

/// Every configured channel, the one named, or a standard profile.
fn profiles(
    source: PreviewSource<'_>,
    channel: Option<&str>,
) -> Result<Vec<ChannelProfile>, PreviewError> {
    let inputs = source.inputs;
    let Some(wanted) = channel else {
        return Ok(inputs.channels.clone());
    };
    if let Some(profile) = inputs.channels.iter().find(|p| p.name == wanted) {
        return Ok(vec![profile.clone()]);
    }
    let default_locale = inputs.renderer.default_locale();
    (source.standard)(wanted, default_locale)
        .map(|profile| vec![profile])
        .ok_or_else(|| PreviewError::UnknownChannel(wanted.to_owned()))
}

/// The languages a channel is shown in: the one asked for; else every one
/// for personal channels (or with `all_locales`); else the channel's own.
fn locales_of(
    inputs: &PlanInputs,
    request: &PreviewRequest,
    profile: &ChannelProfile,
    all_locales: &[String],
) -> Vec<String> {
    match (&request.lang, &profile.reach) {
        (Some(lang), _) => vec![inputs.renderer.resolve_locale(lang).to_owned()],
        (None, Reach::Broadcast { locale }) if !request.all_locales => {
            vec![inputs.renderer.resolve_locale(locale).to_owned()]
        }
        (None, _) => all_locales.to_vec(),
    }
}

/// Whether a language tag has templates of its own (by itself or its
/// language), rather than falling back to the default language's.
fn has_templates(inputs: &PlanInputs, tag: &str) -> bool {
    let language = tag.split('-').next().unwrap_or(tag);
    inputs.renderer.locales().any(|l| l == tag || l == language)
}

/// Text given in a language that has no templates reaches its readers
/// framed in the default language's templates.
fn language_warnings(inputs: &PlanInputs, declaration: &Declaration) -> Vec<String> {
    let default = inputs.renderer.default_locale();
    declaration
        .localized
        .keys()
        .filter(|tag| !has_templates(inputs, tag))
        .map(|tag| {
            format!(
                "text is given for `{tag}`, which has no templates: its readers get it in the \
                 `{default}` templates (add templates/{tag}/ for it)"
            )
        })
        .collect()
}

/// A social or chat channel whose `locale` has no templates posts in the
/// default language.
fn broadcast_warnings(inputs: &PlanInputs, profiles: &[ChannelProfile]) -> Vec<String> {
    let default = inputs.renderer.default_locale();
    profiles
        .iter()
        .filter_map(|profile| match &profile.reach {
            Reach::Broadcast { locale } if !has_templates(inputs, locale) => Some(format!(
                "channel `{}` posts in `{locale}`, which has no templates: it posts in `{default}`",
                profile.name
            )),
            _ => None,
        })
        .collect()
}

/// One subject on one channel in one language.
fn render_for(
    inputs: &PlanInputs,
    follow_ups: Option<&FollowUps>,
    subject: &Subject,
    profile: &ChannelProfile,
    locale: String,
    now: DateTime<Utc>,
) -> Preview {
    let personal = Addressee::of(&profile.reach) == Addressee::Personal;
    let recipient = personal.then_some(READER);
    let mut ctx = RenderContext::new(
        &locale,
        inputs.company.clone(),
        &subject.crisis,
        subject.kind,
        recipient,
        inputs.contacts(&locale, recipient.map(|(_, zone)| zone), now),
        now,
    );
    if let (Some(spec), Some(follow_ups)) = (&subject.step, follow_ups) {
        ctx.follow_up = Some(follow_ups.library.follow_up_view(
            spec,
            subject.crisis.kind,
            &locale,
            None,
        ));
    }
    // The question its SMS would end with, as planning appends it.
    if profile.family == Some(crate::message::TextFamily::Sms) {
        let topic = subject.step.as_ref().map(|spec| spec.topic.as_str());
        ctx.question = inputs
            .answers
            .for_announcement(subject.kind, topic)
            .map(|(_, question)| {
                let default = inputs.renderer.default_locale();
                crate::domain::question::localized(&question.prompt, &locale, default).to_owned()
            });
    }
    let mut preview = render_one(inputs, profile, locale, &ctx);
    preview.follow_up = subject.step.as_ref().map(|spec| PreviewedStep {
        plan: spec.plan.clone(),
        step: spec.step.clone(),
        topic: spec.topic,
        phase: spec.phase,
    });
    preview
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
        follow_up: None,
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

    fn source(inputs: &PlanInputs) -> PreviewSource<'_> {
        PreviewSource {
            inputs,
            follow_ups: None,
            standard: no_standard,
        }
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
        let previews = preview(source(&inputs), request("tiny"), now)
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
        let previews = preview(source(&inputs), request("email"), Utc::now())
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
        let previews = preview(source(&inputs), request("email"), Utc::now())
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
