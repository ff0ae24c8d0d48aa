//! Integration tests: the daemon against real servers on loopback.

// A panic is how a test fails.
#![allow(clippy::unwrap_used)]

mod api;
mod banner;
mod browser;
mod cli;
mod crash;
mod delivery;
mod flag_file;
mod store;
mod support;
