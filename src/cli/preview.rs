//! `crisisd preview`: every channel's message for a crisis, sent nowhere:
//! rendered by the running daemon when one answers, else here from the
//! config (the same `preview::preview`, so the same `Renderer::compose`).

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use chrono::Utc;
use clap::Args;

use super::Failure;
use super::client::ClientError;
use super::client_args::ClientArgs;
use super::declare::DeclarationArgs;
use crate::app;
use crate::banner::BannerView;
use crate::channels;
use crate::domain::AnnouncementKind;
use crate::message::Form;
use crate::preview::{Preview, PreviewRequest, PreviewResponse, PreviewSource, preview};

const AFTER_HELP: &str = "\
Without --local, the running daemon renders it (its templates and directory as loaded); when no \
daemon answers, it is rendered here from the config, exactly as the daemon would. The first line \
on stderr says which.

Examples:
  crisisd preview --kind outage --severity major --title \"Payments are down\" \\
      --summary \"Card payments fail.\" --lang bn
  crisisd preview ... --channel sms            an SMS, even before a gateway is configured
  crisisd preview ... --localized bn.title=\"পেমেন্ট বন্ধ\" --texts texts.toml --all-locales
  crisisd preview ... --channel email --lang en --html - > email.html
  crisisd preview ... --html out.html          out.en.html, out.bn.html, ... one per language
  crisisd preview ... --announcement follow_up every step of the kind's follow-up plan
  crisisd preview ... --local --config /etc/crisisd/crisisd.toml

