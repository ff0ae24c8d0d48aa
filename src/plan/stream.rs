//! The per-subscriber deliveries of an announcement (email, SMS), planned
//! in batches from the audience file. Each message is rendered once per
//! rendition (channel, language, time zone, form, region) and shared by
//! every reader who needs it; each reader's delivery takes the form that
//! fits with their own name in it.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tracing::warn;

use super::{BATCH_SUBSCRIBERS, Planner, dead, dead_reason, priority};
use crate::domain::audience::{AudienceError, Subscriber, Subscribers};
use crate::domain::consent::{ContactPoint, OptOuts};
use crate::domain::fallback::{BadAddresses, FallbackEntry, entry};
use crate::domain::follow_up::next_local;
use crate::domain::{AnnouncementKind, Crisis, DeliveryId, RenditionId, Severity};
use crate::message::{ANSWER_MARK, ChannelProfile, Form, NAME_MARK, Reach, UNSUBSCRIBE_MARK};
use crate::outbox::{Announcement, HeldFallback, NewDelivery, NewRendition, Payload, Planned};
use crate::render::{AnswerLinkView, Composed, RenderContext, RenderError, Unsendable, fit};

/// One rendition per channel, language, time zone and form; what differs
/// per reader (name, unsubscribe link) is filled in when it is sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RenditionKey {
    channel: usize,
    locale: String,
    timezone: Option<chrono_tz::Tz>,
    form: Form,
    /// Follow-ups list the resources of the reader's region.
    region: Option<String>,
}

/// A rendition stored under `id`, its draft kept for measuring each
/// reader's message.
#[derive(Debug, Clone)]
struct Rendition {
    id: RenditionId,
    draft: Arc<Composed>,
}

/// A batch of planned deliveries and the renditions they need, written in
/// one transaction.
#[derive(Debug, Clone, Default)]
pub struct PlanBatch {
    pub renditions: Vec<NewRendition>,
    pub deliveries: Vec<NewDelivery>,
    /// Readers' next contact points, held until the first fails; written
    /// before the batch (`FallbackStore::hold_fallbacks`).
    pub fallbacks: Vec<HeldFallback>,
    /// Subscribers planned so far, this batch included: where to resume.
    pub through: u64,
    /// Contact points marked bad (a hard bounce, a permanent SMS
    /// failure) held behind the reader's other delivery.
    pub bad_held: u64,
    /// Contact points marked bad planned anyway: the reader had no other.
    pub bad_only: u64,
}

pub struct PlanStream<'a> {
    planner: &'a Planner,
    crisis: &'a Crisis,
    announcement: &'a Announcement,
    now: DateTime<Utc>,
    opt_outs: &'a OptOuts,
    subscribers: std::iter::Skip<Subscribers>,
    position: u64,
    /// Every rendition rendered so far, or why it did not render.
    renditions: HashMap<RenditionKey, Result<Rendition, RenderError>>,
    /// Per channel, its place in the crisis's fallback order, if any.
    fallback_ranks: Vec<Option<usize>>,
    /// Destinations a hard bounce marked bad: tried last.
    bad: BadAddresses,
}

/// Where one subscriber's delivery on a channel goes.
struct Route {
    destination: String,
    unsubscribe_url: Option<String>,
    not_before: Option<DateTime<Utc>>,
}

impl<'a> PlanStream<'a> {
    pub(super) fn new(
        planner: &'a Planner,
        crisis: &'a Crisis,
        announcement: &'a Announcement,
        now: DateTime<Utc>,
        opt_outs: &'a OptOuts,
        skip: u64,
    ) -> Result<Self, AudienceError> {
        Ok(Self {
            planner,
            crisis,
            announcement,
            now,
            opt_outs,
            subscribers: planner.inputs.audience_for(crisis).subscribers(skip)?,
            position: skip,
            renditions: HashMap::new(),
            fallback_ranks: fallback_ranks(
                &planner.inputs.channels,
                planner.inputs.fallback.order(crisis.severity),
            ),
            bad: BadAddresses::default(),
        })
    }

