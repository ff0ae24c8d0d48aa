use std::process::ExitCode;

use clap::Parser;
use crisisd::cli::{self, Cli, Command};

fn init_logging(cli: &Cli) {
    let default = if matches!(cli.command, Command::Serve) {
        "info"
    } else {
        "warn"
    };
    crisisd::logging::init(cli.log_format, default);
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
