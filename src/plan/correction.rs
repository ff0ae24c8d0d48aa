//! A correction's messages: one per delivery the original reached, on the
//! same channel and in the same language, saying that the message the
//! reader received at HH:MM was sent in error (or an edited text), under
//! the localized "Correction" marker. Readers who share a channel,
//! language and time of receipt share one rendition.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::{Planner, dead, priority};
use crate::domain::{AnnouncementKind, Crisis, DeliveryId, RenditionId};
use crate::message::{
    ChannelProfile, DeliveryContent, EmailContent, Form, MessageContent, TextFamily, escape_html,
    sms,
};
use crate::outbox::{
    Announcement, NewDelivery, NewRendition, OriginalDelivery, OriginalState, Payload, Planned,
};
use crate::render::{Unsendable, fit};

/// What a correction says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorrectionText {
    /// The prepared text: the message received at HH:MM was sent in error.
    Prepared,
    /// An edited text per locale; a locale without one reads the default
    /// language's.
    Edited(BTreeMap<String, String>),
}

/// Where a correction's times are told: the reader's zone when the
/// audience gives it, else `fallback`, named.
#[derive(Debug, Clone)]
pub struct Zones {
    pub readers: HashMap<String, Tz>,
    pub fallback: Tz,
}

impl Zones {
    /// "14:05", in the reader's zone, or "14:05 UTC" in the fallback's.
    fn time(&self, recipient: Option<&str>, at: DateTime<Utc>) -> String {
        match recipient.and_then(|id| self.readers.get(id)) {
            Some(zone) => at.with_timezone(zone).format("%H:%M").to_string(),
            None => format!(
                "{} {}",
                at.with_timezone(&self.fallback).format("%H:%M"),
                self.fallback.name()
            ),
        }
    }
}

/// A correction planned: its renditions and deliveries.
#[derive(Debug, Default)]
pub struct CorrectionPlan {
    pub renditions: Vec<NewRendition>,
    pub deliveries: Vec<NewDelivery>,
}

impl Planner {
    /// The correction's messages to `originals`: those sent or in flight
    /// (an in-flight one is counted sent now), and, for an edited text,
    /// also those the correction stopped, since the edited text is what
    /// they were owed. Channels no longer configured are left out.
    pub fn correction(
        &self,
        crisis: &Crisis,
        announcement: &Announcement,
        text: &CorrectionText,
        originals: &[OriginalDelivery],
        zones: &Zones,
    ) -> CorrectionPlan {
        let mut plan = CorrectionPlan::default();
        let mut shared: HashMap<(String, String, String), RenditionId> = HashMap::new();
        for original in originals {
            let time = match (original.state, text) {
                (OriginalState::Sent(at), _) => zones.time(original.recipient_id.as_deref(), at),
                (OriginalState::InFlight, _) => {
                    zones.time(original.recipient_id.as_deref(), announcement.created_at)
                }
                (OriginalState::Stopped, CorrectionText::Edited(_)) => String::new(),
                (OriginalState::Stopped, CorrectionText::Prepared) => continue,
            };
            let Some(profile) = self
                .inputs
                .channels
                .iter()
                .find(|p| p.name == original.channel)
            else {
                continue;
            };
            let delivery = self.corrected(
                profile,
                crisis,
                text,
                original,
                &time,
                &mut shared,
                &mut plan,
            );
            plan.deliveries.push(delivery);
        }
        plan
    }

