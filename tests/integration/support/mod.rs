pub mod app;
pub mod smtp;

pub use app::{PUBLIC_URL, TOKEN, TestApp, TestConfig, declaration, spawn_app, spawn_app_in};
pub use smtp::{SmtpServer, TlsMode};

use std::time::Duration;

/// Generous: CI machines are shared and slow.
pub const WAIT: Duration = Duration::from_secs(20);

/// A loopback port that nothing listens on (for a server that is "down",
/// or started later).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// An email delivery for the store's own tests, `dead_reason` set for one
/// planned dead.
pub fn email_delivery(n: usize, dead_reason: Option<&str>) -> crisisd::outbox::NewDelivery {
    use crisisd::domain::DeliveryId;
    use crisisd::message::DeliveryContent;
    use crisisd::outbox::{NewDelivery, Payload};
    NewDelivery {
        id: DeliveryId::new(),
        channel: "email".into(),
        recipient_id: Some(format!("r{n}")),
        destination: format!("r{n}@example.com"),
        locale: "en".into(),
        payload: Payload::Inline(DeliveryContent::Email(crisisd::message::EmailContent {
            subject: "s".into(),
            text: "t".into(),
            html: "h".into(),
            unsubscribe_url: None,
        })),
        priority: 0,
        dead_reason: dead_reason.map(str::to_owned),
        not_before: None,
    }
}

/// Copies a directory tree (templates to edit in a test).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}
