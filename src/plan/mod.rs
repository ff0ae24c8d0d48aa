//! Planning: a crisis transition and the config become an announcement and
//! its deliveries, each composed for its channel, reader and language
//! (`render::compose`). `Planner::start` makes the announcement and its
//! broadcasts; `PlanStream` (stream.rs) its per-subscriber deliveries.

mod correction;
mod stream;

pub use correction::{CorrectionPlan, CorrectionText, Zones};
pub use stream::{PlanBatch, PlanStream};

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::domain::audience::{Audience, AudienceError};
use crate::domain::consent::{ConsentScope, OptOuts, UnsubscribeSigner};
use crate::domain::directory::{Availability, ContactEntry, ContactView};
use crate::domain::follow_up::{FollowUpSpec, FollowUps, next_local};
use crate::domain::{
    AnnouncementId, AnnouncementKind, AudienceSelection, Crisis, DeliveryId, Selection,
    SelectionError,
};
use crate::message::{ChannelProfile, Reach};
use crate::outbox::{Announcement, DeadCause, NewDelivery, Payload, Planned};
use crate::render::sample::Samples;
use crate::render::{CompanyView, RenderContext, Renderer, Unsendable};
use arc_swap::ArcSwap;

/// Where one-click unsubscribe links point, and how they are signed.
#[derive(Debug, Clone)]
pub struct UnsubscribeLinks {
    /// The daemon's public URL, without a trailing slash.
    pub base_url: String,
    pub signer: UnsubscribeSigner,
}

impl UnsubscribeLinks {
    /// The link in a message of `kind` to a reader in `locale`: its page
    /// speaks the reader's language, and its one click (RFC 8058, from the
    /// mail program, with no page between) stops what that message is
    /// part of. A follow-up's stops follow-ups only: a reader tired of
    /// check-ins and surveys must not, by one tap, lose the next crisis's
    /// safety notice. A crisis announcement's (initial, update, all-clear,
    /// correction) stops everything: saying no to the announcements is
    /// saying no to the crisis mail, follow-ups included. The page offers
    /// the other choices and the way back.
    pub fn url(&self, email: &str, kind: AnnouncementKind, locale: &str) -> String {
        let scope = match kind {
            AnnouncementKind::FollowUp => ConsentScope::FollowUps,
            _ => ConsentScope::All,
        };
        let lang = serde_urlencoded::to_string([("lang", locale)]).unwrap_or_default();
        format!(
            "{}/v1/unsubscribe/{}?{lang}",
            self.base_url,
            self.signer.token(email, scope)
        )
    }

    /// Where the answer links of the email delivery `delivery` start;
    /// each link adds `/{number}` and the reader's `?lang=`.
    pub fn answer_url(&self, delivery: DeliveryId) -> String {
        format!(
            "{}/v1/answers/{}",
            self.base_url,
            self.signer.answer_token(&delivery.to_string())
        )
    }
}

/// The plan inputs as they are now; a reload swaps them whole, and each
/// reader (a plan, a banner view, a preview) keeps the snapshot it loaded.
pub type SharedInputs = Arc<ArcSwap<PlanInputs>>;

/// Everything planning reads: swapped whole on reload.
#[derive(Debug)]
pub struct PlanInputs {
    pub company: CompanyView,
    pub directory: Vec<ContactEntry>,
    pub audience: Audience,
    /// Who a drill reaches; empty unless `[audience] drill_file` is set.
    pub drill_audience: Audience,
    pub renderer: Renderer,
    pub channels: Vec<ChannelProfile>,
    pub unsubscribe: Option<UnsubscribeLinks>,
    /// Whether the all-clear also goes to readers no earlier message of
    /// the crisis reached on a channel (`[dispatch] all_clear_to_unreached`).
    pub all_clear_to_unreached: bool,
    /// The entries marked unavailable: one for the process, carried
    /// across reloads.
    pub availability: Arc<Availability>,
    /// Per severity, the order of contact points readers are tried on.
    pub fallback: crate::domain::fallback::FallbackPolicy,
    /// The questions announcements carry (`[answers]`).
    pub answers: crate::domain::question::AnswerSettings,
}

impl PlanInputs {
    /// The audience `crisis` is planned for: a drill's own, or everyone.
    pub fn audience_for(&self, crisis: &Crisis) -> &Audience {
        if crisis.drill {
            &self.drill_audience
        } else {
            &self.audience
        }
    }

