//! Channels: where deliveries go. Each says, when a send fails, whether
//! trying again can help; the dispatcher never guesses.

mod catalog;
mod chat;
mod email;
pub mod http;
mod mime;
pub mod sendgrid;
mod settings;
mod sms;
mod smtp_pool;
mod social;

use std::time::Duration;

use async_trait::async_trait;

pub use crate::message::ProviderKind;
pub use catalog::{
    Build, ChannelSettings, Configured, Kind, ReceiptSecret, build_all, length, standard_profile,
};
pub use chat::*;
pub use email::{
    EmailChannel, EmailSettings, EmailTransportKind, ReturnPath, SmtpSettings, SmtpTls,
    verp_delivery, verp_token,
};
pub use http::HttpChannel;
pub use settings::{ChannelCommon, ChannelSection, HttpSection, RateLimit};
// Every provider and its settings.
pub use sms::*;
pub use social::*;

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
