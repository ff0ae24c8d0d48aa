//! Telegram Bot API: `POST {api_base}/bot{token}/sendMessage` as JSON.
//! Every answer is `{"ok": ..., "result" | "error_code", "description",
//! "parameters"}`. The token sits in the URL path, so it is a credential
//! that no error may repeat.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use reqwest::{StatusCode, Url};
use serde::Deserialize;

use super::webhook::{redact, scrub};
use crate::channels::{
    Channel, ChannelError, DeliveryError, Receipt, http, message_of, read_secret,
};
use crate::config::TelegramSettings;
use crate::outbox::Delivery;

pub struct TelegramChannel {
    name: String,
    api_base: String,
    token: String,
    chat_id: String,
    concurrency: usize,
    timeout: Duration,
    http: reqwest::Client,
}

#[derive(Debug, Default, Deserialize)]
struct TelegramResponse {
    #[serde(default)]
    ok: bool,
    result: Option<SentMessage>,
    error_code: Option<u16>,
    description: Option<String>,
    parameters: Option<ResponseParameters>,
}

#[derive(Debug, Deserialize)]
struct SentMessage {
    message_id: i64,
}

/// Why a request failed, in a form a program can act on.
#[derive(Debug, Default, Deserialize)]
struct ResponseParameters {
    /// Flood control: seconds to wait.
    retry_after: Option<u64>,
    /// The group became a supergroup with this id.
    migrate_to_chat_id: Option<i64>,
}

impl TelegramChannel {
    pub fn from_settings(
        settings: &TelegramSettings,
        http: reqwest::Client,
    ) -> Result<Self, ChannelError> {
        let config_err = |message: String| ChannelError::Config {
            channel: settings.name.clone(),
            message,
        };
        let api_base = settings.api_base.trim_end_matches('/');
        if !Url::parse(api_base)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        {
            return Err(config_err(format!(
                "api_base `{api_base}` is not an http(s) URL"
            )));
        }
        let token = read_secret(&settings.name, "bot token", &settings.bot_token())?;
        // It goes into the URL path as is: a character that would end the
        // segment means it is not a bot token (`123456:ABC-DEF...`).
        if token
            .contains(|c: char| c == '/' || c == '?' || c == '#' || c == '%' || c.is_whitespace())
        {
            return Err(config_err(
                "the bot token is not a Telegram bot token (123456:ABC-DEF...)".into(),
            ));
        }
        if settings.chat_id.trim().is_empty() {
            return Err(config_err("chat_id is empty".into()));
        }
        Ok(Self {
            name: settings.name.clone(),
            api_base: api_base.to_owned(),
            token,
            chat_id: settings.chat_id.trim().to_owned(),
            concurrency: settings.concurrency.max(1),
            timeout: settings.timeout,
            http,
        })
    }

    fn method_url(&self, method: &str) -> String {
        format!("{}/bot{}/{method}", self.api_base, self.token)
    }

    /// For errors without a provider's answer (the answer itself is
    /// scrubbed before it is read).
    fn redact(&self, err: DeliveryError) -> DeliveryError {
        redact(err, &[&self.token])
    }

    /// Reads a Bot API answer: the result when `ok`, else what to do next.
    fn read(
        status: StatusCode,
        headers: &HeaderMap,
        body: &str,
    ) -> Result<TelegramResponse, DeliveryError> {
        let parsed = serde_json::from_str::<TelegramResponse>(body);
        if status.is_success() {
            return match parsed {
                Ok(response) if response.ok => Ok(response),
                // A 2xx that is not the Bot API's answer (a proxy page):
                // the message may not have gone out, so try again.
                _ => Err(DeliveryError::transient(format!(
                    "Telegram answered {status} without a result: {}",
                    http::excerpt(body)
                ))),
            };
        }
        let response = parsed.unwrap_or_default();
        let code = response
            .error_code
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(status);
        let description = response.description.unwrap_or_else(|| http::excerpt(body));
        let reason = format!("Telegram error {}: {description}", code.as_u16());
        let parameters = response.parameters.unwrap_or_default();
        let retry_after = || {
            parameters
                .retry_after
                .map(Duration::from_secs)
                .or_else(|| http::retry_after(headers))
        };
        Err(if code == StatusCode::TOO_MANY_REQUESTS {
            DeliveryError::Transient {
                reason,
                retry_after: retry_after(),
            }
        } else if code == StatusCode::UNAUTHORIZED || code == StatusCode::NOT_FOUND {
            // The token is the only variable part of the path: a wrong or
            // revoked one (401) or a malformed one (404) fails every
            // message alike until fixed, so keep them for after the fix.
            DeliveryError::Transient {
                reason: format!("{reason} (check the bot token)"),
                retry_after: retry_after(),
            }
        } else if code.is_server_error() || code == StatusCode::REQUEST_TIMEOUT {
            DeliveryError::Transient {
                reason,
                retry_after: retry_after(),
            }
        } else if let Some(new_id) = parameters.migrate_to_chat_id {
            DeliveryError::Permanent {
                reason: format!("{reason} (set chat_id to {new_id})"),
            }
        } else {
            // 400 chat not found, 403 bot was blocked or kicked...: the
            // same message fails again.
            DeliveryError::Permanent { reason }
        })
    }
}

#[async_trait]
impl Channel for TelegramChannel {
    fn name(&self) -> &str {
        &self.name
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }

    async fn send(&self, delivery: &Delivery) -> Result<Receipt, DeliveryError> {
        let message = message_of(delivery)?;
        let payload = serde_json::json!({
            "chat_id": self.chat_id,
            "text": message.text,
            // No parse_mode: the text is plain, so no character needs
            // escaping and none can break the message.
            "disable_web_page_preview": true,
        });
        let response = self
            .http
            .post(self.method_url("sendMessage"))
            .json(&payload)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.redact(http::request_failed("Telegram", e)))?;
        let (status, headers) = (response.status(), response.headers().clone());
        let body = response
            .text()
            .await
            .map_err(|e| self.redact(http::request_failed("Telegram", e)))?;
        let body = scrub(&body, &[&self.token]);
        let answer = Self::read(status, &headers, &body)?;
        Ok(Receipt {
            provider_ref: answer.result.map(|m| m.message_id.to_string()),
        })
    }

    async fn healthcheck(&self) -> Result<(), DeliveryError> {
        // getMe checks the token and reaches the API without sending.
        let response = self
            .http
            .get(self.method_url("getMe"))
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.redact(http::request_failed("Telegram", e)))?;
        let (status, headers) = (response.status(), response.headers().clone());
        if status.is_success() {
            return Ok(());
        }
        let body = scrub(&response.text().await.unwrap_or_default(), &[&self.token]);
        Self::read(status, &headers, &body).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_upgraded_to_a_supergroup_names_the_new_chat_id() {
        let body = r#"{"ok":false,"error_code":400,"description":"Bad Request: group chat was upgraded to a supergroup chat","parameters":{"migrate_to_chat_id":-1001234567890}}"#;
        let err =
            TelegramChannel::read(StatusCode::BAD_REQUEST, &HeaderMap::new(), body).unwrap_err();
        assert_eq!(
            err,
            DeliveryError::permanent(
                "Telegram error 400: Bad Request: group chat was upgraded to a supergroup chat \
                 (set chat_id to -1001234567890)"
            )
        );
    }

    #[test]
    fn a_success_status_without_the_api_answer_is_retried() {
        let err = TelegramChannel::read(StatusCode::OK, &HeaderMap::new(), "<html>proxy</html>")
            .unwrap_err();
        assert!(matches!(err, DeliveryError::Transient { .. }), "{err:?}");
    }
}