    /// Refuses a selection naming a channel that is not configured, a
    /// locale no template and no reader of `audience` has, or a region no
    /// reader has: each would send to nobody without saying so.
    pub fn check_selection(
        &self,
        audience: &Audience,
        chosen: &AudienceSelection,
        channels: &[String],
    ) -> Result<(), SelectionError> {
        let names: Vec<&str> = self.channels.iter().map(|p| p.name.as_str()).collect();
        if let Some(name) = channels.iter().find(|c| !names.contains(&c.trim())) {
            return Err(SelectionError::UnknownChannel {
                name: name.clone(),
                known: names.join(", "),
            });
        }
        let mut locales: std::collections::BTreeSet<String> =
            self.renderer.locales().map(str::to_lowercase).collect();
        locales.extend(audience.locales.iter().cloned());
        if let Some(name) = chosen.locales.iter().find(|l| {
            let one = AudienceSelection {
                locales: vec![l.trim().to_owned()],
                regions: Vec::new(),
            };
            !locales.iter().any(|known| one.admits_locale(known))
        }) {
            return Err(SelectionError::UnknownLocale {
                name: name.clone(),
                known: locales.into_iter().collect::<Vec<_>>().join(", "),
            });
        }
        if !audience.regions_truncated
            && let Some(name) = chosen.regions.iter().find(|r| {
                !audience
                    .regions
                    .iter()
                    .any(|known| known.eq_ignore_ascii_case(r.trim()))
            })
        {
            let known = audience.regions.iter().cloned().collect::<Vec<_>>();
            return Err(SelectionError::UnknownRegion {
                name: name.clone(),
                known: if known.is_empty() {
                    "none (the audience file has no `region` column, or it is empty)".to_owned()
                } else {
                    known.join(", ")
                },
            });
        }
        Ok(())
    }

    /// The directory as a reader in `locale` (and `reader_zone`, when
    /// known) sees it at `now`.
    pub fn contacts(
        &self,
        locale: &str,
        reader_zone: Option<chrono_tz::Tz>,
        now: DateTime<Utc>,
    ) -> Vec<ContactView> {
        let down = self.availability.snapshot();
        self.renderer
            .contacts(&self.directory, locale, reader_zone, now, &down)
    }

    /// What the templates would do wrong in a crisis, found with sample
    /// data now: templates that do not render, and text channels whose
    /// messages do not fit even in their short form. Check-config and
    /// start-up refuse a config that has any.
    pub fn template_problems(&self, follow_ups: &FollowUps, now: DateTime<Utc>) -> Vec<String> {
        let samples = Samples {
            renderer: &self.renderer,
            company: &self.company,
            directory: &self.directory,
            library: &follow_ups.library,
            now,
        };
        samples.problems(&self.channels, &follow_ups.topics())
    }
}

#[derive(Debug, Clone)]
pub struct Planner {
    inputs: Arc<PlanInputs>,
    /// Resources and quiet hours for follow-ups, when configured.
    follow_ups: Option<Arc<FollowUps>>,
}

/// Corrections go first, then initial announcements, updates and the
/// all-clear, then follow-ups.
fn priority(kind: AnnouncementKind) -> u8 {
    match kind {
        AnnouncementKind::Correction => 0,
        AnnouncementKind::Initial | AnnouncementKind::Update | AnnouncementKind::Resolved => 1,
        AnnouncementKind::FollowUp => 2,
    }
}

/// Why a message that cannot be sent is written dead, as operators read it.
fn dead_reason(profile: &ChannelProfile, unsendable: &Unsendable) -> String {
    match profile.family {
        // An email has no limit: only its templates can fail it.
        None => format!("message did not render: {unsendable}"),
        Some(_) => format!("message not sent: {unsendable}"),
    }
}

/// A delivery that planning already knows cannot be sent: written dead,
/// with no content.
fn dead(
    profile: &ChannelProfile,
    kind: AnnouncementKind,
    recipient_id: Option<&str>,
    destination: &str,
    locale: &str,
    reason: String,
) -> NewDelivery {
    NewDelivery {
        id: DeliveryId::new(),
        channel: profile.name.clone(),
        recipient_id: recipient_id.map(str::to_owned),
        destination: destination.to_owned(),
        locale: locale.to_owned(),
        priority: priority(kind),
        planned: Planned::Dead {
            cause: DeadCause::Unfit,
            reason,
        },
    }
}

/// Whether a crisis's selection posts on a broadcast channel (social,
/// chat): the channel is chosen, and, when the audience is chosen by
/// locale, the account's language is one of them. Regions do not apply:
/// a post is public, read wherever its readers are.
pub fn posts_for(selection: &Selection, profile: &ChannelProfile) -> bool {
    let locale_ok = match &profile.reach {
        Reach::Broadcast { locale } => selection.audience.admits_locale(locale),
        Reach::Email | Reach::Phone => true,
    };
    selection.uses_channel(&profile.name) && locale_ok
}

