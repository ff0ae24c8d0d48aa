//! Planning: a crisis transition and the config become an announcement and
//! its deliveries, each rendered for its channel, reader and language, and
//! fitted to the channel's limit.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::warn;
use uuid::Uuid;

use crate::domain::audience::{Audience, AudienceError, Subscriber, Subscribers};
use crate::domain::consent::{ContactPoint, OptOuts, UnsubscribeSigner};
use crate::domain::directory::{self, ContactEntry, ContactView};
use crate::domain::follow_up::{FollowUpSpec, FollowUps};
use crate::domain::{AnnouncementKind, Crisis, DeliveryId, Severity};
use crate::message::{
    ChannelProfile, DeliveryContent, EmailContent, Form, Measurement, MessageContent, NAME_MARK,
    Reach, TextFamily, TextLimit, UNSUBSCRIBE_MARK, sms,
};
use crate::outbox::{Announcement, NewDelivery, NewRendition, Payload};
use crate::render::{CompanyView, RenderContext, RenderError, Renderer};
use arc_swap::ArcSwap;

/// The text chosen for a channel and how it measures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fitted {
    pub text: String,
    pub form: Form,
    pub measurement: Measurement,
}

#[derive(Debug, thiserror::Error)]
pub enum FitError {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("too long for the channel even in the short form: {0}")]
    TooLong(Measurement),
}

/// The long form when it fits the channel's limit, else the short form;
/// never a text cut off mid-word.
pub fn fit(
    renderer: &Renderer,
    family: TextFamily,
    limit: TextLimit,
    ctx: &RenderContext,
) -> Result<Fitted, FitError> {
    for form in [Form::Long, Form::Short] {
        let mut text = renderer.render_text(family, form, ctx)?;
        if family == TextFamily::Sms {
            // A staff member's curly apostrophe must not double the cost.
            text = sms::prefer_gsm7(&text).into_owned();
        }
        let measurement = limit.measure(&text);
        if measurement.fits {
            return Ok(Fitted {
                text,
                form,
                measurement,
            });
        }
        if form == Form::Short {
            return Err(FitError::TooLong(measurement));
        }
    }
    unreachable!("the loop returns on the short form")
}

/// Where one-click unsubscribe links point, and how they are signed.
#[derive(Debug, Clone)]
pub struct UnsubscribeLinks {
    /// The daemon's public URL, without a trailing slash.
    pub base_url: String,
    pub signer: UnsubscribeSigner,
}

impl UnsubscribeLinks {
    pub fn url(&self, email: &str) -> String {
        format!(
            "{}/v1/unsubscribe/{}",
            self.base_url,
            self.signer.token(email)
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
    pub renderer: Renderer,
    pub channels: Vec<ChannelProfile>,
    pub unsubscribe: Option<UnsubscribeLinks>,
}

impl PlanInputs {
    /// The directory as a reader in `locale` sees it at `now`.
    pub fn contacts(&self, locale: &str, now: DateTime<Utc>) -> Vec<ContactView> {
        directory::views(
            &self.directory,
            locale,
            self.renderer.default_locale(),
            &self.renderer.strings(locale).hours,
            now,
        )
    }
}

#[derive(Debug, Clone)]
pub struct Planner {
    inputs: Arc<PlanInputs>,
    /// Resources and quiet hours for follow-ups, when configured.
    follow_ups: Option<Arc<FollowUps>>,
}

/// Initial announcements, updates and the all-clear go first.
fn priority(kind: AnnouncementKind) -> u8 {
    match kind {
        AnnouncementKind::Initial | AnnouncementKind::Update | AnnouncementKind::Resolved => 0,
        AnnouncementKind::FollowUp => 1,
    }
}

fn empty_email() -> DeliveryContent {
    DeliveryContent::Email(EmailContent {
        subject: String::new(),
        text: String::new(),
        html: String::new(),
        unsubscribe_url: None,
    })
}

/// A delivery that planning already knows cannot be sent.
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
        payload: Payload::Inline(empty_email()),
        priority: priority(kind),
        dead_reason: Some(reason),
        not_before: None,
    }
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
    pub fn follow_up_reaches_subscribers(&self, spec: &FollowUpSpec) -> bool {
        self.inputs.audience.count > 0
            && self.inputs.channels.iter().any(|p| {
                matches!(p.reach, Reach::Email | Reach::Phone) && spec.uses_channel(&p.name)
            })
    }

    /// Whether this announcement goes to subscribers one by one (email,
    /// SMS), which is planned in batches after the transition is stored.
    pub fn reaches_subscribers(&self) -> bool {
        self.inputs.audience.count > 0
            && self
                .inputs
                .channels
                .iter()
                .any(|p| matches!(p.reach, Reach::Email | Reach::Phone))
    }

