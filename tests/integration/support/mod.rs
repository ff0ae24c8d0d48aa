pub mod app;
pub mod smtp;

pub use app::{TOKEN, TestApp, TestConfig, declaration, spawn_app, spawn_app_in};
pub use smtp::SmtpServer;

use std::time::Duration;

/// Generous: CI machines are shared and slow.
pub const WAIT: Duration = Duration::from_secs(20);