/// Subscribers planned per batch: one transaction each, small enough that
/// the first messages go out while the rest are still being written.
pub const BATCH_SUBSCRIBERS: usize = 2000;

impl Planner {
    pub fn new(inputs: Arc<PlanInputs>) -> Self {
        Self {
            inputs,
            follow_ups: None,
        }
    }

    /// Follow-ups list these resources and hold SMS in quiet hours.
    pub fn with_follow_ups(mut self, follow_ups: Arc<FollowUps>) -> Self {
        self.follow_ups = Some(follow_ups);
        self
    }

    /// A follow-up's announcement and its broadcasts on the step's
    /// channels.
    pub fn start_follow_up(
        &self,
        crisis: &Crisis,
        spec: &FollowUpSpec,
        now: DateTime<Utc>,
    ) -> (Announcement, Vec<NewDelivery>) {
        self.start_with(crisis, AnnouncementKind::FollowUp, Some(spec), now)
    }

    /// The template's `follow_up` for a reader of a follow-up.
    fn with_follow_up(
        &self,
        mut ctx: RenderContext,
        crisis: &Crisis,
        spec: Option<&FollowUpSpec>,
        region: Option<&str>,
    ) -> RenderContext {
        if let Some(spec) = spec {
            let empty = crate::domain::follow_up::Library::default();
            let library = self.follow_ups.as_ref().map_or(&empty, |f| &f.library);
            ctx.follow_up = Some(library.follow_up_view(spec, crisis.kind, &ctx.locale, region));
        }
        ctx
    }

    /// Whether a follow-up's step sends on a channel that reaches
    /// subscribers one by one; if not, there is nothing to plan after its
    /// broadcasts.
    pub fn follow_up_reaches_subscribers(&self, crisis: &Crisis, spec: &FollowUpSpec) -> bool {
        self.inputs.audience_for(crisis).count > 0
            && self.inputs.channels.iter().any(|p| {
                matches!(p.reach, Reach::Email | Reach::Phone)
                    && spec.uses_channel(&p.name)
                    && crisis.selection.uses_channel(&p.name)
            })
    }

    /// Whether this announcement goes to subscribers one by one (email,
    /// SMS), which is planned in batches after the transition is stored.
    pub fn reaches_subscribers(&self, crisis: &Crisis) -> bool {
        self.inputs.audience_for(crisis).count > 0
            && self.inputs.channels.iter().any(|p| {
                matches!(p.reach, Reach::Email | Reach::Phone)
                    && crisis.selection.uses_channel(&p.name)
            })
    }

    fn context(
        &self,
        crisis: &Crisis,
        kind: AnnouncementKind,
        locale: &str,
        recipient: Option<(&str, Option<chrono_tz::Tz>)>,
        now: DateTime<Utc>,
    ) -> RenderContext {
        let inputs = &self.inputs;
        let locale = inputs.renderer.resolve_locale(locale);
        let zone = recipient.and_then(|(_, zone)| zone);
        RenderContext::new(
            locale,
            inputs.company.clone(),
            crisis,
            kind,
            recipient.map(|(name, zone)| (name, zone.unwrap_or(chrono_tz::Tz::UTC))),
            inputs.contacts(locale, zone, now),
            now,
        )
    }

    /// The announcement of `kind` for `crisis`, and its deliveries on the
    /// broadcast channels (social, chat): once per account, in its language.
    pub fn start(
        &self,
        crisis: &Crisis,
        kind: AnnouncementKind,
        now: DateTime<Utc>,
    ) -> (Announcement, Vec<NewDelivery>) {
        self.start_with(crisis, kind, None, now)
    }

    fn start_with(
        &self,
        crisis: &Crisis,
        kind: AnnouncementKind,
        follow_up: Option<&FollowUpSpec>,
        now: DateTime<Utc>,
    ) -> (Announcement, Vec<NewDelivery>) {
        let announcement = Announcement {
            id: AnnouncementId::new(),
            crisis_id: crisis.id,
            kind,
            message: crisis.last_message.clone(),
            created_at: now,
            follow_up: follow_up.cloned(),
            reached_only: kind == AnnouncementKind::Resolved && !self.inputs.all_clear_to_unreached,
            question: self
                .inputs
                .answers
                .for_announcement(kind, follow_up.map(|spec| spec.topic.as_str()))
                .map(|(key, _)| key.to_owned()),
        };
        let deliveries = self
            .inputs
            .channels
            .iter()
            .filter(|profile| follow_up.is_none_or(|spec| spec.uses_channel(&profile.name)))
            .filter(|profile| posts_for(&crisis.selection, profile))
            // A drill posts nowhere public: it reaches its audience only.
            .filter(|_| !crisis.drill)
            .filter_map(|profile| self.broadcast(profile, crisis, kind, follow_up, now))
            .collect();
        (announcement, deliveries)
    }