    /// One reader's correction, sharing the rendition of readers with the
    /// same channel, language and time.
    #[allow(clippy::too_many_arguments)]
    fn corrected(
        &self,
        profile: &ChannelProfile,
        crisis: &Crisis,
        text: &CorrectionText,
        original: &OriginalDelivery,
        time: &str,
        shared: &mut HashMap<(String, String, String), RenditionId>,
        plan: &mut CorrectionPlan,
    ) -> NewDelivery {
        let key = (
            profile.name.clone(),
            original.locale.clone(),
            time.to_owned(),
        );
        let kind = AnnouncementKind::Correction;
        let rendition = match shared.get(&key) {
            Some(id) => Ok(*id),
            None => self
                .correction_content(profile, crisis, text, &original.locale, time)
                .map(|content| {
                    let id = RenditionId::new();
                    plan.renditions.push(NewRendition { id, content });
                    shared.insert(key, id);
                    id
                }),
        };
        let id = match rendition {
            Ok(id) => id,
            Err(unsendable) => {
                return dead(
                    profile,
                    kind,
                    original.recipient_id.as_deref(),
                    &original.destination,
                    &original.locale,
                    format!("correction not sent: {unsendable}"),
                );
            }
        };
        NewDelivery {
            id: DeliveryId::new(),
            channel: profile.name.clone(),
            recipient_id: original.recipient_id.clone(),
            destination: original.destination.clone(),
            locale: original.locale.clone(),
            priority: priority(kind),
            planned: Planned::Queued {
                payload: Payload::Rendition {
                    id,
                    recipient_name: original.recipient_name.clone(),
                    unsubscribe_url: original.unsubscribe_url.clone(),
                },
                not_before: None,
            },
        }
    }

    /// The correction in one channel's form and one language.
    fn correction_content(
        &self,
        profile: &ChannelProfile,
        crisis: &Crisis,
        text: &CorrectionText,
        locale: &str,
        time: &str,
    ) -> Result<DeliveryContent, Unsendable> {
        let renderer = &self.inputs.renderer;
        let strings = renderer.strings(locale);
        let mut marker = strings.correction.marker.clone();
        if crisis.drill {
            marker = format!("{} {marker}", strings.drill_marker);
        }
        let body = match text {
            CorrectionText::Prepared => strings.correction.sent_in_error.replace("{time}", time),
            CorrectionText::Edited(texts) => texts
                .get(locale)
                .or_else(|| texts.get(renderer.resolve_locale(locale)))
                .or_else(|| texts.get(renderer.default_locale()))
                .or_else(|| texts.values().next())
                .cloned()
                .unwrap_or_default(),
        };
        let (title, _) = crisis.text_for(locale);
        let link = &self.inputs.company.status_url;
        let Some(family) = profile.family else {
            return Ok(DeliveryContent::Email(correction_email(
                &marker, title, &body, link, locale,
            )));
        };
        let message = |form: Form| {
            let mut text = match form {
                Form::Long => format!("{marker}: {title}\n{body}\n{link}"),
                Form::Short => format!("{marker}: {body}"),
            };
            if family == TextFamily::Sms {
                text = sms::prefer_gsm7(&text).into_owned();
            }
            Ok(MessageContent {
                text,
                form,
                title: format!("{marker}: {title}"),
                link: link.clone(),
                severity: crisis.severity,
                language: renderer.resolve_locale(locale).to_owned(),
            })
        };
        let fitted = fit(message, |m: &MessageContent| {
            Cow::Owned(profile.limit.measure(&m.text))
        })?;
        Ok(DeliveryContent::Message(fitted))
    }
}

/// A correction email: the marker in the subject and at the top.
fn correction_email(
    marker: &str,
    title: &str,
    body: &str,
    link: &str,
    locale: &str,
) -> EmailContent {
    let html = format!(
        "<!DOCTYPE html><html lang=\"{lang}\"><head><meta charset=\"utf-8\"><title>{marker}: {title}</title></head>\
         <body><h1 style=\"color:#b00020\">{marker}</h1><p><strong>{title}</strong></p><p>{body}</p>\
         <p><a href=\"{link}\">{link}</a></p></body></html>",
        lang = escape_html(locale),
        marker = escape_html(marker),
        title = escape_html(title),
        body = escape_html(body).replace('\n', "<br>"),
        link = escape_html(link),
    );
    EmailContent {
        subject: format!("{marker}: {title}"),
        text: format!("{marker}: {title}\n\n{body}\n\n{link}\n"),
        html,
        unsubscribe_url: None,
    }
}
