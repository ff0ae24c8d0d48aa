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

/// `crisisd status ID | head`: once the reader of our output has gone,
/// `println!` panics on the broken pipe. That is not an error of ours:
/// stop quietly, as a program killed by SIGPIPE would (exit 141).
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    quiet_on_broken_pipe();
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
