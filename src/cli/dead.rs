//! `crisisd dead` and `retry-dead`: the dead deliveries with their reasons,
//! and sending them again.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::anyhow;
use clap::Args;

use super::Failure;
use super::client_args::{ClientArgs, with_query};
use crate::http::api::{
    DEAD_LIMIT_DEFAULT, DEAD_LIMIT_MAX, DeadList, DeadQuery, RetryDeadRequest, RetryDeadResponse,
};

/// List dead deliveries with their reasons, newest first.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
        crisisd dead                                  the newest 100, every crisis\n  \
        crisisd dead --crisis 0193... --channel email\n  \
        crisisd dead --limit 1000 --json              for a script\n\n\
        Columns: when it died (UTC), delivery id, crisis id, channel, destination, attempts, reason. \
        `crisisd retry-dead` sends them again.")]
pub struct DeadArgs {
    /// Only this crisis's deliveries.
    #[arg(long, value_name = "ID")]
    pub crisis: Option<String>,
    /// Only this channel's deliveries (its configured name, e.g. `email`).
    #[arg(long, value_name = "NAME")]
    pub channel: Option<String>,
    /// At most this many, 1 to 1000.
    #[arg(
        long,
        default_value_t = DEAD_LIMIT_DEFAULT,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(DEAD_LIMIT_MAX))
    )]
    pub limit: u32,
    #[command(flatten)]
    pub client: ClientArgs,
}

impl DeadArgs {
    pub async fn run(self, config: &Path) -> Result<(), Failure> {
        let api = self.client.connect(config)?;
        let query = DeadQuery {
            crisis: self.crisis,
            channel: self.channel,
            limit: Some(self.limit),
        };
        let list: DeadList = api.get(&with_query("/v1/deliveries/dead", &query)?).await?;
        self.client.print(&list, print_dead);
        Ok(())
    }
}

/// Requeue dead deliveries: they are sent again, from attempt 1.
#[derive(Debug, Args)]
#[command(
    long_about = "Requeue dead deliveries: each goes back to pending with its attempts reset to 0, \
                  due at once. The daemon's dispatcher picks them up at its next poll (within \
                  [dispatch] poll_interval). The last error stays visible until the next attempt \
                  replaces it (a success clears it). Deliveries of resolved crises are requeued too: \
                  the dead one may be the all-clear. Left dead: deliveries of channels that are not \
                  configured, those to an address that opted out, those whose template did not \
                  render (fix the template, then send an update), and follow-up messages the \
                  all-clear cancelled.\n\n\
                  Without --yes it shows how many would be requeued and asks; when stdin is not a \
                  terminal it refuses (exit 2) rather than guess.",
    after_help = "Examples:\n  \
        crisisd retry-dead                              asks before requeuing every dead delivery\n  \
        crisisd retry-dead --crisis 0193... --channel email --yes\n\n\
        Watch them go out with `crisisd status 0193... --watch`."
)]
pub struct RetryDeadArgs {
    /// Only this crisis's deliveries.
    #[arg(long, value_name = "ID")]
    pub crisis: Option<String>,
    /// Only this channel's deliveries.
    #[arg(long, value_name = "NAME")]
    pub channel: Option<String>,
    /// Do not ask for confirmation (needed when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

fn print_dead(list: &DeadList) {
    if list.deliveries.is_empty() {
        println!("No dead deliveries.");
        return;
    }
    let mut rows = vec![[
        "WHEN (UTC)".to_owned(),
        "DELIVERY".to_owned(),
        "CRISIS".to_owned(),
        "CHANNEL".to_owned(),
        "TO".to_owned(),
        "TRIES".to_owned(),
        "REASON".to_owned(),
    ]];
    rows.extend(list.deliveries.iter().map(|d| {
        [
            d.finished_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            d.id.clone(),
            d.crisis_id.to_string(),
            d.channel.clone(),
            d.destination.clone(),
            d.attempts.to_string(),
            // One line per delivery, whatever the provider's reply held.
            d.reason.split_whitespace().collect::<Vec<_>>().join(" "),
        ]
    }));
    let mut widths = [0usize; 6];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in &rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(widths) {
            line.push_str(&format!("{cell:<width$}  "));
        }
        line.push_str(&row[6]);
        println!("{line}");
    }
    let shown = list.deliveries.len() as u64;
    if list.total > shown {
        eprintln!(
            "The newest {shown} of {} dead deliveries; --limit (up to 1000), --crisis and --channel \
             choose others.",
            list.total
        );
    }
    eprintln!("`crisisd retry-dead` sends them again.");
}

