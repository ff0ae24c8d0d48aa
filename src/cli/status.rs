//! `crisisd status`: active crises with their delivery counts, or one
//! crisis in detail; `--watch` follows them (see `watch`).

use std::io::IsTerminal;
use std::path::Path;

use chrono::{DateTime, Utc};
use clap::Args;

use super::client::ApiClient;
use super::client_args::ClientArgs;
use super::{Failure, hooks, watch};
use crate::domain::Severity;
use crate::http::api::{CrisisDetail, CrisisList, CrisisSummary, Daemons, Reach, StateCounts};

/// Show active crises with delivery counts, rate and ETA per channel, or one crisis in detail.
#[derive(Debug, Args)]
#[command(
    long_about = "Show active crises with delivery counts per channel (sent, pending, in flight, \
                  retrying, dead), the rate the daemon measures (deliveries finished per second over \
                  the last 10 s) and an ETA (what is left divided by the rate; \"—\" while the rate \
                  is 0). With an ID: that crisis in detail, with its audit trail and dead deliveries.",
    after_help = "Examples:\n  \
        crisisd status                      active crises\n  \
        crisisd status --all                resolved ones too\n  \
        crisisd status 0193...              one crisis, its history and dead deliveries\n  \
        crisisd status 0193... --watch      progress bars, redrawn every second, until nothing is left\n  \
        crisisd status --watch | tee log    piped: one plain line per channel every 2 s:\n  \
        <time> <crisis> email sent=120 pending=80 in_flight=4 retrying=0 dead=1 rate=12.5/s eta=7s\n\n\
        --watch ends with a summary and exit code 0 once nothing is pending, in flight or retrying \
        for the crises shown (active ones, and resolved ones whose all-clear is still going out), \
        or when interrupted with Ctrl-C (also 0). With --json, --watch prints one JSON object per \
        line every 2 s."
)]
pub struct StatusArgs {
    /// One crisis, with its audit trail and dead deliveries.
    pub id: Option<String>,
    /// Include resolved crises.
    #[arg(long)]
    pub all: bool,
    /// Follow progress until nothing is left to send (Ctrl-C stops).
    #[arg(long)]
    pub watch: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

impl StatusArgs {
    pub async fn run(self, config: &Path) -> Result<(), Failure> {
        let api = self.client.connect(config)?;
        if self.watch {
            return watch::watch_status(&api, self.id.as_deref(), self.all, self.client.json).await;
        }
        match &self.id {
            Some(id) => {
                let detail: CrisisDetail = api.get(&format!("/v1/crises/{id}")).await?;
                self.client.print(&detail, print_detail);
            }
            None => self.list(&api).await?,
        }
        Ok(())
    }

    /// Every active crisis (every crisis with `--all`), under the webhook
    /// proposals waiting for a person.
    async fn list(&self, api: &ApiClient) -> Result<(), Failure> {
        if !self.client.json {
            hooks::print_proposals(api).await?;
        }
        let filter = if self.all { "all" } else { "active" };
        let list: CrisisList = api.get(&format!("/v1/crises?status={filter}")).await?;
        self.client.print(&list, |list| print_list(list, self.all));
        Ok(())
    }
}

/// What an empty list says.
pub fn nothing_shown(all: bool) -> &'static str {
    if all {
        "No crises."
    } else {
        "No active crisis."
    }
}

fn print_list(list: &CrisisList, all: bool) {
    let color = std::io::stdout().is_terminal();
    if list.crises.is_empty() {
        println!("{}", nothing_shown(all));
    } else {
        let label = if all { "Crises" } else { "Active crises" };
        println!("{label}: {}", list.crises.len());
    }
    for summary in &list.crises {
        print_summary(summary, color);
    }
    if let Some(daemons) = &list.daemons {
        print_daemons(daemons, Utc::now());
    }
    for plan in &list.planning_pending {
        println!(
            "Planning pending: the {} announcement of crisis {} ({} failed tries since {}): {}",
            plan.announcement,
            plan.crisis_id,
            plan.failures,
            plan.since
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            plan.reason
        );
    }
    let opt_outs = &list.opt_outs;
    if opt_outs.email + opt_outs.phone > 0 {
        println!(
            "Opted out: {} email address(es), {} phone number(s); they are skipped.",
            opt_outs.email, opt_outs.phone
        );
    }
    let dead: u64 = list
        .crises
        .iter()
        .flat_map(|s| s.deliveries.values())
        .map(|c| c.dead)
        .sum();
    if dead > 0 {
        println!(
            "{dead} dead deliveries: `crisisd dead` lists them with their reasons, \
             `crisisd retry-dead` sends them again."
        );
    }
}

