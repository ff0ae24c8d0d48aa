//! The copy in an S3-compatible bucket (`[publish.s3]`): the same files as
//! the static directory, each PUT with its content type and cache lifetime,
//! so a CDN in front of the bucket serves them while the daemon is down.
//! Requests are signed with rusty-s3 (AWS Signature V4, no I/O of its own)
//! and sent with the daemon's reqwest, under a timeout each.

use std::collections::HashMap;
use std::time::Duration;

use rusty_s3::actions::{PutObject, S3Action};
use rusty_s3::{Bucket, Credentials, UrlStyle};
use sha2::{Digest, Sha256};

use crate::secret::Secret;

/// What `[publish.s3]` names, with its secrets read.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// `https://s3.eu-west-1.amazonaws.com`, or a MinIO's or moto's URL.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    /// Put before every file's name (`crisis/` puts `crisis/banner.js`).
    pub prefix: String,
    /// `bucket` in the path (MinIO, moto) rather than in the host name.
    pub path_style: bool,
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    /// Each PUT, from connecting to the answer.
    pub timeout: Duration,
    /// `Cache-Control: max-age` of the files that change (banner, pages,
    /// feeds), as the daemon serves them.
    pub max_age: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("`[publish.s3]` is not usable: {0}")]
    Config(String),
    /// Without the URL: a presigned URL is a credential while it lasts.
    #[error("PUT {key}: {source}")]
    Request { key: String, source: reqwest::Error },
    #[error("PUT {key}: the server answered {status}: {excerpt}")]
    Refused {
        key: String,
        status: u16,
        excerpt: String,
    },
}

/// How long a signed request stays valid: long enough for a slow upload to
/// start, short enough that a leaked one is soon worthless.
const SIGNED_FOR: Duration = Duration::from_secs(120);

/// The most of an error answer kept for the reason.
const EXCERPT_BYTES: usize = 300;

pub struct S3Upload {
    bucket: Bucket,
    credentials: Credentials,
    prefix: String,
    max_age: Duration,
    http: reqwest::Client,
    /// What each key holds in the bucket now (its SHA-256), so an unchanged
    /// file is not sent again every minute.
    uploaded: HashMap<String, [u8; 32]>,
}

impl S3Upload {
    pub fn new(options: S3Options) -> Result<Self, S3Error> {
        let endpoint = options
            .endpoint
            .parse()
            .map_err(|e| S3Error::Config(format!("endpoint {:?}: {e}", options.endpoint)))?;
        let style = if options.path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(endpoint, style, options.bucket, options.region)
            .map_err(|e| S3Error::Config(e.to_string()))?;
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .build()
            .map_err(|e| S3Error::Config(e.to_string()))?;
        Ok(Self {
            bucket,
            credentials: Credentials::new(
                options.access_key_id.expose(),
                options.secret_access_key.expose(),
            ),
            prefix: options.prefix,
            max_age: options.max_age,
            http,
            uploaded: HashMap::new(),
        })
    }

    /// Puts every file whose content the bucket does not hold yet, in the
    /// order given (documents before the feed that lists them); stops at
    /// the first failure, so the rest is tried again next time. Returns how
    /// many were sent.
    pub async fn upload(&mut self, files: &[(String, Vec<u8>)]) -> Result<usize, S3Error> {
        let mut sent = 0;
        for (name, bytes) in files {
            let key = format!("{}{name}", self.prefix);
            let digest: [u8; 32] = Sha256::digest(bytes).into();
            if self.uploaded.get(&key) == Some(&digest) {
                continue;
            }
            self.put(&key, name, bytes).await?;
            self.uploaded.insert(key, digest);
            sent += 1;
        }
        Ok(sent)
    }

    async fn put(&self, key: &str, name: &str, bytes: &[u8]) -> Result<(), S3Error> {
        let kind = content_type(name);
        let cache = cache_control(name, self.max_age);
        let mut action = PutObject::new(&self.bucket, Some(&self.credentials), key);
        // Signed, so they must be sent exactly so.
        action.headers_mut().insert("content-type", kind);
        action.headers_mut().insert("cache-control", cache.clone());
        let url = action.sign(SIGNED_FOR);
        let failed = |source: reqwest::Error| S3Error::Request {
            key: key.to_owned(),
            source: source.without_url(),
        };
        let mut response = self
            .http
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, kind)
            .header(reqwest::header::CACHE_CONTROL, cache)
            .body(bytes.to_vec())
            .send()
            .await
            .map_err(failed)?;
        if response.status().is_success() {
            return Ok(());
        }
        let status = response.status().as_u16();
        // The first chunk only: an error page is never read whole.
        let first = response.chunk().await.map_err(failed)?.unwrap_or_default();
        let excerpt = String::from_utf8_lossy(&first[..first.len().min(EXCERPT_BYTES)])
            .trim()
            .to_owned();
        Err(S3Error::Refused {
            key: key.to_owned(),
            status,
            excerpt,
        })
    }
}

/// The content type each kind of file is served with, as the daemon
/// serves the same documents.
pub fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("json") => "application/json",
        Some("js") => "text/javascript; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        Some("atom") => "application/atom+xml; charset=utf-8",
        Some("xml") => "application/cap+xml; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// A CAP document of one version never changes; the script changes only
/// with the daemon; everything else with the next transition.
pub fn cache_control(name: &str, max_age: Duration) -> String {
    if name.starts_with("cap/") {
        "public, max-age=86400, immutable".to_owned()
    } else if name.ends_with(".js") {
        "public, max-age=300".to_owned()
    } else {
        format!("public, max-age={}", max_age.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_file_gets_its_type_and_lifetime() {
        let age = Duration::from_secs(15);
        assert_eq!(content_type("banner-bn.json"), "application/json");
        assert_eq!(
            content_type("cap/x-1.xml"),
            "application/cap+xml; charset=utf-8"
        );
        assert_eq!(
            cache_control("cap/x-1.xml", age),
            "public, max-age=86400, immutable"
        );
        assert_eq!(cache_control("status-en.html", age), "public, max-age=15");
        assert_eq!(cache_control("banner.js", age), "public, max-age=300");
    }
}