const RETRY_DEAD_PATH: &str = "/v1/deliveries/retry-dead";

impl RetryDeadArgs {
    /// Counts and asks first unless `--yes`; never asks a pipe.
    pub async fn run(self, config: &Path) -> Result<(), Failure> {
        let api = self.client.connect(config)?;
        let scope = self.scope();
        let mut request = RetryDeadRequest {
            crisis: self.crisis.clone(),
            channel: self.channel.clone(),
            dry_run: !self.yes,
        };
        if !self.yes {
            let preview: RetryDeadResponse = api.post(RETRY_DEAD_PATH, &request).await?;
            let n = preview.would_requeue.unwrap_or(0);
            if n == 0 {
                // Nothing to do is not an error, on a terminal or not.
                self.client.print(&preview, |preview| {
                    println!("No dead deliveries to requeue{scope}.");
                    explain_left_dead(preview.left_dead, &scope);
                });
                return Ok(());
            }
            if !std::io::stdin().is_terminal() {
                return Err(Failure::Usage(anyhow!(
                    "retry-dead would requeue {n} dead deliveries{scope} and asks for confirmation, \
                     but stdin is not a terminal; pass --yes to requeue without asking (nothing was \
                     requeued)"
                )));
            }
            let question =
                format!("Requeue {n} dead deliveries{scope}? They will be sent again. [y/N] ");
            if !confirm(question).await? {
                eprintln!("Nothing requeued.");
                return Ok(());
            }
            request.dry_run = false;
        }
        let response: RetryDeadResponse = api.post(RETRY_DEAD_PATH, &request).await?;
        self.client.print(&response, |response| {
            println!("Requeued {} dead deliveries{scope}.", response.requeued);
            explain_left_dead(response.left_dead, &scope);
            if response.requeued > 0 {
                eprintln!(
                    "The daemon sends them within its poll interval; follow them with `crisisd status --watch`."
                );
            }
        });
        Ok(())
    }

    /// ` of crisis X on channel Y`, for the sentences that count them.
    fn scope(&self) -> String {
        match (&self.crisis, &self.channel) {
            (Some(c), Some(ch)) => format!(" of crisis {c} on channel {ch}"),
            (Some(c), None) => format!(" of crisis {c}"),
            (None, Some(ch)) => format!(" on channel {ch}"),
            (None, None) => String::new(),
        }
    }
}

/// Why some dead deliveries stay dead: requeueing sends the same message
/// again, which cannot help one that never had a message.
fn explain_left_dead(left_dead: u64, scope: &str) {
    if left_dead > 0 {
        eprintln!(
            "{left_dead} dead deliveries{scope} cannot be sent again by requeueing: their message \
             could not be rendered or did not fit the channel at planning (fix the template or the \
             channel's limit, then send an update), the all-clear cancelled them, or their reader \
             is opted out now. `crisisd dead` shows each one's reason."
        );
    }
}

/// Asks on stderr, reads a y/N answer from stdin; anything but y/yes is no.
async fn confirm(question: String) -> Result<bool, Failure> {
    tokio::task::spawn_blocking(move || {
        eprint!("{question}");
        // The prompt has no newline; without a flush it may not show.
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        Ok::<_, std::io::Error>(matches!(
            answer.trim().to_ascii_lowercase().as_str(),
            "y" | "yes"
        ))
    })
    .await
    .map_err(|e| Failure::Runtime(anyhow!("cannot ask for confirmation: {e}")))?
    .map_err(|e| Failure::Runtime(anyhow!("cannot read the answer: {e}")))
}
