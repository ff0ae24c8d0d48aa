//! The domain: what a crisis is and which transitions make sense, the
//! follow-ups it schedules, the audience and their consent, and the
//! contact directory every announcement carries. A leaf: it imports no
//! other module of crisisd but `sync`.

pub mod account;
pub mod audience;
pub mod consent;
mod crisis;
pub mod directory;
pub mod draft;
pub mod fallback;
pub mod follow_up;
mod ids;
pub mod keywords;
mod localized;
pub mod question;
mod selection;

pub(crate) use crisis::string_enum;
pub use crisis::*;
pub use ids::{
    AnnouncementId, ChannelName, DeliveryId, Locale, PhoneNumber, RenditionId, ValueError,
};
pub use localized::{LocalizedText, StaleLocales, TextField, Translations};
pub use selection::{AudienceSelection, Selection, SelectionError};
