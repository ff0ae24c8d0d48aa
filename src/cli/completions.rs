//! `crisisd completions`: shell completion scripts.

use clap::{Args, CommandFactory, ValueEnum};

use super::Cli;

/// Print a shell completion script for bash, zsh or fish.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
        crisisd completions bash > /etc/bash_completion.d/crisisd\n  \
        crisisd completions zsh > \"${fpath[1]}/_crisisd\"\n  \
        crisisd completions fish > ~/.config/fish/completions/crisisd.fish")]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Shells `crisisd completions` writes scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl From<Shell> for clap_complete::Shell {
    fn from(shell: Shell) -> Self {
        match shell {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
        }
    }
}

impl CompletionsArgs {
    pub fn run(self) {
        clap_complete::generate(
            clap_complete::Shell::from(self.shell),
            &mut Cli::command(),
            "crisisd",
            &mut std::io::stdout(),
        );
    }
}
