//! `crisisd check-config`: validate everything `serve` would load, start
//! nothing.

use std::path::Path;

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
    sudo env CREDENTIALS_DIRECTORY=/etc/crisisd/credentials crisisd check-config -c /etc/crisisd/crisisd.toml\n\n\
    Exit codes: 0 valid, 2 with the list of problems.";

pub fn run(config: &Path) -> Result<(), Failure> {
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
