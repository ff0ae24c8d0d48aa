//! `[store]`: where crisis state and the outbox live. SQLite (a file, the
//! embedded default) or PostgreSQL (a URL, shared by several daemons). The
//! URL may carry a password, so it may come from the environment or a file
//! (`url_env`, `url_file`) and is never shown whole; `CRISISD_DATABASE_URL`
//! in the environment overrides the file's choice.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use crate::secret::{Secret, SecretSource};

/// The environment variable that overrides `[store]`, as container
/// platforms and managed databases hand a URL over.
pub const DATABASE_URL_ENV: &str = "CRISISD_DATABASE_URL";

/// The SQLite file when nothing else is set.
const DEFAULT_SQLITE_PATH: &str = "data/crisisd.db";

#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// SQLite database file; created with its directory when missing.
    /// Default: `data/crisisd.db` (when no URL is set).
    pub sqlite_path: Option<PathBuf>,
    /// `postgres://…` (or `sqlite:PATH`).
    pub url: Option<String>,
    /// Environment variable holding the URL.
    pub url_env: Option<String>,
    /// File holding the URL (a bare name is looked up in
    /// `$CREDENTIALS_DIRECTORY` first).
    pub url_file: Option<PathBuf>,
}

/// Shown without the URL's password.
impl fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreSettings")
            .field("sqlite_path", &self.sqlite_path)
            .field("url", &self.url.as_deref().map(redact))
            .field("url_env", &self.url_env)
            .field("url_file", &self.url_file)
            .finish()
    }
}

/// The store a daemon opens.
#[derive(Clone, PartialEq)]
pub enum StoreLocation {
    Sqlite(PathBuf),
    /// The full URL, password included.
    Postgres(Secret),
}

impl StoreLocation {
    /// A URL as a location: `postgres://` or `postgresql://`, or
    /// `sqlite:PATH` / `sqlite://PATH`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(Secret::new(url)));
        }
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err("a sqlite: URL needs a path (sqlite:data/crisisd.db)".into());
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        Err(format!(
            "`{}` is neither a postgres:// nor a sqlite: URL",
            redact(url)
        ))
    }

    /// Which store this is, for logs and `check-config`: the kind, and the
    /// path or the URL without its password.
    pub fn describe(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "SQLite {}", path.display()),
            Self::Postgres(url) => write!(f, "PostgreSQL {}", redact(url.expose())),
        }
    }
}

impl fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A URL with its password (and any query, which may hold one too)
/// replaced: `postgres://crisisd:***@db:5432/crisisd`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (rest, query) = match rest.split_once('?') {
        Some((rest, _)) => (rest, "?***"),
        None => (rest, ""),
    };
    let rest = match rest.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{user_info}@{host}"),
        },
        None => rest.to_owned(),
    };
    format!("{scheme}://{rest}{query}")
}

impl StoreSettings {
    fn url_source(&self) -> SecretSource {
        SecretSource {
            env: self.url_env.clone(),
            file: self.url_file.clone(),
        }
    }

    /// Where the store is: `CRISISD_DATABASE_URL` when set, then the URL
    /// keys, then `sqlite_path`, then the default file.
    pub fn location(&self) -> Result<StoreLocation, String> {
        self.location_with(std::env::var(DATABASE_URL_ENV).ok())
    }

