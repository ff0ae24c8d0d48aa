//! `[receipts]`: where delivery receipts come from besides the providers'
//! own callbacks (a Maildir of bounces, a SendGrid event webhook), and
//! what a hard bounce does; `[fallback]` itself is the domain's
//! `FallbackPolicy`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::domain::fallback::{FallbackEntry, FallbackPolicy, entry};
use crate::message::Reach;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReceiptSettings {
    /// A hard bounce marks the address bad, so the next crisis plans the
    /// reader's fallback route first.
    pub mark_bad_on_hard_bounce: bool,
    /// A Maildir the relay delivers bounces (RFC 3464 DSNs to the VERP
    /// return path) into; each message read is moved to `cur/`.
    pub maildir: Option<PathBuf>,
    #[serde(with = "humantime_serde")]
    pub maildir_interval: Duration,
    /// SendGrid's Event Webhook verification key (base64 of the DER
    /// public key the dashboard shows): enables
    /// `POST /v1/receipts/sendgrid/{channel}`.
    pub sendgrid_public_key: Option<String>,
}

impl Default for ReceiptSettings {
    fn default() -> Self {
        Self {
            mark_bad_on_hard_bounce: true,
            maildir: None,
            maildir_interval: Duration::from_secs(10),
            sendgrid_public_key: None,
        }
    }
}

impl ReceiptSettings {
    /// A SendGrid key that is no P-256 key, a Maildir no return path
    /// feeds, and polling too fast to be meant.
    pub fn problems(&self, channels: &crate::channels::ChannelSettings) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(key) = &self.sendgrid_public_key
            && let Err(err) = crate::channels::sendgrid::SendgridKey::parse(key)
        {
            problems.push(format!("receipts.sendgrid_public_key: {err}"));
        }
        let has_return_path = channels.email.iter().any(|e| e.return_path.is_some());
        if let Some(dir) = &self.maildir {
            if !has_return_path {
                problems.push(format!(
                    "receipts.maildir `{}`: bounces are matched by a VERP return path, and no email channel sets return_path",
                    dir.display()
                ));
            }
            if self.maildir_interval < Duration::from_millis(50) {
                problems.push("receipts.maildir_interval must be at least 50ms".into());
            }
        }
        problems
    }
}

/// Every fallback entry must name a contact point or a configured channel
/// with readers.
pub fn fallback_problems(
    policy: &FallbackPolicy,
    channels: &[crate::message::ChannelProfile],
) -> Vec<String> {
    let mut problems = Vec::new();
    for (severity, order) in policy.orders() {
        for text in order {
            if let FallbackEntry::Channel(name) = entry(text) {
                let reaches = channels
                    .iter()
                    .find(|c| c.name == name)
                    .map(|c| !matches!(c.reach, Reach::Broadcast { .. }));
                match reaches {
                    Some(true) => {}
                    Some(false) => problems.push(format!(
                        "fallback.{severity}: `{name}` posts once for everyone; only email and SMS channels can fall back"
                    )),
                    None => problems.push(format!(
                        "fallback.{severity}: `{name}` is neither `email`, `sms` nor a configured channel"
                    )),
                }
            }
        }
    }
    if policy.check_interval < Duration::from_millis(50) {
        problems.push("fallback.check_interval must be at least 50ms".into());
    }
    problems
}
