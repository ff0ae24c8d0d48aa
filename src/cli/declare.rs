//! `crisisd declare`, `update` and `resolve`: the transitions of a crisis,
//! each posted to the daemon and answered with the announcement it queued.
//! The crisis arguments `declare` takes are shared with `preview`.

use std::path::Path;

use clap::Args;
use serde::Serialize;

use super::Failure;
use super::client_args::ClientArgs;
use super::texts::{TextArgs, Texts};
use crate::domain::{AudienceSelection, CrisisUpdate, Declaration, Kind, Severity};
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
    /// An exercise: only the drill audience ([audience] drill_file) gets it, every message
    /// is marked DRILL, and it can never become live.
    #[arg(long)]
    pub drill: bool,
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
            drill: args.drill,
            audience: AudienceSelection::default(),
            channels: Vec::new(),
        })
    }
}

/// Who a declaration or update is for and on which channels; none given:
/// everyone on every channel (an update: the same as before).
#[derive(Debug, Args)]
pub struct SelectionArgs {
    /// Send on this configured channel only; repeat for more (default: every channel).
    #[arg(long = "channel", value_name = "NAME")]
    pub channels: Vec<String>,
    /// Send only to readers of this locale (`bn` includes `bn-BD`); repeat for more.
    #[arg(long = "locale", value_name = "LOCALE")]
    pub locales: Vec<String>,
    /// Send only to readers of this region (the audience file's `region` column); repeat
    /// for more. With --locale too, a reader must match both.
    #[arg(long = "region", value_name = "REGION")]
    pub regions: Vec<String>,
}

impl SelectionArgs {
    fn audience(&self) -> AudienceSelection {
        AudienceSelection {
            locales: self.locales.clone(),
            regions: self.regions.clone(),
        }
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
    pub selection: SelectionArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

impl DeclareArgs {
    pub async fn run(self, config: &Path) -> Result<(), Failure> {
        let mut declaration = Declaration::try_from(self.declaration).map_err(Failure::Usage)?;
        declaration.separate = self.separate;
        declaration.audience = self.selection.audience();
        declaration.channels = self.selection.channels.clone();
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
    /// A new audience or channels for this update and what follows (none given: the same).
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// From this update on, send to everyone again.
    #[arg(long, conflicts_with_all = ["locales", "regions"])]
    pub everyone: bool,
    /// From this update on, send on every channel again.
    #[arg(long, conflicts_with = "channels")]
    pub all_channels: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

impl UpdateArgs {
    /// The audience from this update on, if it changes.
    fn audience_change(&self) -> Option<AudienceSelection> {
        let chosen = !self.selection.locales.is_empty() || !self.selection.regions.is_empty();
        (self.everyone || chosen).then(|| self.selection.audience())
    }

    /// The channels from this update on, if they change (`[]`: every one).
    fn channels_change(&self) -> Option<Vec<String>> {
        (self.all_channels || !self.selection.channels.is_empty())
            .then(|| self.selection.channels.clone())
    }

    pub async fn run(self, config: &Path) -> Result<(), Failure> {
        let texts = self.texts.load().map_err(Failure::Usage)?;
        let (audience, channels) = (self.audience_change(), self.channels_change());
        let update = CrisisUpdate {
            message: self.message.or(texts.message),
            kind: self.kind,
            severity: self.severity,
            title: self.title.or(texts.title),
            summary: self.summary.or(texts.summary),
            localized: (!texts.localized.is_empty()).then_some(texts.localized),
            fall_back: self.fall_back,
            audience,
            channels,
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
    fn declare_and_update_take_channels_locales_and_regions_and_an_update_keeps_them_unless_told() {
        let args = ["crisisd", "declare"].into_iter().chain(CRISIS).chain([
            "--channel",
            "email",
            "--channel",
            "sms",
            "--locale",
            "bn",
            "--region",
            "sylhet",
        ]);
        let Command::Declare(declare) = Cli::try_parse_from(args).expect("parses").command else {
            panic!("not a declare");
        };
        assert_eq!(declare.selection.channels, ["email", "sms"]);
        assert_eq!(
            declare.selection.audience(),
            AudienceSelection {
                locales: vec!["bn".into()],
                regions: vec!["sylhet".into()],
            }
        );
        let update = |extra: &[&str]| {
            let args = ["crisisd", "update", "0193"]
                .into_iter()
                .chain(extra.iter().copied());
            match Cli::try_parse_from(args).expect("parses").command {
                Command::Update(update) => update,
                _ => panic!("not an update"),
            }
        };
        let same = update(&["--message", "More news."]);
        assert_eq!(
            (same.audience_change(), same.channels_change()),
            (None, None)
        );
        let wider = update(&["--everyone", "--all-channels"]);
        assert_eq!(wider.audience_change(), Some(AudienceSelection::default()));
        assert_eq!(wider.channels_change(), Some(Vec::new()));
        assert!(
            Cli::try_parse_from(["crisisd", "update", "0193", "--everyone", "--locale", "bn"])
                .is_err(),
            "everyone and a locale contradict each other"
        );
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
                drill: false,
                audience: Default::default(),
                channels: Vec::new(),
            }
        );
    }
}
