//! `crisisd directory`: the live directory. `list` shows each entry with
//! its availability; `down` marks one unavailable (the banner, the status
//! page and every new message then point to the next best entry), `up`
//! restores it.

use std::path::Path;

use clap::{Args, Subcommand};

use super::Failure;
use super::client_args::ClientArgs;
use crate::http::directory::{AvailabilityRequest, AvailabilityResponse, DirectoryResponse};
use crate::service::DirectoryEntryState;

/// The contact directory as customers are shown it: mark an entry unavailable or available.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    crisisd directory list\n  \
    crisisd directory down chat --reason \"chat vendor outage\"   messages point to the next best entry\n  \
    crisisd directory up chat")]
pub struct DirectoryArgs {
    #[command(subcommand)]
    pub command: DirectoryCommand,
}

#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// Every entry: available or not, since when, by whom, and what is shown instead.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Mark an entry unavailable: the banner, the status page and every message planned from now
    /// on show it so and point to the next best entry (another emergency line for an emergency
    /// line).
    Down {
        /// The entry's id, as in `[[directory]] id` (`crisisd directory list`).
        entry: String,
        /// Why, for staff (the audit log and `directory list`); one line.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Mark an entry available again.
    Up {
        entry: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

impl DirectoryArgs {
    pub async fn run(self, config: &Path) -> Result<(), Failure> {
        let (entry, request, client) = match self.command {
            DirectoryCommand::List { client } => {
                let api = client.connect(config)?;
                let response: DirectoryResponse = api.get("/v1/directory").await?;
                client.print(&response, |r| print_entries(&r.entries));
                return Ok(());
            }
            DirectoryCommand::Down {
                entry,
                reason,
                client,
            } => (
                entry,
                AvailabilityRequest {
                    available: false,
                    reason,
                },
                client,
            ),
            DirectoryCommand::Up { entry, client } => (
                entry,
                AvailabilityRequest {
                    available: true,
                    reason: None,
                },
                client,
            ),
        };
        let api = client.connect(config)?;
        let path = format!("/v1/directory/{entry}/availability");
        let response: AvailabilityResponse = api.put(&path, &request).await?;
        client.print(&response, print_change);
        Ok(())
    }
}

fn print_change(response: &AvailabilityResponse) {
    let Some(entry) = response.entries.iter().find(|e| e.id == response.entry) else {
        return;
    };
    let state = if entry.available {
        "available"
    } else {
        "unavailable"
    };
    if response.changed {
        eprintln!("{} is now {state}.", entry.id);
    } else {
        eprintln!("{} was already {state}; nothing changed.", entry.id);
    }
    print_entries(&response.entries);
}

fn print_entries(entries: &[DirectoryEntryState]) {
    let width = entries.iter().map(|e| e.id.len()).max().unwrap_or(0);
    for entry in entries {
        let state = if entry.available { "up  " } else { "DOWN" };
        let mut line = format!(
            "{state} {:width$}  {} ({}){}",
            entry.id,
            entry.label,
            entry.address,
            if entry.emergency { " [emergency]" } else { "" }
        );
        if entry.probed {
            line.push_str(" [probed]");
        }
        if let Some(change) = &entry.last_change {
            line.push_str(&format!(
                " · since {} by {}",
                change.changed_at.format("%Y-%m-%d %H:%M UTC"),
                change.changed_by
            ));
            if let Some(reason) = change.reason.as_ref().filter(|_| !entry.available) {
                line.push_str(&format!(": {reason}"));
            }
        }
        if let Some(instead) = &entry.instead {
            line.push_str(&format!(" → shown instead: {instead}"));
        }
        println!("{line}");
    }
}
