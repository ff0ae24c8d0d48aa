//! Chat webhooks: one message per announcement and webhook.

mod discord;
mod slack;
mod teams;
mod telegram;
mod webhook;

pub use discord::DiscordChannel;
pub use slack::SlackChannel;
pub use teams::TeamsChannel;
pub use telegram::TelegramChannel;