    fn context(
        &self,
        crisis: &Crisis,
        kind: AnnouncementKind,
        locale: &str,
        recipient: Option<(&str, chrono_tz::Tz)>,
        now: DateTime<Utc>,
    ) -> RenderContext {
        let inputs = &self.inputs;
        let locale = inputs.renderer.resolve_locale(locale);
        RenderContext::new(
            locale,
            inputs.company.clone(),
            crisis,
            kind,
            recipient,
            inputs.contacts(locale, now),
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
            id: Uuid::now_v7(),
            crisis_id: crisis.id,
            kind,
            message: crisis.last_message.clone(),
            created_at: now,
            follow_up: follow_up.cloned(),
        };
        let mut deliveries = Vec::new();
        for profile in &self.inputs.channels {
            let (Reach::Broadcast { locale }, Some(family)) = (&profile.reach, profile.family)
            else {
                continue;
            };
            if follow_up.is_some_and(|spec| !spec.uses_channel(&profile.name)) {
                continue;
            }
            let ctx = self.context(crisis, kind, locale, None, now);
            let ctx = self.with_follow_up(ctx, crisis, follow_up, None);
            match message(&self.inputs, crisis, family, profile.limit, &ctx) {
                Ok(content) => deliveries.push(NewDelivery {
                    id: DeliveryId::new(),
                    channel: profile.name.clone(),
                    recipient_id: None,
                    destination: profile.name.clone(),
                    locale: ctx.locale.clone(),
                    payload: Payload::Inline(content),
                    priority: priority(kind),
                    dead_reason: None,
                    not_before: None,
                }),
                Err(reason) => deliveries.push(dead(
                    profile,
                    kind,
                    None,
                    &profile.name,
                    &ctx.locale,
                    reason,
                )),
            }
        }
        (announcement, deliveries)
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
        Ok(PlanStream {
            planner: self,
            crisis,
            announcement,
            now,
            opt_outs,
            subscribers: self.inputs.audience.subscribers(skip)?,
            position: skip,
            renditions: HashMap::new(),
        })
    }
}

/// One rendition per channel, language, time zone and form; what differs
/// per reader (name, unsubscribe link) is filled in when it is sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RenditionKey {
    channel: usize,
    locale: String,
    timezone: chrono_tz::Tz,
    form: Form,
    /// Follow-ups list the resources of the reader's region.
    region: Option<String>,
}

#[derive(Debug, Clone)]
enum Rendered {
    /// Stored under this id, with its text for measuring SMS.
    Ready {
        id: Uuid,
        content: Arc<DeliveryContent>,
    },
    /// Cannot be sent: the reason.
    Failed(String),
}

/// A batch of planned deliveries and the renditions they need, written in
/// one transaction.
#[derive(Debug, Clone, Default)]
pub struct PlanBatch {
    pub renditions: Vec<NewRendition>,
    pub deliveries: Vec<NewDelivery>,
    /// Subscribers planned so far, this batch included: where to resume.
    pub through: u64,
}

