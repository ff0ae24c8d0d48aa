//! Channels: where deliveries go. Each says, when a send fails, whether
//! trying again can help; the dispatcher never guesses.

mod chat;
mod email;
pub mod http;
mod mime;
mod sms;
mod smtp_pool;
mod social;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use chat::{DiscordChannel, SlackChannel, TeamsChannel, TelegramChannel};
pub use email::EmailChannel;
pub use sms::{SmsGatewayChannel, TwilioChannel, VonageChannel, twilio_signature};
pub use social::{BlueskyChannel, MastodonChannel};

use crate::config::ChannelSettings;
use crate::secret::SecretSource;

use crate::outbox::Delivery;

/// What the provider said when it accepted a delivery.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Receipt {
    /// The provider's id for the message, when it gives one.
    pub provider_ref: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Try again later; `retry_after` when the provider said when.
    #[error("{reason}")]
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Trying again cannot help: a bad address, rejected content.
    #[error("{reason}")]
    Permanent { reason: String },
}

impl DeliveryError {
    pub fn transient(reason: impl Into<String>) -> Self {
        Self::Transient {
            reason: reason.into(),
            retry_after: None,
        }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        Self::Permanent {
            reason: reason.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("channel `{channel}`: {message}")]
    Config { channel: String, message: String },
}

#[async_trait]
pub trait Channel: Send + Sync + 'static {
    /// The configured name; deliveries name their channel by it.
    fn name(&self) -> &str;
    /// How many deliveries this channel sends at once.
    fn concurrency(&self) -> usize;
    async fn send(&self, delivery: &Delivery) -> Result<Receipt, DeliveryError>;
    /// Can the provider be reached and does it accept our credentials?
    async fn healthcheck(&self) -> Result<(), DeliveryError>;
}

/// Reads a channel's secret, naming the channel and the secret when it is
/// missing.
pub(crate) fn read_secret(
    channel: &str,
    what: &str,
    source: &SecretSource,
) -> Result<String, ChannelError> {
    source
        .read()
        .map(|secret| secret.expose().to_owned())
        .map_err(|e| ChannelError::Config {
            channel: channel.to_owned(),
            message: format!("{what}: {e}"),
        })
}

/// Builds every configured channel; reports every channel that cannot be
/// built, not only the first.
pub fn build_all(settings: &ChannelSettings) -> Result<Vec<Arc<dyn Channel>>, Vec<ChannelError>> {
    let http = http::client().map_err(|e| vec![e])?;
    let mut channels: Vec<Arc<dyn Channel>> = Vec::new();
    let mut errors = Vec::new();
    let mut add = |built: Result<Arc<dyn Channel>, ChannelError>| match built {
        Ok(channel) => channels.push(channel),
        Err(err) => errors.push(err),
    };
    fn arc<C: Channel>(channel: Result<C, ChannelError>) -> Result<Arc<dyn Channel>, ChannelError> {
        channel.map(|c| Arc::new(c) as Arc<dyn Channel>)
    }
    for s in &settings.email {
        add(arc(EmailChannel::from_settings(s)));
    }
    for s in &settings.twilio {
        add(arc(TwilioChannel::from_settings(s, http.clone())));
    }
    for s in &settings.vonage {
        add(arc(VonageChannel::from_settings(s, http.clone())));
    }
    for s in &settings.sms_gateway {
        add(arc(SmsGatewayChannel::from_settings(s, http.clone())));
    }
    for s in &settings.mastodon {
        add(arc(MastodonChannel::from_settings(s, http.clone())));
    }
    for s in &settings.bluesky {
        add(arc(BlueskyChannel::from_settings(s, http.clone())));
    }
    for s in &settings.slack {
        add(arc(SlackChannel::from_settings(s, http.clone())));
    }
    for s in &settings.discord {
        add(arc(DiscordChannel::from_settings(s, http.clone())));
    }
    for s in &settings.teams {
        add(arc(TeamsChannel::from_settings(s, http.clone())));
    }
    for s in &settings.telegram {
        add(arc(TelegramChannel::from_settings(s, http.clone())));
    }
    if errors.is_empty() {
        Ok(channels)
    } else {
        Err(errors)
    }
}

/// The text message a delivery carries; an email delivery routed to a
/// text channel is a planning bug, and retrying cannot fix it.
pub(crate) fn message_of(
    delivery: &crate::outbox::Delivery,
) -> Result<std::borrow::Cow<'_, crate::message::MessageContent>, DeliveryError> {
    use crate::message::DeliveryContent;
    use std::borrow::Cow;
    match delivery.personalized() {
        Cow::Borrowed(DeliveryContent::Message(message)) => Ok(Cow::Borrowed(message)),
        Cow::Owned(DeliveryContent::Message(message)) => Ok(Cow::Owned(message)),
        _ => Err(DeliveryError::permanent(format!(
            "delivery {} carries an email, not a text message",
            delivery.id
        ))),
    }
}
