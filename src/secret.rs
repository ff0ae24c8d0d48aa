//! Secrets are named in the config, never written in it: they are read from
//! an environment variable, a file, or a systemd credential.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where a secret comes from: the `*_env` / `*_file` keys of the section
/// that needs it.
#[derive(Debug, Clone, Default)]
pub struct SecretSource {
    pub env: Option<String>,
    pub file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    EnvMissing(String),
    #[error("cannot read secret file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret file {0} is empty")]
    Empty(PathBuf),
    #[error("no secret source: set `env` or `file`")]
    Unset,
}

impl SecretSource {
    pub fn is_set(&self) -> bool {
        self.env.is_some() || self.file.is_some()
    }

    /// Reads the secret: the environment variable wins over the file.
    pub fn read(&self) -> Result<Secret, SecretError> {
        if let Some(var) = &self.env {
            return match std::env::var(var) {
                Ok(value) if !value.trim().is_empty() => Ok(Secret(value.trim().to_owned())),
                _ if self.file.is_some() => self.read_file(),
                _ => Err(SecretError::EnvMissing(var.clone())),
            };
        }
        self.read_file()
    }

    /// The file this secret is read from, after the credentials-directory
    /// lookup.
    pub fn resolved_file(&self) -> Option<PathBuf> {
        self.file.as_deref().map(resolve_credential_path)
    }

    fn read_file(&self) -> Result<Secret, SecretError> {
        let Some(path) = &self.file else {
            return Err(SecretError::Unset);
        };
        let path = resolve_credential_path(path);
        let text = std::fs::read_to_string(&path).map_err(|source| SecretError::File {
            path: path.clone(),
            source,
        })?;
        let value = text.trim();
        if value.is_empty() {
            return Err(SecretError::Empty(path));
        }
        Ok(Secret(value.to_owned()))
    }
}

/// A bare file name is looked up in `$CREDENTIALS_DIRECTORY` first, where
/// systemd's `LoadCredential=` puts secrets.
fn resolve_credential_path(path: &Path) -> PathBuf {
    if path.components().count() == 1
        && let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY")
    {
        let candidate = Path::new(&dir).join(path);
        if candidate.exists() {
            return candidate;
        }
    }
    path.to_path_buf()
}

/// A secret value. Debug and Display never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}