Each message is shown with its form and measure (\"SMS: GSM-7, 2 segments of 3 allowed, 287/459\"); \
one that would not be sent is marked UNFIT with the reason. The banner the website would show is \
listed after the messages of an initial or update announcement.";

/// Render every channel's message (and the banner) for a crisis without declaring or sending
/// anything.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct PreviewArgs {
    // The same crisis arguments as `declare`, converted the same way.
    #[command(flatten)]
    pub declaration: DeclarationArgs,
    /// Which announcement: initial, update, resolved, or follow_up (each step of the kind's
    /// follow-up plan).
    #[arg(long, value_enum, default_value_t = AnnouncementKind::Initial)]
    pub announcement: AnnouncementKind,
    /// Only this language (one without templates is refused, naming those there are).
    #[arg(long, conflicts_with = "all_locales")]
    pub lang: Option<String>,
    /// Every language with templates on every channel, social and chat ones too (which
    /// otherwise show their own locale).
    #[arg(long)]
    pub all_locales: bool,
    /// A configured channel's name, or a type (email, sms, social, chat, mastodon, ...).
    #[arg(long)]
    pub channel: Option<String>,
    /// Write the HTML email as the reader sees it to FILE, one FILE.LOCALE.html per language
    /// when there are several; `-` prints it alone on stdout (then exactly one email must be
    /// shown: add --lang).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Render here from the config without asking a daemon.
    #[arg(long)]
    pub local: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

impl PreviewArgs {
    pub async fn run(self, config: &Path) -> Result<(), Failure> {
        let request = PreviewRequest {
            declaration: self.declaration.try_into().map_err(Failure::Usage)?,
            announcement: Some(self.announcement),
            lang: self.lang,
            all_locales: self.all_locales,
            channel: self.channel,
        };
        let response = if self.local {
            render_locally(config, request, "--local")?
        } else {
            through_daemon_or_locally(config, &self.client, request).await?
        };
        for warning in &response.warnings {
            eprintln!("warning: {warning}");
        }
        match &self.html {
            Some(path) if path.as_os_str() == "-" => return print_html(&response),
            Some(path) => write_html(&response, path)?,
            None => {}
        }
        self.client.print(&response, print_response);
        Ok(())
    }
}

/// The daemon's rendering when it answers; else a local one, saying why.
async fn through_daemon_or_locally(
    config: &Path,
    client: &ClientArgs,
    request: PreviewRequest,
) -> Result<PreviewResponse, Failure> {
    let why = match client.connect(config) {
        Ok(api) => match api.post("/v1/preview", &request).await {
            Ok(response) => {
                eprintln!("Rendered by the daemon at {}.", api.base());
                return Ok(response);
            }
            Err(ClientError::Unreachable { url, .. }) => format!("no daemon answered at {url}"),
            Err(other) => return Err(other.into()),
        },
        // Before the first start there is no generated token, and no daemon.
        Err(Failure::Usage(err)) => err.to_string(),
        Err(other) => return Err(other),
    };
    render_locally(config, request, &why)
}

/// What the daemon would render, from the config as `check-config` reads
/// it: the same templates, directory, channels and follow-up plans.
fn render_locally(
    config: &Path,
    request: PreviewRequest,
    why: &str,
) -> Result<PreviewResponse, Failure> {
    eprintln!("Rendered locally from {} ({why}).", config.display());
    let prepared = app::check_config(config)?;
    let source = PreviewSource {
        inputs: &prepared.inputs,
        follow_ups: Some(&prepared.follow_ups),
        standard: channels::standard_profile,
    };
    preview(source, request, Utc::now()).map_err(|err| Failure::Usage(err.into()))
}

fn emails(response: &PreviewResponse) -> Vec<(&Preview, &str)> {
    response
        .previews
        .iter()
        .filter_map(|p| p.html.as_deref().map(|html| (p, html)))
        .collect()
}

fn print_html(response: &PreviewResponse) -> Result<(), Failure> {
    match emails(response).as_slice() {
        [(_, html)] => {
            println!("{html}");
            Ok(())
        }
        [] => Err(Failure::Usage(anyhow!(
            "no email in this preview to print (is an email channel configured, or add \
             --channel email)"
        ))),
        several => Err(Failure::Usage(anyhow!(
            "--html - prints one email, and this preview has {}: add --lang (and --channel)",
            several.len()
        ))),
    }
}

/// `out.html` for one email; `out.en.html`, `out.bn.html` (and the step
/// of a follow-up) for several.
fn write_html(response: &PreviewResponse, path: &Path) -> Result<(), Failure> {
    let emails = emails(response);
    if emails.is_empty() {
        return Err(Failure::Usage(anyhow!(
            "no email in this preview to write (is an email channel configured, or add \
             --channel email)"
        )));
    }
    let single = emails.len() == 1;
    for (preview, html) in emails {
        let target = if single {
            path.to_path_buf()
        } else {
            let stem = path.file_stem().unwrap_or_default().to_string_lossy();
            let step = preview
                .follow_up
                .as_ref()
                .map(|s| format!(".{}", s.step))
                .unwrap_or_default();
            let channel = if response
                .previews
                .iter()
                .any(|p| p.channel != preview.channel)
            {
                format!(".{}", preview.channel)
            } else {
                String::new()
            };
            path.with_file_name(format!("{stem}{channel}{step}.{}.html", preview.locale))
        };
        std::fs::write(&target, html)
            .map_err(|err| Failure::Runtime(anyhow!("cannot write {}: {err}", target.display())))?;
        eprintln!(
            "Wrote {} ({}, {})",
            target.display(),
            preview.channel,
            preview.locale
        );
    }
    Ok(())
}

fn print_response(response: &PreviewResponse) {
    for preview in &response.previews {
        print_preview(preview);
    }
    for banner in &response.banners {
        print_banner(banner);
    }
}

fn print_preview(preview: &Preview) {
    let form = match preview.form {
        Form::Long => "long form",
        Form::Short => "short form",
    };
    let step = preview
        .follow_up
        .as_ref()
        .map(|s| format!("follow-up {} ({}, step {}) · ", s.topic, s.plan, s.step))
        .unwrap_or_default();
    let verdict = if preview.measurement.fits && preview.problem.is_none() {
        "fits"
    } else {
        "✗ UNFIT"
    };
    println!(
        "── {} ({}) · {} · {step}{form} · {} · {verdict}",
        preview.channel,
        preview.kind,
        preview.locale,
        preview.measurement.summary()
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

/// The banner as its script lays it out: the headline, then what its
/// details control opens.
fn print_banner(banner: &BannerView) {
    println!(
        "── banner · {} (GET /v1/banner?lang={})",
        banner.lang, banner.lang
    );
    for crisis in &banner.crises {
        println!("   [{}] {}", crisis.role, crisis.headline);
        println!("   {}", crisis.summary);
        if let Some(message) = &crisis.message {
            println!("   {message}");
        }
    }
    println!("   {}:", banner.labels.contacts);
    for contact in &banner.contacts {
        let open = if contact.open_now {
            &banner.labels.open_now
        } else {
            &banner.labels.closed_now
        };
        println!(
            "   - {}: {} · {open} · {}",
            contact.label, contact.address, contact.best_for
        );
    }
    println!("   {}", banner.status_url);
    println!();
}
