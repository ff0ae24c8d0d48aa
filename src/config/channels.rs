//! Channel sections: `[[channels.<type>]]`, one array per provider, so
//! several instances of a type (two Mastodon accounts, a gateway per
//! region) each have their own name and settings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::EmailChannelSettings;
use crate::secret::SecretSource;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSettings {
    #[serde(default)]
    pub email: Vec<EmailChannelSettings>,
    #[serde(default)]
    pub twilio: Vec<TwilioSettings>,
    #[serde(default)]
    pub vonage: Vec<VonageSettings>,
    #[serde(default)]
    pub sms_gateway: Vec<SmsGatewaySettings>,
    #[serde(default)]
    pub mastodon: Vec<MastodonSettings>,
    #[serde(default)]
    pub bluesky: Vec<BlueskySettings>,
    #[serde(default)]
    pub slack: Vec<WebhookSettings>,
    #[serde(default)]
    pub discord: Vec<WebhookSettings>,
    #[serde(default)]
    pub teams: Vec<WebhookSettings>,
    #[serde(default)]
    pub telegram: Vec<TelegramSettings>,
}

/// A channel's send rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

/// What every channel section has in common, whatever its type.
#[derive(Debug, Clone, Copy)]
pub struct ChannelCommon<'a> {
    pub kind: &'static str,
    pub name: &'a str,
    pub rate_per_second: Option<f64>,
    pub burst: Option<u32>,
}

impl ChannelSettings {
    /// Every configured channel, with its type, in config order by type.
    pub fn common(&self) -> Vec<ChannelCommon<'_>> {
        macro_rules! of {
            ($kind:literal, $sections:expr) => {
                $sections.iter().map(|c| ChannelCommon {
                    kind: $kind,
                    name: c.name.as_str(),
                    rate_per_second: c.rate_per_second,
                    burst: c.burst,
                })
            };
        }
        let mut all = Vec::new();
        all.extend(of!("email", self.email));
        all.extend(of!("twilio", self.twilio));
        all.extend(of!("vonage", self.vonage));
        all.extend(of!("sms_gateway", self.sms_gateway));
        all.extend(of!("mastodon", self.mastodon));
        all.extend(of!("bluesky", self.bluesky));
        all.extend(of!("slack", self.slack));
        all.extend(of!("discord", self.discord));
        all.extend(of!("teams", self.teams));
        all.extend(of!("telegram", self.telegram));
        all
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.common().into_iter().map(|c| c.name)
    }

    /// Rate limits by channel name, for the channels that have one.
    pub fn rate_limits(&self) -> Result<BTreeMap<String, RateLimit>, String> {
        let mut limits = BTreeMap::new();
        for ChannelCommon {
            name,
            rate_per_second,
            burst,
            ..
        } in self.common()
        {
            let Some(per_second) = rate_per_second else {
                if burst.is_some() {
                    return Err(format!("channel `{name}`: `burst` needs `rate_per_second`"));
                }
                continue;
            };
            if !(per_second.is_finite() && per_second > 0.0) {
                return Err(format!(
                    "channel `{name}`: rate_per_second must be a positive number"
                ));
            }
            let burst =
                burst.unwrap_or_else(|| per_second.ceil().clamp(1.0, f64::from(u32::MAX)) as u32);
            if burst == 0 {
                return Err(format!("channel `{name}`: burst must be at least 1"));
            }
            limits.insert(name.to_owned(), RateLimit { per_second, burst });
        }
        Ok(limits)
    }
}

fn secret(env: &Option<String>, file: &Option<PathBuf>) -> SecretSource {
    SecretSource {
        env: env.clone(),
        file: file.clone(),
    }
}

fn default_http_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_sms_concurrency() -> usize {
    8
}

fn default_broadcast_concurrency() -> usize {
    1
}

fn default_max_segments() -> usize {
    3
}

