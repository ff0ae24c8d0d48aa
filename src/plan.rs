//! Planning: a crisis transition and the config become an announcement and
//! its deliveries, each rendered for its channel, reader and language, and
//! fitted to the channel's limit.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::audience::Audience;
use crate::config::ChannelSettings;
use crate::consent::{ContactPoint, OptOuts, UnsubscribeSigner};
use crate::crisis::{AnnouncementKind, Crisis, Severity};
use crate::directory::{self, ContactEntry, ContactView};
use crate::outbox::{Announcement, DeliveryContent, DeliveryId, NewDelivery};
use crate::render::post::LengthRule;
use crate::render::sms;
use crate::render::{
    CompanyView, EmailContent, Form, Measurement, RenderContext, RenderError, Renderer, TextFamily,
    TextLimit,
};

/// Who a channel's deliveries go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// One delivery per subscriber with an email address.
    Email,
    /// One delivery per subscriber with a phone number.
    Phone,
    /// One delivery per announcement, written in `locale`.
    Broadcast { locale: String },
}

/// What planning needs to know about a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelProfile {
    pub name: String,
    /// The provider type, as in `[[channels.<type>]]`.
    pub kind: &'static str,
    pub reach: Reach,
    /// `None` for email, which has its own templates.
    pub family: Option<TextFamily>,
    pub limit: TextLimit,
}

const DISCORD_MAX: usize = 2000;
/// Slack truncates far later, but advises keeping messages under 4,000.
const SLACK_MAX: usize = 4000;
/// Teams cards allow ~28 KB; longer text is unreadable in a chat anyway.
const TEAMS_MAX: usize = 4000;
const TELEGRAM_MAX: usize = 4096;
const BLUESKY_MAX: usize = 300;
const STANDARD_SMS_SEGMENTS: usize = 3;

impl ChannelProfile {
    fn broadcast(
        name: &str,
        kind: &'static str,
        locale: &Option<String>,
        default_locale: &str,
        family: TextFamily,
        limit: TextLimit,
    ) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            reach: Reach::Broadcast {
                locale: locale.clone().unwrap_or_else(|| default_locale.to_owned()),
            },
            family: Some(family),
            limit,
        }
    }

    fn sms(name: &str, kind: &'static str, max_segments: usize) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            reach: Reach::Phone,
            family: Some(TextFamily::Sms),
            limit: TextLimit::SmsSegments { max: max_segments },
        }
    }

    /// Every configured channel, in config order by type.
    pub fn all(settings: &ChannelSettings, default_locale: &str) -> Vec<Self> {
        use TextFamily::{Chat, Social};
        let length = |rule, max| TextLimit::Length { rule, max };
        let mut profiles = Vec::new();
        profiles.extend(settings.email.iter().map(|c| Self {
            name: c.name.clone(),
            kind: "email",
            reach: Reach::Email,
            family: None,
            limit: TextLimit::Unlimited,
        }));
        profiles.extend(
            settings
                .twilio
                .iter()
                .map(|c| Self::sms(&c.name, "twilio", c.max_segments)),
        );
        profiles.extend(
            settings
                .vonage
                .iter()
                .map(|c| Self::sms(&c.name, "vonage", c.max_segments)),
        );
        profiles.extend(
            settings
                .sms_gateway
                .iter()
                .map(|c| Self::sms(&c.name, "sms_gateway", c.max_segments)),
        );
        for c in &settings.mastodon {
            let limit = length(LengthRule::Mastodon, c.max_characters);
            profiles.push(Self::broadcast(
                &c.name,
                "mastodon",
                &c.locale,
                default_locale,
                Social,
                limit,
            ));
        }
        for c in &settings.bluesky {
            let limit = length(LengthRule::Graphemes, BLUESKY_MAX);
            profiles.push(Self::broadcast(
                &c.name,
                "bluesky",
                &c.locale,
                default_locale,
                Social,
                limit,
            ));
        }
        for (kind, hooks, max) in [
            ("slack", &settings.slack, SLACK_MAX),
            ("discord", &settings.discord, DISCORD_MAX),
            ("teams", &settings.teams, TEAMS_MAX),
        ] {
            for c in hooks {
                let limit = length(LengthRule::Chars, max);
                profiles.push(Self::broadcast(
                    &c.name,
                    kind,
                    &c.locale,
                    default_locale,
                    Chat,
                    limit,
                ));
            }
        }
        for c in &settings.telegram {
            let limit = length(LengthRule::Utf16, TELEGRAM_MAX);
            profiles.push(Self::broadcast(
                &c.name,
                "telegram",
                &c.locale,
                default_locale,
                Chat,
                limit,
            ));
        }
        profiles
    }

    /// A channel type with its standard limits, for previewing a channel
    /// that is not configured yet: `sms`, `social`, `chat`, or a provider.
    pub fn standard(kind: &str, default_locale: &str) -> Option<Self> {
        let name = kind.to_owned();
        let social = |limit| {
            Self::broadcast(
                &name,
                "social",
                &None,
                default_locale,
                TextFamily::Social,
                limit,
            )
        };
        let chat = |limit| {
            Self::broadcast(
                &name,
                "chat",
                &None,
                default_locale,
                TextFamily::Chat,
                limit,
            )
        };
        let length = |rule, max| TextLimit::Length { rule, max };
        Some(match kind {
            "email" => Self {
                name,
                kind: "email",
                reach: Reach::Email,
                family: None,
                limit: TextLimit::Unlimited,
            },
            "sms" | "twilio" | "vonage" | "sms_gateway" => {
                Self::sms(&name, "sms", STANDARD_SMS_SEGMENTS)
            }
            "mastodon" => social(length(LengthRule::Mastodon, 500)),
            // Bluesky's limit is the tightest of the networks: a post that
            // fits it fits the others.
            "social" | "bluesky" => social(length(LengthRule::Graphemes, BLUESKY_MAX)),
            "chat" | "discord" => chat(length(LengthRule::Chars, DISCORD_MAX)),
            "slack" => chat(length(LengthRule::Chars, SLACK_MAX)),
            "teams" => chat(length(LengthRule::Chars, TEAMS_MAX)),
            "telegram" => chat(length(LengthRule::Utf16, TELEGRAM_MAX)),
            _ => return None,
        })
    }
}

