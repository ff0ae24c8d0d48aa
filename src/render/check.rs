//! Checking templates before a crisis needs them: every template the
//! daemon renders, in every locale, rendered against sample data, and
//! every text channel's message measured against its limit.

use super::{
    BANNER_TEMPLATE, EMAIL_KINDS, EMAIL_PARTS, Form, RenderContext, RenderError, Renderer,
    TextFamily, Unsendable, template_name,
};
use crate::domain::AnnouncementKind;
use crate::domain::follow_up::Topic;
use crate::message::{ChannelProfile, Reach};

/// What a sample message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// An announcement of `kind`, with or without a message from staff.
    Announcement {
        kind: AnnouncementKind,
        with_message: bool,
    },
    /// A follow-up on this topic.
    FollowUp(Topic),
}

impl Subject {
    /// Every announcement kind with email templates, in that order.
    pub fn announcements(with_message: bool) -> impl Iterator<Item = Subject> {
        EMAIL_KINDS
            .into_iter()
            .map(move |kind| Subject::Announcement { kind, with_message })
    }

    /// A follow-up on each of these topics.
    pub fn follow_ups(topics: &[Topic]) -> impl Iterator<Item = Subject> + '_ {
        topics.iter().copied().map(Subject::FollowUp)
    }

    pub fn kind(&self) -> AnnouncementKind {
        match self {
            Subject::Announcement { kind, .. } => *kind,
            Subject::FollowUp(_) => AnnouncementKind::FollowUp,
        }
    }

    /// The banner shows an active crisis: announcements other than the
    /// all-clear. Follow-ups leave it as it is.
    fn has_banner(&self) -> bool {
        matches!(self, Subject::Announcement { kind, .. } if *kind != AnnouncementKind::Resolved)
    }

    /// How check-config names this message to staff.
    fn describe(&self) -> String {
        match self {
            Subject::Announcement { kind, .. } => format!("{kind} message"),
            Subject::FollowUp(topic) => format!("{topic} follow-up"),
        }
    }
}

/// Whom a sample message is addressed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressee {
    /// One reader, by name: email and SMS.
    Personal,
    /// Everyone at once: the banner, social posts and chat messages.
    Broadcast,
}

impl Addressee {
    /// Whom a channel's messages are addressed to.
    pub fn of(reach: &Reach) -> Self {
        match reach {
            Reach::Email | Reach::Phone => Addressee::Personal,
            Reach::Broadcast { .. } => Addressee::Broadcast,
        }
    }
}

impl Renderer {
    /// Renders every template of every locale for these subjects against
    /// `sample(locale, subject, addressee)`, so a broken template is found
    /// before a crisis, not during one. The default locale must have every
    /// template the subjects need; other locales fall back to it.
    pub fn check(
        &self,
        subjects: &[Subject],
        sample: impl Fn(&str, Subject, Addressee) -> RenderContext,
    ) -> Vec<RenderError> {
        let missing = self.missing(subjects);
        if !missing.is_empty() {
            return missing;
        }
        let mut problems = Vec::new();
        for locale in self.strings.keys() {
            for &subject in subjects {
                let personal = sample(locale, subject, Addressee::Personal);
                let broadcast = sample(locale, subject, Addressee::Broadcast);
                problems.extend(self.render_every_template(subject, &personal, &broadcast));
            }
        }
        problems
    }

    /// Every template whose variables are not all in `context` (a union
    /// of every subject's samples, see [`super::strict`]), whatever
    /// filters follow them or whichever branch they are on.
    /// The crisis page's templates (`<locale>/status/`) see a view of
    /// their own, not a message: they are checked by rendering that view
    /// (`publish::template_problems`).
    pub fn undeclared(&self, context: &serde_json::Value) -> Vec<RenderError> {
        // The glossaries are the environment's, given to every template.
        let mut context = context.clone();
        if let serde_json::Value::Object(map) = &mut context {
            let glossaries = serde_json::to_value(super::glossaries(&self.strings));
            map.insert("glossaries".into(), glossaries.unwrap_or_default());
        }
        let context = &context;
        self.names
            .iter()
            .filter(|name| !name.contains("/status/"))
            .filter_map(|name| {
                let variables = super::strict::undeclared(&self.env, name, context);
                (!variables.is_empty()).then(|| RenderError::Undeclared {
                    name: name.clone(),
                    variables,
                })
            })
            .collect()
    }