/// Twilio Programmable Messaging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioSettings {
    pub name: String,
    pub account_sid: String,
    pub auth_token_env: Option<String>,
    pub auth_token_file: Option<PathBuf>,
    /// Sender number (E.164) or alphanumeric sender id; or use
    /// `messaging_service_sid`.
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    #[serde(default = "default_twilio_base")]
    pub base_url: String,
    #[serde(default = "default_max_segments")]
    pub max_segments: usize,
    #[serde(default = "default_sms_concurrency")]
    pub concurrency: usize,
    /// Most messages per second this channel sends (the provider's
    /// account limit); unset: no limit but `concurrency`.
    pub rate_per_second: Option<f64>,
    /// How many may go at once before `rate_per_second` applies.
    /// Default: one second's worth.
    pub burst: Option<u32>,
    #[serde(default = "default_http_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_twilio_base() -> String {
    "https://api.twilio.com".into()
}

impl TwilioSettings {
    pub fn auth_token(&self) -> SecretSource {
        secret(&self.auth_token_env, &self.auth_token_file)
    }
}

/// Vonage (Nexmo) SMS API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VonageSettings {
    pub name: String,
    pub api_key: String,
    pub api_secret_env: Option<String>,
    pub api_secret_file: Option<PathBuf>,
    pub from: String,
    #[serde(default = "default_vonage_base")]
    pub base_url: String,
    #[serde(default = "default_max_segments")]
    pub max_segments: usize,
    #[serde(default = "default_sms_concurrency")]
    pub concurrency: usize,
    /// Most messages per second this channel sends (the provider's
    /// account limit); unset: no limit but `concurrency`.
    pub rate_per_second: Option<f64>,
    /// How many may go at once before `rate_per_second` applies.
    /// Default: one second's worth.
    pub burst: Option<u32>,
    #[serde(default = "default_http_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_vonage_base() -> String {
    "https://rest.nexmo.com".into()
}

