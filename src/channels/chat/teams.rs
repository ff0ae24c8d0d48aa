//! Microsoft Teams incoming webhooks, both the legacy Office 365 connector
//! and Workflows (Power Automate) webhooks: `POST {webhook_url}` with an
//! Adaptive Card in a message envelope, the one payload both accept.
//! Connectors answer `200` with body `1`, Workflows `202`.

use async_trait::async_trait;
use reqwest::{StatusCode, Url};
use serde_json::{Value, json};

use super::webhook::{Webhook, WebhookSettings};
use crate::channels::http::{Answer, Exchange, Provider, classify};
use crate::channels::{DeliveryError, Kind, Receipt, length, message_of};
use crate::domain::Severity;
use crate::message::post::LengthRule;
use crate::message::{MessageContent, TextFamily, TextLimit};
use crate::outbox::Delivery;

pub struct Teams(Webhook);

impl Kind for Teams {
    type Settings = WebhookSettings;
    const FAMILY: Option<TextFamily> = Some(TextFamily::Chat);
    /// Teams cards allow ~28 KB; longer text is unreadable in a chat anyway.
    const STANDARD_LIMIT: TextLimit = length(LengthRule::Chars, 4000);
}

/// The Adaptive Card: the crisis title as a heading coloured by severity,
/// the message text, and a button to the status page.
fn card(message: &MessageContent) -> Value {
    let colour = match message.severity {
        Severity::Critical => "attention",
        Severity::Major => "warning",
        Severity::Minor => "default",
    };
    let mut content = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "text": message.title,
                "weight": "Bolder",
                "size": "Medium",
                "color": colour,
                "wrap": true,
            },
            { "type": "TextBlock", "text": message.text, "wrap": true },
        ],
    });
    // Teams rejects a whole card whose OpenUrl is not a URL; the link is a
    // convenience (the text carries it too), so it never costs the message.
    if Url::parse(&message.link).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
        content["actions"] = json!([
            { "type": "Action.OpenUrl", "title": "Full details", "url": message.link },
        ]);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": content,
        }],
    })
}

/// The status a legacy connector reports inside a 2xx body instead of in
/// its status line, e.g. `Webhook message delivery failed with error:
/// Microsoft Teams endpoint returned HTTP error 429 with ContextId ...`
/// (throttling, or 413 for a card over the size limit).
fn status_in_body(body: &str) -> Option<StatusCode> {
    const MARK: &str = "returned HTTP error ";
    let rest = &body[body.find(MARK)? + MARK.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    StatusCode::from_bytes(digits.as_bytes()).ok()
}

// Failures are read the shared way: 429, 408 and 5xx retry (after
// Retry-After when given); 400, 404, 410, 413 and other client errors fail
// the same way again.
#[async_trait]
impl Provider for Teams {
    const LABEL: &'static str = "Teams";

    fn new(settings: &WebhookSettings) -> Result<Self, String> {
        Webhook::new(settings).map(Self)
    }

    async fn send(
        &self,
        exchange: &Exchange<'_, Self>,
        delivery: &Delivery,
    ) -> Result<Receipt, DeliveryError> {
        let message = message_of(delivery)?;
        exchange
            .deliver(
                exchange
                    .client()
                    .post(self.0.url.clone())
                    .json(&card(&message)),
            )
            .await
    }

    async fn healthcheck(&self, exchange: &Exchange<'_, Self>) -> Result<(), DeliveryError> {
        // Teams webhooks have no call that checks them without posting a
        // card to the channel, so this only checks that the webhook's host
        // resolves and answers HTTPS.
        exchange.reach(self.0.origin()).await
    }

    /// A legacy connector may report a failure inside its 2xx body.
    fn receipt(&self, answer: &Answer) -> Result<Receipt, DeliveryError> {
        match status_in_body(&answer.body) {
            // Neither kind of webhook gives a message id.
            None => Ok(Receipt::default()),
            Some(reported) => Err(classify(
                Self::LABEL,
                reported,
                &answer.headers,
                &answer.body,
            )),
        }
    }

    fn secrets(&self) -> Vec<&str> {
        self.0.secrets()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttling_report_in_the_body_is_read_as_its_status() {
        let body = "Webhook message delivery failed with error: Microsoft Teams endpoint returned \
                    HTTP error 429 with ContextId tcid=0,server=msgapi-production-eus-azsc2-4-170,cv=deadbeef.0..";
        assert_eq!(status_in_body(body), Some(StatusCode::TOO_MANY_REQUESTS));
        assert_eq!(status_in_body("1"), None);
        assert_eq!(status_in_body(""), None);
    }

    #[test]
    fn a_card_without_a_usable_link_has_no_button() {
        let message = MessageContent {
            text: "Payments are down.".into(),
            form: crate::message::Form::Long,
            title: "Payments".into(),
            link: "".into(),
            severity: Severity::Minor,
            language: "en".into(),
        };
        let card = card(&message);
        let content = &card["attachments"][0]["content"];
        assert!(content.get("actions").is_none(), "{content}");
        assert_eq!(content["body"][0]["color"], "default");
        assert_eq!(content["body"][1]["text"], "Payments are down.");
    }
}
