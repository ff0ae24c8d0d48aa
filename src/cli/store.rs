//! `crisisd store copy`: a SQLite store copied into PostgreSQL, the move
//! from one daemon to several. It works on the stores directly (no daemon,
//! no config file): the source must not be in use, the target must be
//! empty unless `--force`.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use clap::{Args, Subcommand};

use super::Failure;
use crate::config::StoreLocation;
use crate::outbox::copy::{self, CopyError, Progress};

const AFTER_HELP: &str = "Examples:\n  \
    crisisd store copy --from sqlite:data/crisisd.db --to postgres://crisisd@db.internal/crisisd\n  \
    CRISISD_TARGET='postgres://crisisd:secret@db/crisisd' \\\n    \
    crisisd store copy --from sqlite:data/crisisd.db --to-env CRISISD_TARGET\n\n\
    Stop the daemon first: the copy refuses a SQLite store a daemon holds. It copies crises\n\
    (with their versions and audit trail), announcements, deliveries (unfinished ones are\n\
    sent by the daemons on the target), opt-outs, follow-ups, webhook state, console\n\
    accounts and submissions, in one transaction: if it fails, the target is unchanged.\n\
    A target that holds data is refused; --force empties it first (never while a daemon\n\
    leads on it). Then point [store] url at the target and start the daemons.";

/// Work on a store directly.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct StoreArgs {
    #[command(subcommand)]
    pub action: StoreAction,
}

#[derive(Debug, Subcommand)]
pub enum StoreAction {
    /// Copy a SQLite store into an empty PostgreSQL database.
    Copy {
        /// The SQLite store: `sqlite:PATH`.
        #[arg(long, value_name = "sqlite:PATH")]
        from: String,
        /// The PostgreSQL database: `postgres://…`.
        #[arg(
            long,
            value_name = "URL",
            conflicts_with = "to_env",
            required_unless_present = "to_env"
        )]
        to: Option<String>,
        /// The environment variable holding the target's URL, so a password
        /// need not be on the command line.
        #[arg(long, value_name = "VAR")]
        to_env: Option<String>,
        /// Empty a target that already holds data, then copy.
        #[arg(long)]
        force: bool,
    },
}

impl StoreArgs {
    pub async fn run(self) -> Result<(), Failure> {
        let StoreAction::Copy {
            from,
            to,
            to_env,
            force,
        } = self.action;
        let source = match StoreLocation::parse(&from).map_err(usage)? {
            StoreLocation::Sqlite(path) => path,
            StoreLocation::Postgres(_) => return Err(usage("--from must be a sqlite: URL".into())),
        };
        let target = match (to, to_env) {
            (Some(url), _) => url,
            (None, Some(var)) => std::env::var(&var)
                .map_err(|_| usage(format!("the environment variable {var} is not set")))?,
            (None, None) => return Err(usage("give --to or --to-env".into())),
        };
        let target = match StoreLocation::parse(&target).map_err(usage)? {
            StoreLocation::Postgres(url) => url,
            StoreLocation::Sqlite(_) => {
                return Err(usage("the target must be a postgres:// URL".into()));
            }
        };
        copy(source, target.expose(), force).await
    }
}

fn usage(message: String) -> Failure {
    Failure::Usage(anyhow!(message))
}

async fn copy(source: PathBuf, target: &str, force: bool) -> Result<(), Failure> {
    let started = Instant::now();
    let mut shown = Instant::now();
    let report = |p: Progress<'_>| {
        // A line per table, and one a second on a long one.
        if p.copied == 0 || p.copied == p.total || shown.elapsed() >= Duration::from_secs(1) {
            shown = Instant::now();
            let mut err = std::io::stderr();
            let _ = writeln!(err, "{}: {} of {} rows", p.table, p.copied, p.total);
        }
    };
    match copy::sqlite_to_postgres(&source, target, force, report).await {
        Ok(tables) => {
            let rows: u64 = tables.iter().map(|(_, n)| n).sum();
            println!(
                "Copied {rows} rows of {} tables from {} in {:.1}s.",
                tables.len(),
                source.display(),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Err(err @ (CopyError::TargetHoldsData(_) | CopyError::NoSource(_))) => {
            Err(Failure::Usage(err.into()))
        }
        Err(err) => Err(Failure::Runtime(err.into())),
    }
}
