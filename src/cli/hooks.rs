//! The CLI's side of webhooks: confirming and discarding proposed crises,
//! showing them in `status`, and the webhook log.

use std::io::IsTerminal;

use anyhow::anyhow;

use super::client::ApiClient;
use super::{Failure, print_json};
use crate::http::hooks::{HookLog, ProposalList};
use crate::intake::{Pending, PendingState};

/// Held and proposed crises, above everything else in `crisisd status`.
pub(super) async fn print_proposals(api: &ApiClient) -> Result<(), Failure> {
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

pub(super) fn print_decision(pending: &Pending, json: bool) {
    if json {
        print_json(pending);
    } else {
        println!("{}", pending.id);
        eprintln!(
            "discarded: {} (from hook {}); nothing was sent",
            pending.declaration.title, pending.hook
        );
    }
}

pub(super) async fn print_log(
    api: &ApiClient,
    hook: Option<String>,
    limit: u32,
    json: bool,
) -> Result<(), Failure> {
    let mut query = vec![("limit", limit.to_string())];
    query.extend(hook.map(|h| ("hook", h)));
    let query = serde_urlencoded::to_string(&query)
        .map_err(|e| Failure::Runtime(anyhow!("cannot build the query: {e}")))?;
    let log: HookLog = api.get(&format!("/v1/hooks/log?{query}")).await?;
    if json {
        print_json(&log);
        return Ok(());
    }
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
    Ok(())
}
