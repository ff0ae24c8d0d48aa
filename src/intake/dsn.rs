//! Delivery status notifications (RFC 3464): the report a relay mails to
//! a message's envelope sender when it could not deliver it (or, asked
//! to, when it did). A DSN is `multipart/report;
//! report-type=delivery-status` whose `message/delivery-status` part has
//! a block of per-message fields, then one block per recipient (`Action`,
//! `Status`, `Diagnostic-Code`, ...). A hard bounce has a 5.x.x status, a
//! soft one 4.x.x (RFC 3463).

use mail_parser::{HeaderValue, MessageParser, MimeHeaders};

/// What one DSN says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dsn {
    /// The addresses the DSN was sent to (`To`, and the relay's own
    /// `Delivered-To` / `X-Original-To` / `Envelope-To`): our VERP return
    /// path, when the message was ours.
    pub addressed_to: Vec<String>,
    /// `Original-Envelope-Id` (the `ENVID` of the message), if any.
    pub envelope_id: Option<String>,
    pub recipients: Vec<RecipientStatus>,
}

/// One recipient's block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientStatus {
    pub final_recipient: Option<String>,
    /// `failed`, `delayed`, `delivered`, `relayed` or `expanded`.
    pub action: String,
    /// `5.1.1`.
    pub status: String,
    pub diagnostic: Option<String>,
}

/// What a recipient's status means for the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// A 5.x.x failure: the address will not take mail.
    HardBounce,
    /// A 4.x.x failure or a delay: it may still arrive.
    SoftBounce,
    /// Relayed or expanded: nothing known yet.
    NoOutcome,
}

impl RecipientStatus {
    pub fn verdict(&self) -> Verdict {
        let soft = self.status.trim().starts_with('4');
        match self.action.to_ascii_lowercase().as_str() {
            "delivered" => Verdict::Delivered,
            // A `failed` without a 4.x.x code: the relay gave up on it.
            "failed" if !soft => Verdict::HardBounce,
            "failed" | "delayed" => Verdict::SoftBounce,
            _ => Verdict::NoOutcome,
        }
    }

    /// For people: the status and what the remote server said.
    pub fn reason(&self) -> String {
        match &self.diagnostic {
            Some(diagnostic) => format!("{} {diagnostic}", self.status),
            None => self.status.clone(),
        }
    }
}

/// Why a message is not a DSN we can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsnError {
    #[error("not a MIME message")]
    NotMime,
    #[error("no message/delivery-status part: not a delivery status notification")]
    NoStatus,
    #[error("the delivery status has no recipient with an Action and a Status")]
    NoRecipients,
}

/// Headers a relay's local delivery records the envelope recipient in.
const ENVELOPE_HEADERS: [&str; 5] = [
    "Delivered-To",
    "X-Original-To",
    "Envelope-To",
    "X-Envelope-To",
    "To",
];

/// Reads a DSN from the raw message.
pub fn parse(raw: &[u8]) -> Result<Dsn, DsnError> {
    let message = MessageParser::default()
        .parse(raw)
        .ok_or(DsnError::NotMime)?;
    let mut addressed_to = Vec::new();
    for name in ENVELOPE_HEADERS {
        for header in message.header_values(name) {
            collect_addresses(header, &mut addressed_to);
        }
    }
    let status = message
        .parts
        .iter()
        .find(|part| {
            part.content_type().is_some_and(|ct| {
                ct.ctype().eq_ignore_ascii_case("message")
                    && ct.subtype().is_some_and(|sub| {
                        sub.eq_ignore_ascii_case("delivery-status")
                            || sub.eq_ignore_ascii_case("global-delivery-status")
                    })
            })
        })
        .ok_or(DsnError::NoStatus)?;
    let text = String::from_utf8_lossy(status.contents());
    let mut blocks = field_blocks(&text).into_iter();
    let per_message = blocks.next().unwrap_or_default();
    let envelope_id = value(&per_message, "original-envelope-id").map(str::to_owned);
    let recipients: Vec<RecipientStatus> = blocks
        .filter_map(|fields| {
            Some(RecipientStatus {
                final_recipient: value(&fields, "final-recipient").map(address_of),
                action: value(&fields, "action")?.to_owned(),
                status: value(&fields, "status")?.to_owned(),
                diagnostic: value(&fields, "diagnostic-code").map(str::to_owned),
            })
        })
        .collect();
    if recipients.is_empty() {
        return Err(DsnError::NoRecipients);
    }
    Ok(Dsn {
        addressed_to,
        envelope_id,
        recipients,
    })
}

