//! Each section checks itself, reporting every problem it finds in words a
//! person can act on; `Settings::problems` gathers them. What needs more
//! than the settings (templates, the audience file, building channels) is
//! checked where it is loaded, in `app`.

use std::collections::HashSet;
use std::time::Duration;

use axum::http::HeaderValue;

use super::{
    ApiSettings, BannerSettings, CompanySettings, ConsentSettings, DispatchSettings,
    FlagFileSettings, HealthSettings, PublishSettings, S3Settings, ServerSettings, Settings,
};
use crate::background::MAX_NICE;
use crate::domain::directory::ContactEntry;
use crate::secret::Secret;

fn is_http_url(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

impl Settings {
    /// Every problem the sections find on their own and together.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = self.company.problems();
        problems.extend(self.channels.problems());
        problems.extend(self.channels.lease_problems(self.dispatch.lease));
        problems.extend(self.dispatch.problems());
        problems.extend(directory_problems(&self.directory, &self.locales.default));
        problems.extend(self.flag_file.iter().flat_map(FlagFileSettings::problems));
        let needs_public_url = self.consent.is_some() || self.channels.takes_inbound_sms();
        problems.extend(self.server.problems(needs_public_url));
        problems.extend(self.health.problems());
        problems.extend(self.publish.problems());
        problems.extend(self.store.problems());
        problems.extend(self.console.problems());
        problems.extend(super::receipts::fallback_problems(
            &self.fallback,
            &self.channels.profiles(&self.locales.default),
        ));
        problems.extend(self.receipts.problems(&self.channels));
        problems.extend(self.retention.problems());
        problems.extend(self.fatigue.problems());
        problems.extend(self.answers.problems(&self.locales.default));
        problems
    }
}

impl PublishSettings {
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(url) = self.base_url.as_deref().filter(|url| !is_http_url(url)) {
            problems.push(format!(
                "publish.base_url `{url}` must be an http(s) URL (where the directory is served)"
            ));
        }
        if self.base_url.is_some() && self.dir.is_none() && self.s3.is_none() {
            problems.push(
                "publish.base_url is set but neither publish.dir nor [publish.s3] is: nothing is mirrored"
                    .into(),
            );
        }
        if self.cap_expires < Duration::from_secs(60) {
            problems.push(format!(
                "publish.cap_expires is {}; at least 1m, or alerting systems drop alerts at once",
                humantime::format_duration(self.cap_expires)
            ));
        }
        problems.extend(self.s3.iter().flat_map(S3Settings::problems));
        problems
    }
}

impl S3Settings {
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !is_http_url(&self.endpoint) {
            problems.push(format!(
                "publish.s3.endpoint `{}` must be an http(s) URL",
                self.endpoint
            ));
        }
        if self.bucket.trim().is_empty() {
            problems.push("publish.s3.bucket is empty".into());
        }
        if self.timeout.is_zero() {
            problems.push("publish.s3.timeout must be more than 0s".into());
        }
        for (key, source) in [
            ("access_key_id", self.access_key_id()),
            ("secret_access_key", self.secret_access_key()),
        ] {
            if !source.is_set() {
                problems.push(format!(
                    "publish.s3: set `{key}_env` or `{key}_file` (never the key itself)"
                ));
            } else if let Err(err) = source.read() {
                problems.push(format!("publish.s3.{key}: {err}"));
            }
        }
        problems
    }
}

impl CompanySettings {
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.name.trim().is_empty() {
            problems.push("company.name is empty; announcements are signed with it".to_owned());
        }
        if !is_http_url(&self.status_url) {
            problems.push(format!(
                "company.status_url `{}` must be an http(s) URL",
                self.status_url
            ));
        }
        problems
    }
}

impl DispatchSettings {
    pub fn problems(&self) -> Vec<String> {
        if self.nice <= MAX_NICE {
            return Vec::new();
        }
        vec![format!(
            "dispatch.nice is {}; it goes from 0 (as the API) to {MAX_NICE} (yields the most)",
            self.nice
        )]
    }
}

/// Every entry checked, ids unique, and at least one entry: every
/// announcement must say how to reach support.
fn directory_problems(directory: &[ContactEntry], default_locale: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut ids = HashSet::new();
    for entry in directory {
        if !ids.insert(entry.id.as_str()) {
            problems.push(format!("directory: the id `{}` is used twice", entry.id));
        }
        problems.extend(entry.problems(default_locale));
    }
    if directory.is_empty() {
        problems.push(
            "directory: no contact entries; every announcement must say how to reach support"
                .into(),
        );
    }
    problems
}

