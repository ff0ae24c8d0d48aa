//! crisisd: when the crisis flag flips, tell every customer on every
//! channel how to reach support, keep the website banner lit while it
//! lasts, and send the all-clear when it is over.
//!
//! The data flow is one-way: flag sources -> crisis service -> planner ->
//! renderer -> outbox -> dispatcher -> channels. See docs/architecture.md.

pub mod app;
pub mod background;
pub mod banner;
pub mod channels;
pub mod cli;
pub mod clock;
pub mod config;
pub mod dispatch;
pub mod domain;
pub mod health;
pub mod http;
pub mod intake;
pub mod lifecycle;
pub mod liveness;
pub mod logging;
pub mod message;
pub mod outbox;
pub mod plan;
pub mod preview;
pub mod publish;
pub mod render;
pub mod secret;
pub mod service;
pub mod sync;
pub mod telemetry;