/// A plain-text message, rendered and fitted; what SMS, social and chat
/// channels send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageContent {
    pub text: String,
    pub form: Form,
    /// The crisis title in this language, for cards and headings.
    pub title: String,
    /// Where the full text is: the public status page.
    pub link: String,
    pub severity: Severity,
    pub language: String,
}

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

impl Planner {
    pub fn new(inputs: Arc<PlanInputs>) -> Self {
        Self { inputs }
    }

    pub fn inputs(&self) -> &Arc<PlanInputs> {
        &self.inputs
    }

    /// The announcement of `kind` for `crisis` and its deliveries: per
    /// subscriber on email and SMS (skipping opted-out contact points), once
    /// per account on social and chat. A message that cannot be rendered or
    /// fitted becomes a dead delivery with the reason, not silence.
    pub fn plan(
        &self,
        crisis: &Crisis,
        kind: AnnouncementKind,
        now: DateTime<Utc>,
        opt_outs: &OptOuts,
    ) -> (Announcement, Vec<NewDelivery>) {
        let inputs = &self.inputs;
        let announcement = Announcement {
            id: Uuid::now_v7(),
            crisis_id: crisis.id,
            kind,
            message: crisis.last_message.clone(),
            created_at: now,
        };
        let mut contacts_by_locale: HashMap<String, Vec<ContactView>> = HashMap::new();
        let mut context = |locale: &str, recipient: Option<(&str, chrono_tz::Tz)>| {
            let locale = inputs.renderer.resolve_locale(locale).to_owned();
            let contacts = contacts_by_locale
                .entry(locale.clone())
                .or_insert_with(|| inputs.contacts(&locale, now))
                .clone();
            RenderContext::new(
                &locale,
                inputs.company.clone(),
                crisis,
                kind,
                recipient,
                contacts,
                now,
            )
        };
        let mut deliveries = Vec::new();
        let mut push = |profile: &ChannelProfile,
                        recipient_id: Option<&str>,
                        destination: &str,
                        locale: &str,
                        content: Result<DeliveryContent, String>| {
            let (content, dead_reason) = match content {
                Ok(content) => (content, None),
                Err(reason) => (empty_email(), Some(reason)),
            };
            deliveries.push(NewDelivery {
                id: DeliveryId::new(),
                channel: profile.name.clone(),
                recipient_id: recipient_id.map(str::to_owned),
                destination: destination.to_owned(),
                locale: locale.to_owned(),
                content,
                priority: priority(kind),
                dead_reason,
            });
        };
        for profile in &inputs.channels {
            match (&profile.reach, profile.family) {
                (Reach::Email, _) => {
                    for subscriber in &inputs.audience.subscribers {
                        let Some(email) = &subscriber.email else {
                            continue;
                        };
                        let email = email.to_string();
                        if opt_outs.contains(ContactPoint::Email, &email) {
                            continue;
                        }
                        let mut ctx = context(
                            &subscriber.locale,
                            Some((&subscriber.name, subscriber.timezone)),
                        );
                        let unsubscribe_url =
                            inputs.unsubscribe.as_ref().map(|links| links.url(&email));
                        if let Some(recipient) = &mut ctx.recipient {
                            recipient.unsubscribe_url = unsubscribe_url.clone();
                        }
                        let content = inputs
                            .renderer
                            .render_email(&ctx)
                            .map(|mut content| {
                                content.unsubscribe_url = unsubscribe_url;
                                DeliveryContent::Email(content)
                            })
                            .map_err(|e| format!("message did not render: {e}"));
                        push(profile, Some(&subscriber.id), &email, &ctx.locale, content);
                    }
                }
                (Reach::Phone, Some(family)) => {
                    for subscriber in &inputs.audience.subscribers {
                        let Some(phone) = &subscriber.phone else {
                            continue;
                        };
                        if opt_outs.contains(ContactPoint::Phone, phone) {
                            continue;
                        }
                        let ctx = context(
                            &subscriber.locale,
                            Some((&subscriber.name, subscriber.timezone)),
                        );
                        let content = message(inputs, crisis, family, profile.limit, &ctx);
                        push(profile, Some(&subscriber.id), phone, &ctx.locale, content);
                    }
                }
                (Reach::Broadcast { locale }, Some(family)) => {
                    let ctx = context(locale, None);
                    let content = message(inputs, crisis, family, profile.limit, &ctx);
                    push(profile, None, &profile.name, &ctx.locale, content);
                }
                (_, None) => {}
            }
        }
        (announcement, deliveries)
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
