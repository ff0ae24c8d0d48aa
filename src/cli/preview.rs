//! `crisisd preview`: every channel's message for a crisis, rendered by the
//! daemon and sent nowhere.

use std::path::Path;

use clap::Args;

use super::Failure;
use super::client_args::ClientArgs;
use super::declare::DeclarationArgs;
use crate::domain::AnnouncementKind;
use crate::message::Form;
use crate::preview::{PreviewRequest, PreviewResponse};

/// Render every channel's message for a crisis without declaring or sending anything.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  crisisd preview --kind outage --severity major --title \"Payments are down\" \\\n      --summary \"Card payments fail.\" --lang bn\n  crisisd preview ... --channel sms      # an SMS, even before a gateway is configured"
)]
pub struct PreviewArgs {
    // The same crisis arguments as `declare`, converted the same way.
    #[command(flatten)]
    pub declaration: DeclarationArgs,
    /// Which announcement: initial, update or resolved.
    #[arg(long, value_enum, default_value_t = AnnouncementKind::Initial)]
    pub announcement: AnnouncementKind,
    /// Only this language.
    #[arg(long)]
    pub lang: Option<String>,
    /// A configured channel's name, or a type (email, sms, social, chat, mastodon, ...).
    #[arg(long)]
    pub channel: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

impl PreviewArgs {
    pub async fn run(self, config: &Path) -> Result<(), Failure> {
        let api = self.client.connect(config)?;
        let request = PreviewRequest {
            declaration: self.declaration.try_into().map_err(Failure::Usage)?,
            announcement: Some(self.announcement),
            lang: self.lang,
            channel: self.channel,
        };
        let response: PreviewResponse = api.post("/v1/preview", &request).await?;
        self.client.print(&response, print_previews);
        Ok(())
    }
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
