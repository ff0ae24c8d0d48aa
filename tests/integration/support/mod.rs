pub mod app;
pub mod browser;
pub mod daemon;
pub mod postgres;
pub mod smtp;

pub use app::{PUBLIC_URL, TOKEN, TestApp, TestConfig, declaration, spawn_app, spawn_app_in};
pub use browser::run_browser_script;
pub use daemon::Daemon;
pub use smtp::{Received, SmtpServer, TlsMode};

use std::time::Duration;

/// Generous: CI machines are shared and slow.
pub const WAIT: Duration = Duration::from_secs(20);

/// A loopback port that nothing listens on (for a server that is "down",
/// or started later).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A queued email delivery for the store's own tests.
pub fn email_delivery(n: usize) -> crisisd::outbox::NewDelivery {
    use crisisd::message::{DeliveryContent, EmailContent};
    use crisisd::outbox::{Payload, Planned};
    new_email_delivery(
        n,
        Planned::Queued {
            payload: Payload::Inline(DeliveryContent::Email(EmailContent {
                subject: "s".into(),
                text: "t".into(),
                html: "h".into(),
                unsubscribe_url: None,
            })),
            not_before: None,
        },
    )
}

/// An email delivery planning could not render: written dead.
pub fn unfit_email_delivery(n: usize, reason: &str) -> crisisd::outbox::NewDelivery {
    use crisisd::outbox::{DeadCause, Planned};
    new_email_delivery(
        n,
        Planned::Dead {
            cause: DeadCause::Unfit,
            reason: reason.to_owned(),
        },
    )
}

fn new_email_delivery(n: usize, planned: crisisd::outbox::Planned) -> crisisd::outbox::NewDelivery {
    crisisd::outbox::NewDelivery {
        id: crisisd::domain::DeliveryId::new(),
        channel: "email".into(),
        recipient_id: Some(format!("r{n}")),
        destination: format!("r{n}@example.com"),
        locale: "en".into(),
        priority: 0,
        planned,
    }
}

/// Writes one outcome the way the dispatcher's recorder does (a batch of
/// one): the store's tests mark deliveries sent, retrying or dead with it.
pub async fn record_outcome(
    storage: &crisisd::outbox::Storage,
    owner: &str,
    now: chrono::DateTime<chrono::Utc>,
    id: crisisd::domain::DeliveryId,
    outcome: crisisd::outbox::Outcome,
) {
    storage
        .queue
        .record_outcomes(owner, now, &[(id, outcome)])
        .await
        .expect("outcome");
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
