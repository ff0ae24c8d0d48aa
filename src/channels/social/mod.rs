//! Social networks: one post per announcement and account.

mod bluesky;
mod mastodon;

pub use bluesky::BlueskyChannel;
pub use mastodon::MastodonChannel;
