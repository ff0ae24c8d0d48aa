//! Reading the config file with errors that point at file, line, column
//! and key.

use std::path::{Path, PathBuf};

use super::Settings;

pub const DEFAULT_CONFIG_PATH: &str = "config/crisisd.toml";

/// `--config`, else `$CRISISD_CONFIG`, else `config/crisisd.toml`. clap
/// handles the first two; this is the fallback in one place.
pub fn config_path(explicit: Option<&Path>) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH))
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {key}{message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        /// `key: ` prefix, empty when the error is not about one key.
        key: String,
        message: String,
    },
    #[error("{path}: invalid configuration:\n{}", problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
}

impl Settings {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let deserializer = toml::Deserializer::new(text);
        serde_path_to_error::deserialize(deserializer).map_err(|err| {
            let key = err.path().to_string();
            let inner = err.into_inner();
            let (line, column) = inner
                .span()
                .map(|span| line_column(text, span.start))
                .unwrap_or((1, 1));
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                key: if key.is_empty() || key == "." {
                    String::new()
                } else {
                    format!("{key}: ")
                },
                message: inner.message().to_owned(),
            }
        })
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[audience]\nfile = \"a.csv\"\n";

    #[test]
    fn a_minimal_config_parses_with_defaults() {
        let settings = Settings::parse(Path::new("t.toml"), MINIMAL).expect("parses");
        assert_eq!(settings.server.listen.port(), 8750);
        assert_eq!(settings.locales.default, "en");
    }

    #[test]
    fn an_unknown_key_is_reported_with_line_column_and_name() {
        let text = format!("{MINIMAL}\n[server]\nlisten = \"127.0.0.1:1\"\ncolour = \"red\"\n");
        let err = Settings::parse(Path::new("t.toml"), &text).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("t.toml:6:1: "), "{msg}");
        assert!(msg.contains("colour"), "{msg}");
    }

    #[test]
    fn a_wrong_type_names_the_key_path() {
        let text =
            format!("{MINIMAL}[server]\nlisten = \"127.0.0.1:1\"\nmax_body_bytes = \"big\"\n");
        let err = Settings::parse(Path::new("t.toml"), &text).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("t.toml:5:"), "{msg}");
        assert!(msg.contains("server.max_body_bytes"), "{msg}");
    }

    #[test]
    fn an_s3_copy_needs_an_http_endpoint_a_bucket_and_both_keys_from_outside_the_file() {
        let text = format!(
            "{MINIMAL}[publish.s3]\nendpoint = \"s3.example.com\"\nbucket = \" \"\n\
             access_key_id_env = \"CRISISD_TEST_S3_KEY_THAT_IS_NOT_SET\"\n"
        );
        let settings = Settings::parse(Path::new("t.toml"), &text).expect("parses");
        let problems = settings.publish.problems();
        for expected in [
            "publish.s3.endpoint `s3.example.com` must be an http(s) URL",
            "publish.s3.bucket is empty",
            "publish.s3.access_key_id: environment variable CRISISD_TEST_S3_KEY_THAT_IS_NOT_SET is not set",
            "publish.s3: set `secret_access_key_env` or `secret_access_key_file` (never the key itself)",
        ] {
            assert!(
                problems.iter().any(|p| p == expected),
                "{expected} in {problems:#?}"
            );
        }
        let keys = format!(
            "{MINIMAL}[publish.s3]\nendpoint = \"https://s3.example.com\"\nbucket = \"b\"\nsecret_access_key = \"x\"\n"
        );
        let err = Settings::parse(Path::new("t.toml"), &keys).unwrap_err();
        assert!(
            err.to_string().contains("secret_access_key"),
            "a key in the file is refused: {err}"
        );
    }
}
