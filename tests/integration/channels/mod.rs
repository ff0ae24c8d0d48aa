//! Each provider channel against a server on loopback that speaks the
//! provider's documented API (wiremock): the exact request, and what every
//! class of answer becomes. What all of them share is in `http`.

mod bluesky;
mod discord;
mod gateway;
mod http;
mod mastodon;
mod slack;
mod teams;
mod telegram;
mod twilio;
mod vonage;

use chrono::Utc;
use crisisd::channels::DeliveryError;
use crisisd::domain::{AnnouncementKind, CrisisId, DeliveryId, Severity};
use crisisd::message::{DeliveryContent, Form, MessageContent};
use crisisd::outbox::{Delivery, DeliveryState};

/// A text delivery as the dispatcher hands it to a channel.
pub fn text_delivery(channel: &str, destination: &str, text: &str) -> Delivery {
    Delivery {
        id: DeliveryId::new(),
        crisis_id: CrisisId::new(),
        announcement_id: crisisd::domain::AnnouncementId::new(),
        kind: AnnouncementKind::Initial,
        channel: channel.to_owned(),
        recipient_id: None,
        destination: destination.to_owned(),
        locale: "en".to_owned(),
        content: std::sync::Arc::new(DeliveryContent::Message(MessageContent {
            text: text.to_owned(),
            form: Form::Long,
            title: "Payments are down".to_owned(),
            link: "https://status.example.com".to_owned(),
            severity: Severity::Critical,
            language: "en".to_owned(),
        })),
        personal: None,
        state: DeliveryState::InFlight,
        attempts: 1,
        available_at: Utc::now(),
        last_error: None,
        created_at: Utc::now(),
    }
}

/// `delivery` with its message changed by `change`.
pub fn with_message(mut delivery: Delivery, change: impl FnOnce(&mut MessageContent)) -> Delivery {
    if let DeliveryContent::Message(message) = std::sync::Arc::make_mut(&mut delivery.content) {
        change(message);
    }
    delivery
}

/// A broadcast delivery whose message is in `language`.
pub fn delivery_in(channel: &str, language: &str, text: &str) -> Delivery {
    with_message(text_delivery(channel, "", text), |message| {
        message.language = language.to_owned();
    })
}

/// A secret in a temporary file, for the `*_file` settings.
pub fn secret_file(value: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), value).expect("write secret");
    file
}

/// An http URL on a loopback port nothing listens on.
pub fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

pub fn reason(err: &DeliveryError) -> &str {
    match err {
        DeliveryError::Transient { reason, .. } | DeliveryError::Permanent { reason } => reason,
    }
}