    /// Plans the fallback route first for these destinations.
    pub fn with_bad_addresses(mut self, bad: BadAddresses) -> Self {
        self.bad = bad;
        self
    }
}

/// Each channel's place in a fallback order: named itself, or the first
/// channel reaching a point the order names.
fn fallback_ranks(channels: &[ChannelProfile], order: &[String]) -> Vec<Option<usize>> {
    let mut ranks = vec![None; channels.len()];
    for (rank, text) in order.iter().enumerate() {
        let found = channels.iter().enumerate().position(|(i, profile)| {
            ranks[i].is_none()
                && match entry(text) {
                    FallbackEntry::Channel(name) => profile.name == name,
                    FallbackEntry::Point(point) => point_of(profile) == Some(point),
                }
        });
        if let Some(i) = found {
            ranks[i] = Some(rank);
        }
    }
    ranks
}

/// The contact point a channel's deliveries go to, if it has readers.
fn point_of(profile: &ChannelProfile) -> Option<ContactPoint> {
    match profile.reach {
        Reach::Email => Some(ContactPoint::Email),
        Reach::Phone => Some(ContactPoint::Phone),
        Reach::Broadcast { .. } => None,
    }
}

impl PlanStream<'_> {
    /// The next batch, or none when every subscriber is planned.
    pub fn next_batch(&mut self) -> Option<PlanBatch> {
        let mut batch = PlanBatch::default();
        let mut taken = 0;
        while taken < BATCH_SUBSCRIBERS {
            let Some(subscriber) = self.subscribers.next() else {
                break;
            };
            taken += 1;
            self.position += 1;
            match subscriber {
                Ok(subscriber) => self.plan_subscriber(&subscriber, &mut batch),
                // The file changed since it was checked; the row is
                // reported, the rest still planned.
                Err(problem) => warn!(%problem, "Skipped an audience row that is no longer valid."),
            }
        }
        if taken == 0 {
            return None;
        }
        batch.through = self.position;
        Some(batch)
    }

    fn plan_subscriber(&mut self, subscriber: &Subscriber, batch: &mut PlanBatch) {
        let planner = self.planner;
        let locale = planner
            .inputs
            .renderer
            .resolve_locale(&subscriber.locale)
            .to_owned();
        let follow_up = self.announcement.follow_up.as_ref();
        if follow_up
            .is_some_and(|spec| !spec.admits(&subscriber.locale, subscriber.region.as_deref()))
        {
            return;
        }
        let resolved = planner.inputs.renderer.resolve_locale(&subscriber.locale);
        if !self.crisis.selection.audience.admits(
            &[subscriber.locale.as_str(), resolved],
            subscriber.region.as_deref(),
        ) {
            return;
        }
        // Only follow-ups have resources per region: other announcements
        // keep one rendition for every region.
        let region = follow_up.and(subscriber.region.clone());
        let mut chain = Vec::new();
        // Marked-bad points outside the fallback order, and the reader's
        // first delivery they can wait behind.
        let mut bad = Vec::new();
        let mut first: Option<DeliveryId> = None;
        for (index, profile) in planner.inputs.channels.iter().enumerate() {
            if follow_up.is_some_and(|spec| !spec.uses_channel(&profile.name))
                || !self.crisis.selection.uses_channel(&profile.name)
            {
                continue;
            }
            let Some(route) = self.route(profile, subscriber, &locale) else {
                continue;
            };
            match self.fallback_ranks[index] {
                Some(rank) => chain.push((rank, index, route)),
                None if self.is_bad(index, &route) => bad.push((index, route)),
                None => {
                    let delivery =
                        self.delivery_on(index, subscriber, &locale, region.clone(), route, batch);
                    first.get_or_insert(delivery.id);
                    batch.deliveries.push(delivery);
                }
            }
        }
        let chain_first = self.plan_chain(chain, subscriber, &locale, region.clone(), batch);
        self.plan_bad(
            bad,
            first.or(chain_first),
            subscriber,
            &locale,
            region,
            batch,
        );
    }

    /// Whether a hard bounce or a permanent failure marked the route's
    /// destination bad.
    fn is_bad(&self, index: usize, route: &Route) -> bool {
        point_of(&self.planner.inputs.channels[index])
            .is_some_and(|point| self.bad.contains(point, &route.destination))
    }

    /// A reader's contact points in fallback order (those marked bad
    /// last): the first planned, each next one held behind the one before.
    /// Returns the first one's id.
    fn plan_chain(
        &mut self,
        mut chain: Vec<(usize, usize, Route)>,
        subscriber: &Subscriber,
        locale: &str,
        region: Option<String>,
        batch: &mut PlanBatch,
    ) -> Option<DeliveryId> {
        chain.sort_by_key(|(rank, index, route)| (self.is_bad(*index, route), *rank));
        let no_receipt_after = self.planner.inputs.fallback.no_receipt_after;
        let mut first = None;
        let mut after: Option<DeliveryId> = None;
        for (_, index, route) in chain {
            let point = point_of(&self.planner.inputs.channels[index]);
            let bad = self.is_bad(index, &route);
            let delivery =
                self.delivery_on(index, subscriber, locale, region.clone(), route, batch);
            let id = delivery.id;
            match (after, point) {
                (Some(previous), Some(point)) => {
                    // One that cannot be sent is no fallback.
                    if matches!(delivery.planned, Planned::Dead { .. }) {
                        continue;
                    }
                    batch.bad_held += u64::from(bad);
                    batch.fallbacks.push(HeldFallback {
                        after: previous,
                        point,
                        delivery,
                        no_receipt_after,
                    });
                }
                _ => {
                    batch.bad_only += u64::from(bad);
                    first.get_or_insert(id);
                    batch.deliveries.push(delivery);
                }
            }
            after = Some(id);
        }
        first
    }

    /// Marked-bad points of a reader outside any fallback order (without
    /// a `[fallback]` policy, every point is): not dropped, but tried
    /// last. Each is held behind the reader's first delivery (and the next
    /// behind it) and goes only if that one fails too, as a fallback
    /// does; a reader with no other point gets it planned as usual, since
    /// an address can be mended and one message costs little, and the
    /// plan's audit line counts both.
    fn plan_bad(
        &mut self,
        bad: Vec<(usize, Route)>,
        mut after: Option<DeliveryId>,
        subscriber: &Subscriber,
        locale: &str,
        region: Option<String>,
        batch: &mut PlanBatch,
    ) {
        let no_receipt_after = self.planner.inputs.fallback.no_receipt_after;
        for (index, route) in bad {
            let point = point_of(&self.planner.inputs.channels[index]);
            let delivery =
                self.delivery_on(index, subscriber, locale, region.clone(), route, batch);
            let id = delivery.id;
            let queued = !matches!(delivery.planned, Planned::Dead { .. });
            match (after, point) {
                (Some(previous), Some(point)) if queued => {
                    batch.bad_held += 1;
                    batch.fallbacks.push(HeldFallback {
                        after: previous,
                        point,
                        delivery,
                        no_receipt_after,
                    });
                }
                _ => {
                    batch.bad_only += 1;
                    batch.deliveries.push(delivery);
                }
            }
            after = Some(id);
        }
    }

    /// A subscriber's delivery on the channel `index`, of the rendition
    /// that fits them.
    fn delivery_on(
        &mut self,
        index: usize,
        subscriber: &Subscriber,
        locale: &str,
        region: Option<String>,
        route: Route,
        batch: &mut PlanBatch,
    ) -> NewDelivery {
        let planner = self.planner;
        let profile = &planner.inputs.channels[index];
        let key = |form| RenditionKey {
            channel: index,
            locale: locale.to_owned(),
            timezone: subscriber.timezone,
            form,
            region: region.clone(),
        };
        let chosen = fit(
            |form| self.rendition(key(form), batch),
            |rendition| {
                rendition
                    .draft
                    .measurement_for(&subscriber.name, profile.limit)
            },
        );
        subscriber_delivery(
            profile,
            self.announcement.kind,
            subscriber,
            locale,
            route,
            chosen,
        )
    }

    /// Where a subscriber's delivery on this channel goes; none when the
    /// subscriber has no address for it or opted out of it (of everything,
    /// or of follow-ups and this is one), or the channel is a broadcast.
    fn route(
        &self,
        profile: &ChannelProfile,
        subscriber: &Subscriber,
        locale: &str,
    ) -> Option<Route> {
        let kind = self.announcement.kind;
        match profile.reach {
            Reach::Email => {
                let email = subscriber.email.as_ref()?.to_string();
                if self.opt_outs.stops(ContactPoint::Email, &email, kind) {
                    return None;
                }
                let links = self.planner.inputs.unsubscribe.as_ref();
                Some(Route {
                    unsubscribe_url: links.map(|links| links.url(&email, kind, locale)),
                    destination: email,
                    not_before: self.local_release(subscriber.timezone),
                })
            }
            Reach::Phone => {
                let phone = subscriber.phone.as_ref()?;
                if self
                    .opt_outs
                    .stops(ContactPoint::Phone, phone.as_str(), kind)
                {
                    return None;
                }
                Some(Route {
                    destination: phone.to_string(),
                    unsubscribe_url: None,
                    not_before: self.quiet_hours_release(subscriber.timezone),
                })
            }
            Reach::Broadcast { .. } => None,
        }
    }

    /// When a reader-local follow-up (`at = "09:00"`) reaches a reader in
    /// `timezone` (else `[follow_ups] time_zone`), if not at once.
    fn local_release(&self, timezone: Option<chrono_tz::Tz>) -> Option<DateTime<Utc>> {
        let time = self.announcement.follow_up.as_ref()?.local_at?;
        let zone = timezone.unwrap_or(self.planner.follow_ups.as_ref()?.zone);
        Some(next_local(self.now, time, zone)).filter(|at| *at > self.now)
    }

    /// When a text to a reader in `timezone` may go, if not at once: a
    /// follow-up can wait for its reader-local time and then for the
    /// morning; a critical crisis's only for its reader-local time.
    fn quiet_hours_release(&self, timezone: Option<chrono_tz::Tz>) -> Option<DateTime<Utc>> {
        let local = self.local_release(timezone);
        if self.announcement.follow_up.is_none() || self.crisis.severity == Severity::Critical {
            return local;
        }
        let from = local.unwrap_or(self.now);
        self.planner
            .follow_ups
            .as_ref()
            .and_then(|f| f.quiet_hours)
            .map(|quiet| quiet.release(from, timezone.unwrap_or(chrono_tz::Tz::UTC)))
            .filter(|at| *at > self.now)
            .or(local)
    }

    /// The rendition for a key, rendering (and queueing for storage) the
    /// first time it is needed.
    fn rendition(
        &mut self,
        key: RenditionKey,
        batch: &mut PlanBatch,
    ) -> Result<Rendition, RenderError> {
        if let Some(rendered) = self.renditions.get(&key) {
            return rendered.clone();
        }
        let inputs = &self.planner.inputs;
        let profile = &inputs.channels[key.channel];
        let ctx = self.rendition_context(&key, profile);
        let rendered = inputs.renderer.draft(profile, key.form, &ctx).map(|draft| {
            let id = RenditionId::new();
            batch.renditions.push(NewRendition {
                id,
                content: draft.content.clone(),
            });
            Rendition {
                id,
                draft: Arc::new(draft),
            }
        });
        self.renditions.insert(key, rendered.clone());
        rendered
    }

    /// The announcement's question, in `locale`.
    fn question_prompt(&self, locale: &str) -> Option<String> {
        let inputs = &self.planner.inputs;
        let key = self.announcement.question.as_ref()?;
        let question = inputs.answers.questions.get(key)?;
        let default = inputs.renderer.default_locale();
        Some(crate::domain::question::localized(&question.prompt, locale, default).to_owned())
    }

    /// An email's answer links in `locale`: `ANSWER_MARK` stands for where
    /// each reader's own start (signed when sent), then the number and
    /// the language of the confirmation page. None without a question or
    /// without a key to sign them.
    fn answer_links(&self, locale: &str) -> Option<Vec<AnswerLinkView>> {
        let inputs = &self.planner.inputs;
        inputs.unsubscribe.as_ref()?;
        let key = self.announcement.question.as_ref()?;
        let question = inputs.answers.questions.get(key)?;
        let default = inputs.renderer.default_locale();
        let lang = serde_urlencoded::to_string([("lang", locale)]).unwrap_or_default();
        let links = question.choices.iter().map(|choice| AnswerLinkView {
            number: choice.number,
            label: crate::domain::question::localized(&choice.label, locale, default).to_owned(),
            url: format!("{ANSWER_MARK}/{}?{lang}", choice.number),
            urgent: choice.urgent,
        });
        Some(links.collect())
    }

    /// What a rendition's templates see: a reader whose name is
    /// `NAME_MARK` and, for email with one-click unsubscribe, whose link is
    /// `UNSUBSCRIBE_MARK`; each reader's own are filled in when it is sent.
    fn rendition_context(&self, key: &RenditionKey, profile: &ChannelProfile) -> RenderContext {
        let planner = self.planner;
        let ctx = planner.context(
            self.crisis,
            self.announcement.kind,
            &key.locale,
            Some((NAME_MARK, key.timezone)),
            self.now,
        );
        let mut ctx = planner.with_follow_up(
            ctx,
            self.crisis,
            self.announcement.follow_up.as_ref(),
            key.region.as_deref(),
        );
        if profile.family == Some(crate::message::TextFamily::Sms) {
            ctx.question = self.question_prompt(&ctx.locale);
        }
        if profile.family.is_none()
            && let Some(recipient) = &mut ctx.recipient
        {
            recipient.unsubscribe_url = planner
                .inputs
                .unsubscribe
                .as_ref()
                .map(|_| UNSUBSCRIBE_MARK.to_owned());
            ctx.answers = self.answer_links(&ctx.locale);
        }
        ctx
    }
}

