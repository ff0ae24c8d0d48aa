//! Log output: human-readable text on a terminal, JSON lines under
//! systemd or when asked. Under journald each line starts with its syslog
//! level (`<3>` for errors, ...), which journald strips and keeps as the
//! entry's priority, so `journalctl -p warning` works on JSON lines too.

use std::io::{IsTerminal, Write};

use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// How log lines are written (`--log-format`). The variants carry no doc
/// comments: clap would list them as a second description in `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    // JSON under the journal, text otherwise: see `wants_json`.
    Auto,
    Text,
    Json,
}

/// Whether stderr is the journal stream systemd set up for this process:
/// `$JOURNAL_STREAM` names its device and inode.
pub fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    match std::fs::metadata("/proc/self/fd/2") {
        Ok(meta) => dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino()),
        // Without /proc, trust the variable.
        Err(_) => true,
    }
}

/// `auto` is JSON when stderr is not a terminal and systemd's journal is
/// listening, text otherwise.
pub fn wants_json(format: LogFormat) -> bool {
    match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal() && stderr_is_journal(),
    }
}

/// Installs the global subscriber; `default_level` applies unless
/// `RUST_LOG` says otherwise.
pub fn init(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let writer = Stderr {
        journal: stderr_is_journal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    if wants_json(format) {
        builder.json().with_current_span(true).init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

/// Stderr, with the syslog level prefix when it is the journal.
#[derive(Debug, Clone, Copy)]
struct Stderr {
    journal: bool,
}

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Self::Writer {
        Line { prefix: None }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        Line {
            prefix: self.journal.then(|| syslog_prefix(*meta.level())),
        }
    }
}

fn syslog_prefix(level: Level) -> &'static str {
    match level {
        Level::ERROR => "<3>",
        Level::WARN => "<4>",
        Level::INFO => "<6>",
        Level::DEBUG | Level::TRACE => "<7>",
    }
}

/// One log line; the prefix goes before its first byte.
struct Line {
    prefix: Option<&'static str>,
}

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut stderr = std::io::stderr().lock();
        if let Some(prefix) = self.prefix.take() {
            stderr.write_all(prefix.as_bytes())?;
        }
        stderr.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journald_gets_the_syslog_level_of_each_line() {
        assert_eq!(syslog_prefix(Level::ERROR), "<3>");
        assert_eq!(syslog_prefix(Level::WARN), "<4>");
        assert_eq!(syslog_prefix(Level::INFO), "<6>");
        assert_eq!(syslog_prefix(Level::DEBUG), "<7>");
    }

    #[test]
    fn an_explicit_format_wins_over_the_environment() {
        assert!(wants_json(LogFormat::Json));
        assert!(!wants_json(LogFormat::Text));
    }
}