impl VonageSettings {
    pub fn api_secret(&self) -> SecretSource {
        secret(&self.api_secret_env, &self.api_secret_file)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum GatewayMethod {
    Get,
    #[default]
    Post,
    Put,
}

/// When a gateway's answer means "accepted".
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySuccess {
    /// Accepted status codes. Default: any 2xx.
    #[serde(default)]
    pub status: Vec<u16>,
    /// JSON pointer into the response body (RFC 6901), e.g. `/status`.
    pub json_pointer: Option<String>,
    /// The value at `json_pointer` must equal this (compared as text).
    pub equals: Option<String>,
    /// The body must contain this text.
    pub contains: Option<String>,
}

/// A generic HTTP SMS gateway: method, URL, headers and body are templates
/// over the message.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsGatewaySettings {
    pub name: String,
    #[serde(default)]
    pub method: GatewayMethod,
    /// Template; e.g. `https://gw.example.com/send?to={{ to|urlencode }}`.
    pub url: String,
    /// Header name -> template.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Body template; none sends no body.
    pub body: Option<String>,
    /// Offered to the templates as `secret`.
    pub secret_env: Option<String>,
    pub secret_file: Option<PathBuf>,
    #[serde(default)]
    pub success: GatewaySuccess,
    #[serde(default = "default_max_segments")]
    pub max_segments: usize,
    #[serde(default = "default_sms_concurrency")]
    pub concurrency: usize,
    /// Most messages per second this channel sends (the provider's
    /// account limit); unset: no limit but `concurrency`.
    pub rate_per_second: Option<f64>,
    /// How many may go at once before `rate_per_second` applies.
    /// Default: one second's worth.
    pub burst: Option<u32>,
    #[serde(default = "default_http_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

impl SmsGatewaySettings {
    pub fn secret(&self) -> SecretSource {
        secret(&self.secret_env, &self.secret_file)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MastodonVisibility {
    #[default]
    Public,
    Unlisted,
    Private,
    Direct,
}

impl MastodonVisibility {
    pub fn as_str(&self) -> &'static str {
        match self {
            MastodonVisibility::Public => "public",
            MastodonVisibility::Unlisted => "unlisted",
            MastodonVisibility::Private => "private",
            MastodonVisibility::Direct => "direct",
        }
    }
}

/// A Mastodon account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MastodonSettings {
    pub name: String,
    /// e.g. `https://mastodon.social`.
    pub instance_url: String,
    pub access_token_env: Option<String>,
    pub access_token_file: Option<PathBuf>,
    #[serde(default)]
    pub visibility: MastodonVisibility,
    /// The language posts are written in. Default: the default locale.
    pub locale: Option<String>,
    /// The instance's post limit.
    #[serde(default = "default_mastodon_max")]
    pub max_characters: usize,
    #[serde(default = "default_broadcast_concurrency")]
    pub concurrency: usize,
    /// Most messages per second this channel sends (the provider's
    /// account limit); unset: no limit but `concurrency`.
    pub rate_per_second: Option<f64>,
    /// How many may go at once before `rate_per_second` applies.
    /// Default: one second's worth.
    pub burst: Option<u32>,
    #[serde(default = "default_http_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_mastodon_max() -> usize {
    500
}

impl MastodonSettings {
    pub fn access_token(&self) -> SecretSource {
        secret(&self.access_token_env, &self.access_token_file)
    }
}

/// A Bluesky account, posting with an app password.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlueskySettings {
    pub name: String,
    /// The account's PDS or entryway.
    #[serde(default = "default_bluesky_service")]
    pub service: String,
    /// Handle or DID.
    pub identifier: String,
    pub app_password_env: Option<String>,
    pub app_password_file: Option<PathBuf>,
    pub locale: Option<String>,
    #[serde(default = "default_broadcast_concurrency")]
    pub concurrency: usize,
    /// Most messages per second this channel sends (the provider's
    /// account limit); unset: no limit but `concurrency`.
    pub rate_per_second: Option<f64>,
    /// How many may go at once before `rate_per_second` applies.
    /// Default: one second's worth.
    pub burst: Option<u32>,
    #[serde(default = "default_http_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_bluesky_service() -> String {
    "https://bsky.social".into()
}

impl BlueskySettings {
    pub fn app_password(&self) -> SecretSource {
        secret(&self.app_password_env, &self.app_password_file)
    }
}

/// A Slack, Discord or Teams incoming webhook. Its URL carries its
/// credential, so it is a secret too.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    pub name: String,
    pub webhook_url_env: Option<String>,
    pub webhook_url_file: Option<PathBuf>,
    pub locale: Option<String>,
    #[serde(default = "default_broadcast_concurrency")]
    pub concurrency: usize,
    /// Most messages per second this channel sends (the provider's
    /// account limit); unset: no limit but `concurrency`.
    pub rate_per_second: Option<f64>,
    /// How many may go at once before `rate_per_second` applies.
    /// Default: one second's worth.
    pub burst: Option<u32>,
    #[serde(default = "default_http_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

impl WebhookSettings {
    pub fn webhook_url(&self) -> SecretSource {
        secret(&self.webhook_url_env, &self.webhook_url_file)
    }
}

/// A Telegram bot posting to one chat or channel.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramSettings {
    pub name: String,
    pub bot_token_env: Option<String>,
    pub bot_token_file: Option<PathBuf>,
    /// Numeric chat id or `@channelusername`.
    pub chat_id: String,
    #[serde(default = "default_telegram_base")]
    pub api_base: String,
    pub locale: Option<String>,
    #[serde(default = "default_broadcast_concurrency")]
    pub concurrency: usize,
    /// Most messages per second this channel sends (the provider's
    /// account limit); unset: no limit but `concurrency`.
    pub rate_per_second: Option<f64>,
    /// How many may go at once before `rate_per_second` applies.
    /// Default: one second's worth.
    pub burst: Option<u32>,
    #[serde(default = "default_http_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_telegram_base() -> String {
    "https://api.telegram.org".into()
}

impl TelegramSettings {
    pub fn bot_token(&self) -> SecretSource {
        secret(&self.bot_token_env, &self.bot_token_file)
    }
}
