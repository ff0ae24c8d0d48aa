//! The command line: `serve`, `check-config`, and the client verbs that
//! talk to a running daemon.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::app::{self, Application, StartupError};
use crate::client::{ApiClient, ClientError};
use crate::config::{Secret, Settings, config_path};
use crate::crisis::{
    AnnouncementKind, CrisisUpdate, Declaration, Kind, Severity, TransitionOutcome,
};
use crate::http::api::{CrisisDetail, CrisisList, CrisisSummary, ResolveRequest, StateCounts};
use crate::preview::{PreviewRequest, PreviewResponse};
use crate::render::Form;

const EXAMPLES: &str = "\
Examples:
  crisisd serve                                  run the daemon on config/crisisd.toml
  crisisd check-config --config /etc/crisisd/crisisd.toml
  crisisd declare --kind outage --severity major \\
      --title \"Payments are down\" --summary \"Card payments fail; we are on it.\"
  crisisd status
  crisisd update 0193... --message \"Fix deployed; recovering.\"
  crisisd resolve 0193... --message \"All systems normal.\"

Exit codes: 0 ok, 1 runtime error, 2 usage or configuration error.";

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
    /// Log format: `auto` is JSON under systemd (JOURNAL_STREAM set), text otherwise.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Auto,
    Text,
    Json,
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
    Serve,
    /// Validate the config, templates, directory and audience; exit 2 with every problem found.
    CheckConfig,
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
    /// Show active crises with delivery counts per channel, or one crisis in detail.
    Status {
        /// One crisis, with its audit trail and dead deliveries.
        id: Option<String>,
        /// Include resolved crises.
        #[arg(long)]
        all: bool,
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
        Command::CheckConfig => {
            let prepared = app::check_config(&config)?;
            println!(
                "{}: ok ({} channel(s), {} subscriber(s), {} contact(s), locales: {})",
                config.display(),
                prepared.channels.len(),
                prepared.inputs.audience.subscribers.len(),
                prepared.inputs.directory.len(),
                prepared
                    .inputs
                    .renderer
                    .locales()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
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
        Command::Status { id, all, client } => {
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
    let signals = crate::lifecycle::cancel_on_signal(shutdown.clone())
        .map_err(|e| Failure::Runtime(anyhow!("cannot install signal handlers: {e}")))?;
    let result = application.run_until_stopped(shutdown).await;
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
    let actor = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok();
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
        "    {channel:<12} sent {:>6}  pending {:>6}  in flight {:>4}  retrying {:>5}  dead {:>5}",
        c.sent, c.pending, c.in_flight, c.retrying, c.dead
    )
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
        println!("{dead} dead deliveries: `crisisd status ID` lists them with their reasons.");
    }
}

fn print_detail(detail: &CrisisDetail) {
    let summary = CrisisSummary {
        crisis: detail.crisis.clone(),
        deliveries: detail.deliveries.clone(),
    };
    print_summary(&summary, std::io::stdout().is_terminal());
    println!("  {}", detail.crisis.summary);
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
