//! The CLI's side of webhooks: `confirm` and `discard` for the crises
//! webhooks proposed, `hooks log`, and the proposals `status` lists first.

use std::io::IsTerminal;
use std::path::Path;

use clap::{Args, Subcommand};

use super::Failure;
use super::client::ApiClient;
use super::client_args::{ClientArgs, with_query};
use super::declare::transition;
use crate::http::hooks::{HookLog, LOG_LIMIT_DEFAULT, LOG_LIMIT_MAX, LogQuery, ProposalList};
use crate::outbox::{Pending, PendingState};

/// Declare a crisis a webhook proposed (a hook in `propose` mode, or one still held by
/// `declare_after`): its announcement goes out now, under the id it was shown with.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  \
    crisisd status                 proposals and held declarations are listed first\n  \
    crisisd confirm 0193...        declare it: the announcement goes out now")]
pub struct ConfirmArgs {
    /// The proposal's id, from `crisisd status`.
    pub id: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

impl ConfirmArgs {
    pub async fn run(self, config: &Path) -> Result<(), Failure> {
        let path = format!("/v1/crises/{}/confirm", self.id);
        transition(config, &self.client, &path, &serde_json::json!({})).await
    }
}

/// Drop a crisis a webhook proposed: nothing is sent, ever.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  crisisd discard 0193...        a false alarm: nothing is sent")]
pub struct DiscardArgs {
    pub id: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

impl DiscardArgs {
    pub async fn run(self, config: &Path) -> Result<(), Failure> {
        let api = self.client.connect(config)?;
        let pending: Pending = api
            .post(
                &format!("/v1/crises/{}/discard", self.id),
                &serde_json::json!({}),
            )
            .await?;
        self.client.print(&pending, print_discarded);
        Ok(())
    }
}

/// Inbound webhooks: `crisisd hooks log`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    crisisd hooks log                          the last 50 webhooks, newest first\n  \
    crisisd hooks log --hook status --limit 10 --json")]
pub struct HooksArgs {
    #[command(subcommand)]
    pub command: HooksCommand,
}

/// What `crisisd hooks` does.
#[derive(Debug, Subcommand)]
pub enum HooksCommand {
    /// Webhooks received, newest first: hook, source, HTTP status, verdict, error, and what each
    /// source incident became.
    #[command(after_help = "Examples:\n  \
        crisisd hooks log\n  \
        crisisd hooks log --hook alerts --limit 200")]
    Log {
        /// Only this hook's webhooks.
        #[arg(long, value_name = "NAME")]
        hook: Option<String>,
        /// At most this many, 1 to 1000.
        #[arg(
            long,
            default_value_t = LOG_LIMIT_DEFAULT,
            value_parser = clap::value_parser!(u32).range(1..=i64::from(LOG_LIMIT_MAX))
        )]
        limit: u32,
        #[command(flatten)]
        client: ClientArgs,
    },
}

impl HooksArgs {
    pub async fn run(self, config: &Path) -> Result<(), Failure> {
        match self.command {
            HooksCommand::Log {
                hook,
                limit,
                client,
            } => {
                let api = client.connect(config)?;
                let query = LogQuery {
                    hook,
                    limit: Some(limit),
                };
                let log: HookLog = api.get(&with_query("/v1/hooks/log", &query)?).await?;
                client.print(&log, print_log);
                Ok(())
            }
        }
    }
}

/// Held and proposed crises, above everything else in `crisisd status`.
pub async fn print_proposals(api: &ApiClient) -> Result<(), Failure> {
    let list: ProposalList = api.get("/v1/proposals").await?;
    if list.proposals.is_empty() {
        return Ok(());
    }
    let color = std::io::stdout().is_terminal();
    let banner = format!(
        "{} crisis proposal(s) from webhooks, not declared and sending nothing:",
        list.proposals.len()
    );
    if color {
        println!("\x1b[1;7m {banner} \x1b[0m");
    } else {
        println!("!! {banner}");
    }
    for pending in &list.proposals {
        let d = &pending.declaration;
        let state = match (pending.state, pending.due_at) {
            (PendingState::Held, Some(at)) => format!("held until {}", at.format("%H:%M:%S UTC")),
            (state, _) => state.as_str().to_owned(),
        };
        println!(
            "  {}  {} {}  {}  [{} by hook {}, incident {}]",
            pending.id, d.severity, d.kind, d.title, state, pending.hook, pending.external_id
        );
    }
    println!("  `crisisd confirm ID` declares one and sends it; `crisisd discard ID` drops it.\n");
    Ok(())
}

fn print_discarded(pending: &Pending) {
    println!("{}", pending.id);
    eprintln!(
        "discarded: {} (from hook {}); nothing was sent",
        pending.declaration.title, pending.hook
    );
}

fn print_log(log: &HookLog) {
    if log.entries.is_empty() {
        println!("No webhook received yet.");
    }
    for entry in &log.entries {
        println!(
            "{}  {:<16} {:<12} {} {:<12} {}",
            entry.received_at.format("%Y-%m-%d %H:%M:%S"),
            entry.hook,
            entry.source,
            entry.status,
            entry.verdict,
            entry.error.as_deref().unwrap_or("")
        );
        for line in &entry.transitions {
            println!("      {line}");
        }
    }
}
