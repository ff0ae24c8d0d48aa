//! Telegram Bot API: `POST {api_base}/bot{token}/sendMessage` as JSON.
//! Every answer is `{"ok": ..., "result" | "error_code", "description",
//! "parameters"}`. The token sits in the URL path, so it is a credential
//! that no error may repeat.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::Deserialize;

use crate::channels::http::{Answer, Exchange, Provider, excerpt, is_http_url, is_temporary};
use crate::channels::settings::{read_secret, secret, section};
use crate::channels::{DeliveryError, Kind, Receipt, length, message_of};
use crate::message::post::LengthRule;
use crate::message::{TextFamily, TextLimit};
use crate::outbox::Delivery;

section! {
    /// A Telegram bot posting to one chat or channel.
    pub struct TelegramSettings: broadcast {
        pub bot_token_env: Option<String>,
        pub bot_token_file: Option<PathBuf>,
        /// Numeric chat id or `@channelusername`.
        pub chat_id: String,
        #[serde(default = "default_api_base")]
        pub api_base: String,
        @locale,
    }
}

fn default_api_base() -> String {
    "https://api.telegram.org".into()
}

pub struct Telegram {
    api_base: String,
    token: String,
    chat_id: String,
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

impl Kind for Telegram {
    type Settings = TelegramSettings;
    const FAMILY: Option<TextFamily> = Some(TextFamily::Chat);
    /// 4,096 UTF-16 code units, as the Bot API counts.
    const STANDARD_LIMIT: TextLimit = length(LengthRule::Utf16, 4096);
}

impl Telegram {
    fn method_url(&self, method: &str) -> String {
        format!("{}/bot{}/{method}", self.api_base, self.token)
    }
}

#[async_trait]
impl Provider for Telegram {
    const LABEL: &'static str = "Telegram";

    fn new(settings: &TelegramSettings) -> Result<Self, String> {
        let api_base = settings.api_base.trim_end_matches('/');
        if !is_http_url(api_base) {
            return Err(format!("api_base `{api_base}` is not an http(s) URL"));
        }
        let token = read_secret(
            "bot token",
            &secret(&settings.bot_token_env, &settings.bot_token_file),
        )?;
        // It goes into the URL path as is: a character that would end the
        // segment means it is not a bot token (`123456:ABC-DEF...`).
        if token
            .contains(|c: char| c == '/' || c == '?' || c == '#' || c == '%' || c.is_whitespace())
        {
            return Err("the bot token is not a Telegram bot token (123456:ABC-DEF...)".into());
        }
        if settings.chat_id.trim().is_empty() {
            return Err("chat_id is empty".into());
        }
        Ok(Self {
            api_base: api_base.to_owned(),
            token,
            chat_id: settings.chat_id.trim().to_owned(),
        })
    }

    async fn send(
        &self,
        exchange: &Exchange<'_, Self>,
        delivery: &Delivery,
    ) -> Result<Receipt, DeliveryError> {
        let message = message_of(delivery)?;
        let payload = serde_json::json!({
            "chat_id": self.chat_id,
            "text": message.text,
            // No parse_mode: the text is plain, so no character needs
            // escaping and none can break the message.
            "disable_web_page_preview": true,
        });
        exchange
            .deliver(
                exchange
                    .client()
                    .post(self.method_url("sendMessage"))
                    .json(&payload),
            )
            .await
    }

    async fn healthcheck(&self, exchange: &Exchange<'_, Self>) -> Result<(), DeliveryError> {
        // getMe checks the token and reaches the API without sending.
        exchange
            .check(exchange.client().get(self.method_url("getMe")))
            .await
    }

    fn receipt(&self, answer: &Answer) -> Result<Receipt, DeliveryError> {
        match serde_json::from_str::<TelegramResponse>(&answer.body) {
            Ok(response) if response.ok => Ok(Receipt {
                provider_ref: response.result.map(|m| m.message_id.to_string()),
            }),
            // A 2xx that is not the Bot API's answer (a proxy page): the
            // message may not have gone out, so try again.
            _ => Err(DeliveryError::transient(format!(
                "Telegram answered {} without a result: {}",
                answer.status,
                answer.excerpt()
            ))),
        }
    }

    fn classify(&self, answer: &Answer) -> DeliveryError {
        refusal(answer)
    }

    /// For errors without a provider's answer (the answer itself is
    /// scrubbed before it is read).
    fn secrets(&self) -> Vec<&str> {
        vec![&self.token]
    }
}

/// What a Bot API error answer means.
fn refusal(answer: &Answer) -> DeliveryError {
    let response: TelegramResponse = serde_json::from_str(&answer.body).unwrap_or_default();
    let code = response
        .error_code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(answer.status);
    let description = response
        .description
        .unwrap_or_else(|| excerpt(&answer.body));
    let reason = format!("Telegram error {}: {description}", code.as_u16());
    let parameters = response.parameters.unwrap_or_default();
    let retry_after = || {
        parameters
            .retry_after
            .map(Duration::from_secs)
            .or_else(|| answer.retry_after())
    };
    if code == StatusCode::UNAUTHORIZED || code == StatusCode::NOT_FOUND {
        // The token is the only variable part of the path: a wrong or
        // revoked one (401) or a malformed one (404) fails every message
        // alike until fixed, so keep them for after the fix.
        DeliveryError::Transient {
            reason: format!("{reason} (check the bot token)"),
            retry_after: retry_after(),
        }
    } else if is_temporary(code) {
        DeliveryError::Transient {
            reason,
            retry_after: retry_after(),
        }
    } else if let Some(new_id) = parameters.migrate_to_chat_id {
        DeliveryError::Permanent {
            reason: format!("{reason} (set chat_id to {new_id})"),
        }
    } else {
        // 400 chat not found, 403 bot was blocked or kicked...: the same
        // message fails again.
        DeliveryError::Permanent { reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: StatusCode, body: &str) -> Answer {
        Answer {
            status,
            headers: reqwest::header::HeaderMap::new(),
            body: body.to_owned(),
        }
    }

    #[test]
    fn a_group_upgraded_to_a_supergroup_names_the_new_chat_id() {
        let body = r#"{"ok":false,"error_code":400,"description":"Bad Request: group chat was upgraded to a supergroup chat","parameters":{"migrate_to_chat_id":-1001234567890}}"#;
        let err = refusal(&answer(StatusCode::BAD_REQUEST, body));
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
        let telegram = Telegram {
            api_base: "https://api.telegram.org".into(),
            token: "123:abc".into(),
            chat_id: "1".into(),
        };
        let err = telegram
            .receipt(&answer(StatusCode::OK, "<html>proxy</html>"))
            .unwrap_err();
        assert!(matches!(err, DeliveryError::Transient { .. }), "{err:?}");
    }
}
