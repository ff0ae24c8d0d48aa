use std::time::Duration;

use crisisd::channels::{Channel, DeliveryError, HttpChannel, Teams, WebhookSettings};
use crisisd::domain::Severity;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{secret_file, text_delivery, with_message};

/// A Workflows webhook: the `sig` query parameter is the credential.
const FLOW_PATH: &str = "/workflows/0a1b2c3d/triggers/manual/paths/invoke";
const FLOW_QUERY: &str =
    "api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=SECRETsigSECRET";
/// A legacy connector: the path is the credential.
const CONNECTOR_PATH: &str = "/webhookb2/SECRET-1111@2222/IncomingWebhook/SECRETabcdef/3333";

fn channel(url: &tempfile::NamedTempFile, timeout: Duration) -> HttpChannel<Teams> {
    let settings = WebhookSettings {
        name: "teams-support".into(),
        webhook_url_env: None,
        webhook_url_file: Some(url.path().to_path_buf()),
        locale: None,
        concurrency: 1,
        rate_per_second: None,
        burst: None,
        timeout,
    };
    HttpChannel::<Teams>::from_settings(&settings, reqwest::Client::new()).expect("channel")
}

fn connector(server: &MockServer) -> tempfile::NamedTempFile {
    secret_file(&format!("{}{CONNECTOR_PATH}", server.uri()))
}

#[tokio::test]
async fn a_message_is_an_adaptive_card_in_a_message_envelope() {
    let server = MockServer::start().await;
    let url = connector(&server);
    Mock::given(method("POST"))
        .and(path(CONNECTOR_PATH))
        .and(header("content-type", "application/json"))
        // A legacy connector's success.
        .respond_with(ResponseTemplate::new(200).set_body_string("1"))
        .expect(1)
        .mount(&server)
        .await;
    let text = "*Payments are down*\nCard payments fail.\nFull details: https://status.example.com";

    let receipt = channel(&url, Duration::from_secs(5))
        .send(&text_delivery("teams-support", "", text))
        .await
        .expect("sent");
    assert_eq!(receipt.provider_ref, None);

    let requests = server.received_requests().await.expect("recorded");
    let sent: serde_json::Value = serde_json::from_slice(&requests[0].body).expect("json");
    assert_eq!(
        sent,
        serde_json::json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {
                            "type": "TextBlock", "text": "Payments are down", "weight": "Bolder",
                            "size": "Medium", "color": "attention", "wrap": true
                        },
                        {"type": "TextBlock", "text": text, "wrap": true}
                    ],
                    "actions": [
                        {"type": "Action.OpenUrl", "title": "Full details", "url": "https://status.example.com"}
                    ]
                }
            }]
        })
    );
}

#[tokio::test]
async fn the_title_colour_follows_the_severity() {
    let server = MockServer::start().await;
    let url = connector(&server);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("1"))
        .mount(&server)
        .await;
    let teams = channel(&url, Duration::from_secs(5));
    for severity in [Severity::Major, Severity::Minor] {
        let delivery = with_message(text_delivery("teams-support", "", "x"), |message| {
            message.severity = severity;
        });
        teams.send(&delivery).await.expect("sent");
    }
    let requests = server.received_requests().await.expect("recorded");
    let colours: Vec<serde_json::Value> = requests
        .iter()
        .map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).expect("json"))
        .map(|card| card["attachments"][0]["content"]["body"][0]["color"].clone())
        .collect();
    assert_eq!(
        colours,
        vec![serde_json::json!("warning"), serde_json::json!("default")]
    );
}

#[tokio::test]
async fn a_workflows_webhook_accepts_with_202() {
    let server = MockServer::start().await;
    let url = secret_file(&format!("{}{FLOW_PATH}?{FLOW_QUERY}", server.uri()));
    Mock::given(method("POST"))
        .and(path(FLOW_PATH))
        .respond_with(ResponseTemplate::new(202))
        .expect(1)
        .mount(&server)
        .await;
    channel(&url, Duration::from_secs(5))
        .send(&text_delivery("teams-support", "", "x"))
        .await
        .expect("sent");
    let requests = server.received_requests().await.expect("recorded");
    assert_eq!(requests[0].url.query(), Some(FLOW_QUERY));
}

#[tokio::test]
async fn a_200_whose_body_reports_429_is_throttling() {
    let server = MockServer::start().await;
    let url = connector(&server);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 429 \
             with ContextId tcid=0,server=msgapi-production-eus-azsc2-4-170,cv=deadbeef.0..",
        ))
        .mount(&server)
        .await;
    let err = channel(&url, Duration::from_secs(5))
        .send(&text_delivery("teams-support", "", "x"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DeliveryError::Transient { reason, .. }
            if reason.contains("429") && reason.contains("delivery failed")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_200_whose_body_reports_an_oversized_card_is_permanent() {
    let server = MockServer::start().await;
    let url = connector(&server);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 413 \
             with ContextId tcid=0,server=DB5PEPF00003FC8,cv=AszFFaeXdEGdFrJhai0eUw.1.0",
        ))
        .mount(&server)
        .await;
    let err = channel(&url, Duration::from_secs(5))
        .send(&text_delivery("teams-support", "", "x"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DeliveryError::Permanent { reason } if reason.contains("413")),
        "{err:?}"
    );
}