fn collect_addresses(header: &HeaderValue<'_>, into: &mut Vec<String>) {
    match header {
        HeaderValue::Address(address) => {
            into.extend(
                address
                    .iter()
                    .filter_map(|a| a.address())
                    .map(str::to_owned),
            );
        }
        HeaderValue::Text(text) => into.push(text.trim().to_owned()),
        HeaderValue::TextList(list) => into.extend(list.iter().map(|t| t.trim().to_owned())),
        _ => {}
    }
}

/// `rfc822; ada@example.com` -> `ada@example.com`.
fn address_of(field: &str) -> String {
    field
        .split_once(';')
        .map_or(field, |(_, address)| address)
        .trim()
        .to_owned()
}

fn value<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// The status part's blocks, each its fields (names lowercased, folded
/// lines unfolded), split at blank lines.
fn field_blocks(text: &str) -> Vec<Vec<(String, String)>> {
    let mut blocks = Vec::new();
    let mut block: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !block.is_empty() {
                blocks.push(std::mem::take(&mut block));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = block.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            block.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    if !block.is_empty() {
        blocks.push(block);
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Postfix-style bounce: three parts, the middle one the status.
    pub const POSTFIX_BOUNCE: &str = "Return-Path: <>\r\n\
Delivered-To: bounces+0190-abc@bounces.example.com\r\n\
From: MAILER-DAEMON@mx.example.com (Mail Delivery System)\r\n\
To: bounces+0190-abc@bounces.example.com\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"B1\"\r\n\
\r\n\
--B1\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n\
I'm sorry to have to inform you that your message could not be delivered.\r\n\
\r\n\
--B1\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.example.com\r\n\
Original-Envelope-Id: 0190-abc\r\n\
Arrival-Date: Mon, 30 Nov 2026 10:00:00 +0000\r\n\
\r\n\
Final-Recipient: rfc822; ada@example.com\r\n\
Original-Recipient: rfc822;ada@example.com\r\n\
Action: failed\r\n\
Status: 5.1.1\r\n\
Remote-MTA: dns; mail.example.com\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <ada@example.com>: Recipient address\r\n\
\trejected: User unknown\r\n\
\r\n\
--B1\r\n\
Content-Type: text/rfc822-headers\r\n\
\r\n\
Message-ID: <0190@example.com>\r\n\
\r\n\
--B1--\r\n";

    #[test]
    fn a_postfix_bounce_is_read_with_its_recipient_status_and_where_it_was_sent() {
        let dsn = parse(POSTFIX_BOUNCE.as_bytes()).unwrap();
        assert!(
            dsn.addressed_to
                .contains(&"bounces+0190-abc@bounces.example.com".to_owned())
        );
        assert_eq!(dsn.envelope_id.as_deref(), Some("0190-abc"));
        let [recipient] = dsn.recipients.as_slice() else {
            panic!("{dsn:?}")
        };
        assert_eq!(
            recipient.final_recipient.as_deref(),
            Some("ada@example.com")
        );
        assert_eq!(recipient.verdict(), Verdict::HardBounce);
        assert_eq!(
            recipient.reason(),
            "5.1.1 smtp; 550 5.1.1 <ada@example.com>: Recipient address rejected: User unknown"
        );
    }

    #[test]
    fn statuses_tell_hard_from_soft_from_delivered() {
        let status = |action: &str, status: &str| RecipientStatus {
            final_recipient: None,
            action: action.into(),
            status: status.into(),
            diagnostic: None,
        };
        assert_eq!(status("failed", "5.2.2").verdict(), Verdict::HardBounce);
        assert_eq!(status("failed", "4.4.7").verdict(), Verdict::SoftBounce);
        assert_eq!(status("delayed", "4.4.1").verdict(), Verdict::SoftBounce);
        assert_eq!(status("delivered", "2.0.0").verdict(), Verdict::Delivered);
        assert_eq!(status("relayed", "2.0.0").verdict(), Verdict::NoOutcome);
        assert_eq!(status("expanded", "").verdict(), Verdict::NoOutcome);
    }

    #[test]
    fn a_message_that_is_no_dsn_is_refused() {
        let plain = "From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nHello\r\n";
        assert_eq!(parse(plain.as_bytes()), Err(DsnError::NoStatus));
    }
}
