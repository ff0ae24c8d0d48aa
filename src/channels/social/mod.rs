//! Social networks: one post per announcement and account.

mod bluesky;
mod mastodon;

pub use bluesky::{Bluesky, BlueskySettings};
pub use mastodon::{Mastodon, MastodonSettings, MastodonVisibility};
