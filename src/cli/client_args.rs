//! The options every client verb takes: where the daemon is (`--url`, and
//! the token and actor found beside it) and how its answer is printed
//! (`--json`).

use std::path::Path;

use anyhow::anyhow;
use clap::Args;
use serde::Serialize;

use super::Failure;
use super::client::ApiClient;
use crate::config::{ConfigError, Settings};
use crate::secret::Secret;

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Daemon URL [default: from the config's server.listen, else http://127.0.0.1:8750].
    /// The API token comes from CRISISD_TOKEN, else the config's first token.
    #[arg(long, env = "CRISISD_URL", value_name = "URL")]
    pub url: Option<String>,
    /// Print the daemon's JSON answer instead of a summary.
    #[arg(long)]
    pub json: bool,
}

impl ClientArgs {
    /// The daemon's URL and token for the client verbs.
    pub fn connect(&self, config: &Path) -> Result<ApiClient, Failure> {
        let loaded = Settings::load(config);
        let url = self.url.clone().unwrap_or_else(|| match &loaded {
            Ok(s) if s.server.listen.ip().is_unspecified() => {
                format!("http://127.0.0.1:{}", s.server.listen.port())
            }
            Ok(s) => format!("http://{}", s.server.listen),
            Err(_) => "http://127.0.0.1:8750".to_owned(),
        });
        let token = token(config, &loaded)?;
        ApiClient::new(&url, token, actor()).map_err(|e| Failure::Runtime(e.into()))
    }

    /// `value` as JSON with `--json`, else as `summary` prints it.
    pub fn print<T: Serialize>(&self, value: &T, summary: impl FnOnce(&T)) {
        if self.json {
            print_json(value);
        } else {
            summary(value);
        }
    }
}

/// CRISISD_TOKEN, else the first readable token of the config.
fn token(config: &Path, loaded: &Result<Settings, ConfigError>) -> Result<Secret, Failure> {
    match std::env::var("CRISISD_TOKEN") {
        Ok(token) if !token.trim().is_empty() => Ok(Secret::new(token.trim())),
        _ => match loaded {
            Ok(settings) => settings
                .api
                .tokens
                .iter()
                .find_map(|t| t.secret().read().ok())
                .ok_or_else(|| {
                    Failure::Usage(anyhow!(
                        "no API token: set CRISISD_TOKEN, or run where {} names a readable token_file \
                         (the daemon writes a generated one when it starts)",
                        config.display()
                    ))
                }),
            Err(err) => Err(Failure::Usage(anyhow!(
                "no API token: CRISISD_TOKEN is not set and the config could not be read: {err}"
            ))),
        },
    }
}

/// The person at the terminal, for the audit trail; in a bare environment
/// (a container, cron) the user id at least.
fn actor() -> Option<String> {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .or_else(|| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata("/proc/self")
                .ok()
                .map(|m| format!("uid {}", m.uid()))
        })
}

pub fn print_json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(err) => eprintln!("cannot print JSON: {err}"),
    }
}

/// `path?query`, the query (one of the API's query types) form-encoded.
pub fn with_query(path: &str, query: &impl Serialize) -> Result<String, Failure> {
    let query = serde_urlencoded::to_string(query)
        .map_err(|e| Failure::Runtime(anyhow!("cannot build the query: {e}")))?;
    Ok(format!("{path}?{query}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_form_encoded_so_a_plus_in_a_zone_survives() {
        let query = crate::http::schedule::ScheduleQuery {
            tz: Some("Etc/GMT+5".to_owned()),
        };
        let path = with_query("/v1/follow-ups", &query);
        assert_eq!(path.expect("encodes"), "/v1/follow-ups?tz=Etc%2FGMT%2B5");
    }
}
