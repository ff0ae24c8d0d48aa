//! Sample data to render templates with before any crisis: a typical
//! crisis, a sample reader, and follow-ups listing every resource of the
//! library. Check-config and start-up render and measure every message
//! with them; previews address their reader with the same sample name.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::{Addressee, CompanyView, RenderContext, RenderError, Renderer, Subject};
use crate::domain::directory::ContactEntry;
use crate::domain::follow_up::{FollowUpSpec, Library, Phase, Topic};
use crate::domain::{AnnouncementKind, Crisis, CrisisId, Kind, Severity, Status};
use crate::message::ChannelProfile;

/// The reader of sample and preview messages, in UTC.
pub const READER: (&str, Tz) = ("Sample Reader", Tz::UTC);

/// What sample messages are rendered from: the configured company,
/// directory and resources, as they are at `now`.
#[derive(Debug, Clone, Copy)]
pub struct Samples<'a> {
    pub renderer: &'a Renderer,
    pub company: &'a CompanyView,
    pub directory: &'a [ContactEntry],
    pub library: &'a Library,
    pub now: DateTime<Utc>,
}

impl Samples<'_> {
    /// Every problem the templates would cause in a crisis, as
    /// check-config reports it: templates that do not render (for every
    /// announcement kind, and the follow-up topics the plans use), then
    /// text channels whose messages do not fit even in their short form.
    pub fn problems(&self, channels: &[ChannelProfile], topics: &[Topic]) -> Vec<String> {
        let announcements: Vec<Subject> = Subject::announcements(true)
            .chain(Subject::announcements(false))
            .collect();
        let follow_ups: Vec<Subject> = Subject::follow_ups(topics).collect();
        let sample = |locale: &str, subject, addressee| self.context(locale, subject, addressee);
        let mut errors: Vec<RenderError> = [&announcements, &follow_ups]
            .into_iter()
            .flat_map(|subjects| self.renderer.check(subjects, sample))
            .collect();
        // A template that failed to render is reported once, as such.
        let failed: Vec<String> = errors
            .iter()
            .filter_map(|e| match e {
                RenderError::Template { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect();
        errors.extend(
            self.renderer
                .undeclared(&self.every_variable())
                .into_iter()
                .filter(
                    |e| !matches!(e, RenderError::Undeclared { name, .. } if failed.contains(name)),
                ),
        );
        let mut problems: Vec<String> = errors.iter().map(|e| format!("templates: {e}")).collect();
        // Announcements are measured with a message from staff, the
        // longer case.
        let with_message: Vec<Subject> = Subject::announcements(true).collect();
        for subjects in [&with_message, &follow_ups] {
            problems.extend(self.renderer.unfit(channels, subjects, sample));
        }
        problems
    }

    /// Every variable any template may be given: the samples of every
    /// subject (each follow-up topic too), to a reader and to everyone.
    fn every_variable(&self) -> serde_json::Value {
        let subjects = Subject::announcements(true).chain(Subject::follow_ups(Topic::ALL));
        let samples = subjects.flat_map(|subject| {
            [Addressee::Personal, Addressee::Broadcast].map(|addressee| {
                serde_json::to_value(self.context(
                    self.renderer.default_locale(),
                    subject,
                    addressee,
                ))
                .unwrap_or_default()
            })
        });
        super::strict::union(samples)
    }

    /// The sample message of `subject` in `locale`, with every variable
    /// filled.
    pub fn context(&self, locale: &str, subject: Subject, addressee: Addressee) -> RenderContext {
        let kind = subject.kind();
        let with_message = matches!(
            subject,
            Subject::Announcement {
                with_message: true,
                ..
            }
        );
        let crisis = typical_crisis(kind, with_message, self.now);
        let recipient = (addressee == Addressee::Personal).then_some(READER);
        let mut ctx = RenderContext::new(
            locale,
            self.company.clone(),
            &crisis,
            kind,
            recipient,
            self.renderer.contacts(
                self.directory,
                locale,
                recipient.map(|(_, zone)| zone),
                self.now,
                &Default::default(),
            ),
            self.now,
        );
        if let Subject::FollowUp(topic) = subject {
            let spec = sample_follow_up(topic);
            ctx.follow_up =
                Some(
                    self.library
                        .follow_up_view(&spec, crisis.kind, &ctx.locale, None),
                );
        }
        ctx
    }
}

/// A crisis of typical lengths, so limits are checked against realistic
/// text; resolved for the all-clear.
fn typical_crisis(kind: AnnouncementKind, with_message: bool, now: DateTime<Utc>) -> Crisis {
    let resolved = kind == AnnouncementKind::Resolved;
    Crisis {
        id: CrisisId::new(),
        kind: Kind::Outage,
        severity: Severity::Critical,
        title: "Card payments are failing".into(),
        summary:
            "Card payments fail for most customers since 09:10; cash on delivery still works. \
                  We are working with our payment provider on a fix."
                .into(),
        localized: Default::default(),
        status: if resolved {
            Status::Resolved
        } else {
            Status::Declared
        },
        version: 1,
        last_message: with_message.then(|| "Sample message.".to_owned()),
        declared_at: now,
        updated_at: now,
        resolved_at: resolved.then_some(now),
        drill: false,
        selection: Default::default(),
    }
}

/// A follow-up step on `topic` that lists every resource of the library.
fn sample_follow_up(topic: Topic) -> FollowUpSpec {
    FollowUpSpec {
        plan: "sample".into(),
        step: "sample".into(),
        phase: if topic == Topic::Satisfaction {
            Phase::AfterResolution
        } else {
            Phase::Active
        },
        topic,
        categories: Vec::new(),
        channels: Vec::new(),
        locales: Vec::new(),
        regions: Vec::new(),
        local_at: None,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::render::tests::shipped;

    /// Samples from the shipped templates, with no directory and no
    /// resources.
    pub(in crate::render) fn with_samples<T>(f: impl FnOnce(Samples<'_>) -> T) -> T {
        let renderer = shipped();
        let company = CompanyView {
            name: "Test Co.".into(),
            status_url: "https://status.example.com".into(),
        };
        let library = Library::default();
        f(Samples {
            renderer: &renderer,
            company: &company,
            directory: &[],
            library: &library,
            now: Utc::now(),
        })
    }

    #[test]
    fn a_personal_sample_is_addressed_to_the_sample_reader_and_a_broadcast_to_nobody() {
        with_samples(|samples| {
            let subject = Subject::Announcement {
                kind: AnnouncementKind::Initial,
                with_message: false,
            };
            let personal = samples.context("bn", subject, Addressee::Personal);
            let recipient = personal.recipient.expect("a reader");
            assert_eq!(
                (recipient.name.as_str(), recipient.timezone.as_str()),
                ("Sample Reader", "UTC")
            );
            assert_eq!(recipient.unsubscribe_url, None);
            assert_eq!(personal.locale, "bn");
            assert!(
                samples
                    .context("bn", subject, Addressee::Broadcast)
                    .recipient
                    .is_none()
            );
        });
    }

    #[test]
    fn a_sample_is_a_typical_crisis_of_its_subject() {
        with_samples(|samples| {
            let ctx = samples.context(
                "en",
                Subject::Announcement {
                    kind: AnnouncementKind::Resolved,
                    with_message: true,
                },
                Addressee::Broadcast,
            );
            assert_eq!(ctx.crisis.status, "resolved");
            assert_eq!(ctx.crisis.title, "Card payments are failing");
            assert_eq!(ctx.announcement.message.as_deref(), Some("Sample message."));
            assert!(ctx.follow_up.is_none());

            let ctx = samples.context("en", Subject::FollowUp(Topic::CheckIn), Addressee::Personal);
            assert_eq!(ctx.announcement.kind, AnnouncementKind::FollowUp);
            assert_eq!(ctx.crisis.status, "declared");
            assert_eq!(ctx.announcement.message, None);
            assert_eq!(ctx.follow_up.map(|view| view.topic), Some(Topic::CheckIn));
        });
    }
}