/// A subscriber's delivery of the rendition chosen for them, or a dead
/// one with the reason their message cannot be sent.
fn subscriber_delivery(
    profile: &ChannelProfile,
    kind: AnnouncementKind,
    subscriber: &Subscriber,
    locale: &str,
    route: Route,
    chosen: Result<Rendition, Unsendable>,
) -> NewDelivery {
    match chosen {
        Ok(rendition) => NewDelivery {
            id: DeliveryId::new(),
            channel: profile.name.clone(),
            recipient_id: Some(subscriber.id.clone()),
            destination: route.destination,
            locale: locale.to_owned(),
            priority: priority(kind),
            planned: Planned::Queued {
                payload: Payload::Rendition {
                    id: rendition.id,
                    recipient_name: Some(subscriber.name.clone()),
                    unsubscribe_url: route.unsubscribe_url,
                },
                not_before: route.not_before,
            },
        },
        Err(unsendable) => dead(
            profile,
            kind,
            Some(&subscriber.id),
            &route.destination,
            locale,
            dead_reason(profile, &unsendable),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use chrono::Utc;

    use super::*;
    use crate::domain::{AnnouncementKind, Declaration};
    use crate::message::post::LengthRule;
    use crate::message::{DeliveryContent, TextLimit};
    use crate::outbox::DeadCause;
    use crate::plan::PlanInputs;
    use crate::plan::tests::{inputs as plan_inputs, sms_channel};
    use crate::render::Renderer;
    use crate::render::tests::copy_of_shipped;

    const LONG_NAME: &str = "Maximilian Featherstonehaugh-Worthington";

    fn long_sms(name: &str) -> String {
        format!("Hello {name}, the long form of the message.")
    }

    fn short_sms(name: &str) -> String {
        format!("Hi {name}, short.")
    }

    /// In `templates`, a copy of the shipped English ones: SMS templates
    /// that name the reader, an audience of readers with names of three
    /// lengths (and one opted out), and an SMS channel counted in
    /// characters that fits the long form only with the shortest name.
    fn inputs(templates: &Path) -> PlanInputs {
        std::fs::write(
            templates.join("en/sms/initial.j2"),
            long_sms("{{ recipient.name }}"),
        )
        .unwrap();
        std::fs::write(
            templates.join("en/sms/initial.short.j2"),
            short_sms("{{ recipient.name }}"),
        )
        .unwrap();
        let rows = format!(
            "al,Al,,+14155550101,en,UTC\n\
             bart,Bartholomew,,+14155550102,en,UTC\n\
             max,{LONG_NAME},,+14155550103,en,UTC\n\
             out,Opted Out,,+14155550104,en,UTC\n"
        );
        let sms = sms_channel(TextLimit::Length {
            rule: LengthRule::Chars,
            max: long_sms("Al").chars().count(),
        });
        let renderer = Renderer::load(templates, "en").unwrap();
        plan_inputs(templates, &rows, renderer, vec![sms])
    }

    #[test]
    fn each_reader_gets_the_shared_form_that_fits_with_their_own_name() {
        let dir = copy_of_shipped(&["en"]);
        let planner = Planner::new(Arc::new(inputs(dir.path())));
        let declaration: Declaration = serde_json::from_value(serde_json::json!({
            "kind": "outage", "severity": "major", "title": "Payments are down",
            "summary": "Card payments fail.",
        }))
        .unwrap();
        let now = Utc::now();
        let crisis = Crisis::declare(declaration, now).unwrap();
        let (announcement, broadcasts) = planner.start(&crisis, AnnouncementKind::Initial, now);
        assert!(broadcasts.is_empty());
        let mut opt_outs = OptOuts::default();
        opt_outs.insert(
            ContactPoint::Phone,
            "+14155550104".into(),
            crate::domain::consent::ConsentScope::All,
        );
        let mut stream = planner
            .stream(&crisis, &announcement, now, &opt_outs, 0)
            .unwrap();
        let batch = stream.next_batch().expect("a batch");
        assert!(stream.next_batch().is_none());
        assert_eq!(batch.through, 4);

        // Both forms rendered once, with the mark for the name.
        let texts: Vec<&str> = batch
            .renditions
            .iter()
            .map(|r| match &r.content {
                DeliveryContent::Message(message) => message.text.as_str(),
                DeliveryContent::Email(_) => panic!("an SMS"),
            })
            .collect();
        assert_eq!(texts, [long_sms(NAME_MARK), short_sms(NAME_MARK)]);
        let rendition_of = |i: usize| match &batch.deliveries[i].planned {
            Planned::Queued {
                payload:
                    Payload::Rendition {
                        id, recipient_name, ..
                    },
                ..
            } => (*id, recipient_name.clone()),
            _ => panic!("{:?}", batch.deliveries[i]),
        };
        assert_eq!(batch.deliveries.len(), 3, "the opted-out reader is skipped");
        assert_eq!(rendition_of(0), (batch.renditions[0].id, Some("Al".into())));
        assert_eq!(
            rendition_of(1),
            (batch.renditions[1].id, Some("Bartholomew".into()))
        );
        let unfit = &batch.deliveries[2];
        assert_eq!(unfit.recipient_id.as_deref(), Some("max"));
        let max = long_sms("Al").chars().count();
        let Planned::Dead { cause, reason } = &unfit.planned else {
            panic!("written dead: {unfit:?}");
        };
        assert_eq!(*cause, DeadCause::Unfit);
        assert_eq!(
            Some(reason.as_str()),
            Some(
                format!(
                    "message not sent: too long for the channel even in the short form: \
                     {} of {max} characters",
                    short_sms(LONG_NAME).chars().count()
                )
                .as_str()
            )
        );
    }
}