    /// `location` with the override given (tests, without touching the
    /// process's environment).
    pub fn location_with(&self, database_url: Option<String>) -> Result<StoreLocation, String> {
        if let Some(url) = database_url.filter(|url| !url.trim().is_empty()) {
            return StoreLocation::parse(&url).map_err(|e| format!("{DATABASE_URL_ENV}: {e}"));
        }
        let source = self.url_source();
        let url_keys = usize::from(self.url.is_some()) + usize::from(source.is_set());
        if url_keys > 1 {
            return Err("store: set url, or url_env/url_file, not both".into());
        }
        if url_keys == 1 && self.sqlite_path.is_some() {
            return Err(
                "store: set sqlite_path or a URL (url, url_env, url_file), not both".into(),
            );
        }
        if let Some(url) = &self.url {
            return StoreLocation::parse(url).map_err(|e| format!("store.url: {e}"));
        }
        if source.is_set() {
            let url = source.read().map_err(|e| format!("store.url: {e}"))?;
            return StoreLocation::parse(url.expose()).map_err(|e| format!("store.url: {e}"));
        }
        Ok(StoreLocation::Sqlite(
            self.sqlite_path
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_SQLITE_PATH)),
        ))
    }

    pub fn problems(&self) -> Vec<String> {
        self.location().err().into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(toml: &str) -> StoreSettings {
        toml::from_str(toml).expect("parse")
    }

    #[test]
    fn sqlite_is_the_default_and_a_path_or_a_sqlite_url_keeps_it() {
        let default = StoreSettings::default().location_with(None);
        assert_eq!(
            default,
            Ok(StoreLocation::Sqlite(PathBuf::from("data/crisisd.db")))
        );
        let path = settings("sqlite_path = \"/var/lib/crisisd/crisisd.db\"").location_with(None);
        assert_eq!(
            path,
            Ok(StoreLocation::Sqlite(PathBuf::from(
                "/var/lib/crisisd/crisisd.db"
            )))
        );
        for url in ["sqlite:/tmp/x.db", "sqlite:///tmp/x.db"] {
            assert_eq!(
                settings(&format!("url = \"{url}\"")).location_with(None),
                Ok(StoreLocation::Sqlite(PathBuf::from("/tmp/x.db"))),
                "{url}"
            );
        }
    }

    #[test]
    fn a_postgres_url_selects_postgres_and_the_environment_overrides_the_file() {
        let url = "postgres://crisisd:hunter2@db.example.com:5432/crisisd";
        let location = settings(&format!("url = \"{url}\"")).location_with(None);
        assert_eq!(location, Ok(StoreLocation::Postgres(Secret::new(url))));
        let shown = location.expect("location").describe();
        assert_eq!(
            shown,
            "PostgreSQL postgres://crisisd:***@db.example.com:5432/crisisd"
        );
        assert!(!shown.contains("hunter2"));
        let overridden = settings("sqlite_path = \"x.db\"")
            .location_with(Some("postgresql://other@db/crisisd".into()));
        assert_eq!(
            overridden,
            Ok(StoreLocation::Postgres(Secret::new(
                "postgresql://other@db/crisisd"
            )))
        );
    }

    #[test]
    fn a_url_from_a_file_is_read_and_conflicting_or_unknown_settings_are_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("url");
        std::fs::write(&file, "postgres://crisisd:pw@db/crisisd\n").expect("write");
        let from_file = settings(&format!("url_file = \"{}\"", file.display())).location_with(None);
        assert_eq!(
            from_file,
            Ok(StoreLocation::Postgres(Secret::new(
                "postgres://crisisd:pw@db/crisisd"
            )))
        );
        let both =
            settings("url = \"postgres://db/x\"\nsqlite_path = \"x.db\"").location_with(None);
        assert!(both.is_err_and(|e| e.contains("not both")));
        let two_urls =
            settings("url = \"postgres://db/x\"\nurl_env = \"DB_URL\"").location_with(None);
        assert!(two_urls.is_err_and(|e| e.contains("not both")));
        let unknown = settings("url = \"mysql://root:pw@db/x\"").location_with(None);
        let message = unknown.expect_err("refused");
        assert!(message.contains("neither"), "{message}");
        assert!(!message.contains("pw@"), "{message}");
        let missing = settings("url_env = \"CRISISD_TEST_NO_SUCH_VARIABLE\"").location_with(None);
        assert!(missing.is_err_and(|e| e.contains("CRISISD_TEST_NO_SUCH_VARIABLE")));
    }
}
