//! Planning: a crisis transition and the config become an announcement and
//! its deliveries, rendered for each recipient.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::audience::Audience;
use crate::crisis::{AnnouncementKind, Crisis};
use crate::directory::{self, ContactEntry, ContactView};
use crate::outbox::{Announcement, DeliveryContent, DeliveryId, NewDelivery};
use crate::render::{CompanyView, EmailContent, RenderContext, Renderer};

/// Everything planning reads: swapped whole on reload.
#[derive(Debug)]
pub struct PlanInputs {
    pub company: CompanyView,
    pub directory: Vec<ContactEntry>,
    pub audience: Audience,
    pub renderer: Renderer,
    pub email_channels: Vec<String>,
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

impl Planner {
    pub fn new(inputs: Arc<PlanInputs>) -> Self {
        Self { inputs }
    }

    pub fn inputs(&self) -> &Arc<PlanInputs> {
        &self.inputs
    }

    /// The announcement of `kind` for `crisis` and one delivery per email
    /// channel and subscriber with an address. A recipient whose message
    /// does not render gets a dead delivery with the reason, not silence.
    pub fn plan(
        &self,
        crisis: &Crisis,
        kind: AnnouncementKind,
        now: DateTime<Utc>,
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
        let mut deliveries = Vec::new();
        for channel in &inputs.email_channels {
            for subscriber in &inputs.audience.subscribers {
                let Some(email) = &subscriber.email else {
                    continue;
                };
                let locale = inputs
                    .renderer
                    .resolve_locale(&subscriber.locale)
                    .to_owned();
                let contacts = contacts_by_locale
                    .entry(locale.clone())
                    .or_insert_with(|| inputs.contacts(&locale, now))
                    .clone();
                let ctx = RenderContext::new(
                    &locale,
                    inputs.company.clone(),
                    crisis,
                    kind,
                    Some((&subscriber.name, subscriber.timezone)),
                    contacts,
                    now,
                );
                let (content, dead_reason) = match inputs.renderer.render_email(&ctx) {
                    Ok(content) => (content, None),
                    Err(err) => (
                        EmailContent {
                            subject: String::new(),
                            text: String::new(),
                            html: String::new(),
                        },
                        Some(format!("message did not render: {err}")),
                    ),
                };
                deliveries.push(NewDelivery {
                    id: DeliveryId::new(),
                    channel: channel.clone(),
                    recipient_id: Some(subscriber.id.clone()),
                    destination: email.to_string(),
                    locale,
                    content: DeliveryContent::Email(content),
                    priority: priority(kind),
                    dead_reason,
                });
            }
        }
        (announcement, deliveries)
    }
}