    /// The default locale's templates that these subjects need and that
    /// do not exist.
    fn missing(&self, subjects: &[Subject]) -> Vec<RenderError> {
        let mut paths = Vec::new();
        if subjects.iter().any(Subject::has_banner) {
            paths.push(BANNER_TEMPLATE.to_owned());
        }
        let mut kinds: Vec<AnnouncementKind> = Vec::new();
        for kind in subjects.iter().map(Subject::kind) {
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        for kind in kinds {
            paths.extend(
                EMAIL_PARTS
                    .iter()
                    .map(|part| format!("email/{kind}.{part}.j2")),
            );
            for family in TextFamily::ALL {
                paths.extend(
                    [Form::Long, Form::Short].map(|form| template_name(family, kind, form)),
                );
            }
        }
        paths
            .into_iter()
            .map(|path| format!("{}/{path}", self.default_locale))
            .filter(|name| !self.names.contains(name))
            .map(RenderError::Missing)
            .collect()
    }

    /// Renders each template of one subject: email and SMS to a reader,
    /// posts, chat messages and the banner to everyone.
    fn render_every_template(
        &self,
        subject: Subject,
        personal: &RenderContext,
        broadcast: &RenderContext,
    ) -> Vec<RenderError> {
        let mut results = vec![self.render_email(personal).map(drop)];
        for form in [Form::Long, Form::Short] {
            results.push(self.render_text(TextFamily::Sms, form, personal).map(drop));
            for family in [TextFamily::Social, TextFamily::Chat] {
                results.push(self.render_text(family, form, broadcast).map(drop));
            }
        }
        if subject.has_banner() {
            results.push(self.render_banner(broadcast).map(drop));
        }
        results.into_iter().filter_map(Result::err).collect()
    }

    /// Composes every text channel's message for these subjects, in each
    /// language the channel writes, as `sample(locale, subject, addressee)`
    /// gives them; a problem for each that does not fit even in its short
    /// form. Templates that do not render are `check`'s to report.
    pub fn unfit(
        &self,
        channels: &[ChannelProfile],
        subjects: &[Subject],
        sample: impl Fn(&str, Subject, Addressee) -> RenderContext,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        for profile in channels {
            let Some(family) = profile.family else {
                continue;
            };
            let locales: Vec<&str> = match &profile.reach {
                Reach::Broadcast { locale } => vec![locale],
                _ => self.locales().collect(),
            };
            for locale in locales {
                for &subject in subjects {
                    let ctx = sample(locale, subject, Addressee::of(&profile.reach));
                    if let Err(Unsendable::TooLong(measurement)) = self.compose(profile, &ctx) {
                        problems.push(format!(
                            "channel `{}`: the {locale} {} does not fit even in its short form \
                             with a typical title ({measurement}); shorten templates/{locale}/{}/{}.short.j2 \
                             or raise the limit",
                            profile.name,
                            subject.describe(),
                            family.as_str(),
                            subject.kind(),
                        ));
                    }
                }
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::message::post::LengthRule;
    use crate::message::{ProviderKind, TextLimit};
    use crate::render::sample::tests::with_samples;
    use crate::render::tests::copy_of_shipped;

    fn sms(max: usize) -> ChannelProfile {
        ChannelProfile {
            name: "sms".into(),
            kind: Some(ProviderKind::Twilio),
            reach: Reach::Phone,
            family: Some(TextFamily::Sms),
            limit: TextLimit::SmsSegments { max },
        }
    }

    fn social(locale: &str, max: usize) -> ChannelProfile {
        ChannelProfile {
            name: format!("social-{locale}"),
            kind: Some(ProviderKind::Bluesky),
            reach: Reach::Broadcast {
                locale: locale.into(),
            },
            family: Some(TextFamily::Social),
            limit: TextLimit::Length {
                rule: LengthRule::Graphemes,
                max,
            },
        }
    }

    /// A copy of the shipped English templates, changed by `edit`.
    fn english_templates(edit: impl FnOnce(&Path)) -> (tempfile::TempDir, Renderer) {
        let dir = copy_of_shipped(&["en"]);
        edit(&dir.path().join("en"));
        let renderer = Renderer::load(dir.path(), "en").unwrap();
        (dir, renderer)
    }

    #[test]
    fn the_shipped_templates_render_and_fit_for_every_announcement_and_follow_up_topic() {
        with_samples(|samples| {
            let channels = [sms(3), social("bn", 300), social("en", 300)];
            assert_eq!(
                samples.problems(&channels, Topic::ALL),
                Vec::<String>::new()
            );
        });
    }

    #[test]
    fn a_misspelt_variable_behind_a_filter_or_an_untaken_branch_is_a_problem() {
        let (dir, _) = english_templates(|en| {
            let path = en.join("sms/initial.j2");
            let source = std::fs::read_to_string(&path).unwrap();
            let typos = "{{ crisis.titel | default('') }}{% if follow_up %}{{ follow_up.topik }}{% endif %}";
            std::fs::write(&path, format!("{source}{typos}")).unwrap();
        });
        let renderer = Renderer::load(dir.path(), "en").unwrap();
        let library = crate::domain::follow_up::Library::default();
        let company = super::super::CompanyView {
            name: "Test Co.".into(),
            status_url: "https://status.example.com".into(),
        };
        let samples = super::super::sample::Samples {
            renderer: &renderer,
            company: &company,
            directory: &[],
            library: &library,
            now: chrono::Utc::now(),
        };
        assert_eq!(
            samples.problems(&[], Topic::ALL),
            [
                "templates: template en/sms/initial.j2 uses `crisis.titel`, `follow_up.topik` \
              that no message gives it (misspelt?)"
            ]
        );
    }

    #[test]
    fn every_template_a_subject_needs_must_exist_in_the_default_locale() {
        let (_dir, renderer) = english_templates(|en| {
            for kind in ["banner", "email", "sms", "social", "chat"] {
                std::fs::remove_dir_all(en.join(kind)).unwrap();
            }
        });
        let sample =
            |_: &str, _, _| unreachable!("nothing is rendered while templates are missing");
        let announcements: Vec<Subject> = Subject::announcements(true).collect();
        let missing: Vec<String> = renderer
            .check(&announcements, sample)
            .iter()
            .map(ToString::to_string)
            .collect();
        // The banner, then per kind three email parts and two forms of
        // each of three families.
        assert_eq!(missing.len(), 1 + 3 * (3 + 3 * 2), "{missing:?}");
        assert_eq!(missing[0], "template en/banner/message.j2 is missing");
        assert_eq!(
            missing[1],
            "template en/email/initial.subject.j2 is missing"
        );
        assert!(missing.contains(&"template en/chat/resolved.short.j2 is missing".to_owned()));

        let follow_ups: Vec<Subject> = Subject::follow_ups(&[Topic::CheckIn]).collect();
        let missing = renderer.check(&follow_ups, sample);
        assert_eq!(missing.len(), 3 + 3 * 2, "no banner: {missing:?}");
        assert!(
            renderer.check(&[], sample).is_empty(),
            "no topic, no template"
        );
    }

    #[test]
    fn a_template_that_does_not_render_is_reported_for_each_sample_that_uses_it() {
        let (_dir, renderer) = english_templates(|en| {
            std::fs::write(en.join("chat/update.short.j2"), "{{ no_such_variable }}").unwrap();
        });
        with_samples(|samples| {
            let samples = crate::render::sample::Samples {
                renderer: &renderer,
                ..samples
            };
            let problems = samples.problems(&[], &[]);
            // An update with a message from staff and one without.
            assert_eq!(problems.len(), 2, "{problems:?}");
            assert!(
                problems[0]
                    .starts_with("templates: template en/chat/update.short.j2: undefined value"),
                "{}",
                problems[0]
            );
        });
    }

    #[test]
    fn a_channel_whose_short_form_cannot_fit_names_the_template_to_shorten() {
        with_samples(|samples| {
            let problems = samples.problems(&[sms(1)], &[Topic::CheckIn]);
            let bengali: Vec<&String> = problems.iter().filter(|p| p.contains(" bn ")).collect();
            assert_eq!(
                bengali.len(),
                4,
                "three kinds and the follow-up: {problems:?}"
            );
            let initial = bengali[0];
            assert!(
                initial.starts_with(
                    "channel `sms`: the bn initial message does not fit even in its short form \
                     with a typical title (2 of 1 segments (UCS-2, "
                ),
                "{initial}"
            );
            assert!(
                initial.ends_with(
                    " units)); shorten templates/bn/sms/initial.short.j2 or raise the limit"
                ),
                "{initial}"
            );
            assert!(
                bengali[3].starts_with("channel `sms`: the bn check_in follow-up does not fit")
                    && bengali[3].contains("templates/bn/sms/follow_up.short.j2"),
                "{}",
                bengali[3]
            );
        });
    }

    #[test]
    fn a_broadcast_channel_is_measured_in_its_own_language_only() {
        with_samples(|samples| {
            let problems = samples.problems(&[social("eo", 10)], &[]);
            assert_eq!(problems.len(), 3, "{problems:?}");
            assert!(
                problems
                    .iter()
                    .all(|p| p.starts_with("channel `social-eo`: the eo ")
                        && p.contains("templates/eo/social/")),
                "{problems:?}"
            );
        });
    }
}
