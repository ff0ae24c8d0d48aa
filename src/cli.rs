//! The command line: `serve`, `check-config`, and the client verbs that
//! talk to a running daemon.

pub mod client;
mod hooks;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::anyhow;
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::app::{self, Application, StartupError};
use crate::config::{Settings, config_path};
use crate::domain::follow_up::ScheduleList;
use crate::domain::{AnnouncementKind, CrisisId, CrisisUpdate, Declaration, Kind, Severity};
use crate::http::api::{
    CrisisDetail, CrisisList, CrisisSummary, DeadList, ResolveRequest, RetryDeadRequest,
    RetryDeadResponse, StateCounts,
};
use crate::logging::LogFormat;
use crate::message::Form;
use crate::preview::{PreviewRequest, PreviewResponse};
use crate::secret::Secret;
use crate::service::TransitionOutcome;
use client::{ApiClient, ClientError};

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
  crisisd retry-dead --crisis 0193... --yes      send them again
  crisisd confirm 0193...                        declare a crisis a webhook proposed
  crisisd hooks log                              webhooks received and what they did
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

/// Shells `crisisd completions` writes scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct Client {
    /// Daemon URL [default: from the config's server.listen, else http://127.0.0.1:8750].
    /// The API token comes from CRISISD_TOKEN, else the config's first token.
    #[arg(long, env = "CRISISD_URL", value_name = "URL")]
    pub url: Option<String>,
    /// Print the daemon's JSON answer instead of a summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: HTTP API and banner, dispatcher, flag file watcher.
    #[command(
        long_about = "Run the daemon: HTTP API and banner, dispatcher, flag file watcher, /healthz, \
                      /readyz and /metrics. Under systemd (Type=notify) it sends READY=1 once the store \
                      is open and the listener bound, pings the watchdog while its loops make progress, \
                      and reports STATUS=. SIGHUP reloads the config, templates, directory and audience \
                      (a config that fails validation is refused and the running one stays); SIGTERM or \
                      SIGINT stops after in-flight sends finish, a second one exits at once.",
        after_help = "Examples:\n  \
            crisisd serve                                       config/crisisd.toml, text logs\n  \
            crisisd serve --config /etc/crisisd/crisisd.toml --log-format json\n  \
            RUST_LOG=info,crisisd=debug crisisd serve            more detail from crisisd only\n  \
            kill -HUP $(pidof crisisd)                          reload (systemctl reload crisisd)\n\n\
            Exit codes: 0 stopped cleanly, 1 runtime error (e.g. the port is taken), 2 configuration error."
    )]
    Serve,
    /// Validate the config, templates, directory and audience; exit 2 with every problem found.
    #[command(
        long_about = "Validate the config, templates, directory and audience exactly as `serve` and a \
                      reload would, without starting anything or writing any file, and report every \
                      problem at once. No provider is contacted.",
        after_help = "Examples:\n  \
            crisisd check-config                                config/crisisd.toml\n  \
            crisisd check-config --config /etc/crisisd/crisisd.toml && systemctl reload crisisd\n  \
            sudo env CREDENTIALS_DIRECTORY=/etc/crisisd/credentials crisisd check-config -c /etc/crisisd/crisisd.toml\n\n\
            Exit codes: 0 valid, 2 with the list of problems."
    )]
    CheckConfig,
    /// Print a shell completion script for bash, zsh or fish.
    #[command(after_help = "Examples:\n  \
            crisisd completions bash > /etc/bash_completion.d/crisisd\n  \
            crisisd completions zsh > \"${fpath[1]}/_crisisd\"\n  \
            crisisd completions fish > ~/.config/fish/completions/crisisd.fish")]
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Declare a crisis; prints its id.
    #[command(
        after_help = "Example:\n  crisisd declare --kind outage --severity critical --title \"Payments are down\" \\\n      --summary \"Card payments fail since 09:10 UTC.\""
    )]
    Declare {
        #[arg(long, value_enum)]
        kind: Kind,
        #[arg(long, value_enum)]
        severity: Severity,
        #[arg(long)]
        title: String,
        #[arg(long)]
        summary: String,
        /// A first message to include with the announcement.
        #[arg(long)]
        message: Option<String>,
        #[command(flatten)]
        client: Client,
    },
    /// Send an update about an active crisis.
    #[command(
        after_help = "Example:\n  crisisd update 0193... --message \"A fix is rolling out.\" --severity minor"
    )]
    Update {
        /// Crisis id (from `declare` or `status`).
        id: String,
        #[arg(long)]
        message: Option<String>,
        /// Reclassify the crisis.
        #[arg(long, value_enum)]
        kind: Option<Kind>,
        #[arg(long, value_enum)]
        severity: Option<Severity>,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        summary: Option<String>,
        #[command(flatten)]
        client: Client,
    },
    /// Resolve a crisis: send the all-clear and take the banner down.
    #[command(
        after_help = "Example:\n  crisisd resolve 0193... --message \"Payments work again. Thank you for your patience.\""
    )]
    Resolve {
        id: String,
        #[arg(long)]
        message: Option<String>,
        #[command(flatten)]
        client: Client,
    },
    /// Render every channel's message for a crisis without declaring or sending anything.
    #[command(
        after_help = "Examples:\n  crisisd preview --kind outage --severity major --title \"Payments are down\" \\\n      --summary \"Card payments fail.\" --lang bn\n  crisisd preview ... --channel sms      # an SMS, even before a gateway is configured"
    )]
    Preview {
        #[arg(long, value_enum)]
        kind: Kind,
        #[arg(long, value_enum)]
        severity: Severity,
        #[arg(long)]
        title: String,
        #[arg(long)]
        summary: String,
        #[arg(long)]
        message: Option<String>,
        /// Which announcement: initial, update or resolved.
        #[arg(long, value_enum, default_value_t = AnnouncementKind::Initial)]
        announcement: AnnouncementKind,
        /// Only this language.
        #[arg(long)]
        lang: Option<String>,
        /// A configured channel's name, or a type (email, sms, social, chat, mastodon, ...).
        #[arg(long)]
        channel: Option<String>,
        #[command(flatten)]
        client: Client,
    },
    /// Show active crises with delivery counts, rate and ETA per channel, or one crisis in detail.
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
    Status {
        /// One crisis, with its audit trail and dead deliveries.
        id: Option<String>,
        /// Include resolved crises.
        #[arg(long)]
        all: bool,
        /// Follow progress until nothing is left to send (Ctrl-C stops).
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        client: Client,
    },
    /// List dead deliveries with their reasons, newest first.
    #[command(after_help = "Examples:\n  \
            crisisd dead                                  the newest 100, every crisis\n  \
            crisisd dead --crisis 0193... --channel email\n  \
            crisisd dead --limit 1000 --json              for a script\n\n\
            Columns: when it died (UTC), delivery id, crisis id, channel, destination, attempts, reason. \
            `crisisd retry-dead` sends them again.")]
    Dead {
        /// Only this crisis's deliveries.
        #[arg(long, value_name = "ID")]
        crisis: Option<String>,
        /// Only this channel's deliveries (its configured name, e.g. `email`).
        #[arg(long, value_name = "NAME")]
        channel: Option<String>,
        /// At most this many, 1 to 1000.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        #[command(flatten)]
        client: Client,
    },
    /// List follow-ups with their due times and states.
    #[command(
        long_about = "List the follow-ups of one crisis, or of every crisis: when each is due, in \
                      the operator's time zone, and its state: pending (waiting for its time), sent \
                      (it became a follow_up announcement), cancelled (by the all-clear, or a change \
                      of kind and with it of plan) or skipped (found due later than [follow_ups] \
                      max_lateness, e.g. the daemon was down), with the reason.",
        after_help = "Examples:\n  \
            crisisd schedule                          every crisis's follow-ups\n  \
            crisisd schedule 0193... --tz Asia/Dhaka  one crisis, times in Dhaka\n  \
            crisisd schedule 0193... --json\n\n\
            Times are shown in --tz, else $TZ when it names an IANA zone, else the daemon's \
            [follow_ups] time_zone."
    )]
    Schedule {
        /// Only this crisis's follow-ups.
        id: Option<String>,
        /// IANA time zone to show due times in (e.g. Europe/London).
        #[arg(long, value_name = "ZONE")]
        tz: Option<String>,
        #[command(flatten)]
        client: Client,
    },
    /// Requeue dead deliveries: they are sent again, from attempt 1.
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
    RetryDead {
        /// Only this crisis's deliveries.
        #[arg(long, value_name = "ID")]
        crisis: Option<String>,
        /// Only this channel's deliveries.
        #[arg(long, value_name = "NAME")]
        channel: Option<String>,
        /// Do not ask for confirmation (needed when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
        #[command(flatten)]
        client: Client,
    },
    /// Declare a crisis a webhook proposed (a hook in `propose` mode, or one still held by
    /// `declare_after`): its announcement goes out now, under the id it was shown with.
    #[command(after_help = "Example:\n  \
        crisisd status                 proposals and held declarations are listed first\n  \
        crisisd confirm 0193...        declare it: the announcement goes out now")]
    Confirm {
        /// The proposal's id, from `crisisd status`.
        id: String,
        #[command(flatten)]
        client: Client,
    },
    /// Drop a crisis a webhook proposed: nothing is sent, ever.
    #[command(
        after_help = "Example:\n  crisisd discard 0193...        a false alarm: nothing is sent"
    )]
    Discard {
        id: String,
        #[command(flatten)]
        client: Client,
    },
    /// Inbound webhooks: `crisisd hooks log`.
    #[command(after_help = "Examples:\n  \
        crisisd hooks log                          the last 50 webhooks, newest first\n  \
        crisisd hooks log --hook status --limit 10 --json")]
    Hooks {
        #[command(subcommand)]
        command: HooksCommand,
    },
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
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        #[command(flatten)]
        client: Client,
    },
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
        Command::Serve => serve(&config).await,
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let shell = match shell {
                Shell::Bash => clap_complete::Shell::Bash,
                Shell::Zsh => clap_complete::Shell::Zsh,
                Shell::Fish => clap_complete::Shell::Fish,
            };
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "crisisd",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::CheckConfig => {
            let prepared = app::check_config(&config)?;
            println!(
                "{}: ok ({} channel(s), {} subscriber(s), {} contact(s), locales: {})",
                config.display(),
                prepared.channels.len(),
                prepared.inputs.audience.count,
                prepared.inputs.directory.len(),
                prepared
                    .inputs
                    .renderer
                    .locales()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if !prepared.follow_ups.is_empty() {
                println!(
                    "follow-ups: {} resource(s), topics: {}; due times in {}",
                    prepared.follow_ups.library.len(),
                    prepared
                        .follow_ups
                        .topics()
                        .iter()
                        .map(|t| t.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    prepared.follow_ups.zone.name()
                );
            }
            Ok(())
        }
        Command::Declare {
            kind,
            severity,
            title,
            summary,
            message,
            client,
        } => {
            let api = connect(&config, &client)?;
            let declaration = Declaration {
                kind,
                severity,
                title,
                summary,
                localized: Default::default(),
                message,
            };
            let outcome: TransitionOutcome = api.post("/v1/crises", &declaration).await?;
            print_outcome(&outcome, &client);
            Ok(())
        }
        Command::Update {
            id,
            message,
            kind,
            severity,
            title,
            summary,
            client,
        } => {
            let api = connect(&config, &client)?;
            let update = CrisisUpdate {
                message,
                kind,
                severity,
                title,
                summary,
                localized: None,
            };
            let outcome: TransitionOutcome = api
                .post(&format!("/v1/crises/{id}/updates"), &update)
                .await?;
            print_outcome(&outcome, &client);
            Ok(())
        }
        Command::Resolve {
            id,
            message,
            client,
        } => {
            let api = connect(&config, &client)?;
            let outcome: TransitionOutcome = api
                .post(
                    &format!("/v1/crises/{id}/resolve"),
                    &ResolveRequest { message },
                )
                .await?;
            print_outcome(&outcome, &client);
            Ok(())
        }
        Command::Preview {
            kind,
            severity,
            title,
            summary,
            message,
            announcement,
            lang,
            channel,
            client,
        } => {
            let api = connect(&config, &client)?;
            let request = PreviewRequest {
                declaration: Declaration {
                    kind,
                    severity,
                    title,
                    summary,
                    localized: Default::default(),
                    message,
                },
                announcement: Some(announcement),
                lang,
                channel,
            };
            let response: PreviewResponse = api.post("/v1/preview", &request).await?;
            if client.json {
                print_json(&response);
            } else {
                print_previews(&response);
            }
            Ok(())
        }
        Command::Status {
            id,
            all,
            watch: true,
            client,
        } => {
            let api = connect(&config, &client)?;
            watch_status(&api, id.as_deref(), all, client.json).await
        }
        Command::Dead {
            crisis,
            channel,
            limit,
            client,
        } => {
            let api = connect(&config, &client)?;
            let mut query = vec![("limit", limit.to_string())];
            query.extend(crisis.map(|c| ("crisis", c)));
            query.extend(channel.map(|c| ("channel", c)));
            let query = serde_urlencoded::to_string(&query)
                .map_err(|e| Failure::Runtime(anyhow!("cannot build the query: {e}")))?;
            let list: DeadList = api.get(&format!("/v1/deliveries/dead?{query}")).await?;
            if client.json {
                print_json(&list);
            } else {
                print_dead(&list);
            }
            Ok(())
        }
        Command::RetryDead {
            crisis,
            channel,
            yes,
            client,
        } => retry_dead(&config, crisis, channel, yes, &client).await,
        Command::Confirm { id, client } => {
            let api = connect(&config, &client)?;
            let outcome: TransitionOutcome = api
                .post(&format!("/v1/crises/{id}/confirm"), &serde_json::json!({}))
                .await?;
            print_outcome(&outcome, &client);
            Ok(())
        }
        Command::Discard { id, client } => {
            let api = connect(&config, &client)?;
            let pending = api
                .post(&format!("/v1/crises/{id}/discard"), &serde_json::json!({}))
                .await?;
            hooks::print_decision(&pending, client.json);
            Ok(())
        }
        Command::Hooks {
            command:
                HooksCommand::Log {
                    hook,
                    limit,
                    client,
                },
        } => {
            let api = connect(&config, &client)?;
            hooks::print_log(&api, hook, limit, client.json).await
        }
        Command::Schedule { id, tz, client } => {
            let zone = match tz.as_deref() {
                Some(name) => Some(name.parse::<chrono_tz::Tz>().map_err(|_| {
                    Failure::Usage(anyhow!(
                        "--tz `{name}` is not an IANA time zone (e.g. Europe/London)"
                    ))
                })?),
                None => std::env::var("TZ")
                    .ok()
                    .and_then(|tz| tz.trim_start_matches(':').parse().ok()),
            };
            let api = connect(&config, &client)?;
            let path = match &id {
                Some(id) => format!("/v1/crises/{id}/follow-ups"),
                None => "/v1/follow-ups".to_owned(),
            };
            let path = match zone {
                Some(zone) => format!("{path}?tz={}", zone.name()),
                None => path,
            };
            let list: ScheduleList = api.get(&path).await?;
            if client.json {
                print_json(&list);
            } else {
                let zone = zone
                    .or_else(|| list.time_zone.parse().ok())
                    .unwrap_or(chrono_tz::Tz::UTC);
                print!("{}", list.table(zone, id.is_none()));
            }
            Ok(())
        }
        Command::Status {
            id,
            all,
            watch: false,
            client,
        } => {
            let api = connect(&config, &client)?;
            match id {
                Some(id) => {
                    let detail: CrisisDetail = api.get(&format!("/v1/crises/{id}")).await?;
                    if client.json {
                        print_json(&detail);
                    } else {
                        print_detail(&detail);
                    }
                }
                None => {
                    if !client.json {
                        hooks::print_proposals(&api).await?;
                    }
                    let filter = if all { "all" } else { "active" };
                    let list: CrisisList = api.get(&format!("/v1/crises?status={filter}")).await?;
                    if client.json {
                        print_json(&list);
                    } else {
                        print_list(&list, all);
                    }
                }
            }
            Ok(())
        }
    }
}

