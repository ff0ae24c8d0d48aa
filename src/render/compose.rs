//! The one way a channel's message is made, for planning, preview and
//! check-config alike: rendered from the channel's templates in the long
//! form, or in the short form when the long one is over the channel's
//! limit, measured the way the channel counts; or the reason it cannot be
//! sent. Text is never cut off mid-word.

use std::borrow::Cow;

use super::{
    Form, MAX_ROOM, Measurement, RenderContext, RenderError, Renderer, TextFamily, TextLimit,
};
use crate::message::{ChannelProfile, DeliveryContent, MessageContent, NAME_MARK, sms};

/// A channel's message, rendered in the form chosen for it, and how it
/// measures against the channel's limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    pub content: DeliveryContent,
    pub form: Form,
    pub measurement: Measurement,
}

/// Why a channel's message cannot be sent.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unsendable {
    #[error(transparent)]
    Render(#[from] RenderError),
    /// Over the limit even in the short form: by this much.
    #[error("too long for the channel even in the short form: {0}")]
    TooLong(Measurement),
}

impl Composed {
    /// The text the channel's limit applies to: the message, or an
    /// email's plain-text part.
    pub fn text(&self) -> &str {
        measured_text(&self.content)
    }

    /// How a message rendered once for many readers measures for one of
    /// them. Most templates do not name the reader; when one does, the
    /// reader's own name is what gets measured. An email is not measured
    /// per reader: it has no limit.
    pub fn measurement_for(&self, reader: &str, limit: TextLimit) -> Cow<'_, Measurement> {
        match &self.content {
            DeliveryContent::Message(message) if message.text.contains(NAME_MARK) => {
                Cow::Owned(limit.measure(&message.text.replace(NAME_MARK, reader)))
            }
            _ => Cow::Borrowed(&self.measurement),
        }
    }
}

impl Renderer {
    /// The message of `profile`'s channel for the reader (or audience) of
    /// `ctx`: the long form when it fits the channel's limit, else the
    /// short form.
    pub fn compose(
        &self,
        profile: &ChannelProfile,
        ctx: &RenderContext,
    ) -> Result<Composed, Unsendable> {
        fit(
            |form| self.draft(profile, form, ctx),
            |draft| Cow::Borrowed(&draft.measurement),
        )
    }

    /// One form of the channel's message, rendered and measured but not
    /// chosen yet: what a rendition shared by many readers keeps. Email has
    /// one form, whatever `form` asks; SMS is written in GSM-7 where a few
    /// typographic characters are all that stand in the way. A short form
    /// is rendered with the most room (optional parts: summary, message,
    /// the best channel) that keeps it within the channel's limit, measured
    /// in the encoding it would be sent in; with no room at all when even
    /// that is over.
    pub fn draft(
        &self,
        profile: &ChannelProfile,
        form: Form,
        ctx: &RenderContext,
    ) -> Result<Composed, RenderError> {
        if form == Form::Long || profile.family.is_none() {
            return self.draft_with_room(profile, form, ctx);
        }
        let mut roomy = ctx.clone();
        for room in (1..=MAX_ROOM).rev() {
            roomy.room = room;
            let draft = self.draft_with_room(profile, form, &roomy)?;
            if draft.measurement.fits {
                return Ok(draft);
            }
        }
        roomy.room = 0;
        self.draft_with_room(profile, form, &roomy)
    }

    /// One form rendered with the room `ctx` gives it.
    fn draft_with_room(
        &self,
        profile: &ChannelProfile,
        form: Form,
        ctx: &RenderContext,
    ) -> Result<Composed, RenderError> {
        let (content, form) = match profile.family {
            None => {
                let mut email = self.render_email(ctx)?;
                email.unsubscribe_url = ctx
                    .recipient
                    .as_ref()
                    .and_then(|recipient| recipient.unsubscribe_url.clone());
                (DeliveryContent::Email(email), Form::Long)
            }
            Some(family) => {
                let mut text = self.render_text(family, form, ctx)?;
                if let (TextFamily::Sms, Some(question)) = (family, &ctx.question) {
                    text = format!("{}\n{question}", text.trim_end());
                }
                if family == TextFamily::Sms {
                    // A staff member's curly apostrophe must not double the cost.
                    text = sms::prefer_gsm7(&text).into_owned();
                }
                let message = MessageContent {
                    text,
                    form,
                    title: ctx.crisis.title.clone(),
                    link: ctx.company.status_url.clone(),
                    severity: ctx.crisis.severity,
                    language: ctx.locale.clone(),
                };
                (DeliveryContent::Message(message), form)
            }
        };
        let measurement = profile.limit.measure(measured_text(&content));
        Ok(Composed {
            content,
            form,
            measurement,
        })
    }
}

