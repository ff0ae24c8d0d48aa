//! `crisisd declare`, `update` and `resolve`: the transitions of a crisis,
//! each posted to the daemon and answered with the announcement it queued.
//! The crisis arguments `declare` takes are shared with `preview`.

use std::path::Path;

use clap::Args;
use serde::Serialize;

use super::Failure;
use super::client_args::ClientArgs;
use super::texts::{TextArgs, Texts};
use crate::domain::{CrisisUpdate, Declaration, Kind, Severity};
use crate::http::api::ResolveRequest;
use crate::service::TransitionOutcome;

/// What a crisis is: the arguments `declare` and `preview` share, so that a
/// preview shows exactly what the same `declare` would send.
#[derive(Debug, Args)]
pub struct DeclarationArgs {
    /// What kind of crisis; it chooses the follow-up plan and the resources linked.
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// How bad it is: a critical crisis is marked URGENT, and its follow-ups do not wait out
    /// quiet hours.
    #[arg(long, value_enum)]
    pub severity: Severity,
    /// A short headline, e.g. "Payments are down" (or `title` in the --texts file).
    #[arg(long)]
    pub title: Option<String>,
    /// What is happening, in a sentence or two (or `summary` in the --texts file).
    #[arg(long)]
    pub summary: Option<String>,
    /// A message from staff, shown with the announcement on every channel.
    #[arg(long)]
    pub message: Option<String>,
    #[command(flatten)]
    pub texts: TextArgs,
}

impl TryFrom<DeclarationArgs> for Declaration {
    type Error = anyhow::Error;

    fn try_from(args: DeclarationArgs) -> anyhow::Result<Self> {
        let texts = args.texts.load()?;
        Ok(Declaration {
            kind: args.kind,
            severity: args.severity,
            title: Texts::required(args.title, texts.title, "title")?,
            summary: Texts::required(args.summary, texts.summary, "summary")?,
            localized: texts.localized,
            message: args.message.or(texts.message),
            separate: false,
        })
    }
}

/// Declare a crisis; prints its id.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  crisisd declare --kind outage --severity critical --title \"Payments are down\" \\\n      --summary \"Card payments fail since 09:10 UTC.\""
)]
pub struct DeclareArgs {
    #[command(flatten)]
    pub declaration: DeclarationArgs,
    /// Declare it although an active crisis has the same kind and title (without it, the daemon
    /// refuses such a declaration as a duplicate and names the crisis to update instead).
    #[arg(long)]
    pub separate: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

impl DeclareArgs {
    pub async fn run(self, config: &Path) -> Result<(), Failure> {
        let mut declaration = Declaration::try_from(self.declaration).map_err(Failure::Usage)?;
        declaration.separate = self.separate;
        transition(config, &self.client, "/v1/crises", &declaration).await
    }
}

/// Send an update about an active crisis.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  crisisd update 0193... --message \"A fix is rolling out.\" --severity minor"
)]
pub struct UpdateArgs {
    /// Crisis id (from `declare` or `status`).
    pub id: String,
    #[arg(long)]
    pub message: Option<String>,
    /// Reclassify the crisis.
    #[arg(long, value_enum)]
    pub kind: Option<Kind>,
    #[arg(long, value_enum)]
    pub severity: Option<Severity>,
    #[arg(long)]
    pub title: Option<String>,
    #[arg(long)]
    pub summary: Option<String>,
    #[command(flatten)]
    pub texts: TextArgs,
    /// Locales with their own text for what this update changes, and no new text here, read
    /// the default language's from now on (without it, the daemon refuses such an update and
    /// names them).
    #[arg(long)]
    pub fall_back: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

impl UpdateArgs {
    pub async fn run(self, config: &Path) -> Result<(), Failure> {
        let texts = self.texts.load().map_err(Failure::Usage)?;
        let update = CrisisUpdate {
            message: self.message.or(texts.message),
            kind: self.kind,
            severity: self.severity,
            title: self.title.or(texts.title),
            summary: self.summary.or(texts.summary),
            localized: (!texts.localized.is_empty()).then_some(texts.localized),
            fall_back: self.fall_back,
        };
        let path = format!("/v1/crises/{}/updates", self.id);
        transition(config, &self.client, &path, &update).await
    }
}

/// Resolve a crisis: send the all-clear and take the banner down.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  crisisd resolve 0193... --message \"Payments work again. Thank you for your patience.\""
)]
pub struct ResolveArgs {
    pub id: String,
    #[arg(long)]
    pub message: Option<String>,
    /// The message in other languages: `--localized bn.message=…`, or a --texts file.
    #[command(flatten)]
    pub texts: TextArgs,
    /// Locales with their own message and none here read the default language's.
    #[arg(long)]
    pub fall_back: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

impl ResolveArgs {
    pub async fn run(self, config: &Path) -> Result<(), Failure> {
        let path = format!("/v1/crises/{}/resolve", self.id);
        let texts = self.texts.load().map_err(Failure::Usage)?;
        texts.messages_only().map_err(Failure::Usage)?;
        let request = ResolveRequest {
            message: self.message.or(texts.message),
            localized: texts.localized,
            fall_back: self.fall_back,
        };
        transition(config, &self.client, &path, &request).await
    }
}

/// Posts a transition (declare, update, resolve, confirm) and prints the
/// announcement it queued.
pub async fn transition<B: Serialize>(
    config: &Path,
    client: &ClientArgs,
    path: &str,
    body: &B,
) -> Result<(), Failure> {
    let api = client.connect(config)?;
    let outcome: TransitionOutcome = api.post(path, body).await?;
    client.print(&outcome, print_outcome);
    Ok(())
}

fn print_outcome(outcome: &TransitionOutcome) {
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
    if let Some(why) = &outcome.planning_pending {
        eprintln!("Planning pending: {why}");
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    const CRISIS: [&str; 10] = [
        "--kind",
        "outage",
        "--severity",
        "critical",
        "--title",
        "Payments are down",
        "--summary",
        "Card payments fail.",
        "--message",
        "We are on it.",
    ];

    fn parse(verb: &str) -> Command {
        let args = ["crisisd", verb].into_iter().chain(CRISIS);
        Cli::try_parse_from(args).expect("parses").command
    }

    #[test]
    fn declare_and_preview_read_the_same_crisis_into_the_same_declaration() {
        let Command::Declare(declare) = parse("declare") else {
            panic!("not a declare");
        };
        let Command::Preview(preview) = parse("preview") else {
            panic!("not a preview");
        };
        let declared = Declaration::try_from(declare.declaration).unwrap();
        assert_eq!(
            declared,
            Declaration::try_from(preview.declaration).unwrap()
        );
        assert_eq!(
            declared,
            Declaration {
                kind: Kind::Outage,
                severity: Severity::Critical,
                title: "Payments are down".to_owned(),
                summary: "Card payments fail.".to_owned(),
                localized: Default::default(),
                message: Some("We are on it.".to_owned()),
                separate: false,
            }
        );
    }
}
