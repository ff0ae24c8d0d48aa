pub mod app;
pub mod smtp;

pub use app::{PUBLIC_URL, TOKEN, TestApp, TestConfig, declaration, spawn_app, spawn_app_in};
pub use smtp::{SmtpServer, TlsMode};

use std::time::Duration;

/// Generous: CI machines are shared and slow.
pub const WAIT: Duration = Duration::from_secs(20);

/// A loopback port that nothing listens on (for a server that is "down",
/// or started later).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}
