//! Console accounts: named people with a role, their passwords kept only
//! as Argon2id hashes, and what each role may do.

use std::fmt;
use std::str::FromStr;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{DomainError, string_enum};

string_enum!(
    /// What a person may do in the console, each role including the ones
    /// before it: a viewer reads, an author also composes and sends what
    /// needs no second person, an approver also approves someone else's
    /// announcement, an admin also manages accounts.
    Role {
        Viewer => "viewer",
        Author => "author",
        Approver => "approver",
        Admin => "admin",
    }
);

impl Role {
    fn rank(self) -> u8 {
        match self {
            Role::Viewer => 0,
            Role::Author => 1,
            Role::Approver => 2,
            Role::Admin => 3,
        }
    }

    /// Compose, preview, submit, send a drill or a correction, requeue.
    pub fn can_compose(self) -> bool {
        self.rank() >= Role::Author.rank()
    }

    /// Approve another person's announcement, confirm or discard a
    /// webhook's proposal.
    pub fn can_approve(self) -> bool {
        self.rank() >= Role::Approver.rank()
    }
}

/// A console account's name: 1 to 64 of `a-z 0-9 . _ -`, starting with a
/// letter or digit, so it reads the same in the audit trail
/// (`console:alice`), a log line and a shell.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserName(String);

pub const MAX_USER_NAME_CHARS: usize = 64;

impl UserName {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let name = raw.trim().to_lowercase();
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c);
        let starts_well = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
        if name.is_empty()
            || name.len() > MAX_USER_NAME_CHARS
            || !starts_well
            || !name.chars().all(allowed)
        {
            return Err(DomainError::UnknownValue {
                what: "user name",
                value: raw.to_owned(),
                expected: format!(
                    "1 to {MAX_USER_NAME_CHARS} of a-z, 0-9, `.`, `_`, `-`, starting with a letter or digit"
                ),
            });
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl FromStr for UserName {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for UserName {
    type Error = DomainError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<UserName> for String {
    fn from(name: UserName) -> Self {
        name.0
    }
}

/// A console account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: UserName,
    pub role: Role,
    /// The PHC string of an Argon2id hash; never the password.
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
}

/// Shortest password accepted: long enough that the rate limit, not the
/// password, is what stops guessing.
pub const MIN_PASSWORD_CHARS: usize = 12;
pub const MAX_PASSWORD_CHARS: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("a password must have at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("a password must have at most {MAX_PASSWORD_CHARS} characters")]
    TooLong,
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// An Argon2id hash (the crate's defaults: 19 MiB, 2 passes, one lane,
/// the parameters OWASP recommends) of a new password, as a PHC string.
/// Slow on purpose: call it off the async runtime.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(PasswordError::TooLong);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches `stored` (a PHC string); an unreadable
/// hash matches nothing. Slow on purpose, like `hash_password`.
pub fn verify_password(password: &str, stored: &str) -> bool {
    if password.len() > MAX_PASSWORD_CHARS * 4 {
        return false;
    }
    PasswordHash::new(stored).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// A hash no password matches, verified against when a name is unknown
/// so that the answer takes as long as for a known one.
pub fn decoy_hash() -> &'static str {
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3N0Y1y8Xq2zJcX0fE1H5bQ0kq1C0JmH3o0Yc7kF8d9Q"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_own_hash_only() {
        let hash = hash_password("correct horse battery").expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterx", &hash));
        assert!(!verify_password("correct horse battery", "not a hash"));
        assert!(!verify_password("correct horse battery", decoy_hash()));
        assert!(
            PasswordHash::new(decoy_hash()).is_ok(),
            "the decoy must parse, or an unknown name would answer faster"
        );
        assert_eq!(hash_password("short"), Err(PasswordError::TooShort));
    }

    #[test]
    fn user_names_are_lower_cased_and_checked() {
        assert_eq!(UserName::parse(" Alice ").expect("ok").as_str(), "alice");
        assert!(UserName::parse("a.b-c_9").is_ok());
        for bad in ["", "-alice", "al ice", "alice:admin", &"a".repeat(65)] {
            assert!(UserName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn each_role_includes_the_ones_before_it() {
        assert!(!Role::Viewer.can_compose());
        assert!(Role::Author.can_compose() && !Role::Author.can_approve());
        assert!(Role::Approver.can_approve() && Role::Admin.can_approve());
    }
}
