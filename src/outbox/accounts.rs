//! Console accounts, their sign-in sessions and the account audit trail
//! (sign-ins, failures, sign-outs, accounts added, removed, re-keyed).
//! A session is stored by the SHA-256 of its cookie, never the cookie.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::domain::account::{Role, User, UserName};
use crate::domain::{DomainError, string_enum};

/// A session as it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// SHA-256 (hex) of the cookie's secret.
    pub token_digest: String,
    pub user: UserName,
    /// The token every form of this session carries.
    pub csrf: String,
    pub created_at: DateTime<Utc>,
}

/// A stored session, with its account's role as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub token_digest: String,
    pub user: UserName,
    pub role: Role,
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    /// The last request seen with it; inactivity is counted from here.
    pub last_seen_at: DateTime<Utc>,
}

string_enum!(
    /// What happened to an account.
    AccountEventKind {
        SignedIn => "signed_in",
        SignInFailed => "sign_in_failed",
        SignInLimited => "sign_in_limited",
        SignedOut => "signed_out",
        UserAdded => "user_added",
        UserRemoved => "user_removed",
        PasswordChanged => "password_changed",
    }
);

/// One entry of the account audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountEvent {
    pub at: DateTime<Utc>,
    pub kind: AccountEventKind,
    /// The account name as given (a failed sign-in may name no account).
    pub user: String,
    /// Where it came from and how: a client address, `cli`, a reason.
    pub detail: String,
}

#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Adds an account; false when the name is taken (nothing changes).
    async fn add_user(&self, user: &User) -> Result<bool, StoreError>;
    async fn user(&self, name: &UserName) -> Result<Option<User>, StoreError>;
    /// Every account, by name.
    async fn users(&self) -> Result<Vec<User>, StoreError>;
    /// Removes an account and ends its sessions; false when there was none.
    async fn remove_user(&self, name: &UserName) -> Result<bool, StoreError>;
    /// Replaces an account's password hash and ends its sessions, so an
    /// old password's sessions do not outlive it; false when there is no
    /// such account.
    async fn set_password(&self, name: &UserName, password_hash: &str) -> Result<bool, StoreError>;
    async fn start_session(&self, session: &NewSession) -> Result<(), StoreError>;
    /// The session with this digest, if it exists and its account does.
    async fn session(&self, token_digest: &str) -> Result<Option<Session>, StoreError>;
    /// Notes a request seen with the session at `at`.
    async fn touch_session(&self, token_digest: &str, at: DateTime<Utc>) -> Result<(), StoreError>;
    async fn end_session(&self, token_digest: &str) -> Result<(), StoreError>;
    /// Ends every session last seen before `idle_since`; how many ended.
    async fn end_idle_sessions(&self, idle_since: DateTime<Utc>) -> Result<u64, StoreError>;
    async fn record_account_event(&self, event: &AccountEvent) -> Result<(), StoreError>;
    /// The newest `limit` entries, newest first.
    async fn account_events(&self, limit: u32) -> Result<Vec<AccountEvent>, StoreError>;
}
