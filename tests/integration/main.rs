//! Integration tests: the daemon against real servers on loopback.

// A panic is how a test fails.
#![allow(clippy::unwrap_used)]
// A test reads as one scenario, top to bottom.
#![allow(clippy::too_many_lines)]

mod answer_links;
mod api;
mod architecture;
mod banner;
mod bounces;
mod broadcast;
mod browser;
mod channels;
mod cli;
mod connections;
mod consent;
mod console;
mod content;
mod crash;
mod delivery;
mod directory;
mod fallback;
mod flag_file;
mod flow;
mod follow_ups;
mod hooks;
mod inbound;
mod leader_failover;
mod metrics;
mod operations;
mod order;
mod preview;
mod publish;
mod receipts;
mod recovery;
mod resume;
mod retention;
mod selection;
mod service;
mod several_daemons;
mod shared_flow;
mod shared_store;
mod sms;
mod store;
mod store_copy;
mod support;