    /// The one delivery of an announcement on a broadcast channel (social,
    /// chat), composed in the channel's language; none for a channel that
    /// reaches subscribers one by one.
    fn broadcast(
        &self,
        profile: &ChannelProfile,
        crisis: &Crisis,
        kind: AnnouncementKind,
        follow_up: Option<&FollowUpSpec>,
        now: DateTime<Utc>,
    ) -> Option<NewDelivery> {
        let (Reach::Broadcast { locale }, Some(_)) = (&profile.reach, profile.family) else {
            return None;
        };
        let ctx = self.context(crisis, kind, locale, None, now);
        let ctx = self.with_follow_up(ctx, crisis, follow_up, None);
        Some(match self.inputs.renderer.compose(profile, &ctx) {
            Ok(composed) => NewDelivery {
                id: DeliveryId::new(),
                channel: profile.name.clone(),
                recipient_id: None,
                destination: profile.name.clone(),
                locale: ctx.locale.clone(),
                priority: priority(kind),
                planned: Planned::Queued {
                    payload: Payload::Inline(composed.content),
                    // A reader-local step's post goes at that time in
                    // `[follow_ups] time_zone`: a broadcast has no reader.
                    not_before: follow_up
                        .and_then(|spec| spec.local_at)
                        .zip(self.follow_ups.as_ref())
                        .map(|(time, plans)| next_local(now, time, plans.zone))
                        .filter(|at| *at > now),
                },
            },
            Err(unsendable) => dead(
                profile,
                kind,
                None,
                &profile.name,
                &ctx.locale,
                dead_reason(profile, &unsendable),
            ),
        })
    }

    /// The per-subscriber deliveries (email, SMS) of an announcement,
    /// streamed from the audience file in batches, from subscriber `skip`
    /// on. Opted-out contact points are skipped.
    pub fn stream<'a>(
        &'a self,
        crisis: &'a Crisis,
        announcement: &'a Announcement,
        now: DateTime<Utc>,
        opt_outs: &'a OptOuts,
        skip: u64,
    ) -> Result<PlanStream<'a>, AudienceError> {
        PlanStream::new(self, crisis, announcement, now, opt_outs, skip)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::Path;

    use super::*;
    use crate::message::{ProviderKind, TextFamily, TextLimit};
    use crate::render::RenderError;

    pub(crate) fn email_channel() -> ChannelProfile {
        ChannelProfile {
            name: "email".into(),
            kind: Some(ProviderKind::Email),
            reach: Reach::Email,
            family: None,
            limit: TextLimit::Unlimited,
        }
    }

    pub(crate) fn sms_channel(limit: TextLimit) -> ChannelProfile {
        ChannelProfile {
            name: "sms".into(),
            kind: Some(ProviderKind::Twilio),
            reach: Reach::Phone,
            family: Some(TextFamily::Sms),
            limit,
        }
    }

    /// Plan inputs with `renderer`, these channels, no directory and the
    /// audience of these CSV rows (written to `dir`).
    pub(crate) fn inputs(
        dir: &Path,
        rows: &str,
        renderer: Renderer,
        channels: Vec<ChannelProfile>,
    ) -> PlanInputs {
        let audience = dir.join("audience.csv");
        std::fs::write(
            &audience,
            format!("id,name,email,phone,locale,timezone\n{rows}"),
        )
        .unwrap();
        PlanInputs {
            company: CompanyView {
                name: "Test Co.".into(),
                status_url: "https://status.example.com".into(),
            },
            directory: Vec::new(),
            audience: Audience::load(&audience, "en").unwrap(),
            drill_audience: Audience::default(),
            renderer,
            channels,
            unsubscribe: None,
            all_clear_to_unreached: false,
            availability: Default::default(),
            fallback: Default::default(),
            answers: Default::default(),
        }
    }

    #[test]
    fn a_dead_deliverys_reason_says_whether_the_message_did_not_render_or_was_not_sent() {
        let sms = sms_channel(TextLimit::SmsSegments { max: 3 });
        let missing = Unsendable::Render(RenderError::Missing("en/email/initial.text.j2".into()));
        assert_eq!(
            dead_reason(&email_channel(), &missing),
            "message did not render: template en/email/initial.text.j2 is missing"
        );
        assert_eq!(
            dead_reason(&sms, &missing),
            "message not sent: template en/email/initial.text.j2 is missing"
        );
        let too_long = Unsendable::TooLong(sms.limit.measure(&"x".repeat(500)));
        assert_eq!(
            dead_reason(&sms, &too_long),
            "message not sent: too long for the channel even in the short form: \
             4 of 3 segments (GSM-7, 500 units)"
        );
    }
}