/// Which daemon holds what: the leader, each daemon's deliveries in flight
/// by channel, and who plans which announcement.
fn print_daemons(daemons: &Daemons, now: DateTime<Utc>) {
    let time = |at: DateTime<Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    match &daemons.leader {
        Some(term) => println!(
            "Leader: {} (term {}, since {}, lease until {})",
            term.node,
            term.term,
            time(term.elected_at),
            time(term.expires_at)
        ),
        None => println!("Leader: none (the next daemon to try takes the lead)"),
    }
    println!(
        "Daemons: {}",
        daemons.nodes.iter().filter(|n| n.alive).count()
    );
    for node in &daemons.nodes {
        let mut marks = Vec::new();
        if node.node == daemons.this_node {
            marks.push("this one".to_owned());
        }
        if node.leader {
            marks.push("leader".to_owned());
        }
        if !node.alive {
            marks.push("not seen: stopped or dead".to_owned());
        }
        if let Some(seen) = node.seen_at {
            let ago = (now - seen).num_seconds().max(0);
            marks.push(format!("seen {ago}s ago"));
        }
        let leases = if node.leases.is_empty() {
            "nothing in flight".to_owned()
        } else {
            node.leases
                .iter()
                .map(|(channel, lease)| {
                    let until = lease.until.map(time).unwrap_or_default();
                    format!(
                        "{channel} {} in flight (leases until {until})",
                        lease.in_flight
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("  {} ({}): {leases}", node.node, marks.join(", "));
    }
    for plan in &daemons.planning {
        let by = match (&plan.owner, plan.lease_until) {
            (Some(owner), Some(until)) if until > now => {
                format!("by {owner}, lease until {}", time(until))
            }
            (Some(owner), Some(until)) => format!(
                "{owner}'s lease ran out at {}; another daemon takes it over",
                time(until)
            ),
            _ => "by nobody yet".to_owned(),
        };
        println!(
            "Planning: the {} announcement of crisis {}: {} subscribers planned, {by}",
            plan.announcement, plan.crisis_id, plan.planned_through
        );
    }
}

fn print_detail(detail: &CrisisDetail) {
    let summary = CrisisSummary {
        crisis: detail.crisis.clone(),
        deliveries: detail.deliveries.clone(),
        reach: detail.reach.clone(),
    };
    print_summary(&summary, std::io::stdout().is_terminal());
    println!("  {}", detail.crisis.summary);
    if let Some(line) = detail.follow_ups.line() {
        println!("  {line} (`crisisd schedule {}`)", detail.crisis.id);
    }
    println!("  History:");
    for event in &detail.events {
        println!(
            "    {}  {:<9} by {}{}",
            event.at.format("%Y-%m-%d %H:%M:%S UTC"),
            event.status,
            event.actor,
            event
                .message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        );
    }
    if !detail.answers.is_empty() {
        println!("  Answers:");
        for tally in &detail.answers {
            let number = tally
                .answer
                .map_or_else(|| "-".to_owned(), |n| n.to_string());
            let urgent = if tally.urgent {
                "  (urgent: on the callback list)"
            } else {
                ""
            };
            println!(
                "    {:<20} {number:>2} {:<24} {:>6}{urgent}",
                tally.question.as_deref().unwrap_or("no open question"),
                tally.label,
                tally.count
            );
        }
    }
    if !detail.dead.is_empty() {
        println!("  Dead deliveries:");
        for dead in &detail.dead {
            println!(
                "    {} {} {}: {}",
                dead.id, dead.channel, dead.destination, dead.reason
            );
        }
    }
}

/// A crisis's line, then one line of counts per channel.
pub fn print_summary(summary: &CrisisSummary, color: bool) {
    let crisis = &summary.crisis;
    let severity = if color {
        match crisis.severity {
            Severity::Critical => format!("\x1b[1;31m{}\x1b[0m", crisis.severity),
            Severity::Major => format!("\x1b[33m{}\x1b[0m", crisis.severity),
            Severity::Minor => crisis.severity.to_string(),
        }
    } else {
        crisis.severity.to_string()
    };
    println!(
        "{}  {severity} {}  {}  [{} {}]",
        crisis.id,
        crisis.kind,
        crisis.title,
        crisis.status,
        ago(crisis.updated_at)
    );
    if summary.deliveries.is_empty() {
        println!("    (no deliveries)");
    }
    for (channel, counts) in &summary.deliveries {
        println!("{}", counts_line(channel, counts));
        if let Some(reach) = summary.reach.get(channel).filter(|r| has_receipts(r)) {
            println!("{}", reach_line(reach));
        }
    }
}

/// Whether the channel's deliveries say anything about reach: a receipt,
/// a failure or a fallback (a broadcast's post has none of these).
fn has_receipts(reach: &Reach) -> bool {
    let c = &reach.counts;
    reach.reached + reach.not_reached + c.bounced_soft + c.fallbacks > 0
}

/// Under a channel's counts: who the receipts say it reached.
fn reach_line(reach: &Reach) -> String {
    let c = &reach.counts;
    format!(
        "    {:<12} reached {:>6}  not reached {:>6} (undelivered {}, bounced {}, dead {})  unconfirmed {}  soft bounces {}  fallbacks {}",
        "",
        reach.reached,
        reach.not_reached,
        c.undelivered,
        c.bounced_hard,
        c.dead,
        c.unconfirmed,
        c.bounced_soft,
        c.fallbacks
    )
}

fn ago(at: DateTime<Utc>) -> String {
    let seconds = (Utc::now() - at).num_seconds().max(0);
    match seconds {
        0..60 => format!("{seconds}s ago"),
        60..3600 => format!("{}m ago", seconds / 60),
        3600..86400 => format!("{}h {}m ago", seconds / 3600, seconds % 3600 / 60),
        _ => format!("{}d ago", seconds / 86400),
    }
}

fn counts_line(channel: &str, c: &StateCounts) -> String {
    format!(
        "    {channel:<12} sent {:>6}  pending {:>6}  in flight {:>4}  retrying {:>5}  dead {:>5}  {:>8}  ETA {}",
        c.sent,
        c.pending,
        c.in_flight,
        c.retrying,
        c.dead,
        format_rate(c.rate_per_second),
        format_eta(c)
    )
}

/// `12.5/s`; whole numbers once the rate is large.
pub fn format_rate(rate: f64) -> String {
    if rate >= 100.0 {
        format!("{rate:.0}/s")
    } else {
        format!("{rate:.1}/s")
    }
}

/// `done` when nothing is left, `—` while nothing moves, else `42s`,
/// `3m05s`, `1h02m`.
pub fn format_eta(c: &StateCounts) -> String {
    match c.eta_seconds {
        _ if c.remaining() == 0 => "done".to_owned(),
        None => "—".to_owned(),
        Some(s) if s < 60 => format!("{s}s"),
        Some(s) if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        Some(s) => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn left(pending: u64, eta_seconds: Option<u64>) -> StateCounts {
        StateCounts {
            pending,
            eta_seconds,
            ..Default::default()
        }
    }

    #[test]
    fn etas_read_as_done_a_dash_or_a_short_duration() {
        assert_eq!(format_eta(&left(0, Some(0))), "done");
        assert_eq!(format_eta(&left(5, None)), "—");
        assert_eq!(format_eta(&left(5, Some(42))), "42s");
        assert_eq!(format_eta(&left(5, Some(185))), "3m05s");
        assert_eq!(format_eta(&left(5, Some(3720))), "1h02m");
    }

    #[test]
    fn a_channel_with_receipts_gets_a_reach_line_and_a_broadcast_none() {
        let counts = crate::outbox::ReachCounts {
            delivered: 7,
            unconfirmed: 2,
            undelivered: 1,
            bounced_hard: 2,
            bounced_soft: 1,
            dead: 1,
            fallbacks: 3,
        };
        let reach = Reach::from(counts);
        assert!(has_receipts(&reach));
        assert_eq!(
            reach_line(&reach),
            "                 reached      7  not reached      4 (undelivered 1, bounced 2, dead 1)  \
             unconfirmed 2  soft bounces 1  fallbacks 3"
        );
        let posted = Reach::from(crate::outbox::ReachCounts {
            unconfirmed: 1,
            ..Default::default()
        });
        assert!(
            !has_receipts(&posted),
            "a post sent once has nothing to say"
        );
    }

    #[test]
    fn rates_keep_one_decimal_until_they_are_large() {
        assert_eq!(format_rate(0.0), "0.0/s");
        assert_eq!(format_rate(12.46), "12.5/s");
        assert_eq!(format_rate(345.6), "346/s");
    }
}
