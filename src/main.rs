use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use crisisd::cli::{self, Cli, Command, LogFormat};
use tracing_subscriber::EnvFilter;

fn init_logging(cli: &Cli) {
    let default = if matches!(cli.command, Command::Serve) {
        "info"
    } else {
        "warn"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let json = match cli.log_format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => std::env::var_os("JOURNAL_STREAM").is_some(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            // Our errors carry their causes in their messages; `{:#}` would repeat them.
            eprintln!("error: {}", failure.error());
            ExitCode::from(failure.exit_code())
        }
    }
}
