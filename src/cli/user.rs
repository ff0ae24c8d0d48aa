//! `crisisd user`: console accounts, managed on the store itself (like
//! `serve`, it opens the configured store; the daemon may be running).
//! Passwords are read from standard input when it is not a terminal
//! (one line), else prompted for twice without echo, and stored only as
//! Argon2id hashes.

use std::io::{BufRead, IsTerminal};
use std::path::Path;

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};

use super::Failure;
use crate::domain::account::{Role, User, UserName, hash_password};
use crate::outbox::{AccountEvent, AccountEventKind, Storage};

const AFTER_HELP: &str = "Examples:\n  \
    crisisd user add alice --role author             prompts for the password twice\n  \
    printf '%s\\n' \"$PASSWORD\" | crisisd user add bob --role approver\n  \
    crisisd user list\n  \
    crisisd user passwd alice                        ends alice's console sessions\n  \
    crisisd user remove bob\n\n\
    Roles: viewer (reads), author (also composes and sends what needs no second person),\n\
    approver (also approves another person's announcement), admin (all of it).";

/// Manage console accounts: add, list, remove, change a password.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct UserArgs {
    #[command(subcommand)]
    pub action: UserAction,
}

#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Add an account; the password comes from stdin or a prompt.
    Add {
        name: String,
        #[arg(long, value_enum)]
        role: Role,
    },
    /// List the accounts with their roles.
    List,
    /// Remove an account and end its sessions.
    Remove { name: String },
    /// Set a new password and end the account's sessions.
    Passwd { name: String },
}

impl UserArgs {
    pub async fn run(self, config: &Path) -> Result<(), Failure> {
        let storage = crate::app::open_storage(config).await?;
        match self.action {
            UserAction::Add { name, role } => add(&storage, &parse_name(&name)?, role).await,
            UserAction::List => list(&storage).await,
            UserAction::Remove { name } => remove(&storage, &parse_name(&name)?).await,
            UserAction::Passwd { name } => passwd(&storage, &parse_name(&name)?).await,
        }
    }
}

fn parse_name(raw: &str) -> Result<UserName, Failure> {
    UserName::parse(raw).map_err(|e| Failure::Usage(e.into()))
}

fn runtime(err: impl Into<anyhow::Error>) -> Failure {
    Failure::Runtime(err.into())
}

/// Who ran the command, for the account audit trail.
fn cli_detail() -> String {
    match std::env::var("USER").or_else(|_| std::env::var("LOGNAME")) {
        Ok(user) if !user.is_empty() => format!("cli (system user {user})"),
        _ => "cli".to_owned(),
    }
}

async fn audit(storage: &Storage, kind: AccountEventKind, name: &UserName) -> Result<(), Failure> {
    storage
        .accounts
        .record_account_event(&AccountEvent {
            at: chrono::Utc::now(),
            kind,
            user: name.to_string(),
            detail: cli_detail(),
        })
        .await
        .map_err(runtime)
}

/// The new password, hashed off the async runtime.
async fn new_password_hash(name: &UserName) -> Result<String, Failure> {
    let password = read_password(name).map_err(Failure::Usage)?;
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(runtime)?
        .map_err(|e| Failure::Usage(e.into()))
}

fn read_password(name: &UserName) -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        if password.is_empty() {
            return Err(anyhow!("no password on standard input (one line is read)"));
        }
        return Ok(password);
    }
    let first = rpassword::prompt_password(format!("New password for {name}: "))
        .context("cannot read the password")?;
    let second = rpassword::prompt_password("Again: ").context("cannot read the password")?;
    if first != second {
        return Err(anyhow!("the two passwords differ; nothing was changed"));
    }
    Ok(first)
}

async fn add(storage: &Storage, name: &UserName, role: Role) -> Result<(), Failure> {
    if storage
        .accounts
        .user(name)
        .await
        .map_err(runtime)?
        .is_some()
    {
        return Err(Failure::Usage(anyhow!(
            "an account named {name} exists already; `crisisd user passwd {name}` changes its password"
        )));
    }
    let user = User {
        name: name.clone(),
        role,
        password_hash: new_password_hash(name).await?,
        created_at: chrono::Utc::now(),
    };
    if !storage.accounts.add_user(&user).await.map_err(runtime)? {
        return Err(Failure::Usage(anyhow!(
            "an account named {name} was added meanwhile; nothing was changed"
        )));
    }
    audit(storage, AccountEventKind::UserAdded, name).await?;
    eprintln!("Added {name} ({role}).");
    Ok(())
}

async fn list(storage: &Storage) -> Result<(), Failure> {
    let users = storage.accounts.users().await.map_err(runtime)?;
    if users.is_empty() {
        eprintln!("No console accounts yet; add one with `crisisd user add NAME --role ROLE`.");
    }
    for user in users {
        println!(
            "{:<24} {:<9} added {}",
            user.name,
            user.role,
            user.created_at.format("%Y-%m-%d %H:%M UTC")
        );
    }
    Ok(())
}

async fn remove(storage: &Storage, name: &UserName) -> Result<(), Failure> {
    if !storage.accounts.remove_user(name).await.map_err(runtime)? {
        return Err(Failure::Usage(anyhow!("there is no account named {name}")));
    }
    audit(storage, AccountEventKind::UserRemoved, name).await?;
    eprintln!("Removed {name}; their console sessions have ended.");
    Ok(())
}

async fn passwd(storage: &Storage, name: &UserName) -> Result<(), Failure> {
    if storage
        .accounts
        .user(name)
        .await
        .map_err(runtime)?
        .is_none()
    {
        return Err(Failure::Usage(anyhow!("there is no account named {name}")));
    }
    let hash = new_password_hash(name).await?;
    if !storage
        .accounts
        .set_password(name, &hash)
        .await
        .map_err(runtime)?
    {
        return Err(Failure::Usage(anyhow!(
            "the account {name} was removed meanwhile"
        )));
    }
    audit(storage, AccountEventKind::PasswordChanged, name).await?;
    eprintln!("Changed the password of {name}; their console sessions have ended.");
    Ok(())
}