fn measured_text(content: &DeliveryContent) -> &str {
    match content {
        DeliveryContent::Email(email) => &email.text,
        DeliveryContent::Message(message) => &message.text,
    }
}

/// The fitting rule every message follows: the long form when it fits,
/// else the short form, else [`Unsendable::TooLong`] with the short form's
/// measurement. `draft` renders a form (or finds it already rendered) and
/// `measure` says how it measures for the reader at hand, so that planning
/// can share one rendition between readers whose names differ.
pub fn fit<D>(
    mut draft: impl FnMut(Form) -> Result<D, RenderError>,
    measure: impl Fn(&D) -> Cow<'_, Measurement>,
) -> Result<D, Unsendable> {
    let long = draft(Form::Long)?;
    if measure(&long).fits {
        return Ok(long);
    }
    let short = draft(Form::Short)?;
    let measurement = measure(&short);
    if measurement.fits {
        Ok(short)
    } else {
        Err(Unsendable::TooLong(measurement.into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use chrono::Utc;
    use chrono_tz::Tz;

    use super::*;
    use crate::domain::{AnnouncementKind, Crisis, Declaration};
    use crate::message::Reach;
    use crate::message::post::LengthRule;
    use crate::message::sms::SmsEncoding;
    use crate::render::CompanyView;
    use crate::render::tests::shipped;

    fn profile(family: Option<TextFamily>, limit: TextLimit) -> ChannelProfile {
        let reach = match family {
            None => Reach::Email,
            Some(TextFamily::Sms) => Reach::Phone,
            Some(_) => Reach::Broadcast {
                locale: "en".into(),
            },
        };
        ChannelProfile {
            name: "test".into(),
            kind: None,
            reach,
            family,
            limit,
        }
    }

    fn context(title: &str, recipient: Option<&str>) -> RenderContext {
        let declaration: Declaration = serde_json::from_value(serde_json::json!({
            "kind": "outage", "severity": "major", "title": title,
            "summary": "Card payments fail for most customers since 09:10; cash on delivery \
                        still works. We are working with our payment provider on a fix, and \
                        will tell you more within the hour.",
        }))
        .unwrap();
        let now = Utc::now();
        RenderContext::new(
            "en",
            CompanyView {
                name: "Test Co.".into(),
                status_url: "https://status.example.com".into(),
            },
            &Crisis::declare(declaration, now).unwrap(),
            AnnouncementKind::Initial,
            recipient.map(|name| (name, Tz::UTC)),
            Vec::new(),
            now,
        )
    }

    /// `fit` over texts standing for the long and short forms, with the
    /// forms it rendered.
    fn fit_texts(long: &str, short: &str, max: usize) -> (Result<Form, Unsendable>, Vec<Form>) {
        let limit = TextLimit::Length {
            rule: LengthRule::Chars,
            max,
        };
        let tried = RefCell::new(Vec::new());
        let text = |form| match form {
            Form::Long => long,
            Form::Short => short,
        };
        let chosen = fit(
            |form| {
                tried.borrow_mut().push(form);
                Ok(form)
            },
            |form| Cow::Owned(limit.measure(text(*form))),
        );
        (chosen, tried.into_inner())
    }

    #[test]
    fn the_long_form_is_chosen_when_it_fits_and_the_short_one_is_not_rendered() {
        let (chosen, tried) = fit_texts("long enough", "short", 11);
        assert_eq!(chosen.unwrap(), Form::Long);
        assert_eq!(tried, [Form::Long]);
    }

    #[test]
    fn the_short_form_is_chosen_when_only_it_fits() {
        let (chosen, tried) = fit_texts("far too long", "short", 5);
        assert_eq!(chosen.unwrap(), Form::Short);
        assert_eq!(tried, [Form::Long, Form::Short]);
    }

    #[test]
    fn a_message_too_long_in_both_forms_is_unsendable_with_the_short_forms_measurement() {
        let (chosen, _) = fit_texts("far too long", "too long", 5);
        let Err(Unsendable::TooLong(measurement)) = chosen else {
            panic!("{chosen:?}");
        };
        assert_eq!(measurement.length, 8);
        assert_eq!(
            Unsendable::TooLong(measurement).to_string(),
            "too long for the channel even in the short form: 8 of 5 characters"
        );
    }

    #[test]
    fn a_form_that_does_not_render_is_unsendable_and_no_other_form_is_tried() {
        let mut tried = Vec::new();
        let chosen: Result<Form, Unsendable> = fit(
            |form| {
                tried.push(form);
                Err(RenderError::Missing("en/sms/initial.j2".into()))
            },
            |_| unreachable!("nothing rendered to measure"),
        );
        assert!(matches!(chosen, Err(Unsendable::Render(_))), "{chosen:?}");
        assert_eq!(tried, [Form::Long]);
    }

    #[test]
    fn an_sms_is_written_in_gsm7_when_typographic_characters_are_all_that_prevent_it() {
        let sms = profile(Some(TextFamily::Sms), TextLimit::SmsSegments { max: 3 });
        let composed = shipped()
            .compose(&sms, &context("We’re “down” — sorry", Some("Ada")))
            .unwrap();
        assert_eq!(composed.form, Form::Long);
        assert!(
            composed.text().contains("We're \"down\" - sorry"),
            "{}",
            composed.text()
        );
        let info = composed.measurement.sms.as_ref().expect("SMS measurement");
        assert_eq!(info.encoding, SmsEncoding::Gsm7);
        assert_eq!(composed.measurement, sms.limit.measure(composed.text()));
        let DeliveryContent::Message(message) = &composed.content else {
            panic!("{composed:?}");
        };
        assert_eq!(
            message.title, "We’re “down” — sorry",
            "the title as written"
        );
        assert_eq!(message.link, "https://status.example.com");
        assert_eq!(message.language, "en");
    }

    #[test]
    fn a_post_over_the_limit_falls_back_to_the_short_form_or_is_unsendable() {
        let renderer = shipped();
        let ctx = context("Payments are down", None);
        let long = renderer
            .render_text(TextFamily::Social, Form::Long, &ctx)
            .unwrap();
        let bare = RenderContext {
            room: 0,
            ..ctx.clone()
        };
        let short = renderer
            .render_text(TextFamily::Social, Form::Short, &bare)
            .unwrap();
        let chars = |text: &str| text.chars().count();
        assert!(chars(&short) < chars(&long));
        let limit = |max| TextLimit::Length {
            rule: LengthRule::Chars,
            max,
        };
        let composed = renderer
            .compose(
                &profile(Some(TextFamily::Social), limit(chars(&short))),
                &ctx,
            )
            .unwrap();
        assert_eq!(
            (composed.form, composed.text()),
            (Form::Short, short.as_str())
        );
        let tight = profile(Some(TextFamily::Social), limit(chars(&short) - 1));
        let Err(Unsendable::TooLong(measurement)) = renderer.compose(&tight, &ctx) else {
            panic!("the short form is one character over");
        };
        assert_eq!(measurement, tight.limit.measure(&short));
    }

    #[test]
    fn an_email_has_one_form_and_keeps_its_readers_unsubscribe_link() {
        let email = profile(None, TextLimit::Unlimited);
        let mut ctx = context("Payments are down", Some("Ada"));
        if let Some(recipient) = &mut ctx.recipient {
            recipient.unsubscribe_url = Some("https://example.com/u/1".into());
        }
        let composed = shipped().compose(&email, &ctx).unwrap();
        let DeliveryContent::Email(content) = &composed.content else {
            panic!("{composed:?}");
        };
        assert!(content.subject.contains("Payments are down"));
        assert_eq!(
            content.unsubscribe_url.as_deref(),
            Some("https://example.com/u/1")
        );
        assert_eq!(composed.form, Form::Long);
        assert_eq!(composed.text(), content.text);
        assert!(composed.measurement.fits);
    }

    #[test]
    fn a_shared_message_that_names_its_reader_is_measured_with_each_readers_name() {
        let limit = TextLimit::Length {
            rule: LengthRule::Chars,
            max: 10,
        };
        let draft = |text: String| Composed {
            measurement: limit.measure(&text),
            content: DeliveryContent::Message(MessageContent {
                text,
                form: Form::Long,
                title: String::new(),
                link: String::new(),
                severity: crate::domain::Severity::Minor,
                language: "en".into(),
            }),
            form: Form::Long,
        };
        let named = draft(format!("Hi {NAME_MARK}!"));
        assert!(named.measurement_for("Ada", limit).fits);
        let long_name = named.measurement_for("Bartholomew", limit);
        assert_eq!((long_name.length, long_name.fits), (15, false));
        let anonymous = draft("Hi there!".into());
        assert!(matches!(
            anonymous.measurement_for("Bartholomew", limit),
            Cow::Borrowed(_)
        ));
    }
}
