//! The command line: `serve`, `check-config`, and the client verbs that
//! talk to a running daemon. One file per command, holding its arguments,
//! its help text and what it does; this file lists the commands and
//! dispatches to them.

mod check_config;
pub mod client;
mod client_args;
mod completions;
mod dead;
mod declare;
mod directory;
mod hooks;
mod preview;
mod schedule;
mod serve;
mod status;
mod store;
mod texts;
mod user;
mod watch;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::app::StartupError;
use crate::config::config_path;
use crate::logging::LogFormat;
use client::ClientError;

const EXAMPLES: &str = "\
Examples:
  crisisd serve                                  run the daemon on config/crisisd.toml
  crisisd check-config --config /etc/crisisd/crisisd.toml
  crisisd declare --kind outage --severity major \\
      --title \"Payments are down\" --summary \"Card payments fail; we are on it.\"
  crisisd status
  crisisd status 0193... --watch                 live progress bars until everything is sent
  crisisd update 0193... --message \"Fix deployed; recovering.\"
  crisisd resolve 0193... --message \"All systems normal.\"
  crisisd dead --crisis 0193...                  dead deliveries with their reasons
  crisisd directory down chat --reason \"vendor outage\"  messages point to the next best entry
  crisisd retry-dead --crisis 0193... --yes      send them again
  crisisd confirm 0193...                        declare a crisis a webhook proposed
  crisisd hooks log                              webhooks received and what they did
  crisisd user add alice --role author           a console account (password from stdin or a prompt)
  crisisd completions bash > /etc/bash_completion.d/crisisd

Every subcommand has its own --help with examples, e.g. `crisisd declare --help`.

Exit codes:
  0  ok
  1  runtime error: the daemon failed while running, or could not be reached
  2  usage or configuration error: bad arguments, a config that fails check-config,
     a request the daemon refused as invalid (systemd does not restart on 2)";

#[derive(Debug, Parser)]
#[command(
    name = "crisisd",
    version,
    about = "Crisis broadcast daemon: one flag, every channel, in every language.",
    long_about = "crisisd watches a crisis flag. When it flips, it tells every customer, on every \
                  channel at once, how to reach support; it keeps a banner on the website while the \
                  crisis lasts and sends the all-clear when it is resolved.",
    after_help = EXAMPLES
)]
pub struct Cli {
    /// Config file [default: config/crisisd.toml].
    #[arg(
        long,
        short,
        global = true,
        env = "CRISISD_CONFIG",
        value_name = "PATH"
    )]
    pub config: Option<PathBuf>,
    /// Log format: `auto` is JSON when stderr is systemd's journal (JOURNAL_STREAM) and not a
    /// terminal, text otherwise.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// The commands, in the order `--help` lists them. Each one's help text is
/// on its arguments' struct, in its own file; a doc comment here would
/// replace it.
#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(
        about = serve::ABOUT,
        long_about = serve::LONG_ABOUT,
        after_help = serve::AFTER_HELP
    )]
    Serve,
    #[command(
        about = check_config::ABOUT,
        long_about = check_config::LONG_ABOUT,
        after_help = check_config::AFTER_HELP
    )]
    CheckConfig(check_config::CheckConfigArgs),
    Completions(completions::CompletionsArgs),
    Declare(declare::DeclareArgs),
    Update(declare::UpdateArgs),
    Resolve(declare::ResolveArgs),
    Preview(preview::PreviewArgs),
    Status(status::StatusArgs),
    Dead(dead::DeadArgs),
    Schedule(schedule::ScheduleArgs),
    RetryDead(dead::RetryDeadArgs),
    Confirm(hooks::ConfirmArgs),
    Discard(hooks::DiscardArgs),
    Hooks(hooks::HooksArgs),
    Directory(directory::DirectoryArgs),
    User(user::UserArgs),
    Store(store::StoreArgs),
}

/// How a command failed, which decides the exit code.
#[derive(Debug)]
pub enum Failure {
    /// Bad usage or configuration: exit 2.
    Usage(anyhow::Error),
    /// Anything else: exit 1.
    Runtime(anyhow::Error),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => 2,
            Failure::Runtime(_) => 1,
        }
    }

    pub fn error(&self) -> &anyhow::Error {
        match self {
            Failure::Usage(e) | Failure::Runtime(e) => e,
        }
    }
}

impl From<StartupError> for Failure {
    fn from(err: StartupError) -> Self {
        match err {
            StartupError::Config(_) | StartupError::Invalid(_) => Failure::Usage(err.into()),
            other => Failure::Runtime(other.into()),
        }
    }
}

impl From<ClientError> for Failure {
    fn from(err: ClientError) -> Self {
        match &err {
            ClientError::Api { status, .. }
                if status.is_client_error() && status.as_u16() != 401 =>
            {
                Failure::Usage(err.into())
            }
            _ => Failure::Runtime(err.into()),
        }
    }
}

pub async fn run(cli: Cli) -> Result<(), Failure> {
    let config = config_path(cli.config.as_deref());
    match cli.command {
        Command::Serve => serve::run(&config).await,
        Command::CheckConfig(args) => check_config::run(&config, &args).await,
        Command::Completions(args) => {
            args.run();
            Ok(())
        }
        Command::Declare(args) => args.run(&config).await,
        Command::Update(args) => args.run(&config).await,
        Command::Resolve(args) => args.run(&config).await,
        Command::Preview(args) => args.run(&config).await,
        Command::Status(args) => args.run(&config).await,
        Command::Dead(args) => args.run(&config).await,
        Command::Schedule(args) => args.run(&config).await,
        Command::RetryDead(args) => args.run(&config).await,
        Command::Confirm(args) => args.run(&config).await,
        Command::Discard(args) => args.run(&config).await,
        Command::Hooks(args) => args.run(&config).await,
        Command::Directory(args) => args.run(&config).await,
        Command::User(args) => args.run(&config).await,
        Command::Store(args) => args.run().await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_new_verbs_parse_and_retry_dead_needs_no_argument() {
        let cli = Cli::try_parse_from(["crisisd", "retry-dead", "--crisis", "x", "--yes"])
            .expect("parses");
        assert!(matches!(
            cli.command,
            Command::RetryDead(dead::RetryDeadArgs { yes: true, .. })
        ));
        let cli = Cli::try_parse_from(["crisisd", "status", "--watch", "--all"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Status(status::StatusArgs {
                watch: true,
                all: true,
                ..
            })
        ));
        assert!(Cli::try_parse_from(["crisisd", "dead", "--limit", "1001"]).is_err());
        Cli::command().debug_assert();
    }
}
