//! Chat webhooks: one message per announcement and webhook.

mod discord;
mod slack;
mod teams;
mod telegram;
mod webhook;

pub use discord::Discord;
pub use slack::Slack;
pub use teams::Teams;
pub use telegram::{Telegram, TelegramSettings};
pub use webhook::WebhookSettings;