impl FlagFileSettings {
    pub fn problems(&self) -> Vec<String> {
        if !self.path.is_dir() {
            return Vec::new();
        }
        vec![format!(
            "flag_file.path: {} is a directory",
            self.path.display()
        )]
    }
}

impl ServerSettings {
    /// `needs_public_url`: links and signatures name the daemon's address
    /// (unsubscribe links, inbound SMS webhooks).
    pub fn problems(&self, needs_public_url: bool) -> Vec<String> {
        let mut problems = self.connection_problems();
        problems.extend(self.public_url_problems(needs_public_url));
        problems
    }

    fn connection_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.max_connections == 0 {
            problems.push("server.max_connections must be at least 1".to_owned());
        }
        if self.header_read_timeout.is_zero() {
            problems.push("server.header_read_timeout must be more than 0".to_owned());
        }
        // A request in progress may read and write nothing for a while.
        if self.idle_timeout < self.header_read_timeout {
            problems.push(format!(
                "server.idle_timeout ({}) must be at least server.header_read_timeout ({})",
                humantime::format_duration(self.idle_timeout),
                humantime::format_duration(self.header_read_timeout)
            ));
        }
        problems
    }

    fn public_url_problems(&self, needs_public_url: bool) -> Vec<String> {
        match &self.public_url {
            Some(url) if !is_http_url(url) => {
                vec![format!("server.public_url `{url}` must be an http(s) URL")]
            }
            None if self.listen.ip().is_unspecified() && needs_public_url => vec![format!(
                "server.public_url is needed: the daemon listens on {} and unsubscribe links and \
                 webhook signatures need the address the outside world uses",
                self.listen
            )],
            _ => Vec::new(),
        }
    }
}

impl HealthSettings {
    pub fn problems(&self) -> Vec<String> {
        if self.check_interval >= Duration::from_secs(1) {
            return Vec::new();
        }
        vec!["health.check_interval must be at least 1s".to_owned()]
    }
}

impl BannerSettings {
    /// The CORS origins as header values; each one that is not an origin
    /// is a problem.
    pub fn cors_origins(&self, problems: &mut Vec<String>) -> Vec<HeaderValue> {
        let mut origins = Vec::new();
        for origin in &self.cors_origins {
            let valid = origin == "*" || (is_http_url(origin) && !origin.ends_with('/'));
            match HeaderValue::from_str(origin) {
                Ok(value) if valid => origins.push(value),
                _ => problems.push(format!(
                    "banner.cors_origins: `{origin}` is not an origin (scheme://host[:port], no path, or \"*\")"
                )),
            }
        }
        origins
    }
}

impl ApiSettings {
    /// The tokens by name, read from their sources. A token to be
    /// generated at start (its file does not exist yet) is not a problem.
    pub fn tokens(&self, problems: &mut Vec<String>) -> Vec<(String, Secret)> {
        let mut tokens = Vec::new();
        let mut names = HashSet::new();
        for token in &self.tokens {
            if !names.insert(token.name.as_str()) {
                problems.push(format!(
                    "api.tokens: the name `{}` is used twice",
                    token.name
                ));
            }
            let source = token.secret();
            if !source.is_set() {
                problems.push(format!(
                    "api.tokens `{}`: set token_env or token_file",
                    token.name
                ));
                continue;
            }
            let generated_later =
                token.generate_if_missing && source.resolved_file().is_some_and(|p| !p.exists());
            match source.read() {
                Ok(secret) => tokens.push((token.name.clone(), secret)),
                Err(_) if generated_later => {}
                Err(err) => problems.push(format!("api.tokens `{}`: {err}", token.name)),
            }
        }
        if self.tokens.is_empty() {
            problems.push(
                "api.tokens: no API token is configured; the API and CLI could not be used".into(),
            );
        }
        tokens
    }
}

impl ConsentSettings {
    /// The key that signs unsubscribe links; `None` while it is still to be
    /// generated at start, or when it cannot be read (a problem).
    pub fn key(&self, problems: &mut Vec<String>) -> Option<Secret> {
        let source = self.signing_key();
        let generated_later =
            self.generate_if_missing && source.resolved_file().is_some_and(|p| !p.exists());
        match source.read() {
            Ok(key) => Some(key),
            Err(_) if generated_later => None,
            Err(err) => {
                problems.push(format!("consent.signing_key: {err}"));
                None
            }
        }
    }
}