pub struct PlanStream<'a> {
    planner: &'a Planner,
    crisis: &'a Crisis,
    announcement: &'a Announcement,
    now: DateTime<Utc>,
    opt_outs: &'a OptOuts,
    subscribers: std::iter::Skip<Subscribers>,
    position: u64,
    renditions: HashMap<RenditionKey, Rendered>,
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

    /// The rendition for a key, rendering (and queueing for storage) the
    /// first time it is needed.
    fn rendition(&mut self, key: RenditionKey, batch: &mut PlanBatch) -> Rendered {
        if let Some(rendered) = self.renditions.get(&key) {
            return rendered.clone();
        }
        let planner = self.planner;
        let inputs = &planner.inputs;
        let profile = &inputs.channels[key.channel];
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
        let rendered = match profile.family {
            None => {
                if let Some(recipient) = &mut ctx.recipient {
                    recipient.unsubscribe_url = inputs
                        .unsubscribe
                        .as_ref()
                        .map(|_| UNSUBSCRIBE_MARK.to_owned());
                }
                inputs
                    .renderer
                    .render_email(&ctx)
                    .map(|mut email| {
                        email.unsubscribe_url = inputs
                            .unsubscribe
                            .as_ref()
                            .map(|_| UNSUBSCRIBE_MARK.to_owned());
                        DeliveryContent::Email(email)
                    })
                    .map_err(|e| format!("message did not render: {e}"))
            }
            Some(family) => inputs
                .renderer
                .render_text(family, key.form, &ctx)
                .map(|text| {
                    let text = if family == TextFamily::Sms {
                        sms::prefer_gsm7(&text).into_owned()
                    } else {
                        text
                    };
                    DeliveryContent::Message(MessageContent {
                        text,
                        form: key.form,
                        title: ctx.crisis.title.clone(),
                        link: inputs.company.status_url.clone(),
                        severity: self.crisis.severity,
                        language: ctx.locale.clone(),
                    })
                })
                .map_err(|e| format!("message not sent: {e}")),
        };
        let rendered = match rendered {
            Ok(content) => {
                let id = Uuid::now_v7();
                batch.renditions.push(NewRendition {
                    id,
                    content: content.clone(),
                });
                Rendered::Ready {
                    id,
                    content: Arc::new(content),
                }
            }
            Err(reason) => Rendered::Failed(reason),
        };
        self.renditions.insert(key, rendered.clone());
        rendered
    }

    fn plan_subscriber(&mut self, subscriber: &Subscriber, batch: &mut PlanBatch) {
        let inputs = &self.planner.inputs;
        let kind = self.announcement.kind;
        let locale = inputs
            .renderer
            .resolve_locale(&subscriber.locale)
            .to_owned();
        let follow_up = self.announcement.follow_up.as_ref();
        if follow_up
            .is_some_and(|spec| !spec.admits(&subscriber.locale, subscriber.region.as_deref()))
        {
            return;
        }
        // Only follow-ups have resources per region: other announcements
        // keep one rendition for every region.
        let region = follow_up.and(subscriber.region.clone());
        for (index, profile) in inputs.channels.iter().enumerate() {
            if follow_up.is_some_and(|spec| !spec.uses_channel(&profile.name)) {
                continue;
            }
            let key = |form| RenditionKey {
                channel: index,
                locale: locale.clone(),
                timezone: subscriber.timezone,
                form,
                region: region.clone(),
            };
            let mut not_before = None;
            let (destination, unsubscribe_url) = match profile.reach {
                Reach::Email => {
                    let Some(email) = &subscriber.email else {
                        continue;
                    };
                    let email = email.to_string();
                    if self.opt_outs.contains(ContactPoint::Email, &email) {
                        continue;
                    }
                    let url = inputs.unsubscribe.as_ref().map(|links| links.url(&email));
                    (email, url)
                }
                Reach::Phone => {
                    let Some(phone) = &subscriber.phone else {
                        continue;
                    };
                    if self.opt_outs.contains(ContactPoint::Phone, phone) {
                        continue;
                    }
                    // A follow-up can wait for the morning; a critical
                    // crisis's cannot.
                    if follow_up.is_some() && self.crisis.severity != Severity::Critical {
                        not_before = self
                            .planner
                            .follow_ups
                            .as_ref()
                            .and_then(|f| f.quiet_hours)
                            .map(|quiet| quiet.release(self.now, subscriber.timezone))
                            .filter(|at| *at > self.now);
                    }
                    (phone.clone(), None)
                }
                Reach::Broadcast { .. } => continue,
            };
            let chosen = match profile.family {
                // Email has no limit: one form.
                None => self.rendition(key(Form::Long), batch),
                Some(_) => self.fitted(key, &subscriber.name, profile.limit, batch),
            };
            let delivery = match chosen {
                Rendered::Ready { id, .. } => NewDelivery {
                    id: DeliveryId::new(),
                    channel: profile.name.clone(),
                    recipient_id: Some(subscriber.id.clone()),
                    destination,
                    locale: locale.clone(),
                    payload: Payload::Rendition {
                        id,
                        recipient_name: Some(subscriber.name.clone()),
                        unsubscribe_url,
                    },
                    priority: priority(kind),
                    dead_reason: None,
                    not_before,
                },
                Rendered::Failed(reason) => dead(
                    profile,
                    kind,
                    Some(&subscriber.id),
                    &destination,
                    &locale,
                    reason,
                ),
            };
            batch.deliveries.push(delivery);
        }
    }

    /// The long form when it fits the channel with this reader's name in
    /// it, else the short form, else a reason not to send.
    fn fitted(
        &mut self,
        key: impl Fn(Form) -> RenditionKey,
        name: &str,
        limit: TextLimit,
        batch: &mut PlanBatch,
    ) -> Rendered {
        let mut last = None;
        for form in [Form::Long, Form::Short] {
            let rendered = self.rendition(key(form), batch);
            let Rendered::Ready { content, .. } = &rendered else {
                return rendered;
            };
            let DeliveryContent::Message(message) = content.as_ref() else {
                return rendered;
            };
            // Most templates do not name the reader; when one does, the
            // reader's own name is what gets measured.
            let measurement = if message.text.contains(NAME_MARK) {
                limit.measure(&message.text.replace(NAME_MARK, name))
            } else {
                limit.measure(&message.text)
            };
            if measurement.fits {
                return rendered;
            }
            last = Some(measurement);
        }
        Rendered::Failed(match last {
            Some(measurement) => format!("message not sent: {}", FitError::TooLong(measurement)),
            None => "message not sent: no form fits".to_owned(),
        })
    }
}

fn message(
    inputs: &PlanInputs,
    crisis: &Crisis,
    family: TextFamily,
    limit: TextLimit,
    ctx: &RenderContext,
) -> Result<DeliveryContent, String> {
    let fitted =
        fit(&inputs.renderer, family, limit, ctx).map_err(|e| format!("message not sent: {e}"))?;
    Ok(DeliveryContent::Message(MessageContent {
        text: fitted.text,
        form: fitted.form,
        title: ctx.crisis.title.clone(),
        link: inputs.company.status_url.clone(),
        severity: crisis.severity,
        language: ctx.locale.clone(),
    }))
}
