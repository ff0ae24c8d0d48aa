//! What planning knows about a channel: who it reaches, which templates
//! it uses and the limit its text must fit.

use super::{ProviderKind, TextFamily, TextLimit};

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
    /// The kind of the configured channel, as in `[[channels.<kind>]]`;
    /// `None` for a kind or family previewed with its standard limits.
    pub kind: Option<ProviderKind>,
    pub reach: Reach,
    /// `None` for email, which has its own templates.
    pub family: Option<TextFamily>,
    pub limit: TextLimit,
}
