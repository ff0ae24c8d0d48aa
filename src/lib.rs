//! crisisd: when the crisis flag flips, tell every customer on every
//! channel how to reach support, keep the website banner lit while it
//! lasts, and send the all-clear when it is over.
//!
//! The data flow is one-way: flag sources -> crisis service -> planner ->
//! renderer -> outbox -> dispatcher -> channels. See docs/architecture.md.

pub mod app;
pub mod audience;
pub mod background;
pub mod banner;
pub mod channels;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod consent;
pub mod crisis;
pub mod directory;
pub mod dispatch;
pub mod flag_file;
pub mod follow_up;
pub mod health;
pub mod http;
pub mod intake;
pub mod lifecycle;
pub mod liveness;
pub mod logging;
pub mod outbox;
pub mod plan;
pub mod preview;
pub mod render;
pub mod sync;
pub mod telemetry;