async fn serve(config: &Path) -> Result<(), Failure> {
    let settings = Settings::load(config).map_err(|e| Failure::Usage(e.into()))?;
    let application = Application::build(settings).await?;
    let shutdown = CancellationToken::new();
    let stopped = CancellationToken::new();
    let signals = crate::lifecycle::handle_signals(
        shutdown.clone(),
        stopped.clone(),
        application.reloader(),
        config.to_path_buf(),
    )
    .map_err(|e| Failure::Runtime(anyhow!("cannot install signal handlers: {e}")))?;
    let result = application.run_until_stopped(shutdown).await;
    stopped.cancel();
    signals.abort();
    result.map_err(Failure::from)
}

/// The daemon's URL and token for the client verbs.
fn connect(config: &Path, client: &Client) -> Result<ApiClient, Failure> {
    let loaded = Settings::load(config);
    let settings = loaded.as_ref().ok();
    let url = client.url.clone().unwrap_or_else(|| match settings {
        Some(s) if s.server.listen.ip().is_unspecified() => {
            format!("http://127.0.0.1:{}", s.server.listen.port())
        }
        Some(s) => format!("http://{}", s.server.listen),
        None => "http://127.0.0.1:8750".to_owned(),
    });
    let token = match std::env::var("CRISISD_TOKEN") {
        Ok(token) if !token.trim().is_empty() => Secret::new(token.trim()),
        _ => match &loaded {
            Ok(settings) => settings
                .api
                .tokens
                .iter()
                .find_map(|t| t.secret().read().ok())
                .ok_or_else(|| {
                    Failure::Usage(anyhow!(
                        "no API token: set CRISISD_TOKEN, or run where {} names a readable token_file \
                         (the daemon writes a generated one when it starts)",
                        config.display()
                    ))
                })?,
            Err(err) => {
                return Err(Failure::Usage(anyhow!(
                    "no API token: CRISISD_TOKEN is not set and the config could not be read: {err}"
                )));
            }
        },
    };
    // The person at the terminal, for the audit trail; in a bare
    // environment (a container, cron) the user id at least.
    let actor = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .or_else(|| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata("/proc/self")
                .ok()
                .map(|m| format!("uid {}", m.uid()))
        });
    ApiClient::new(&url, token, actor).map_err(|e| Failure::Runtime(e.into()))
}

