//! `crisisd check-config`: validate everything `serve` would load, start
//! nothing.

use std::path::Path;

use anyhow::anyhow;
use clap::Args;

use super::Failure;
use crate::app;

pub const ABOUT: &str =
    "Validate the config, templates, directory and audience; exit 2 with every problem found";

pub const LONG_ABOUT: &str = "Validate the config, templates, directory and audience exactly as \
    `serve` and a reload would, without starting anything or writing any file, and report every \
    problem at once. No provider is contacted.";

pub const AFTER_HELP: &str = "Examples:\n  \
    crisisd check-config                                config/crisisd.toml\n  \
    crisisd check-config --config /etc/crisisd/crisisd.toml && systemctl reload crisisd\n  \
    crisisd check-config --connect                      also reach the store, check its migrations\n  \
    sudo env CREDENTIALS_DIRECTORY=/etc/crisisd/credentials crisisd check-config -c /etc/crisisd/crisisd.toml\n\n\
    Exit codes: 0 valid, 2 with the list of problems, 1 when --connect cannot reach the store.";

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// Also connect to the store: say whether it answers and which
    /// migrations a start would apply. Changes nothing.
    #[arg(long)]
    pub connect: bool,
}

pub async fn run(config: &Path, args: &CheckConfigArgs) -> Result<(), Failure> {
    let prepared = app::check_config(config)?;
    let inputs = &prepared.inputs;
    println!(
        "{}: ok ({} channel(s), {} subscriber(s), {} contact(s), locales: {})",
        config.display(),
        prepared.channels.len(),
        inputs.audience.count,
        inputs.directory.len(),
        inputs.renderer.locales().collect::<Vec<_>>().join(", ")
    );
    let location = prepared
        .settings
        .store
        .location()
        .map_err(|e| Failure::Usage(anyhow!(e)))?;
    println!("store: {location}");
    if args.connect {
        let check = app::check_store(&location)
            .await
            .map_err(|e| Failure::Runtime(anyhow!("store: cannot connect: {e}")))?;
        if check.created_at_start {
            println!("store: the file does not exist yet; a start creates it and migrates");
        } else if check.missing_migrations.is_empty() {
            println!("store: reachable, migrations up to date");
        } else {
            println!(
                "store: reachable; a start applies {} migration(s): {}",
                check.missing_migrations.len(),
                check.missing_migrations.join(", ")
            );
        }
    }
    let follow_ups = &prepared.follow_ups;
    if !follow_ups.is_empty() {
        println!(
            "follow-ups: {} resource(s), topics: {}; due times in {}",
            follow_ups.library.len(),
            follow_ups
                .topics()
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            follow_ups.zone.name()
        );
    }
    Ok(())
}
