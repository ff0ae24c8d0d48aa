//! What a delivery carries once rendered: the email and plain-text
//! content, the marks a shared rendition leaves for each reader's name and
//! unsubscribe link, what planning knows of a channel (and the kinds of
//! channel there are), and how a text measures against the channel's
//! limit. A leaf: it imports nothing of crisisd but the domain.

mod content;
pub mod kind;
pub mod limit;
pub mod post;
mod profile;
pub mod sms;

pub use content::{
    ANSWER_MARK, DeliveryContent, EmailContent, Form, MessageContent, NAME_MARK, ReaderFields,
    TextFamily, UNSUBSCRIBE_MARK, escape_html,
};
pub use kind::ProviderKind;
pub use limit::{Measurement, TextLimit};
pub use profile::{ChannelProfile, Reach};