fn print_previews(response: &PreviewResponse) {
    for preview in &response.previews {
        let form = match preview.form {
            Form::Long => "long form",
            Form::Short => "short form",
        };
        println!(
            "── {} ({}) · {} · {form} · {}",
            preview.channel, preview.kind, preview.locale, preview.measurement
        );
        if let Some(problem) = &preview.problem {
            println!("   ! {problem}");
        }
        if let Some(subject) = &preview.subject {
            println!("   Subject: {subject}");
        }
        for line in preview.text.lines() {
            println!("   {line}");
        }
        println!();
    }
}

fn print_json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(err) => eprintln!("cannot print JSON: {err}"),
    }
}

fn print_outcome(outcome: &TransitionOutcome, client: &Client) {
    if client.json {
        print_json(outcome);
        return;
    }
    // The id alone on stdout, so scripts can capture it; the rest on stderr.
    println!("{}", outcome.crisis.id);
    eprintln!(
        "{} {} ({} {}): {} deliveries queued",
        outcome.announcement,
        outcome.crisis.title,
        outcome.crisis.severity,
        outcome.crisis.kind,
        outcome.deliveries
    );
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
fn format_rate(rate: f64) -> String {
    if rate >= 100.0 {
        format!("{rate:.0}/s")
    } else {
        format!("{rate:.1}/s")
    }
}

/// `done` when nothing is left, `—` while nothing moves, else `42s`,
/// `3m05s`, `1h02m`.
fn format_eta(c: &StateCounts) -> String {
    match c.eta_seconds {
        _ if c.remaining() == 0 => "done".to_owned(),
        None => "—".to_owned(),
        Some(s) if s < 60 => format!("{s}s"),
        Some(s) if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        Some(s) => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

fn print_summary(summary: &CrisisSummary, color: bool) {
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
    }
}

fn print_list(list: &CrisisList, all: bool) {
    let color = std::io::stdout().is_terminal();
    if list.crises.is_empty() {
        println!(
            "{}",
            if all {
                "No crises."
            } else {
                "No active crisis."
            }
        );
    }
    if !list.crises.is_empty() {
        let label = if all { "Crises" } else { "Active crises" };
        println!("{label}: {}", list.crises.len());
    }
    for summary in &list.crises {
        print_summary(summary, color);
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

fn print_detail(detail: &CrisisDetail) {
    let summary = CrisisSummary {
        crisis: detail.crisis.clone(),
        deliveries: detail.deliveries.clone(),
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

/// How often the progress bars are redrawn.
const BAR_INTERVAL: Duration = Duration::from_secs(1);
/// How often plain lines (and JSON lines) are printed: often enough to
/// follow, rare enough for a log.
const LINE_INTERVAL: Duration = Duration::from_secs(2);
/// A watch gives up once the daemon has been unreachable this long.
const WATCH_GIVE_UP: Duration = Duration::from_secs(30);

fn unfinished(summary: &CrisisSummary) -> bool {
    summary.deliveries.values().any(|c| c.remaining() > 0)
}

/// The crises `status --watch` follows.
async fn watched(
    api: &ApiClient,
    id: Option<&str>,
    all: bool,
) -> Result<Vec<CrisisSummary>, ClientError> {
    match id {
        Some(id) => {
            let detail: CrisisDetail = api.get(&format!("/v1/crises/{id}")).await?;
            Ok(vec![CrisisSummary {
                crisis: detail.crisis,
                deliveries: detail.deliveries,
            }])
        }
        None => {
            // Every crisis, then filtered: a resolved one whose all-clear is
            // still going out is followed too, not dropped at the resolve.
            let list: CrisisList = api.get("/v1/crises?status=all").await?;
            Ok(list
                .crises
                .into_iter()
                .filter(|s| all || s.crisis.is_active() || unfinished(s))
                .collect())
        }
    }
}

/// Where `status --watch` draws.
enum WatchView {
    /// A terminal: progress bars redrawn in place.
    Bars(Box<Bars>),
    /// A pipe or file: one plain line per channel per tick.
    Lines,
    /// `--json`: one JSON object per tick.
    Json,
}

impl WatchView {
    fn show(&mut self, shown: &[CrisisSummary]) -> std::io::Result<()> {
        match self {
            WatchView::Bars(bars) => {
                bars.show(shown);
                Ok(())
            }
            WatchView::Lines => print_lines(shown),
            WatchView::Json => {
                let line = serde_json::to_string(&serde_json::json!({
                    "at": Utc::now(),
                    "crises": shown,
                }))?;
                writeln!(std::io::stdout().lock(), "{line}")
            }
        }
    }

    fn warn(&self, message: &str) {
        match self {
            // Above the bars, so they are not torn.
            WatchView::Bars(bars) => {
                if bars.multi.println(message).is_err() {
                    eprintln!("{message}");
                }
            }
            WatchView::Lines | WatchView::Json => eprintln!("{message}"),
        }
    }

    /// Finished: the bars stay drawn as they last were.
    fn finish(&self) {
        if let WatchView::Bars(bars) = self {
            for bar in bars.headers.values().chain(bars.bars.values()) {
                bar.finish();
            }
        }
    }

    /// Interrupted or given up: the bars stay as last drawn, and are not
    /// redrawn (a redraw after the terminal echoed ^C would leave a torn
    /// copy above them).
    fn stop(&self) {
        if let WatchView::Bars(bars) = self {
            bars.multi.set_draw_target(ProgressDrawTarget::hidden());
            println!();
            println!("Stopped watching; the daemon goes on sending.");
        }
    }
}

/// `status --watch`: redraws until nothing is left pending, in flight or
/// retrying for the crises shown, or until Ctrl-C; both exit 0.
async fn watch_status(
    api: &ApiClient,
    id: Option<&str>,
    all: bool,
    json: bool,
) -> Result<(), Failure> {
    let mut view = if json {
        WatchView::Json
    } else if std::io::stdout().is_terminal() {
        WatchView::Bars(Box::new(Bars::new()?))
    } else {
        WatchView::Lines
    };
    let interval = match view {
        WatchView::Bars(_) => BAR_INTERVAL,
        WatchView::Lines | WatchView::Json => LINE_INTERVAL,
    };
    // Without a signal handler, Ctrl-C ends the process as usual; the
    // watch must not read a failed install as an interruption.
    let interrupted = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(interrupted);
    let mut failing_since: Option<tokio::time::Instant> = None;
    let mut answered = false;
    loop {
        // Interruptible while waiting for the daemon too.
        let fetched = tokio::select! {
            _ = &mut interrupted => {
                view.stop();
                return Ok(());
            }
            fetched = watched(api, id, all) => fetched,
        };
        match fetched {
            Ok(shown) => {
                failing_since = None;
                match view.show(&shown) {
                    Ok(()) => {}
                    // The reader went away (`| head`): nothing left to do.
                    Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                    Err(err) => return Err(Failure::Runtime(anyhow!("cannot print: {err}"))),
                }
                if !shown.iter().any(unfinished) {
                    view.finish();
                    if !json {
                        print_final(&shown, id.is_some(), all);
                    }
                    return Ok(());
                }
                answered = true;
            }
            // A wrong id, token or URL is reported at once, as without --watch.
            Err(err) if !answered => return Err(err.into()),
            Err(err) => {
                let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() >= WATCH_GIVE_UP {
                    view.stop();
                    return Err(err.into());
                }
                view.warn(&format!("{err}; trying again"));
            }
        }
        tokio::select! {
            _ = &mut interrupted => {
                view.stop();
                return Ok(());
            }
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

fn print_final(shown: &[CrisisSummary], one: bool, all: bool) {
    if shown.is_empty() {
        println!(
            "{}",
            if all {
                "No crises."
            } else {
                "No active crisis."
            }
        );
        return;
    }
    if !one {
        println!("Nothing left to send for the crises shown.");
    }
    let color = std::io::stdout().is_terminal();
    for summary in shown {
        print_summary(summary, color);
    }
}

/// One line per crisis and channel, for logs: no escape codes, key=value.
fn print_lines(shown: &[CrisisSummary]) -> std::io::Result<()> {
    let now = Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    let mut out = std::io::stdout().lock();
    for summary in shown {
        for (channel, c) in &summary.deliveries {
            let eta = match c.eta_seconds {
                Some(s) => format!("{s}s"),
                None => "-".to_owned(),
            };
            writeln!(
                out,
                "{now} {} {channel} sent={} pending={} in_flight={} retrying={} dead={} rate={:.1}/s eta={eta}",
                summary.crisis.id,
                c.sent,
                c.pending,
                c.in_flight,
                c.retrying,
                c.dead,
                c.rate_per_second
            )?;
        }
    }
    out.flush()
}

/// Progress bars: per crisis a header line, under it one bar per channel.
struct Bars {
    multi: MultiProgress,
    header_style: ProgressStyle,
    bar_style: ProgressStyle,
    headers: BTreeMap<CrisisId, ProgressBar>,
    bars: BTreeMap<(CrisisId, String), ProgressBar>,
}

impl Bars {
    fn new() -> Result<Self, Failure> {
        let style = |template: &str| {
            ProgressStyle::with_template(template)
                .map_err(|e| Failure::Runtime(anyhow!("progress bar template: {e}")))
        };
        Ok(Self {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            header_style: style("{msg}")?,
            bar_style: style("  {prefix:<12} [{bar:28.cyan/blue}] {pos:>7}/{len:<7} {msg}")?
                .progress_chars("=> "),
            headers: BTreeMap::new(),
            bars: BTreeMap::new(),
        })
    }

    fn show(&mut self, shown: &[CrisisSummary]) {
        let Self {
            multi,
            header_style,
            bar_style,
            headers,
            bars,
        } = self;
        // Crises that left the list (another watcher's --all, a finished
        // all-clear) take their bars with them.
        headers.retain(|id, bar| {
            let keep = shown.iter().any(|s| s.crisis.id == *id);
            if !keep {
                multi.remove(bar);
            }
            keep
        });
        bars.retain(|(id, channel), bar| {
            let keep = shown
                .iter()
                .any(|s| s.crisis.id == *id && s.deliveries.contains_key(channel));
            if !keep {
                multi.remove(bar);
            }
            keep
        });
        for summary in shown {
            let crisis = &summary.crisis;
            let header = headers
                .entry(crisis.id)
                .or_insert_with(|| multi.add(ProgressBar::new(0).with_style(header_style.clone())));
            header.set_message(format!(
                "{}  {} {}  {}  [{}]{}",
                crisis.id,
                crisis.severity,
                crisis.kind,
                crisis.title,
                crisis.status,
                if summary.deliveries.is_empty() {
                    "  (no deliveries)"
                } else {
                    ""
                }
            ));
            // Bars are kept in channel order under their crisis's header.
            let mut last = header.clone();
            for (channel, c) in &summary.deliveries {
                let bar = bars.entry((crisis.id, channel.clone())).or_insert_with(|| {
                    let bar = multi.insert_after(
                        &last,
                        ProgressBar::new(c.total()).with_style(bar_style.clone()),
                    );
                    bar.set_prefix(channel.clone());
                    bar
                });
                bar.set_length(c.total());
                bar.set_position(c.sent + c.dead);
                bar.set_message(format!(
                    "pending {} · in flight {} · retrying {} · dead {} · {} · ETA {}",
                    c.pending,
                    c.in_flight,
                    c.retrying,
                    c.dead,
                    format_rate(c.rate_per_second),
                    format_eta(c)
                ));
                last = bar.clone();
            }
        }
    }
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

/// `retry-dead`: counts and asks first unless `--yes`; never asks a pipe.
async fn retry_dead(
    config: &Path,
    crisis: Option<String>,
    channel: Option<String>,
    yes: bool,
    client: &Client,
) -> Result<(), Failure> {
    if !yes && !std::io::stdin().is_terminal() {
        return Err(Failure::Usage(anyhow!(
            "retry-dead asks for confirmation and stdin is not a terminal; pass --yes to requeue \
             without asking (nothing was requeued)"
        )));
    }
    let api = connect(config, client)?;
    let scope = match (&crisis, &channel) {
        (Some(c), Some(ch)) => format!(" of crisis {c} on channel {ch}"),
        (Some(c), None) => format!(" of crisis {c}"),
        (None, Some(ch)) => format!(" on channel {ch}"),
        (None, None) => String::new(),
    };
    let mut request = RetryDeadRequest {
        crisis,
        channel,
        dry_run: !yes,
    };
    const PATH: &str = "/v1/deliveries/retry-dead";
    if !yes {
        let preview: RetryDeadResponse = api.post(PATH, &request).await?;
        let n = preview.would_requeue.unwrap_or(0);
        if n == 0 {
            if client.json {
                print_json(&RetryDeadResponse::default());
            } else {
                println!("No dead deliveries to requeue{scope}.");
            }
            return Ok(());
        }
        let question =
            format!("Requeue {n} dead deliveries{scope}? They will be sent again. [y/N] ");
        if !confirm(question).await? {
            eprintln!("Nothing requeued.");
            return Ok(());
        }
        request.dry_run = false;
    }
    let response: RetryDeadResponse = api.post(PATH, &request).await?;
    if client.json {
        print_json(&response);
    } else {
        println!("Requeued {} dead deliveries{scope}.", response.requeued);
        if response.requeued > 0 {
            eprintln!(
                "The daemon sends them within its poll interval; follow them with `crisisd status --watch`."
            );
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

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
    fn rates_keep_one_decimal_until_they_are_large() {
        assert_eq!(format_rate(0.0), "0.0/s");
        assert_eq!(format_rate(12.46), "12.5/s");
        assert_eq!(format_rate(345.6), "346/s");
    }

    #[test]
    fn the_new_verbs_parse_and_retry_dead_needs_no_argument() {
        let cli = Cli::try_parse_from(["crisisd", "retry-dead", "--crisis", "x", "--yes"])
            .expect("parses");
        assert!(matches!(cli.command, Command::RetryDead { yes: true, .. }));
        let cli = Cli::try_parse_from(["crisisd", "status", "--watch", "--all"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Status {
                watch: true,
                all: true,
                ..
            }
        ));
        assert!(Cli::try_parse_from(["crisisd", "dead", "--limit", "1001"]).is_err());
        Cli::command().debug_assert();
    }
}
