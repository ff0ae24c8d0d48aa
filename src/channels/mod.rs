//! Channels: where deliveries go. Each says, when a send fails, whether
//! trying again can help; the dispatcher never guesses.

mod email;

use std::time::Duration;

use async_trait::async_trait;

pub use email::{EmailChannel, build_all as build_email_channels};

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
