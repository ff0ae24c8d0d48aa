//! Rendered content: what an email or a plain-text message says once its
//! templates have run, and the marks a rendition shared by many readers
//! leaves for each reader's name and unsubscribe link.

use serde::{Deserialize, Serialize};

use crate::domain::Severity;

/// Rendered email parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailContent {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// RFC 8058 one-click unsubscribe URL, signed for this recipient.
    #[serde(default)]
    pub unsubscribe_url: Option<String>,
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

/// What a delivery carries, rendered at planning time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeliveryContent {
    Email(EmailContent),
    /// SMS, social and chat: one plain-text message.
    Message(MessageContent),
}

/// Stands for the reader's name in a rendition; replaced when it is sent.
/// A private-use character: no template or crisis text contains it, and
/// HTML escaping leaves it alone.
pub const NAME_MARK: &str = "\u{E000}";
/// Stands for the reader's unsubscribe URL in a rendition.
pub const UNSUBSCRIBE_MARK: &str = "\u{E001}";
/// Stands for the start of the reader's answer links in a rendition
/// (`{public_url}/v1/answers/{token}`; each link adds `/{number}`).
pub const ANSWER_MARK: &str = "\u{E002}";

/// This reader's fields, which replace a rendition's marks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReaderFields<'a> {
    pub name: Option<&'a str>,
    pub unsubscribe_url: Option<&'a str>,
    pub answer_url: Option<&'a str>,
}

impl DeliveryContent {
    /// The message for one reader: the marks of a rendition replaced by
    /// their name, unsubscribe link and answer links (escaped in HTML).
    pub fn personalize(&self, reader: ReaderFields<'_>) -> DeliveryContent {
        let name = reader.name.unwrap_or_default();
        let url = reader.unsubscribe_url.unwrap_or_default();
        let answer = reader.answer_url.unwrap_or_default();
        let plain = |text: &str| {
            text.replace(NAME_MARK, name)
                .replace(UNSUBSCRIBE_MARK, url)
                .replace(ANSWER_MARK, answer)
        };
        match self {
            DeliveryContent::Email(email) => DeliveryContent::Email(EmailContent {
                subject: plain(&email.subject),
                text: plain(&email.text),
                html: email
                    .html
                    .replace(NAME_MARK, &escape_html(name))
                    .replace(UNSUBSCRIBE_MARK, &escape_html(url))
                    .replace(ANSWER_MARK, &escape_html(answer)),
                unsubscribe_url: reader.unsubscribe_url.map(str::to_owned),
            }),
            DeliveryContent::Message(message) => DeliveryContent::Message(MessageContent {
                text: plain(&message.text),
                ..message.clone()
            }),
        }
    }
}

/// Text made safe inside HTML, attribute values included.
pub fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
}

/// Plain-text template families, one per kind of channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextFamily {
    Sms,
    Social,
    Chat,
}

impl TextFamily {
    pub const ALL: [TextFamily; 3] = [TextFamily::Sms, TextFamily::Social, TextFamily::Chat];

    pub fn as_str(&self) -> &'static str {
        match self {
            TextFamily::Sms => "sms",
            TextFamily::Social => "social",
            TextFamily::Chat => "chat",
        }
    }
}

/// Which form of a message was chosen to fit its channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    Long,
    Short,
}
